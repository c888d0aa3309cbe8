"""Vertebra models on the volume-fraction path with endplate supports (fembone 0.1's model):
lesions, cement, load presets and risk metrics behave as physics demands.

A coarse generated L1 (tet4, size 4 mm) keeps each solve to about a second.  Conforming
regions and the in_vitro / discs set-ups are tested in test_vertebra_setups.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.core.analysis import solve
from fembone.cases import build_model
from fembone.core.errors import InputError




def case(**extra) -> dict:
    c = {
        "name": "t",
        "vertebra": {"level": "L1", "mesh_size": 4.0, "order": 1, "regions": "fraction"},
        "materials": {"preset": "normal"},
        "boundary": {"setup": "endplates"},
        "loadcases": {"standing": [{"preset": "compression", "force": 800}]},
    }
    c.update(extra)
    return c


def run(cache, **extra):
    model = build_model(case(**extra), base=".", source="test.yaml")
    res = solve(model)
    return model, res.loadcases["standing"].summary()


def risk(cache, **extra):
    return run(cache, **extra)[1]["risk"]


def lytic(vf, location="central"):
    return [{"type": "lytic", "volume_fraction": vf, "location": location}]


def test_lesion_volume_matches_request(cache):
    model, _ = run(cache, lesions=lytic(0.2))
    vols = model.meta["volumes"]
    got = vols["lesion"] / vols["body"]
    assert got == pytest.approx(0.2, rel=0.02), f"lesion fraction {got:.4f} vs requested 0.2"


def test_larger_lytic_lesion_weakens(cache):
    r0 = risk(cache)
    r1 = risk(cache, lesions=lytic(0.10))
    r3 = risk(cache, lesions=lytic(0.30))
    k = [r["axial_stiffness"] for r in (r0, r1, r3)]
    b = [r["posterior_wall_bulge"] for r in (r0, r1, r3)]
    f = [r["failed_volume_fraction"] for r in (r0, r1, r3)]
    s = [r["strength_estimate"] for r in (r0, r1, r3)]
    assert k[0] > k[1] > k[2], f"axial stiffness not decreasing with lesion size: {k}"
    assert b[0] < b[1] < b[2], f"posterior wall bulge not increasing: {b}"
    assert f[0] <= f[1] <= f[2], f"failed volume not increasing: {f}"
    assert s[0] > s[2], f"strength not lower with a 30% lesion: {s}"


def test_stiffness_changes_smoothly_with_lesion_size(cache):
    ks = [risk(cache, lesions=lytic(v))["axial_stiffness"] for v in (0.28, 0.29, 0.30)]
    d1, d2 = ks[0] - ks[1], ks[1] - ks[2]
    assert d1 > 0 and d2 > 0, f"stiffness not monotone: {ks}"
    assert 0.5 < d1 / d2 < 2.0, f"uneven steps (element-by-element jumps?): {ks}"


def test_cement_restores_stiffness(cache):
    intact = risk(cache)["axial_stiffness"]
    les = risk(cache, lesions=lytic(0.3))["axial_stiffness"]
    model, s = run(cache, lesions=lytic(0.3), cement=[{"volume_ml": 4.0, "access": "bipedicular"}])
    cem = s["risk"]["axial_stiffness"]
    assert les < cem, f"cement did not stiffen: lytic {les:.0f}, cement {cem:.0f} N/mm (intact {intact:.0f})"
    assert cem > les + 0.5 * (intact - les), f"4 mL restored less than half: {les:.0f} -> {cem:.0f} of {intact:.0f}"
    filled = model.meta["cement"][0]["filled_ml"]
    assert filled == pytest.approx(4.0, rel=1e-6), f"filled {filled} mL of 4"
    assert "cement_peak_von_mises" in s["risk"]


def test_stiffer_bone_lowers_strain(cache):
    soft = run(cache, materials={"preset": "normal", "trabecular": {"density": 0.10}})[1]
    hard = run(cache, materials={"preset": "normal", "trabecular": {"density": 0.25}})[1]
    assert hard["max_displacement"] < soft["max_displacement"]
    assert hard["risk"]["factor_of_risk"] < soft["risk"]["factor_of_risk"]


def test_moment_presets_and_equilibrium(cache):
    lcs = {name: [{"preset": name, "moment": 7500, "follower": 400}] for name in ("flexion", "extension", "lateral_bending", "axial_rotation")}
    model = build_model(case(loadcases=lcs), base=".", source="test.yaml")
    res = solve(model)
    for name, lc in res.loadcases.items():
        s = lc.summary()
        assert s["equilibrium_error"] < 1e-8, f"{name}: equilibrium error {s['equilibrium_error']:.2e}"
        assert s["risk"]["rotational_stiffness"] > 0
    # flexion tilts the superior endplate anteriorly: rotation about -x
    assert res.loadcases["flexion"].points["superior"][3] < 0
    assert res.loadcases["extension"].points["superior"][3] > 0


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ({"lesions": [{"type": "lytic", "center": [0, 200, 0], "radius": 5}]}, "outside the vertebral body"),
        ({"lesions": lytic(0.3), "cement": [{"volume_ml": 45, "access": "bipedicular"}]}, "exceeds"),
        ({"loadcases": {"x": [{"preset": "jumping"}]}}, "jumping"),
        ({"materials": {"preset": "brittle"}}, "brittle"),
        ({"lesions": [{"type": "cystic", "radius": 3}]}, "cystic"),
        ({"cement": [{"volume_ml": 2, "access": "transpedicular"}]}, "access"),
    ],
)
def test_bad_vertebra_input(cache, extra, fragment):
    with pytest.raises(InputError) as ei:
        build_model(case(**extra), base=".", source="test.yaml")
    assert fragment in str(ei.value), str(ei.value)
    assert "\n" not in str(ei.value)


def test_potting_layer_is_more_compliant_and_tends_to_fixed(cache):
    fixed = run(cache)[1]
    potted = run(cache, boundary={"inferior": "potting"})[1]
    rigid = run(cache, boundary={"inferior": "potting", "potting": {"E": 2.5e7}})[1]
    k0, k1, k2 = (s["risk"]["axial_stiffness"] for s in (fixed, potted, rigid))
    for s in (potted, rigid):
        assert s["equilibrium_error"] < 1e-8, f"equilibrium error {s['equilibrium_error']:.2e}"
        assert s["reaction_force"][2] == pytest.approx(800.0, rel=1e-8)
    assert k1 < k0, f"a 3 mm PMMA layer should be softer than a fixed endplate: {k1:.0f} vs {k0:.0f} N/mm"
    assert k2 == pytest.approx(k0, rel=0.01), f"a near-rigid layer should act as fixed: {k2:.0f} vs {k0:.0f} N/mm"


def test_potting_properties_need_potting(cache):
    with pytest.raises(InputError, match="inferior: potting"):
        build_model(case(boundary={"potting": {"E": 2500}}), base=".", source="test.yaml")
