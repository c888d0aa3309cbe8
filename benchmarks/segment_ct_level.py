"""Build and solve time of cases/L1-L3_ct_L2.yaml (CT L2 between generated L1 and L3) against the
all-generated L1-L3 of the same mesh; prints a table (DOFs, build s, solve s, peak RSS, ROM, load).

    python benchmarks/segment_ct_level.py            # both
    python benchmarks/segment_ct_level.py ct         # the CT segment only

Each case runs in this process in turn (the CT one first: its build includes generating the
L1/L3 meshes when the level cache is cold; the generated one then reuses them).  Peak RSS is the
process's so far.  Units: s, GiB, degrees.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import warnings
from pathlib import Path

import yaml

from fembone.cases import build_model
from fembone.core.analysis import solve

CASE = Path(__file__).resolve().parents[1] / "cases" / "L1-L3_ct_L2.yaml"
MOMENTS = ("flexion", "lateral_bending", "axial_rotation")


def run(name: str, raw: dict) -> dict:
    c = {**raw, "segment": dict(raw["segment"])}
    if name == "generated":
        c["segment"].pop("vertebrae")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(c, base=CASE.parent, source=name)
    t1 = time.perf_counter()
    res = solve(model)
    t2 = time.perf_counter()
    rom = {k: res.loadcases[k].extra["segment"]["range_of_motion_deg"] for k in MOMENTS}
    imp = model.meta["segment"].get("imported", {}).get("L2", {})
    return {"dofs": model.n_dofs, "build_s": t1 - t0, "imported_s": imp.get("build_s"), "solve_s": t2 - t1,
            "rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "solver": res.solver,
            "equilibrium": max(lc.equilibrium_error for lc in res.loadcases.values()), "rom": rom,
            "load": (load0, os.getloadavg()[0])}


def main(argv: list[str]) -> None:
    raw = yaml.safe_load(CASE.read_text())
    names = argv or ["ct", "generated"]
    print(f"| case | DOFs | build s (CT level) | solve s | peak RSS GiB | equilibrium | ROM L1-L2 / L2-L3 deg "
          f"({', '.join(MOMENTS)}) | load |")
    print("|---|---|---|---|---|---|---|---|")
    for n in names:
        r = run(n, raw)
        rom = "; ".join(f"{r['rom'][k]['L1-L2']:.2f} / {r['rom'][k]['L2-L3']:.2f}" for k in MOMENTS)
        ct = f" ({r['imported_s']:.1f})" if r["imported_s"] else ""
        print(f"| {n} | {r['dofs']:,} | {r['build_s']:.1f}{ct} | {r['solve_s']:.1f} ({r['solver']}) | {r['rss_GiB']:.2f} | "
              f"{r['equilibrium']:.1e} | {rom} | {r['load'][0]:.1f}-{r['load'][1]:.1f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
