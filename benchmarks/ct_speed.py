"""CT speed (issue 11): CT -> mesh -> mapped material, and the full ``fembone run`` of the L2 example.

Targets on the 2-core machine: CT to mesh to mapped material for a 1 mm-voxel lumbar
vertebra in < 30 s; the full ``fembone run cases/L2_verse_ct.yaml`` in < 2 min.  Every
measurement is a fresh process (so no mesh is reused from memory); wall time, CPU time and
peak memory (``ru_maxrss`` of the child).  Needs ``../shared/data/vertebrae`` (the VerSe L2,
not part of the repository) and the ``ct`` extra.  Prints a table, writes results_ct.json.

    python benchmarks/ct_speed.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASE = HERE.parent / "cases" / "L2_verse_ct.yaml"

MAP_CHILD = r"""
import json, sys, time
from pathlib import Path
import yaml
from fembone.spine.ct import build_ct_model_inputs, parse_ct_spec
case = Path(sys.argv[1])
raw = yaml.safe_load(case.read_text())
t0 = time.perf_counter()
spec = parse_ct_spec(raw["ct"], where="ct")
inputs = build_ct_model_inputs(spec, case.parent)
t = time.perf_counter() - t0
m = inputs.mesh
print(json.dumps({"seconds": t, "elements": int(m.n_elements), "nodes": int(m.n_nodes)}))
"""


def _measure(args: list[str]) -> dict:
    """One fresh process measured in its own grandchild wrapper (rusage of that process only)."""
    wrapper = (
        "import resource, subprocess, sys, json, time\n"
        "t0 = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t0\n"
        "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "sys.stderr.write(p.stderr[-1500:])\n"
        "print(json.dumps({'rc': p.returncode, 'wall': wall, 'cpu': ru.ru_utime + ru.ru_stime,"
        " 'peak_gb': ru.ru_maxrss / 2**20, 'out': p.stdout[-4000:]}))\n"
    )
    load0 = os.getloadavg()[0]
    p = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, cwd=HERE.parent)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed (exit {r['rc']}): {p.stderr[-1500:]}")
    r["load"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results_ct.json"))
    args = ap.parse_args()
    if not CASE.is_file():
        print(f"missing {CASE}")
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd, target in (
            ("CT -> mesh -> mapped material", [sys.executable, "-c", MAP_CHILD, str(CASE)], 30.0),
            ("fembone run L2_verse_ct.yaml", [sys.executable, "-m", "fembone", "run", str(CASE), "--out",
                                             str(Path(tmp) / "run")], 120.0),
        ):
            runs = []
            for k in range(args.repeat):
                r = _measure(cmd)
                runs.append(r)
                print(f"  {name} run {k + 1}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, {r['peak_gb']:.2f} GB, "
                      f"load {r['load'][0]} -> {r['load'][1]}", flush=True)
            row = {"stage": name, "target_s": target, "runs_wall": [r["wall"] for r in runs],
                   "runs_load": [r["load"] for r in runs],
                   "wall": statistics.median(r["wall"] for r in runs), "cpu": statistics.median(r["cpu"] for r in runs),
                   "peak_gb": max(r["peak_gb"] for r in runs)}
            if name.startswith("CT"):
                info = json.loads(runs[0]["out"].strip().splitlines()[-1])
                row.update(mapping_s=statistics.median(json.loads(r["out"].strip().splitlines()[-1])["seconds"] for r in runs),
                           elements=info["elements"], nodes=info["nodes"])
            rows.append(row)
    print()
    print(f"{'stage':34s} {'wall s':>7s} {'cpu s':>7s} {'peak GB':>8s} {'target s':>9s}  status")
    for r in rows:
        status = "met" if r["wall"] < r["target_s"] else "NOT met"
        print(f"{r['stage']:34s} {r['wall']:7.1f} {r['cpu']:7.1f} {r['peak_gb']:8.2f} {r['target_s']:9.0f}  {status}")
    data = {"measured_at": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "rows": rows}
    Path(args.out).write_text(json.dumps(data, indent=1))
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
