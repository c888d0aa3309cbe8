"""Three-level tet10 segment (T12-L2) of about 1M DOFs, five load cases: stage times and peak memory.

Target (issue 12, spinal segments): the five load cases (compression 800 N; flexion,
extension, lateral bending, axial rotation 7.5 N m with a 400 N follower) of a three-level
tet10 segment of about 1M DOFs solve in under 5 minutes within 16 GiB on the 2-core machine.
The segment carries the fixation case's implants (pedicle screws in T12 and L2, titanium
rods), the lytic L1 and its cement being volume fractions that do not change the mesh.

Mesh generation (gmsh, cached by content under $FEMBONE_CACHE or ~/.cache/fembone) is timed
in a first subprocess and is not part of the target; the timed run is a fresh subprocess
that reads the cached meshes and builds, assembles, factorises (or sets up AMG), solves and
post-processes.  Peak memory is the child's maximum resident set (ru_maxrss).  The 1-minute
load average before and after each run is printed (the machine is shared).  Usage:

    flock /tmp/heavy.lock nice python benchmarks/segment_1m.py [--mesh-size 1.6] [--solver auto|pmg|pardiso]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from fembone.cases import build_model
from fembone.core.analysis import solve
size, solver, mesh_only = float(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
loads = {"compression": [{"preset": "compression", "force": 800}]}
for k in ("flexion", "extension", "lateral_bending", "axial_rotation"):
    loads[k] = [{"preset": k, "moment": 7500, "follower": 400}]
case = {
    "name": "segment_1m", "segment": {"levels": ["T12", "L1", "L2"], "mesh_size": size, "order": 2, "facets": True},
    "materials": {"preset": "normal"},
    "lesions": [{"level": "L1", "type": "lytic", "volume_fraction": 0.3, "location": "central"}],
    "screws": [{"placement": "bilateral_transpedicular", "levels": ["T12", "L2"], "diameter": 6.5, "length_fraction": 0.8}],
    "rods": {"diameter": 5.5, "material": "titanium"},
    "loadcases": loads if not mesh_only else {"compression": loads["compression"]},
    "solver": solver,
}
t = time.perf_counter()
model = build_model(case, base=".", source="bench")
t_model = time.perf_counter() - t
out = dict(model=t_model, dofs=model.n_dofs, nodes=model.mesh.n_nodes, elements=model.mesh.n_elements)
if not mesh_only:
    res = solve(model, nodal=False)
    rom = {k: res.loadcases[k].extra["segment"]["range_of_motion_deg"] for k in loads if k != "compression"}
    out.update(res.timings, solver=res.solver, rom=rom, solver_info={k: v for k, v in res.solver_info.items()
                                                                        if isinstance(v, (int, float, str, list))},
               equilibrium=max(lc.equilibrium_error for lc in res.loadcases.values()))
out["total"] = time.perf_counter() - t0
out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
print(json.dumps(out))
"""

STAGES = ("model", "assemble", "factorise", "solve", "unilateral", "postprocess")


def _run(size: float, solver: str, mesh_only: bool) -> dict:
    before = os.getloadavg()[0]
    p = subprocess.run([sys.executable, "-c", CHILD, str(size), solver, "1" if mesh_only else "0"],
                       check=False, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"child failed ({p.returncode}):\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["load_before"], out["load_after"] = before, os.getloadavg()[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mesh-size", type=float, default=1.6, help="segment mesh_size (mm); 1.6 gives about 1M DOFs")
    ap.add_argument("--solver", default="auto")
    ap.add_argument("--out", help="write the measurements as JSON here")
    a = ap.parse_args()
    t = time.perf_counter()
    warm = _run(a.mesh_size, a.solver, mesh_only=True)
    t_mesh = time.perf_counter() - t
    print(f"mesh (generated or read from the cache) and one build: {t_mesh:.1f} s wall, {warm['dofs']:,} DOFs, "
          f"{warm['elements']:,} tet10; load {warm['load_before']:.2f} -> {warm['load_after']:.2f}")
    r = _run(a.mesh_size, a.solver, mesh_only=False)
    print(f"T12-L2 segment, tet10, mesh_size {a.mesh_size:g} mm: {r['dofs']:,} DOFs, {r['elements']:,} elements, "
          f"5 load cases, solver {r['solver']}")
    print(f"{'stage':<14s}{'seconds':>10s}")
    for k in STAGES:
        print(f"{k:<14s}{r.get(k, float('nan')):10.1f}")
    print(f"{'total':<14s}{r['total']:10.1f}  (child process, imports included)")
    print(f"{'peak memory':<14s}{r['peak_gib']:10.2f} GiB")
    info = r.get("solver_info", {})
    print("solver: " + ", ".join(f"{k} {info[k]}" for k in ("iterations", "coarse_dofs", "coarse_factor_nnz", "galerkin_s",
                                                             "coarse_factor_s", "setup_s", "factor_nnz") if k in info))
    print(f"load average (1 min): {r['load_before']:.2f} before, {r['load_after']:.2f} after; equilibrium error (max) {r['equilibrium']:.1e}")
    print("range of motion (deg): " + "; ".join(f"{k} " + ", ".join(f"{p} {v:.2f}" for p, v in d.items()) for k, d in r["rom"].items()))
    time_ok, mem_ok = r["total"] < 300.0, r["peak_gib"] < 16.0
    print(f"target: < 5 min: {r['total']:.0f} s -> {'met' if time_ok else 'NOT met'}; "
          f"< 16 GiB: {r['peak_gib']:.1f} GiB -> {'met' if mem_ok else 'NOT met'}")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"mesh_size": a.mesh_size, "mesh_and_build_s": t_mesh, "warm": warm, "run": r}, fh, indent=2)


if __name__ == "__main__":
    main()
