"""Model hyper-parameters, importable without TensorFlow (the CLI's --help stays fast)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ARCHITECTURES: tuple[str, ...] = ("cnn", "compact", "transformer")
POWER_OUTPUT = "power"
STATUS_OUTPUT = "status"


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Architecture hyper-parameters; ``d_model``/``heads``/``blocks`` apply to the
    transformer, ``width`` multiplies the compact CNN's channels."""

    architecture: str = "compact"
    window_length: int = 599
    dropout: float = 0.1
    d_model: int = 256
    heads: int = 2
    blocks: int = 2
    width: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})
