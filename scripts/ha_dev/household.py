"""House 20 playing the household: the protocol shared by scripts/eval_adaptation.py (the
in-HA head re-fit) and scripts/eval_finetune.py (the trainer's fine-tune), so both learn
from exactly the same plug days and write their results the same way."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

APPLIANCES = ("kettle", "microwave", "dishwasher", "washing_machine", "fridge")


def first_unmasked_days(frame: pd.DataFrame, column: str, days: int) -> pd.Timestamp | None:
    """End of the ``days``-th UTC day with neither mains nor sub-meter masked: the plug
    days are everything before it (masked samples inside stay gaps)."""
    ok = frame["aggregate"].notna() & frame[column].notna()
    complete = ok.groupby(frame.index.floor("D")).all()
    good = complete[complete].index
    return None if len(good) < days else good[days - 1] + pd.Timedelta(days=1)


def fmt(value: Any, spec: str = "{:.3f}") -> str:
    """A report cell: a dash where there is no number."""
    return "—" if value is None else spec.format(value)


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that regenerates an output, as it was run."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"scripts/{Path(script).name}", *args])


def parser(description: str, default_out: Path) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--appliances", nargs="+", default=list(APPLIANCES))
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=default_out)
    return p


def run_all(
    appliances: list[str],
    run_one: Callable[[str], dict[str, Any]],
    out: Path,
    days: int,
    markdown: Callable[[list[dict[str, Any]]], str],
) -> None:
    """Every appliance in turn (printed as it finishes), then ``house20_<days>d.json/.md``."""
    results = []
    for appliance in appliances:
        print(f">> {appliance}", flush=True)
        results.append(run_one(appliance))
        print(json.dumps(results[-1], indent=1), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"house20_{days}d"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n", "utf-8")
    text = markdown(results)
    (out / f"{stem}.md").write_text(text, "utf-8")
    print(text)
