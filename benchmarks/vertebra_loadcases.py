"""Medium L1 (tet10) with all five spinal load cases on one factorisation: time per stage and peak memory.

Target (issue: vertebra models): all five load cases in under 30 s on a 2-core machine.
Each measurement runs in a fresh subprocess; prints a table.  Usage:

    python benchmarks/vertebra_loadcases.py [--size 2.0] [--repeat 3] [--solver auto]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
from fembone.cases import build_model
from fembone.core.analysis import solve
size, solver = float(sys.argv[1]), sys.argv[2]
case = {
    "name": "bench", "vertebra": {"level": "L1", "mesh_size": size, "order": 2},
    "materials": {"preset": "normal"},
    "lesions": [{"type": "lytic", "volume_fraction": 0.3, "location": "central"}],
    "cement": [{"volume_ml": 4.0, "access": "bipedicular"}],
    "loadcases": {
        "compression": [{"preset": "compression", "force": 800}],
        "flexion": [{"preset": "flexion", "moment": 7500, "follower": 400}],
        "extension": [{"preset": "extension", "moment": 7500, "follower": 400}],
        "lateral_bending": [{"preset": "lateral_bending", "moment": 7500, "follower": 400}],
        "axial_rotation": [{"preset": "axial_rotation", "moment": 7500, "follower": 400}],
    },
    "solver": solver,
}
t0 = time.perf_counter()
model = build_model(case, base=".", source="bench")
t_model = time.perf_counter() - t0
res = solve(model)
total = time.perf_counter() - t0
out = dict(res.timings, model=t_model, total=total, dofs=model.n_dofs, solver=res.solver,
           peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
           equilibrium=max(lc.equilibrium_error for lc in res.loadcases.values()))
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--solver", default="auto")
    a = ap.parse_args()
    # warm the mesh cache first (mesh generation is not part of the target)
    subprocess.run([sys.executable, "-c", CHILD, str(a.size), a.solver], check=True, capture_output=True)
    runs = []
    for _ in range(a.repeat):
        p = subprocess.run([sys.executable, "-c", CHILD, str(a.size), a.solver], check=True, capture_output=True, text=True)
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in runs) for k in ("model", "assemble", "factorise", "solve", "postprocess", "total", "peak_gb")}
    r0 = runs[0]
    print(f"medium L1 tet10, lytic 30% + 4 mL cement, 5 load cases, {r0['dofs']:,} DOFs, solver {r0['solver']}, median of {a.repeat}")
    print(f"{'stage':<14s}{'seconds':>10s}")
    for k in ("model", "assemble", "factorise", "solve", "postprocess", "total"):
        print(f"{k:<14s}{med[k]:10.2f}")
    print(f"{'per load case':<14s}{(med['solve'] + med['postprocess']) / 5:10.2f}  (solve + post-process)")
    print(f"{'peak memory':<14s}{med['peak_gb']:10.2f} GB")
    print(f"equilibrium error (max): {max(r['equilibrium'] for r in runs):.1e}")
    solve_s = med["assemble"] + med["factorise"] + med["solve"] + med["postprocess"]
    print(f"target: five load cases (assemble + factorise + solve + post-process) < 30 s: {solve_s:.1f} s -> {'met' if solve_s < 30 else 'NOT met'}")


if __name__ == "__main__":
    main()
