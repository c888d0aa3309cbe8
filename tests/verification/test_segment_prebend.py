"""A prebent rod in a segment (``rods: {prebend: {radius: R}}``): the case key end to end.

Exact identities of the linear model, on a coarse T12-L2 fixation (tet4, 4 mm; the annulus without
its tension-only fibres, ``disc: {fibres: false}``: with them the model is piecewise linear and
superposition holds only approximately, -0.6 % on T12-L1 flexion):
* the rods' preload is self-equilibrated: its own load case (``rod_preload``, the installed
  state) has no net reaction, and every load case stays in equilibrium;
* superposition: each load case of the prebent model is the straight model's plus the installed
  state, so the range of motion measured from the installed state equals the straight rod's
  (to solver precision) while stresses include the preload;
* the prebend changes the rods' bending moment by E I kappa0 order: with R = 300 mm a 5.5 mm
  titanium rod clamped straight would carry E I / R = 110000 x 44.92 / 300 = 16,470 N mm; the
  flexible heads let it relax part of that, so its installed moment lies between 0 and that bound.
Units: mm, N, N mm, degrees.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fembone.cases import build_model
from fembone.core.analysis import solve

pytestmark = pytest.mark.slow

R = 300.0  # mm, lordotic


def _case(prebend: dict | None) -> dict:
    rods = {"diameter": 5.5, "material": "titanium"}
    if prebend:
        rods["prebend"] = prebend
    return {"name": "pb", "segment": {"levels": ["T12", "L1", "L2"], "mesh_size": 4.0, "order": 1, "facets": True,
                                      "disc": {"fibres": False}},
            "materials": {"preset": "normal"},
            "screws": [{"placement": "bilateral_transpedicular", "levels": ["T12", "L2"], "diameter": 6.5}],
            "rods": rods, "solver": "pardiso",
            "loadcases": {"flexion": [{"preset": "flexion", "moment": 7500}],
                          "standing": [{"preset": "compression", "force": 800}]}}


@pytest.fixture(scope="module")
def runs(cache):
    out = {}
    for key, pb in (("straight", None), ("prebent", {"radius": R})):
        model = build_model(_case(pb), source=f"test:{key}")
        out[key] = (model, solve(model, nodal=False))
    return out


def test_preload_case_is_self_equilibrated_and_every_case_balances(runs):
    model, res = runs["prebent"]
    assert "rod_preload" in res.loadcases and "rod_preload" not in runs["straight"][1].loadcases
    pre = res.loadcases["rod_preload"]
    scale = 7500.0 / 50.0  # N: the flexion moment over a lever of 50 mm
    assert np.linalg.norm(pre.reaction_force) < 1e-6 * scale, f"net reaction of the preload {pre.reaction_force}"
    for name, lc in res.loadcases.items():
        assert lc.equilibrium_error < 1e-8, f"{name}: equilibrium error {lc.equilibrium_error:.2e}"
    assert model.meta["rods"][0]["prebend"]["curvature_per_mm"] == pytest.approx(1.0 / R)


def test_range_of_motion_is_measured_from_the_installed_state(runs):
    straight, prebent = runs["straight"][1].loadcases, runs["prebent"][1].loadcases
    a, b = straight["flexion"].extra["segment"], prebent["flexion"].extra["segment"]
    for pair, rom in a["range_of_motion_deg"].items():
        assert rom > 0.1 and b["range_of_motion_deg"][pair] == pytest.approx(rom, rel=1e-7), (
            f"flexion {pair}: {b['range_of_motion_deg'][pair]} vs straight {rom}")
    for lc in ("flexion", "standing"):  # every component of every level pair's relative rotation
        a = straight[lc].extra["segment"]["relative_rotation_deg"]
        b = prebent[lc].extra["segment"]["relative_rotation_deg"]
        for pair in a:
            assert np.allclose(b[pair], a[pair], rtol=1e-7, atol=1e-9), f"{lc} {pair}: {b[pair]} vs {a[pair]}"
    assert "installed state" in prebent["flexion"].extra["segment"]["measured_from"]
    # the installed state itself turns the levels (the rods pull the heads): clearly not zero
    pre = prebent["rod_preload"].extra["segment"]["relative_rotation_deg"]
    assert max(abs(x) for v in pre.values() for x in v) > 0.05


def test_stresses_include_the_preload(runs):
    straight, prebent = runs["straight"][1].loadcases, runs["prebent"][1].loadcases
    I = math.pi * 5.5**4 / 64.0
    bound = 110000.0 * I / R  # N mm: the moment of a rod held exactly straight
    m_pre = prebent["rod_preload"].extra["rods"]["rod_left"]["max_bending_moment"]
    assert 0.05 * bound < m_pre < bound, f"installed rod moment {m_pre:.0f} N mm against the clamped bound {bound:.0f}"
    m0 = straight["flexion"].extra["rods"]["rod_left"]["max_bending_moment"]
    m1 = prebent["flexion"].extra["rods"]["rod_left"]["max_bending_moment"]
    assert abs(m1 - m0) > 0.05 * m_pre, "the prebent rod's flexion moment must differ from the straight rod's"
