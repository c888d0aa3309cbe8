"""Nonlinear strength (``analysis: {type: strength}``) against published values (issue 14).

Published values (Bonelab spineFE benchmark, github.com/Bonelab/spineFE-benchmark, VerSe19
cohort, voxel FE with PMMA caps and a nonlinear bone law; results/tables/verse19fem_table_1.csv
and results/verse19fem_AppendixA.csv):

* cohort nonlinear failure load 3.4 +- 1.6 kN (n = 141, age 66, vBMD 77.8 +- 53.6 mg/cc);
  the band is mean +- 1 SD, the same as ``fembone validate``'s linear-estimate row;
* the 23 L1 target vertebrae with vBMD 57-97 mg/cc (77 +- 20; fembone's normal preset,
  rho_app 0.20 g/cm^3, is rho_ash 0.12 = 1.06 rho_K2HPO4 + 38.9 mg/cc -> 77 mg/cc with the
  field notes' conversions): 1.89-4.21 kN (2.62 +- 0.49), stiffness 15,160 N/mm on average,
  strength / stiffness 0.157-0.191 mm;
* sub-verse004 L2 (the scan in ../shared/data): 1.847 kN nonlinear, 12,362 N/mm linear.

KNOWN MISSES with fembone's default laws, pinned so that any change is noticed (reasons in the
README, "Strength: nonlinear against published"): fembone's strength is above these values by
1.5-1.9x while its stiffness matches (the L2 within 2 %).  Nothing was tuned.

SAME MODEL, SAME LAW: the benchmark's own nonlinear law (OGO ``kopperdahl_trab_yc``: yield
stress 37.4 rho_QCT^1.39 MPa in compression and tension for all bone, perfectly plastic;
fembone law ``bonelab_kopperdahl``) on the same scan gives the benchmark's failure load at
the 0.2 % offset yield point (model height 29 mm in AppendixA) within 10 %: a solver-to-solver
check that isolates the bone law as the cause of the miss above.  The public repository does
not say how F.Load is read off the curve; the offset yield point is the reading that a
perfectly plastic law without a peak leaves (the force keeps rising, see the README).
Coarse meshes (tet4, 6 mm generated L1 body; 3 mm CT) keep the file under a minute.
Units: mm, N.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fembone.cases import build_model
from fembone.core.analysis import solve

pytestmark = pytest.mark.slow

COHORT_BAND = (1800.0, 5000.0)  # N, nonlinear F.Load mean +- 1 SD (verse19fem_table_1.csv)
L1_MATCHED = (1890.0, 4205.0)  # N, L1 targets at 57-97 mg/cc (verse19fem_AppendixA.csv)
L1_MATCHED_RATIO = (0.157, 0.191)  # mm, F.Load / linear stiffness of the same 23 vertebrae
L2_STRENGTH, L2_STIFFNESS = 1847.0, 12362.0  # N, N/mm: sub-verse004 L2 (AppendixA)
ANALYSIS = {"type": "strength", "max_displacement": 0.64, "steps": 8, "stop_after_peak": 0.05}
CASES = Path(__file__).resolve().parents[2] / "cases"


def _strength(case: dict, base: str) -> tuple[float, float, dict]:
    model = build_model(case, base=base, source=f"test:{case['name']}")
    risk = next(iter(solve(model, nodal=False).loadcases.values())).extra["risk"]
    st = model.meta["strength"]
    assert st["peak_reached"], f"no peak on the curve {st['curve']['force']}: raise max_displacement"
    return st["strength"], risk["axial_stiffness"], st  # the first local maximum: the ultimate load




@pytest.fixture(scope="module")
def normal_l1(cache):
    case = {"name": "normal-l1", "vertebra": {"level": "L1", "mesh_size": 6.0, "order": 1, "posterior": False},
            "materials": {"preset": "normal"}, "boundary": {"setup": "in_vitro"}, "analysis": dict(ANALYSIS),
            "loadcases": {"c": [{"preset": "compression", "displacement": -0.1}]}}
    return _strength(case, ".")


def _verse_l2_case() -> dict:
    """The shipped VerSe L2 case on the coarse mesh (3 mm tet4); skips without ../shared/data."""
    raw = yaml.safe_load((CASES / "L2_verse_ct.yaml").read_text())
    if not (CASES / raw["ct"]["image"]).is_file():
        pytest.skip("the VerSe L2 scan is read from ../shared/data, which this checkout does not have")
    raw["ct"].update(mesh_size=3.0, order=1)
    return raw


@pytest.fixture(scope="module")
def verse_l2(cache):
    raw = _verse_l2_case()
    raw["analysis"] = dict(ANALYSIS, max_displacement=0.48)
    return _strength(raw, str(CASES))


@pytest.fixture(scope="module")
def verse_l2_bonelab(cache):
    raw = _verse_l2_case()
    laws = {r: "bonelab_kopperdahl" for r in ("trabecular", "cortical_shell", "posterior_elements")}
    raw["analysis"] = {"type": "strength", "max_displacement": 0.4, "steps": 8, "stop_after_peak": False, "laws": laws}
    model = build_model(raw, base=str(CASES), source="test:verse-l2-bonelab")
    risk = next(iter(solve(model, nodal=False).loadcases.values())).extra["risk"]
    return model.meta["strength"], risk["axial_stiffness"]


def test_verse_l2_with_the_benchmarks_law_meets_its_failure_load(verse_l2_bonelab):
    """The benchmark's law on the benchmark's scan: 0.2 % offset yield force within 10 % of its
    1.847 kN (10 %: voxel against tetrahedral geometry of the same scan, Tresca against von Mises
    off the uniaxial path; stiffness agrees within 5 % at this mesh)."""
    st, k = verse_l2_bonelab
    assert 0.95 * L2_STIFFNESS <= k <= 1.05 * L2_STIFFNESS, f"stiffness {k:.0f} N/mm against {L2_STIFFNESS:.0f}"
    assert st["laws"]["trabecular"]["law"] == "bonelab_kopperdahl"
    Fy = st["yield_force"]
    assert Fy is not None, f"no offset yield point on {st['curve']['force']}"
    err = Fy / L2_STRENGTH - 1.0
    assert abs(err) <= 0.10, f"offset yield {Fy:.0f} N against the benchmark's {L2_STRENGTH:.0f} N: {100 * err:+.1f} %"


def test_normal_l1_strength_known_miss_above_cohort(normal_l1):
    """Known miss: the normal L1 is stronger than the VerSe cohort's mean + 1 SD and than every
    density-matched L1 of the cohort (and has the larger strength / stiffness ratio)."""
    F, k, _ = normal_l1
    assert F > max(COHORT_BAND[1], L1_MATCHED[1]), (
        f"normal L1 strength {F:.0f} N is now inside the published range: update the README and make this a band test")
    assert F / k > L1_MATCHED_RATIO[1], f"strength / stiffness {F / k:.3f} mm is now inside {L1_MATCHED_RATIO} mm"


def test_verse_l2_stiffness_matches_but_strength_is_above_benchmark(verse_l2):
    """The same scan and modulus law as the benchmark: stiffness inside its +-20 % band, nonlinear
    strength above 1.2 x its 1.847 kN (known miss: the post-yield law, not the model's stiffness)."""
    F, k, _ = verse_l2
    assert 0.8 * L2_STIFFNESS <= k <= 1.2 * L2_STIFFNESS, f"stiffness {k:.0f} N/mm against {L2_STIFFNESS:.0f}"
    assert F > 1.2 * L2_STRENGTH, f"L2 strength {F:.0f} N is now within 20 % of {L2_STRENGTH:.0f} N: update the README"


def test_nonlinear_strength_exceeds_first_yield(normal_l1, verse_l2):
    """Strain-hardening-free laws still carry load past first yield: first yield < offset yield <= peak."""
    for F, _, st in (normal_l1, verse_l2):
        assert st["first_yield_force"] < F and (st["yield_force"] is None or st["yield_force"] <= F + 1e-9)
