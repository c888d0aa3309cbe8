"""Risk metrics on a whole model, checked against their own definitions (independent identities).

In a linear model strains scale with the load, so the Pistoia strength multiplier lambda found
at one load must put exactly the critical 2 % of trabecular bone past the critical effective
strain when the load is multiplied by lambda; and the factor of risk is 1 / lambda.
"""

from __future__ import annotations

import pytest

from fembone.cases import build_model
from fembone.core.analysis import solve
from fembone.spine.risk import CRITICAL_FRACTION




def _risk(d: float) -> dict:
    case = {
        "name": "risk", "vertebra": {"level": "L1", "mesh_size": 4.0, "order": 1, "posterior": False},
        "materials": {"preset": "normal"}, "boundary": {"setup": "in_vitro"},
        "loadcases": {"c": [{"preset": "compression", "displacement": d}]},
    }
    return solve(build_model(case, source="risk.yaml"), nodal=False).loadcases["c"].extra["risk"]


def test_failed_volume_at_the_strength_load_is_the_critical_fraction(cache):
    """At the strength load the failed volume is 2 % (inside the 0.5-20 % range that tests it)."""
    r = _risk(-0.05)
    lam = r["strength_estimate"] / r["applied_load"]
    assert r["factor_of_risk"] == pytest.approx(1 / lam, rel=1e-12)
    at = _risk(-0.05 * lam * 1.001)
    assert at["failed_volume_fraction"] == pytest.approx(CRITICAL_FRACTION, abs=0.002), (
        f"failed volume {at['failed_volume_fraction']:.4f} at the strength load, expected {CRITICAL_FRACTION}")
    assert at["factor_of_risk"] == pytest.approx(1.0, rel=2e-3)
    assert at["platen_force"] == pytest.approx(r["strength_estimate"] * 1.001, rel=1e-9)


def test_failed_volume_grows_past_the_strength_load(cache):
    r = _risk(-0.05)
    lam = r["strength_estimate"] / r["applied_load"]
    f = [_risk(-0.05 * lam * s)["failed_volume_fraction"] for s in (0.8, 1.02, 1.3)]
    # compression between parallel platens strains the intact trabecular core almost uniformly,
    # so the failed share rises steeply past the strength load
    assert f[0] < CRITICAL_FRACTION < f[1] < f[2], f"failed volume fractions {f} at 0.8, 1.02, 1.3 x strength"
