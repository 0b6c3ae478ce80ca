"""Exceptions raised by the engine.

Every problem with a model file surfaces as :class:`ModelError` (or a subclass), so
callers such as the integration need exactly one ``except`` clause to turn a bad file
into a repair issue instead of a crash.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class for everything the engine raises on purpose."""


class ModelError(EngineError):
    """A model file or its card cannot be used."""


class ModelFormatError(ModelError):
    """The .tflite bytes are malformed, truncated, oversized or otherwise untrustworthy."""


class UnsupportedOpError(ModelError):
    """The model needs an operator (or operator version) the numpy engine lacks.

    Raised at load time, never at the first inference.
    """

    def __init__(self, op_names: list[str]) -> None:
        self.op_names = sorted(set(op_names))
        super().__init__("unsupported operator(s): " + ", ".join(self.op_names))


class ModelCardError(ModelError):
    """The JSON model card is missing, invalid, or of an unknown schema version.

    ``card_name`` is the card's ``name`` field when it could be read (a card rejected for
    one bad field still says which model it was meant to be), else None.
    """

    card_name: str | None = None


class HashMismatchError(ModelCardError):
    """The .tflite file's sha256 differs from the one recorded in its card."""


class BackendUnavailableError(EngineError):
    """A backend the caller forced cannot be loaded on this machine."""
