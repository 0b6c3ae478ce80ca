"""Write a chosen model and its card where the integration reads models.

Layout of a models folder (the integration reads ``<name>.tflite`` + ``<name>.json``)::

    <name>.tflite, <name>.json            the deployed model and its card (sha256 inside)
    edgetpu/<name>.tflite, <name>.json    full int8 with int8 I/O: the Edge TPU compiler's input
    <name>.export.md                      provenance + the exact edgetpu_compiler command

The Edge TPU input lives in a sub-folder so that ``edgetpu_compiler -o <models>/edgetpu``
writes ``<name>_edgetpu.tflite`` (the engine recognises the ``_edgetpu`` suffix) without
the integration mistaking the uncompiled file for a second model. After compiling,
``nilm-trainer export --edgetpu-card <models>/edgetpu/<name>_edgetpu.tflite`` writes the
compiled model's card (same name and metadata, new hash); copied with the model into
``<config>/nilm/models/`` it overrides the bundled model of that name for Coral users,
and the CPU model of that name stays the fallback when no Coral is plugged in.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custom_components.nilm.engine.adapter import head_spec
from custom_components.nilm.engine.card import (
    REFIT_ATTRIBUTION,
    UKDALE_ATTRIBUTION,
    ModelCard,
    load_card,
)
from custom_components.nilm.engine.reader import read_model

from . import __version__
from .errors import TrainerError
from .files import load_json
from .quantize import ConvertedModel

__all__ = [
    "EDGETPU_DIR", "EDGETPU_SUFFIX", "README_SUFFIX", "ExportResult", "attribution_for",
    "card_for", "edgetpu_compiler_command", "export_model", "load_json", "write_edgetpu_card",
]  # fmt: skip

EDGETPU_DIR = "edgetpu"
EDGETPU_SUFFIX = "_edgetpu.tflite"
README_SUFFIX = ".export.md"


@dataclass(frozen=True, slots=True)
class ExportResult:
    model_path: Path
    card_path: Path
    edgetpu_input: Path | None
    edgetpu_card: Path | None
    compiler_command: str | None
    readme: Path


def edgetpu_compiler_command(input_path: Path) -> str:
    """The command a user runs where ``edgetpu_compiler`` exists (x86-64 Debian/Ubuntu).

    ``-s`` prints which ops map to the TPU; ``-o`` keeps the output beside its input so
    the compiled file is ``<name>_edgetpu.tflite``.
    """
    out_dir = input_path.parent
    return f"edgetpu_compiler -s -o {shlex.quote(str(out_dir))} {shlex.quote(str(input_path))}"


def attribution_for(source: str) -> str:
    """The dataset credit a model trained on ``source`` (a ``HouseData.source`` label)
    owes: REFIT, UK-DALE, both, or none (a household's own CSV or recorder)."""
    text = source.lower()
    credits = []
    if "refit" in text:
        credits.append(REFIT_ATTRIBUTION)
    if "uk-dale" in text or "ukdale" in text:
        credits.append(UKDALE_ATTRIBUTION)
    return " ".join(credits)


def card_for(
    template: ModelCard,
    converted: ConvertedModel,
    *,
    name: str,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> ModelCard:
    """The template card (from training) completed for one converted model."""
    status_output = template.status_output
    power_output = converted.tflite_output_index(template.power_output)
    if status_output is not None:
        status_output = converted.tflite_output_index(status_output)
    io_dtype = "int8" if converted.config.int8_io else "float32"
    merged_training = {**template.training, **(training or {})}
    if "attribution" not in merged_training:
        credit = attribution_for(str(merged_training.get("source", "")))
        if credit:
            merged_training["attribution"] = credit
    merged_training["quantization"] = converted.config.to_dict()
    merged_training["delay_s"] = template.delay_s
    card = dataclasses.replace(
        template,
        name=name,
        quantization=converted.config.mode,
        input_dtype=io_dtype,
        output_dtype=io_dtype,
        power_output=power_output,
        status_output=status_output,
        training=merged_training,
        metrics={**template.metrics, **(metrics or {})},
        trainer_version=__version__,
        tflite_file="",
        tflite_sha256="",
    )
    # Name the head both outputs read, so a household can re-fit it (engine.adapter).
    return dataclasses.replace(card, head=head_spec(read_model(converted.data), card))


def _write_pair(folder: Path, stem: str, data: bytes, card: ModelCard) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / f"{stem}.tflite"
    model_path.write_bytes(data)
    card_path = folder / f"{stem}.json"
    card_path.write_text(card.with_file(model_path).to_json(), encoding="utf-8")
    load_card(card_path, verify_hash=True)  # what the integration will do, now
    return model_path, card_path


def export_model(
    out_dir: Path,
    name: str,
    chosen: ConvertedModel,
    template: ModelCard,
    *,
    edgetpu: ConvertedModel | None = None,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    report: str = "",
) -> ExportResult:
    """Write ``<name>.tflite`` + card, the Edge TPU input and ``<name>.export.md``."""
    if not name or "/" in name or name.startswith("."):
        raise TrainerError(f"model name {name!r} must be a plain file stem")
    if edgetpu is not None and not (edgetpu.config.mode == "w8_a8" and edgetpu.config.int8_io):
        raise TrainerError("the Edge TPU input must be w8_a8 with int8 I/O")
    card = card_for(template, chosen, name=name, metrics=metrics, training=training)
    model_path, card_path = _write_pair(out_dir, name, chosen.data, card)
    tpu_input: Path | None = None
    tpu_card: Path | None = None
    command: str | None = None
    if edgetpu is not None:
        tpu = card_for(template, edgetpu, name=name, metrics=metrics, training=training)
        tpu_input, tpu_card = _write_pair(out_dir / EDGETPU_DIR, name, edgetpu.data, tpu)
        command = edgetpu_compiler_command(tpu_input)
    readme = out_dir / f"{name}{README_SUFFIX}"
    readme.write_text(
        _readme(
            card, model_path, tpu_input=tpu_input, command=command, report=report, out_dir=out_dir
        ),
        encoding="utf-8",
    )
    return ExportResult(model_path, card_path, tpu_input, tpu_card, command, readme)


def _readme(
    card: ModelCard,
    model_path: Path,
    *,
    tpu_input: Path | None,
    command: str | None,
    report: str,
    out_dir: Path,
) -> str:
    lines = [
        f"# Exported model `{card.name}`",
        "",
        f"- appliance: {card.appliance}; architecture: {card.architecture}; "
        f"quantization: {card.quantization}",
        f"- window: {card.window_length} samples x {card.sample_period_s:g} s, target index "
        f"{card.target_index} -> delay {card.delay_s:g} s",
        f"- file: `{model_path.name}` ({model_path.stat().st_size:,} bytes), card "
        f"`{model_path.stem}.json` (sha256 {card.with_file(model_path).tflite_sha256[:12]}...)",
        f"- trainer version: {__version__}",
        f"- training data: {card.training.get('source', 'unknown')}",
        "",
    ]
    credit = card.training.get("attribution")
    if credit:
        lines += ["Data: " + str(credit), ""]
    if tpu_input is not None and command is not None:
        rel = tpu_input.relative_to(out_dir)
        lines += [
            "## Coral Edge TPU",
            "",
            f"`{rel}` is the full-integer model with int8 input/output that the Edge TPU "
            "compiler needs. Where `edgetpu_compiler` exists (x86-64 Linux), run:",
            "",
            "```sh",
            command,
            f"python -m trainer export --edgetpu-card "
            f"{shlex.quote(str(tpu_input.with_name(tpu_input.stem + EDGETPU_SUFFIX)))}",
            "```",
            "",
            "The first command writes `" + tpu_input.stem + EDGETPU_SUFFIX + "` beside its "
            "input (`-s` lists the ops mapped to the TPU); the second writes its card `"
            + tpu_input.stem
            + "_edgetpu.json` (same model name, the compiled file's hash). "
            "Copy both into `<config>/nilm/models/` and choose the `coral` (or `auto`) "
            "backend: the compiled model runs on the Coral, and the CPU model of the same "
            "name (bundled or yours) runs whenever the Coral is missing.",
            "",
        ]
    if report:
        lines += ["## Report", "", report.strip(), ""]
    return "\n".join(lines)


def write_edgetpu_card(compiled: Path) -> Path:
    """Card for a compiled ``<name>_edgetpu.tflite``: the input's card with the new hash."""
    if not compiled.name.endswith(EDGETPU_SUFFIX):
        raise TrainerError(
            f"{compiled.name} is not an Edge TPU compiler output (*{EDGETPU_SUFFIX})"
        )
    if not compiled.is_file():
        raise TrainerError(f"{compiled} does not exist")
    stem = compiled.name.removesuffix(EDGETPU_SUFFIX)
    source = compiled.with_name(f"{stem}.json")
    if not source.is_file():
        raise TrainerError(f"no card {source} for the compiler's input beside {compiled.name}")
    card = load_card(source, verify_hash=False)
    out = compiled.with_suffix(".json")
    out.write_text(card.with_file(compiled).to_json(), encoding="utf-8")
    return out
