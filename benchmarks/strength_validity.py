"""Nonlinear strength against the linear surrogate and published values (issue 14).

Runs, each in its own process (``strength_convergence.run_child``):

* ``intact``, ``lytic15``, ``lytic30``, ``lytic30_cement4``: the whole normal L1 of ``fembone
  validate`` (3 mm tet4, conforming regions, PMMA caps, in_vitro), intact, with a central
  lytic lesion of 15 % / 30 % of the body, and the 30 % lesion with 4 mL of bipedicular
  cement: linear ``strength_estimate`` (Pistoia 2 %) beside the nonlinear peak, and the loss
  against intact by both;
* ``verse_l2``: ``cases/L2_verse_ct.yaml`` (VerSe L2, Bonelab set-up and law) at the coarse mesh
  of ``fembone validate`` (2.5 mm tet4), against the benchmark's nonlinear 1.85 kN.

All with ``analysis: {type: strength, max_displacement: 0.8, steps: 20, stop_after_peak: 0.05}``.

    python benchmarks/strength_validity.py --json benchmarks/results_strength_validity.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strength_convergence import ROOT, l1_case, run_child

#: Bonelab spineFE benchmark, VerSe sub-verse004 L2 (results/verse19fem_AppendixA.csv): nonlinear
#: failure load 1.847 kN, linear stiffness 12,362 N/mm, linear "F.Load" 2.44 kN, R.Force (0.2 %) 2.47 kN
BONELAB_L2 = {"strength_N": 1847.0, "stiffness_N_mm": 12362.0, "reaction_0p2_N": 2472.0}


def l1(kind: str, a) -> dict:
    c = l1_case(a.size, a.order, a.steps, a.max_displacement, a.stop_after_peak, a.solver)
    c["vertebra"]["regions"] = "conforming"
    if kind.startswith("lytic"):
        vf = float(kind[5:7]) / 100.0
        c["lesions"] = [{"type": "lytic", "volume_fraction": vf, "location": "central"}]
    if kind.endswith("cement4"):
        c["cement"] = [{"volume_ml": 4.0, "access": "bipedicular"}]
    return c


def verse(a) -> dict:
    raw = yaml.safe_load((ROOT / "cases" / "L2_verse_ct.yaml").read_text())
    raw["ct"]["mesh_size"], raw["ct"]["order"] = a.ct_size, a.ct_order
    raw["solver"] = a.solver
    raw["analysis"] = {"type": "strength", "max_displacement": a.max_displacement, "steps": a.steps,
                       "stop_after_peak": a.stop_after_peak}
    return raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="intact,lytic15,lytic30,lytic30_cement4,verse_l2")
    ap.add_argument("--size", type=float, default=3.0)
    ap.add_argument("--order", type=int, default=1)
    ap.add_argument("--ct-size", type=float, default=2.5)
    ap.add_argument("--ct-order", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-displacement", type=float, default=0.8)
    ap.add_argument("--stop-after-peak", type=float, default=0.05)
    ap.add_argument("--solver", default="auto")
    ap.add_argument("--timeout", type=float, default=1200.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    os.chdir(ROOT)
    rows = []
    print(f"{'run':<16s} {'DOFs':>7s} {'k N/mm':>7s} {'linear N':>8s} {'nonlin N':>8s} {'lin/nl':>6s} "
          f"{'loss lin':>8s} {'loss nl':>8s} {'d_peak':>6s} {'wall s':>6s} {'load':>9s}", flush=True)
    base = {}
    for name in a.only.split(","):
        case, where = (verse(a), "cases") if name == "verse_l2" else (l1(name, a), ".")
        r = run_child(copy.deepcopy(case), where, a.timeout, name)
        rows.append(r)
        if "error" in r:
            print(f"{name:<16s} FAILED {r['error']}: {' | '.join(r['log_tail'][-2:])}", flush=True)
            continue
        lin, nl = r["linear_strength_estimate_N"], r["strength_N"]
        if name == "intact":
            base = {"lin": lin, "nl": nl}
        loss_l = 100 * (1 - lin / base["lin"]) if base and name.startswith("lytic") else float("nan")
        loss_n = 100 * (1 - nl / base["nl"]) if base and name.startswith("lytic") else float("nan")
        r.update({"loss_linear_pct": loss_l, "loss_nonlinear_pct": loss_n, "linear_over_nonlinear": lin / nl})
        if name == "verse_l2":
            r["bonelab"] = BONELAB_L2
        print(f"{name:<16s} {r['dofs']:7d} {r['linear_stiffness_N_mm']:7.0f} {lin:8.0f} {nl:8.0f} {lin / nl:6.2f} "
              f"{loss_l:8.1f} {loss_n:8.1f} {r['displacement_at_peak_mm']:6.3f} {r['wall_s']:6.0f} "
              f"{r['load_before']:4.2f}/{r['load_after']:4.2f}", flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    if any(r.get("label") == "verse_l2" and "strength_N" in r for r in rows):
        r = next(r for r in rows if r.get("label") == "verse_l2")
        print(f"VerSe L2: nonlinear {r['strength_N']:.0f} N against Bonelab {BONELAB_L2['strength_N']:.0f} N "
              f"({100 * (r['strength_N'] / BONELAB_L2['strength_N'] - 1):+.0f} %); stiffness {r['linear_stiffness_N_mm']:.0f} "
              f"against {BONELAB_L2['stiffness_N_mm']:.0f} N/mm", flush=True)


if __name__ == "__main__":
    main()
