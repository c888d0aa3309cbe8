"""Mesh convergence of the vertebra risk metrics: coarse -> medium -> fine L1 (tet10).

For the intact and the lytic (30 %) L1 under 800 N compression, prints each metric per
mesh size and the relative change between the two finest meshes.  Usage:

    python benchmarks/vertebra_convergence.py [--sizes 3.0,2.5,2.0]
"""

from __future__ import annotations

import argparse
import time

from fembone.core.analysis import solve
from fembone.cases import build_model

METRICS = ("axial_stiffness", "posterior_wall_bulge", "failed_volume_fraction", "strength_estimate", "factor_of_risk")


def run(size: float, lesion: bool) -> tuple[dict, int, float]:
    case = {
        "name": "conv", "vertebra": {"level": "L1", "mesh_size": size, "order": 2},
        "materials": {"preset": "normal"},
        "loadcases": {"standing": [{"preset": "compression", "force": 800}]},
    }
    if lesion:
        case["lesions"] = [{"type": "lytic", "volume_fraction": 0.3, "location": "central"}]
    t = time.perf_counter()
    model = build_model(case, base=".", source="conv")
    res = solve(model)
    return res.loadcases["standing"].summary()["risk"], model.n_dofs, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="3.0,2.5,2.0")
    sizes = [float(s) for s in ap.parse_args().sizes.split(",")]
    for lesion in (False, True):
        rows = [(s, *run(s, lesion)) for s in sizes]
        print(f"\nL1 {'lytic 30%' if lesion else 'intact'}, compression 800 N, tet10")
        print(f"{'size mm':>8s}{'DOFs':>10s}{'time s':>8s}" + "".join(f"{m:>24s}" for m in METRICS))
        for s, r, n, t in rows:
            print(f"{s:8.2f}{n:10,d}{t:8.1f}" + "".join(f"{r[m]:24.5g}" for m in METRICS))
        (_, a, _, _), (_, b, _, _) = rows[-2], rows[-1]
        print(f"{'change between the two finest meshes':>26s}" + "".join(
            f"{(b[m] - a[m]) / a[m] * 100 if a[m] else float('nan'):23.2f}%" for m in METRICS))


if __name__ == "__main__":
    main()
