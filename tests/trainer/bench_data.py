"""Speed of the data path, as ratios against references measured in the same run.

Run: ``.venv/bin/python -m tests.trainer.bench_data`` (not collected by pytest).

* loading: ``load_refit_30s`` on all 21 House 2 files vs a bare ``pandas.read_csv`` of the
  same files (the I/O and parsing floor); the rest is masking and resampling.
* windows: valid starts + balancing + materialising sampled windows vs a Python loop
  over every start that checks and copies each window (what the reference repos do).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import DATA_DIR
from trainer.data import load_refit_30s
from trainer.windows import WindowConfig, make_windows


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    files = sorted(Path(DATA_DIR, "refit_30s", "house2").glob("*.csv.gz"))
    read_only = _best(lambda: pd.concat([pd.read_csv(f) for f in files]))
    loader = _best(lambda: load_refit_30s(DATA_DIR, 2))
    print(
        f"load House 2 (21 files): {loader:.2f} s; bare read_csv {read_only:.2f} s; "
        f"ratio {loader / read_only:.2f}"
    )

    house = load_refit_30s(DATA_DIR, 2)
    cfg = WindowConfig(window_length=599, on_share=0.5)
    agg = house.frame["aggregate"].to_numpy()
    kettle = house.frame["kettle"].to_numpy()

    def vectorised() -> None:
        split = make_windows(house, "kettle", cfg)
        split.train.inputs()

    def loop(limit: int = 200_000) -> None:
        t_idx = cfg.target_index
        kept = []
        for s in range(min(limit, agg.size - 599)):
            w = agg[s : s + 599]
            if not np.isnan(w).any() and not np.isnan(kettle[s + t_idx]):
                kept.append(w.copy())

    fast = _best(vectorised)
    slow = _best(loop, repeat=1) * (agg.size - 599) / 200_000  # extrapolated to all starts
    n = len(make_windows(house, "kettle", cfg).train)
    print(
        f"windows (L=599, {n:,} balanced kettle windows materialised): {fast:.2f} s; "
        f"per-window Python loop (extrapolated) {slow:.1f} s; speed-up {slow / fast:.0f}x"
    )


if __name__ == "__main__":
    main()
