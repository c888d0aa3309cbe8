"""Screw section and material values from the case API, pinned against independent numbers.

* Section properties of the screw's beam (the thread's core diameter, annular when
  cannulated) against a numerical quadrature of the cross-section (midpoint rule in polar
  coordinates), not the closed forms the code uses: A = int dA, I = int y^2 dA, J = int r^2 dA.
* Timoshenko shear coefficient against Cowper (1966, J Appl Mech 33:335, Table 1):
  solid circle 6(1+nu)/(7+6nu) = 0.8864 at nu = 0.3, thin-walled round tube
  2(1+nu)/(4+3nu) (the limit of the hollow-circle formula as the wall thins).
* Screw materials against the implant standards: Ti-6Al-4V ELI (ASTM F136) E 105-120 GPa,
  0.2 % yield >= 795 MPa (typical 795-875 MPa); 316L cold-worked (ASTM F138) E ~190-200 GPa,
  yield >= 690 MPa.

Screws are built through ``fembone.cases.build_model`` on a small box mesh.
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.cases import build_model
from fembone.core.meshgen import box_mesh, write_mesh


@pytest.fixture(scope="module")
def box_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("screw-values") / "box.msh"
    write_mesh(box_mesh((20.0, 20.0, 60.0), (2, 2, 6), origin=(-10.0, -10.0, 0.0)), p)
    return str(p)


def screws_of(box_file: str, *specs: dict):
    """Screw objects of a model built from ``screws:`` entries (along z, 5 mm apart in x)."""
    entries = []
    for i, spec in enumerate(specs):
        x = -5.0 + 5.0 * i + 0.13
        entries.append({"name": f"s{i}", "entry": [x, 0.21, 55.0], "target": [x, 0.21, 10.0], **spec})
    case = {
        "name": "screws",
        "mesh": box_file,
        "materials": {"bone": {"E": 100.0, "nu": 0.3}},
        "constraints": [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]}],
        "loadcases": {"push": [{"where": {"set": "zmax"}, "pressure": 1.0}]},
        "screws": entries,
    }
    model = build_model(case, base=".", source="test_screw_values")
    return model, model.meta["_screws"]


def quadrature(D: float, d: float, n: int = 4000):
    """(A, I, J) of the annulus d/2 <= r <= D/2 by the midpoint rule in r (theta exact)."""
    r = d / 2 + (np.arange(n) + 0.5) * (D - d) / 2 / n
    dr = (D - d) / 2 / n
    A = (2 * np.pi * r * dr).sum()
    J = (2 * np.pi * r**3 * dr).sum()
    I = (np.pi * r**3 * dr).sum()  # int_0^2pi sin^2 = pi
    return A, I, J


@pytest.mark.parametrize(
    "spec,D,d",
    [
        ({"diameter": 6.5, "core_diameter": 4.8}, 4.8, 0.0),
        ({"diameter": 6.5, "core_diameter": 4.8, "cannula_diameter": 1.6}, 4.8, 1.6),
        ({"diameter": 5.5, "core_diameter": 4.0, "cannula_diameter": 2.4}, 4.0, 2.4),
    ],
    ids=["solid-6.5/4.8", "cannulated-6.5/4.8/1.6", "cannulated-5.5/4.0/2.4"],
)
def test_section_properties_by_quadrature(box_file, spec, D, d):
    """The beam section is the core (root) diameter, hollow by the cannula; A, I, J by quadrature."""
    _, (s,) = screws_of(box_file, spec)
    sec = s.section
    A, I, J = quadrature(D, d)
    got = (sec.area(), sec.second_moment(), sec.polar_moment())
    msg = f"section {D}/{d}: (A, I, J) = {got}, quadrature {(A, I, J)}"
    print(msg)
    assert (sec.outer_diameter, sec.inner_diameter) == (D, d), f"section diameters {(sec.outer_diameter, sec.inner_diameter)}, expected {(D, d)}"
    assert np.allclose(got, (A, I, J), rtol=1e-6), msg
    assert sec.polar_moment() == pytest.approx(2.0 * sec.second_moment(), rel=1e-12)
    assert sec.outer_radius == pytest.approx(D / 2)


def test_default_core_diameter_is_three_quarters_of_thread(box_file):
    """Without core_diameter the section is 0.75 x the thread diameter (fembone's documented default;
    pedicle-screw cores are ~0.7-0.75 of the thread: 6.5 mm screws have ~4.5-5 mm cores)."""
    model, (s,) = screws_of(box_file, {"diameter": 6.5})
    assert s.section.outer_diameter == pytest.approx(4.875, rel=1e-12), s.section
    assert s.section.second_moment() == pytest.approx(np.pi * 4.875**4 / 64.0, rel=1e-12)
    assert model.meta["screws"][0]["core_diameter"] == pytest.approx(4.875)


@pytest.mark.parametrize("nu", [0.1, 0.3, 0.45])
def test_shear_coefficient_cowper(box_file, nu):
    """Cowper (1966) Table 1: solid circle 6(1+nu)/(7+6nu); at nu = 0.3 the published 0.886."""
    _, (s,) = screws_of(box_file, {"diameter": 6.5, "core_diameter": 4.8, "material": {"E": 1e5, "nu": nu, "yield": 800.0}})
    k = s.section.shear_coefficient(s.nu)
    exp = 6 * (1 + nu) / (7 + 6 * nu)
    print(f"nu = {nu}: k = {k:.6f}, Cowper {exp:.6f}")
    assert k == pytest.approx(exp, rel=1e-12), f"k = {k}, expected {exp}"
    if nu == 0.3:
        assert k == pytest.approx(0.886, abs=5e-4)
    assert s.section.transverse_shear_factor() == pytest.approx(4.0 / 3.0, rel=1e-12)


def test_shear_coefficient_thin_tube_limit(box_file):
    """A nearly thin-walled tube tends to Cowper's thin-walled round tube 2(1+nu)/(4+3nu) and
    Jourawski's peak/mean shear 2."""
    _, (s,) = screws_of(box_file, {"diameter": 6.5, "core_diameter": 4.8, "cannula_diameter": 4.79,
                                   "material": {"E": 1e5, "nu": 0.3, "yield": 800.0}})
    k = s.section.shear_coefficient(0.3)
    exp = 2 * 1.3 / (4 + 0.9)
    print(f"thin tube: k = {k:.6f}, Cowper thin-walled {exp:.6f}; shear factor {s.section.transverse_shear_factor():.6f}")
    assert k == pytest.approx(exp, rel=1e-4), f"k = {k}, expected {exp}"
    assert s.section.transverse_shear_factor() == pytest.approx(2.0, rel=1e-4)


def test_screw_materials_match_implant_standards(box_file):
    """Named materials: titanium = Ti-6Al-4V ELI (ASTM F136), stainless_steel = 316L cold-worked (ASTM F138)."""
    _, (ti, ss) = screws_of(box_file, {"material": "titanium"}, {"material": "stainless_steel"})
    print(f"titanium E {ti.E} nu {ti.nu} yield {ti.yield_strength}; stainless E {ss.E} nu {ss.nu} yield {ss.yield_strength}")
    assert 105e3 <= ti.E <= 120e3, f"titanium E = {ti.E} MPa, Ti-6Al-4V ELI has 105-120 GPa"
    assert 795.0 <= ti.yield_strength <= 875.0, f"titanium yield {ti.yield_strength} MPa, ASTM F136 minimum 795 (typical to 875)"
    assert 190e3 <= ss.E <= 200e3, f"stainless E = {ss.E} MPa, 316L has ~190-200 GPa"
    assert ss.yield_strength >= 690.0, f"stainless yield {ss.yield_strength} MPa, ASTM F138 cold-worked minimum 690"
    for m in (ti, ss):
        assert 0.28 <= m.nu <= 0.34, f"nu = {m.nu}"
