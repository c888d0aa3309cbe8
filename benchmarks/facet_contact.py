"""Cost of facet contact (gap elements, fembone.core.unilateral) on a small segment.

T12-L2, tet10, 6 mm (116k DOFs), five load cases (four 7.5 N m moments and flexion with a
400 N follower): springs against contact with its contact columns K0^-1 g in the load cases'
block (the rule for iterative solvers) and in a block of their own afterwards (the rule for
direct solvers: only the joints that close).  Wall seconds of the solve phase (block solve +
contact), best of ``--repeat``.  Run: ``python benchmarks/facet_contact.py [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from fembone.cases import build_model
from fembone.core.analysis import solve

MOMENTS = ("flexion", "extension", "lateral_bending", "axial_rotation")


def case(solver: str, facets) -> dict:
    lc = {k: [{"preset": k, "moment": 7500}] for k in MOMENTS}
    lc["flexion_follower"] = [{"preset": "flexion", "moment": 7500, "follower": 400}]
    return {"name": "facets", "solver": solver, "materials": {"preset": "normal"}, "loadcases": lc,
            "segment": {"levels": ["T12", "L1", "L2"], "mesh_size": 6.0, "order": 2, "shell_thickness": 2.0, "facets": facets}}


def run(solver: str, facets, where: str | None, repeat: int) -> dict:
    best = None
    for _ in range(repeat):
        model = build_model(case(solver, facets), base=".", source="benchmark")
        us = model.meta.get("_unilateral")
        if us is not None and where is not None:
            us.block_solvers = (solver,) if where == "in block" else ()
        t = time.perf_counter()
        res = solve(model, nodal=False)
        wall = time.perf_counter() - t
        row = {"solver": solver, "facets": "spring" if facets is True else json.dumps(facets), "columns": where or "-",
               "dofs": model.n_dofs, "setup_s": res.timings["factorise"], "solve_s": res.timings["solve"],
               "contact_s": res.timings.get("contact", 0.0), "wall_s": wall,
               "solved_columns": len(us.info["columns"]) if us is not None else 0,
               "closed": sorted({j for v in us.info["closed"].values() for j in v}) if us is not None else []}
        row["solve_contact_s"] = row["solve_s"] + row["contact_s"]
        if best is None or row["solve_contact_s"] < best["solve_contact_s"]:
            best = row
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--solvers", default="pardiso,pmg")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_facet_contact.json")))
    a = ap.parse_args()
    rows = []
    for solver in a.solvers.split(","):
        rows.append(run(solver, True, None, a.repeat))
        for where in ("in block", "after"):
            rows.append(run(solver, {"model": "contact", "gap": 0.5}, where, a.repeat))
    print(f"{'solver':8s} {'facets':38s} {'columns':9s} {'DOFs':>7s} {'setup s':>8s} {'solve s':>8s} {'contact s':>9s} "
          f"{'solve+contact':>13s} {'cols':>4s}")
    for r in rows:
        print(f"{r['solver']:8s} {r['facets']:38s} {r['columns']:9s} {r['dofs']:7d} {r['setup_s']:8.2f} {r['solve_s']:8.2f} "
              f"{r['contact_s']:9.2f} {r['solve_contact_s']:13.2f} {r['solved_columns']:4d}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    Path(a.out).write_text(json.dumps({"rows": rows, "load_average": load}, indent=1))


if __name__ == "__main__":
    main()
