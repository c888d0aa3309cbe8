"""Strength to failure of a vertebra: bone laws (fembone.spine.strength), the ``analysis`` case key
(fembone.cases.analysis) and its outputs.  Hand-computed values and one-line errors; one coarse
in_vitro L1 (tet4, 5 mm, no posterior elements) run end to end.  Units: mm, N, MPa, g/cm^3."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fembone.cases import build_model, parse_case
from fembone.core.analysis import solve
from fembone.core.errors import InputError
from fembone.core.output import write_results
from fembone.spine.strength import BONELAB, CORTICAL, TRABECULAR, compressive_curve, keyak2001, strength_metrics


def base(**analysis) -> dict:
    return {
        "name": "s",
        "vertebra": {"level": "L1", "mesh_size": 5.0, "order": 1, "posterior": False},
        "materials": {"preset": "normal"},
        "boundary": {"setup": "in_vitro"},
        "analysis": {"type": "strength", **analysis},
        "loadcases": {"c": [{"preset": "compression", "displacement": -0.1}]},
    }


# -- laws -------------------------------------------------------------------------------------
def test_keyak_parameters_by_hand():
    """rho_ash = 0.12: eps_AB = -0.00315 + 0.0728 x 0.12 = 0.005586; E_p = -2080 x 0.12^1.45 =
    -2080 x exp(1.45 ln 0.12) = -96.13 MPa; sigma_min = 43.1 x 0.12^1.81 = 0.9285 MPa."""
    eab, ep, smin = keyak2001(0.12)
    assert eab == pytest.approx(0.005586, rel=1e-9)
    assert ep == pytest.approx(-2080 * math.exp(1.45 * math.log(0.12)), rel=1e-12)
    assert ep == pytest.approx(-96.13, abs=0.01)
    assert smin == pytest.approx(0.9285, abs=1e-4)


def test_trabecular_curve_at_normal_density():
    """rho_app = 0.20 (ash 0.12), E = 4730 x 0.2^1.56 = 384.1 MPa: yield 0.0084 E = 3.226 MPa;
    the softening slope over plastic strain H = E E_p / (E - E_p) = -76.9 MPa reaches the floor
    0.9285 MPa after (3.226 - 0.9285) / 76.9 = 0.0299 of plastic strain past the plateau 0.005586."""
    E = 4730 * 0.2**1.56
    a, s = compressive_curve(TRABECULAR, np.array([E]), 1.0, rho_app=0.2)
    sy = 0.0084 * E
    H = E * -96.13 / (E + 96.13)
    assert s[0] == pytest.approx([sy, sy, 0.9285], abs=2e-4)
    assert a[0, 1] == pytest.approx(0.005586, rel=1e-6)
    assert a[0, 2] - a[0, 1] == pytest.approx((sy - 0.9285) / abs(H), rel=1e-3)
    # a mixed element of half the stiffness keeps the strains and halves the stresses
    a2, s2 = compressive_curve(TRABECULAR, np.array([E]), 0.5, rho_app=0.2)
    assert np.allclose(a2, a) and np.allclose(s2, 0.5 * s)


def test_cortical_law_is_strain_based_and_perfectly_plastic():
    a, s = compressive_curve(CORTICAL, np.array([4560.0]))
    assert a.shape == (1, 1) and s[0, 0] == pytest.approx(0.0104 * 4560.0)


def test_bonelab_law_is_stress_based_on_calibrated_density():
    """Bonelab spineFE benchmark law: sigma_y = 37.4 rho_QCT^1.39 MPa whatever the modulus,
    equal in tension: rho 0.150 g/cm^3 -> 37.4 x exp(1.39 ln 0.15) = 2.6769 MPa; 0.500 -> 14.2706 MPa;
    a density below 0.001 g/cm^3 (voids, negative calibrated values) yields at 37.4 x 0.001^1.39."""
    rho = np.array([0.15, 0.5, -0.02])
    E = np.array([400.0, 1400.0, 1.0])  # the modulus does not enter
    a, s = compressive_curve(BONELAB, E, 1.0, rho_qct=rho)
    assert a.shape == (3, 1) and not a.any()
    assert s[:, 0] == pytest.approx([2.6769, 14.2706, 37.4 * 0.001**1.39], rel=2e-4)
    assert s[0, 0] == pytest.approx(37.4 * math.exp(1.39 * math.log(0.15)), rel=1e-12)
    assert BONELAB.tension_ratio == 1.0 and TRABECULAR.tension_ratio == pytest.approx(0.0078 / 0.0084)
    _, s2 = compressive_curve(BONELAB, E, 0.5, rho_qct=rho)  # a mixed element of half the stiffness
    assert s2 == pytest.approx(0.5 * s)
    with pytest.raises(InputError, match="calibrated CT density"):
        compressive_curve(BONELAB, E, 1.0, rho_app=np.full(3, 0.2))


def test_bonelab_law_on_a_generated_vertebra_is_one_line():
    case = base(max_displacement=0.3, steps=2, laws={"trabecular": "bonelab_kopperdahl"})
    with pytest.raises(InputError, match=r"analysis\.laws: law bonelab_kopperdahl: .*ct: model"):
        solve(build_model(case, source="x.yaml"), nodal=False)


def test_offset_yield_and_peak_on_a_bilinear_curve():
    """k0 = 1000 N/mm to 1 mm, then 100 N/mm; offset 0.1 mm: 1000 (d - 0.1) = 1000 + 100 (d - 1)
    at d = 1000/900 = 1.1111 mm, F = 1011.1 N; the peak is the last point (curve still rising)."""
    d = np.linspace(0.0, 2.0, 41)
    F = np.where(d <= 1.0, 1000.0 * d, 1000.0 + 100.0 * (d - 1.0))
    m = strength_metrics(d, F, 0.1)
    assert m["yield_displacement"] == pytest.approx(1000.0 / 900.0, rel=1e-12)
    assert m["yield_force"] == pytest.approx(1000.0 + 100.0 * (1000.0 / 900.0 - 1.0), rel=1e-12)
    assert m["strength"] == pytest.approx(1100.0) and not m["peak_reached"]
    assert m["initial_stiffness"] == pytest.approx(1000.0)


def test_strength_is_the_first_peak_not_the_path_maximum():
    """A softened vertebra whose elastic parts make the force rise again: the ultimate load is the
    first local maximum (1000 N at 0.2 mm), not the 1200 N at the end of the path."""
    d = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    F = np.array([0.0, 500.0, 1000.0, 900.0, 950.0, 1200.0])
    m = strength_metrics(d, F, 0.05)
    assert (m["strength"], m["displacement_at_peak"], m["peak_index"]) == (1000.0, 0.2, 2)
    assert m["peak_reached"] and m["path_maximum"] == 1200.0
    # a plateau that then falls: the first point of the plateau's end
    m = strength_metrics(d, np.array([0.0, 500.0, 800.0, 800.0, 700.0, 600.0]), 0.05)
    assert (m["strength"], m["peak_index"]) == (800.0, 3)


# -- bad input: one line naming the key ------------------------------------------------------------
@pytest.mark.parametrize("change, where, words", [
    (lambda c: c.update(boundary={"setup": "endplates"}), "analysis.type", "platen set-up"),
    (lambda c: c["analysis"].update(max_displacement=0), "analysis.max_displacement", "positive"),
    (lambda c: c["analysis"].update(max_displacement=-1.0), "analysis.max_displacement", "positive"),
    (lambda c: c["analysis"].update(steps=0), "analysis.steps", "at least 1"),
    (lambda c: c["analysis"].update(laws={"cortical_shell": {"post_yield": "perfectly_plastic"}}),
     "analysis.laws.cortical_shell", "yield parameters"),
    (lambda c: c["analysis"].update(laws={"trabecular": {"yield_strain_compression": 0.0084}}),
     "analysis.laws.trabecular", "yield_strain_tension"),
    (lambda c: c["analysis"].update(laws={"trabecular": "brittle"}), "analysis.laws.trabecular", "unknown law"),
    (lambda c: c["analysis"].update(type="buckling"), "analysis.type", "strength"),
    (lambda c: c.pop("vertebra") and c.pop("materials") and c.update(mesh="x.msh"), "analysis.type", "vertebra model"),
])
def test_bad_analysis_input_is_one_line(change, where, words, tmp_path):
    (tmp_path / "x.msh").write_text("")
    c = base(max_displacement=1.0, steps=10)
    change(c)
    with pytest.raises(InputError) as exc:
        parse_case(c, base=tmp_path, source="case.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and where in msg and words in msg, msg


def test_default_setup_discs_is_a_platen_setup():
    c = base()
    del c["boundary"]  # generated vertebrae default to setup: discs
    spec = parse_case(c, source="case.yaml")
    a = spec.extensions["analysis"]
    assert (a.max_displacement, a.steps, a.laws["trabecular"]) == (1.0, 40, TRABECULAR)


# -- one coarse vertebra end to end ------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FEMBONE_CACHE", str(tmp_path_factory.mktemp("fembone-cache")))
    model = build_model(base(max_displacement=0.6, steps=8), source="case.yaml")
    result = solve(model)
    out = tmp_path_factory.mktemp("out")
    summary = write_results(result, out)
    yield model, result, summary, out
    mp.undo()


def test_strength_summary_and_factor_of_risk(run):
    model, result, summary, out = run
    st = summary["meta"]["strength"]
    F = np.array(st["curve"]["force"])
    k = next(i for i in range(1, len(F) - 1) if F[i] >= F[i - 1] and F[i + 1] < F[i])  # first local maximum
    assert st["strength"] == pytest.approx(F[k]) and st["peak_reached"]
    assert st["path_maximum"] == pytest.approx(F.max())
    assert st["first_yield_force"] < st["yield_force"] <= st["strength"]
    risk = summary["loadcases"]["c"]["risk"]
    # applied load of a displacement-controlled case is its platen force; nonlinear FoR = applied / strength
    assert risk["factor_of_risk_nonlinear"] == pytest.approx(risk["applied_load"] / st["strength"], rel=1e-12)
    assert "strength_estimate" in risk and "factor_of_risk" in risk  # the linear estimate stays beside it


def test_initial_stiffness_equals_the_linear_solution(run):
    """The path's elastic response (its own solve) and the linear load case (the engine's solve and
    the risk block) are two computations of the same platen stiffness."""
    model, result, summary, out = run
    assert summary["meta"]["strength"]["initial_stiffness"] == pytest.approx(
        summary["loadcases"]["c"]["risk"]["axial_stiffness"], rel=1e-6)


def test_curve_csv_and_step_files(run):
    model, result, summary, out = run
    rows = (out / "strength_curve.csv").read_text().strip().splitlines()
    st = summary["meta"]["strength"]
    assert rows[0].startswith("step,load_factor,platen_displacement_mm,force_N")
    assert len(rows) - 1 == len(st["curve"]["force"])
    last = rows[-1].split(",")
    assert float(last[3]) == pytest.approx(st["curve"]["force"][-1], rel=1e-5)
    assert summary["extra_files"] == {"strength_curve": "strength_curve.csv", "strength_steps": "strength.pvd"}
    pvd = (out / "strength.pvd").read_text()
    assert pvd.count("<DataSet") == len(rows) - 1
    import meshio

    peak = meshio.read(out / "c.vtu")
    assert {"plastic_strain_at_peak", "yielded_at_peak", "failed_at_peak"} <= set(peak.cell_data)
    assert json.loads((out / "summary.json").read_text())["meta"]["strength"]["strength"] == pytest.approx(st["strength"])


def test_round_off_on_a_plastic_plateau_is_no_peak():
    """A perfectly plastic plateau carries the equilibrium tolerance's noise (here 1e-9 of the
    force): that is no fall, so there is no peak until the force really drops (then the plateau's
    last point; a plateau that never falls reports its last force with peak_reached False)."""
    from fembone.spine.strength import first_peak

    noisy = np.array([0.0, 40.0, 80.0, 112.0, 112.0 - 1e-7, 112.0 - 2e-7, 112.0 - 3e-7])
    assert first_peak(noisy) is None
    m = strength_metrics(np.arange(7.0), noisy, 0.1)
    assert m["strength"] == pytest.approx(112.0, rel=1e-8) and not m["peak_reached"] and m["peak_index"] == 6
    falls = np.concatenate([noisy, [100.0]])
    assert first_peak(falls) == 6
    assert first_peak(np.array([0.0, 50.0, 100.0, 99.0, 120.0])) == 2  # a 1 % fall is one
