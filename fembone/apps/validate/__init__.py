"""``fembone validate``: published experiments and models reproduced, computed against published.

Each experiment (:mod:`fembone.apps.validate.experiments`) is run in the set-up its paper used
and reported with its source and a pass band whose reason is stated.  ``--full`` uses the
converged meshes (L1, 2 mm, tet10); the default coarse meshes (3 mm, tet4) are what the test
suite pins.  Units: mm, N, MPa, N mm, mL.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from fembone.apps.validate.experiments import BANDS, COARSE, EXPERIMENTS, FULL, SOURCES, Resolution, Row

__all__ = ["BANDS", "COARSE", "EXPERIMENTS", "FULL", "SOURCES", "Resolution", "Row", "format_table", "run_all", "write"]


def run_all(full: bool = False, only: list[str] | None = None, progress=None) -> list[Row]:
    """Run the experiments (all, or those named in ``only``) and return their rows."""
    res = FULL if full else COARSE
    say = progress or (lambda msg: None)
    rows: list[Row] = []
    for name, fn in EXPERIMENTS.items():
        if only and name not in only:
            continue
        t = time.perf_counter()
        say(f"{name} ({res.name} meshes) ...")
        rows += fn(res, say)
        say(f"{name} done in {time.perf_counter() - t:.0f} s")
    return rows


def format_table(rows: list[Row]) -> str:
    lines = [f"{'experiment':<15s} {'quantity':<52s} {'computed':>10s} {'published':>10s} {'band':>17s} unit  ok"]
    for r in rows:
        pub = "-" if r.published is None else f"{r.published:.3g}"
        band = f"[{r.low:.3g}, {r.high:.3g}]"
        lines.append(f"{r.experiment:<15s} {r.quantity:<52s} {r.computed:10.3g} {pub:>10s} {band:>17s} {r.unit:<4s}  {'yes' if r.ok else 'NO'}")
    lines.append("")
    lines.append("sources:")
    for key, text in SOURCES.items():
        lines.append(f"  {key}: {text}")
    return "\n".join(lines)


def write(rows: list[Row], out: Path) -> None:
    """validation.json and validation.csv in ``out``."""
    import csv

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dicts = [r.as_dict() for r in rows]
    (out / "validation.json").write_text(json.dumps(dicts, indent=2) + "\n")
    with open(out / "validation.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(dicts[0]))
        w.writeheader()
        w.writerows(dicts)


def main_progress(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)
