"""The VerSe L2 to strength with the Bonelab spineFE benchmark's own bone law (issue 14).

Same scan, set-up and modulus law as ``cases/L2_verse_ct.yaml``; every bone region gets
``bonelab_kopperdahl`` (yield stress 37.4 rho_QCT^1.39 MPa in tension and compression,
perfectly plastic: the benchmark's OGO pipeline), or fembone's default laws (``--law default``).
The platen goes down the benchmark's 2.0 mm in 40 steps; printed: stiffness, the 0.2 % offset
yield force, the force at 0.2 / 1.0 / 2.0 mm, Newton iterations and wall time, against the
benchmark's 1.847 kN (results/verse19fem_AppendixA.csv).  Units: mm, N.

    python benchmarks/strength_bonelab.py [--runs 3:1 2:1 1.5:1 3:2] [--law bonelab_kopperdahl|default]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml

from fembone.cases import build_model
from fembone.core.analysis import solve

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"
BENCHMARK_N = 1847.0  # N, F.Load (nonlinear) of sub-verse004 L2


def run(size: float, order: int, law: str, dmax: float, steps: int) -> dict:
    raw = yaml.safe_load((CASES / "L2_verse_ct.yaml").read_text())
    raw["ct"].update(mesh_size=size, order=order)
    laws = {} if law == "default" else {r: law for r in ("trabecular", "cortical_shell", "posterior_elements")}
    raw["analysis"] = {"type": "strength", "max_displacement": dmax, "steps": steps, "stop_after_peak": False, "laws": laws}
    t = time.perf_counter()
    model = build_model(raw, base=str(CASES), source="benchmark:strength_bonelab")
    risk = next(iter(solve(model, nodal=False).loadcases.values())).extra["risk"]
    st = model.meta["strength"]
    d, F = np.array(st["curve"]["displacement"]), np.array(st["curve"]["force"])
    at = {f"F_at_{x:g}mm": float(np.interp(x, d, F)) for x in (0.2, 1.0, 2.0) if x <= dmax}
    return {"mesh": f"{size:g} mm tet{4 if order == 1 else 10}", "law": law, "dofs": int(model.layout.n_dofs),
            "stiffness": risk["axial_stiffness"], "offset_yield": st["yield_force"], "first_peak": st["strength"],
            "peak_reached": st["peak_reached"], **at, "newton": st["solver"].get("newton_iterations"),
            "wall_s": round(time.perf_counter() - t, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", default=["3:1", "2:1", "1.5:1", "3:2"], help="mesh_size:order")
    ap.add_argument("--law", default="bonelab_kopperdahl")
    ap.add_argument("--max-displacement", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rows = []
    print("| mesh | law | DOFs | stiffness N/mm | 0.2 % offset yield N (vs 1847) | F 0.2 mm | F 1 mm | F 2 mm | Newton | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in a.runs:
        size, order = r.split(":")
        row = run(float(size), int(order), a.law, a.max_displacement, a.steps)
        rows.append(row)
        fy = row["offset_yield"]
        print(f"| {row['mesh']} | {row['law']} | {row['dofs']:,} | {row['stiffness']:,.0f} | "
              f"{fy:,.0f} ({100 * (fy / BENCHMARK_N - 1):+.1f} %) | {row.get('F_at_0.2mm', float('nan')):,.0f} | "
              f"{row.get('F_at_1mm', float('nan')):,.0f} | {row.get('F_at_2mm', float('nan')):,.0f} | {row['newton']} | "
              f"{row['wall_s']} |", flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
