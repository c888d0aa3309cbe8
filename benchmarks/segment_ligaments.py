"""T12-L2 range of motion with and without the tension-only ligaments (segment.ligaments).

The validation configuration of tests/validation/test_segment_published.py (tet10, mesh 6 mm,
shell 2 mm, annulus fibres and facet springs on), intact and with T12-L2 pedicle-screw/rod
fixation, at 7.5 N m; prints ROM per load case and pair against the published bands (the
test's ``band``), the fixation reductions, the ligament forces, and writes
benchmarks/results_segment_ligaments.json.  Run through the lock:

    flock /tmp/heavy.lock nice -n 5 python benchmarks/segment_ligaments.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from fembone.cases import build_model
from fembone.core.analysis import solve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "validation"))
from test_segment_published import MOMENTS, PIMENTA_REDUCTION, _case, band


def run(ligaments, fixed: bool) -> dict:
    c = _case(fixed)
    c["segment"]["ligaments"] = ligaments
    t = time.perf_counter()
    res = solve(build_model(c, base=".", source="benchmark"), nodal=False)
    out = {k: {"rom": res.loadcases[k].extra["segment"]["range_of_motion_deg"],
               "ligament_forces": res.loadcases[k].extra["segment"].get("ligament_forces", {})} for k in MOMENTS}
    out["seconds"] = time.perf_counter() - t
    return out


def main() -> None:
    load0 = os.getloadavg()[0]
    runs = {(lig, fx): run(lig, fx) for lig in (False, True) for fx in (False, True)}
    print(f"load average {load0:.2f} -> {os.getloadavg()[0]:.2f}; seconds "
          + ", ".join(f"lig {lig} fixed {fx}: {r['seconds']:.0f}" for (lig, fx), r in runs.items()))
    print("load case        pair     band (deg)     intact  +lig   fixed  +lig   reduction  +lig   Pimenta")
    table = []
    for k in MOMENTS:
        for p in runs[(False, False)][k]["rom"]:
            lo, hi = band(k, p)
            v = [runs[(lig, fx)][k]["rom"][p] for lig, fx in ((False, False), (True, False), (False, True), (True, True))]
            red0, red1 = 1 - v[2] / v[0], 1 - v[3] / v[1]
            pim = PIMENTA_REDUCTION.get(k, PIMENTA_REDUCTION["flexion"])
            ok = "in" if lo <= v[1] <= hi else "OUT"
            print(f"{k:16s} {p:8s} [{lo:4.2f}, {hi:4.2f}]  {v[0]:5.2f}  {v[1]:5.2f} {ok:3s} {v[2]:5.2f} {v[3]:5.2f}"
                  f"   {red0:6.1%}  {red1:6.1%}   {pim:.0%}")
            table.append({"loadcase": k, "pair": p, "band": [lo, hi], "intact": v[0], "intact_ligaments": v[1],
                          "fixed": v[2], "fixed_ligaments": v[3], "reduction": red0, "reduction_ligaments": red1})
    print("ligament forces (N), intact with ligaments:")
    for k in MOMENTS:
        for p, f in runs[(True, False)][k]["ligament_forces"].items():
            print(f"  {k:16s} {p:8s} " + "  ".join(f"{n} {x:6.1f}" for n, x in f.items()))
    out = {"table": table, "load_average": [load0, os.getloadavg()[0]],
           "seconds": {f"ligaments={lig},fixed={fx}": r["seconds"] for (lig, fx), r in runs.items()},
           "ligament_forces_intact": {k: runs[(True, False)][k]["ligament_forces"] for k in MOMENTS},
           "ligament_forces_fixed": {k: runs[(True, True)][k]["ligament_forces"] for k in MOMENTS}}
    Path(__file__).with_name("results_segment_ligaments.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
