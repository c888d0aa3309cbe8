"""Conforming regions against volume fractions, on the same lesions, as the mesh refines.

L1 between PMMA caps (in_vitro, displacement control), normal bone, a central lytic lesion
(tissue, E 2 MPa) of 15 % and 35 % of the body.  For each mesh size and both region paths:
stiffness loss against the intact model on the same mesh, Pistoia strength, and the share of
the 2 % failure tail that sits in mixed (rim) elements.  Prints a table (and --json FILE).

    python benchmarks/regions_convergence.py --sizes 4,3,2.5 --order 1
"""

from __future__ import annotations

import argparse
import json
import time

from fembone.cases import build_model
from fembone.core.analysis import solve


def case(size: float, order: int, regions: str, vf: float | None) -> dict:
    c = {"name": "conv", "vertebra": {"level": "L1", "mesh_size": size, "order": order, "regions": regions},
         "materials": {"preset": "normal"}, "boundary": {"setup": "in_vitro"},
         "loadcases": {"c": [{"preset": "compression", "displacement": -0.1}]}}
    if vf:
        c["lesions"] = [{"type": "lytic", "volume_fraction": vf, "location": "central"}]
    return c


def run(size: float, order: int, regions: str, vf: float | None) -> tuple[dict, int, float]:
    t = time.perf_counter()
    model = build_model(case(size, order, regions, vf), source="conv.yaml")
    r = solve(model, nodal=False).loadcases["c"].extra["risk"]
    return r, model.n_dofs, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4,3,2.5")
    ap.add_argument("--order", type=int, default=1)
    ap.add_argument("--lesions", default="0.15,0.35")
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = []
    print(f"{'size':>5s} {'regions':>10s} {'lesion':>6s} {'DOFs':>8s} {'loss %':>7s} {'strength N':>10s} {'tail in rim':>11s} {'s':>5s}")
    for size in map(float, a.sizes.split(",")):
        k0 = run(size, a.order, "fraction", None)[0]["axial_stiffness"]
        for vf in map(float, a.lesions.split(",")):
            for regions in ("conforming", "fraction"):
                r, n, s = run(size, a.order, regions, vf)
                row = {"size": size, "order": a.order, "regions": regions, "lesion": vf, "dofs": n,
                       "loss_pct": 100 * (1 - r["axial_stiffness"] / k0), "strength_N": r.get("strength_estimate"),
                       "tail_in_rim": r.get("tail_in_mixed_elements"), "seconds": s}
                rows.append(row)
                print(f"{size:5.2g} {regions:>10s} {vf:6.2f} {n:8d} {row['loss_pct']:7.2f} {row['strength_N']:10.0f} "
                      f"{row['tail_in_rim'] or 0:11.3f} {s:5.0f}", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
