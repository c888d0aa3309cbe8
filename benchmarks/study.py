"""Parametric-study throughput: cases per minute with 1 and 2 workers, and the cost of a study
case relative to one isolated ``fembone run`` (a fresh process per case).

The sweep: the lytic L1 (``cases/L1_lytic.yaml``) on a generated vertebra (default mesh_size
2.0, tet10), grid of trabecular density x lesion volume fraction, standing + flexion load
cases.  Every case has the same mesh, so within a worker the mesh, the element geometry and
the sparsity pattern are reused and only the materials (and lesion) change.

* ``isolated``: ``fembone run CASE --no-vtu --no-png -q`` in a subprocess (Python start-up,
  imports, mesh read, geometry, pattern, factorisation, post-processing), median of
  ``--isolated-repeat`` runs on the base case;
* ``study, N workers``: ``fembone study`` API (no VTU), fresh output folder, wall time
  from the first case submitted to the table written.  Per-case cost = wall / cases.

The mesh is generated (and cached) before anything is timed.  Usage::

    python benchmarks/study.py                       # 40 cases, mesh_size 2.0, order 2
    python benchmarks/study.py --cases 8 --mesh-size 2.5
    python benchmarks/study.py --cases 6 --mesh-size 4 --order 1 --workers 1   # smoke

Work files go to benchmarks/_work/study (git-ignored); results to
benchmarks/results_study.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "study"


def grid(n: int) -> tuple[list[float], list[float]]:
    """About n points: densities x lesion fractions (5 fractions when n >= 10)."""
    nf = 5 if n >= 10 else max(1, min(n, 2))
    nd = math.ceil(n / nf)
    dens = [round(0.08 + 0.14 * i / max(nd - 1, 1), 4) for i in range(nd)]
    fracs = [round(0.1 + 0.3 * i / max(nf - 1, 1), 4) for i in range(nf)]
    return dens, fracs


def write_inputs(args) -> tuple[Path, Path, int]:
    WORK.mkdir(parents=True, exist_ok=True)
    case = yaml.safe_load((ROOT / "cases" / "L1_lytic.yaml").read_text())
    case["vertebra"] = {"level": "L1", "mesh_size": args.mesh_size, "order": args.order}
    case_path = WORK / "case.yaml"
    case_path.write_text(yaml.safe_dump(case, sort_keys=False))
    dens, fracs = grid(args.cases)
    study = {
        "name": "bench", "base": "case.yaml",
        "parameters": {"materials.trabecular.density": dens, "lesions[0].volume_fraction": fracs},
        "design": "grid",
    }
    study_path = WORK / "study.yaml"
    study_path.write_text(yaml.safe_dump(study, sort_keys=False))
    return case_path, study_path, len(dens) * len(fracs)


def isolated(case_path: Path, repeat: int) -> tuple[float, dict]:
    times = []
    for i in range(repeat):
        out = WORK / f"isolated{i}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "fembone.apps.cli", "run", str(case_path), "--out", str(out), "--no-vtu", "--no-png", "-q"],
            check=True, cwd=ROOT,
        )
        times.append(time.perf_counter() - t)
    summary = json.loads((WORK / "isolated0" / "summary.json").read_text())
    return statistics.median(times), summary


def study_run(study_path: Path, workers: int, cases: int) -> dict:
    from fembone.apps import study as ST

    out = WORK / f"out_w{workers}"
    shutil.rmtree(out, ignore_errors=True)
    st = ST.load_study(study_path, check=False)
    ST.clear_caches()
    t = time.perf_counter()
    run = ST.run_study(st, out, workers=workers, progress=False)
    wall = time.perf_counter() - t
    recs = list(run.records.values())
    reused = [r for r in recs if r.get("reused", {}).get("assembler")]
    fresh = [r for r in recs if r["status"] == "ok" and not r.get("reused", {}).get("assembler")]

    def mean_t(rs, key):
        v = [r["timings_s"].get(key, 0.0) + (r["timings_s"].get("geometry", 0.0) if key == "assemble" else 0.0) for r in rs]
        return statistics.mean(v) if v else float("nan")

    return {
        "workers": workers, "cases": len(recs), "failed": run.failed, "wall_s": wall,
        "cases_per_min": 60.0 * len(recs) / wall, "per_case_s": wall / len(recs),
        "first_case_s": statistics.mean([r["elapsed_s"] for r in fresh]) if fresh else float("nan"),
        "reused_case_s": statistics.mean([r["elapsed_s"] for r in reused]) if reused else float("nan"),
        "stages_first": {k: mean_t(fresh, k) for k in ("build", "assemble", "factorise", "solve", "postprocess")},
        "stages_reused": {k: mean_t(reused, k) for k in ("build", "assemble", "factorise", "solve", "postprocess")},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--mesh-size", type=float, default=2.0)
    ap.add_argument("--order", type=int, default=2, choices=(1, 2))
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    ap.add_argument("--isolated-repeat", type=int, default=2)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results_study.json"))
    args = ap.parse_args(argv)
    os.environ.setdefault("FEMBONE_CACHE", str(WORK / "cache"))
    case_path, study_path, n = write_inputs(args)

    from fembone.cases import load_case

    t = time.perf_counter()
    m = load_case(case_path)  # generates and caches the mesh: not timed below
    print(f"mesh: L1 mesh_size {args.mesh_size:g} order {args.order}: {m.mesh.n_nodes:,} nodes, "
          f"{m.mesh.n_elements:,} elements, {m.n_dofs:,} DOFs ({time.perf_counter() - t:.1f} s to prepare); {n} cases; "
          f"{os.cpu_count()} CPUs", flush=True)
    del m
    iso, summ = isolated(case_path, args.isolated_repeat)
    print(f"isolated fembone run (subprocess, no VTU): {iso:.2f} s  (solver {summ['solver']}, stages {summ['timings_s']})", flush=True)
    rows = []
    for w in [int(x) for x in args.workers.split(",")]:
        r = study_run(study_path, w, n)
        r["relative_to_isolated"] = r["per_case_s"] / iso
        rows.append(r)
        print(f"  workers={w}: {r['cases']} cases in {r['wall_s']:.1f} s, {r['cases_per_min']:.2f} cases/min, "
              f"{r['per_case_s']:.2f} s/case ({r['relative_to_isolated']:.2f} x isolated)", flush=True)
    print()
    print(f"{'':24s}{'cases/min':>10s}{'s/case':>9s}{'x isolated':>11s}{'1st case s':>11s}{'reuse case s':>13s}")
    print(f"{'isolated fembone run':24s}{60 / iso:10.2f}{iso:9.2f}{1.0:11.2f}")
    for r in rows:
        print(f"{'study, ' + str(r['workers']) + ' worker(s)':24s}{r['cases_per_min']:10.2f}{r['per_case_s']:9.2f}"
              f"{r['relative_to_isolated']:11.2f}{r['first_case_s']:11.2f}{r['reused_case_s']:13.2f}")
    print("\nstage means (s), first case in a worker vs cases reusing mesh + assembler:")
    for r in rows:
        f, u = r["stages_first"], r["stages_reused"]
        print(f"  workers={r['workers']}: " + ", ".join(f"{k} {f[k]:.2f} -> {u[k]:.2f}" for k in f))
    Path(args.json).write_text(json.dumps({
        "mesh_size": args.mesh_size, "order": args.order, "cases": n, "cpus": os.cpu_count(),
        "isolated_s": iso, "isolated_timings": summ["timings_s"], "runs": rows,
    }, indent=2) + "\n")
    print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
