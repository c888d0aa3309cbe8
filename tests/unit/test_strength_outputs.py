"""Strength analyses beyond the generated vertebra: a CT case (toy phantom of test_ct) and a segment;
their outputs in ``fembone compare`` (nonlinear strength and factor of risk beside the linear ones,
overlaid force-displacement curves), ``fembone view`` and the run's previews (strength_curve.png).
Hand values: the CT density -> apparent density -> Keyak knots arithmetic; exact identities: the path's
initial stiffness is the linear load case's stiffness.  Units: mm, N, MPa, mg/cc."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
from PIL import Image
# the toy CT vertebra of test_ct (tests/unit is on sys.path under pytest: no package)
from test_ct import _toy_vertebra, _write_pair

from fembone.apps.cli import main
from fembone.apps.viz.curves import strength_data
from fembone.cases import build_model
from fembone.core.errors import FemboneError
from fembone.cases.strength_run import bone_plastic_set
from fembone.core.analysis import solve
from fembone.core.output import write_results
from fembone.spine.strength import DEFAULT_LAWS, LAWS

TRABECULAR_MGCC = {"ct-before": 90.0, "ct-after": 150.0}  # e.g. before and after a treatment that restores density


def ct_case(name: str) -> dict:
    return {
        "name": name,
        "ct": {"image": f"{name}_im.nii.gz",
               "labels": {"file": f"{name}_seg.nii.gz", "bone": [1, 2, 3], "cortical": [2], "posterior": [3], "caps": [5, 6]},
               "calibration": {"kind": "density"}, "law": "kopperdahl2002", "mesh_size": 2.5, "order": 1, "cranial": "+z"},
        "boundary": {"setup": "in_vitro"},
        "analysis": {"type": "strength", "max_displacement": 0.5, "steps": 5},
        "loadcases": {"compression": [{"preset": "compression", "force": 1000.0}]},
    }


@pytest.fixture(scope="module")
def ct_runs(tmp_path_factory):
    """The toy vertebra of test_ct (body 28 x 22 x 18 mm, PMMA caps) at two trabecular densities, solved and written."""
    base = tmp_path_factory.mktemp("ct-strength")
    runs = {}
    for name, rho_t in TRABECULAR_MGCC.items():
        L, rho, A = _toy_vertebra()
        rho = np.where(L == 1, rho_t, rho)
        _write_pair(base, name, L, rho, A)
        model = build_model(ct_case(name), base=base, source=str(base / f"{name}.yaml"))
        result = solve(model)
        summary = write_results(result, base / name)
        runs[name] = (base / name, result, summary)
    return runs


# -- CT ---------------------------------------------------------------------------------------------
def test_ct_case_runs_to_strength(ct_runs):
    folder, _, summary = ct_runs["ct-after"]
    st = summary["meta"]["strength"]
    risk = summary["loadcases"]["compression"]["risk"]
    F = st["curve"]["force"]
    first = next((F[i] for i in range(1, len(F) - 1) if F[i] >= F[i - 1] and F[i + 1] < F[i]), F[-1])
    assert st["finished"] and st["strength"] == pytest.approx(first)  # the ultimate load: first local maximum
    assert st["path_maximum"] == pytest.approx(max(F))
    # the path's elastic response and the linear load case are two solves of the same platen stiffness
    assert st["initial_stiffness"] == pytest.approx(risk["axial_stiffness"], rel=1e-6)
    assert risk["factor_of_risk_nonlinear"] == pytest.approx(1000.0 / st["strength"], rel=1e-12)
    assert risk["strength_estimate"] > 0 and risk["factor_of_risk"] > 0  # the linear estimate stays beside it
    assert st["laws"]["trabecular"]["bone_modulus"].startswith("per element, mapped from CT")
    assert (folder / "strength_curve.csv").is_file() and (folder / "strength.pvd").is_file()


def test_ct_with_caps_and_no_boundary_key_is_a_platen_case():
    """A CT case whose labels carry caps gets setup: in_vitro by default; without caps, endplates (refused)."""
    from fembone.cases import parse_case
    from fembone.core.errors import InputError

    c = ct_case("x")
    del c["boundary"]
    assert parse_case(c, source="x.yaml").extensions["analysis"].type == "strength"
    c["ct"]["labels"].pop("caps")
    with pytest.raises(InputError, match=r"analysis\.type: .*setup: endplates"):
        parse_case(c, source="x.yaml")


def test_ct_density_sets_each_elements_law(ct_runs):
    """Interior trabecular elements at 150 mg/cc K2HPO4: rho_ash = 1.06 x 0.150 + 0.0389 = 0.1979 g/cc,
    E = -34.7 + 3230 x 0.150 = 449.8 MPa (kopperdahl2002), yield 0.0084 E = 3.7783 MPa; Keyak:
    plateau -0.00315 + 0.0728 x 0.1979 = 0.011257, E_p = -2080 x 0.1979^1.45 = -198.57 MPa,
    sigma_min = 43.1 x 0.1979^1.81 = 2.2964 MPa, H = E E_p / (E - E_p) = -137.755 MPa: the
    floor is reached at 0.011257 + (3.7783 - 2.2964) / 137.755 = 0.022015 of plastic strain."""
    _, result, _ = ct_runs["ct-after"]
    model = result.model
    pset, _, nq, _ = bone_plastic_set(model, dict(DEFAULT_LAWS))
    rho = model.cell_data["ct_density_mgcc"][pset.elements]
    trab = np.isin(pset.elements, model.mesh.cell_sets["trabecular"])
    pure = np.repeat(trab & np.isclose(rho, 150.0, rtol=1e-9) & (model.material_id[pset.elements] == 1), nq)
    assert pure.sum() > 50
    a, s = pset.law.curve.alpha[pure], pset.law.curve.stress[pure]
    assert s[:, 0] == pytest.approx(3.77832, rel=1e-9)
    assert a[:, 1] == pytest.approx(0.01125712, rel=1e-6)
    assert s[:, 2] == pytest.approx(2.296382, rel=1e-6)
    assert a[:, 2] == pytest.approx(0.0220149, rel=1e-5)


def test_bonelab_law_takes_the_calibrated_density_of_each_element(ct_runs):
    """The benchmark's law on the CT phantom: interior trabecular elements at 150 mg/cc yield at
    37.4 x 0.150^1.39 = 2.6769 MPa (not at a strain times their 449.8 MPa modulus), cortical and
    posterior elements follow their own density, and tension equals compression (von Mises)."""
    _, result, _ = ct_runs["ct-after"]
    model = result.model
    laws = {r: LAWS["bonelab_kopperdahl"] for r in ("trabecular", "cortical_shell", "posterior_elements")}
    pset, fail, nq, used = bone_plastic_set(model, laws)
    rho = model.cell_data["ct_density_mgcc"][pset.elements]
    trab = np.isin(pset.elements, model.mesh.cell_sets["trabecular"])
    pure = np.repeat(trab & np.isclose(rho, 150.0, rtol=1e-9) & (model.material_id[pset.elements] == 1), nq)
    assert pure.sum() > 50
    assert pset.law.curve.stress[pure, 0] == pytest.approx(2.67693, rel=1e-5)
    assert pset.law.curve.alpha.shape[1] == 1 and not fail.any()  # perfectly plastic: failed once yielded
    assert np.allclose(pset.law.beta, 0.0)  # equal yield stresses: the cone is a cylinder
    assert used["trabecular"]["yield_stress"]["a"] == 37.4 and used["cortical_shell"]["yield_strain_compression"] is None


# -- compare, view, previews ------------------------------------------------------------------------------
def test_compare_shows_both_strengths_and_overlays_the_curves(ct_runs, tmp_path, capsys):
    dirs = [str(ct_runs[n][0]) for n in TRABECULAR_MGCC]
    assert main(["compare", *dirs, "--out", str(tmp_path), "-q"]) == 0
    text = capsys.readouterr().out
    S = {n: ct_runs[n][2]["meta"]["strength"]["strength"] for n in TRABECULAR_MGCC}
    line = next(ln for ln in text.splitlines() if "strength (nonlinear peak) [N]" in ln)
    assert all(format(v, ".4g") in line for v in S.values()), line
    for label in ("factor of risk (nonlinear)", "strength estimate (linear)", "factor of risk (linear)"):
        assert label in text
    for n in TRABECULAR_MGCC:  # a strength without a peak is flagged as a lower bound
        flagged = f"the strength of {n} is a lower bound" in text
        assert flagged == (not ct_runs[n][2]["meta"]["strength"]["peak_reached"])
    rows = json.loads((tmp_path / "compare.json").read_text())["rows"]
    row = next(r for r in rows if r["metric"] == "strength")
    assert row["values"] == pytest.approx(S) and S["ct-after"] > S["ct-before"]
    assert row["ratio"]["ct-after"] == pytest.approx(S["ct-after"] / S["ct-before"])
    with Image.open(tmp_path / "strength_curves.png") as im:
        assert im.size[0] > 300 and im.size[1] > 200


def test_view_writes_the_strength_curve(ct_runs, tmp_path, capsys):
    folder = ct_runs["ct-before"][0]
    png = tmp_path / "curve.png"
    assert main(["view", str(folder), "--field", "strength_curve", "--screenshot", str(png)]) == 0
    assert f"written: {png}" in capsys.readouterr().out
    with Image.open(png) as im:
        assert im.size == (640, 440)
    res = tmp_path / "res"
    shutil.copytree(folder, res)
    (res / "strength_curve.png").unlink(missing_ok=True)
    assert main(["view", str(res), "--off-screen", "--screenshot", str(tmp_path / "v.png"), "--size", "320x240"]) == 0
    assert (res / "strength_curve.png").is_file() and (tmp_path / "v.png").is_file()


def test_view_of_a_result_without_strength_names_the_option(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"case": "x", "loadcases": {}, "meta": {}}))
    assert main(["view", str(tmp_path), "--field", "strength_curve"]) == 2


def test_previews_start_with_the_curve(ct_runs, tmp_path):
    from fembone.apps import viz

    written = viz.write_previews(ct_runs["ct-before"][1], tmp_path, window_size=(320, 240))
    assert written[0] == tmp_path / "strength_curve.png" and written[0].is_file()


def test_curve_read_back_from_the_csv(ct_runs, tmp_path):
    """Without summary.json the curve comes from strength_curve.csv (6 significant digits)."""
    folder, _, summary = ct_runs["ct-before"]
    shutil.copy(folder / "strength_curve.csv", tmp_path)
    st = strength_data(tmp_path)
    assert st["strength"] == pytest.approx(summary["meta"]["strength"]["strength"], rel=1e-5)
    assert st["curve"]["force"] == pytest.approx(summary["meta"]["strength"]["curve"]["force"], rel=1e-5, abs=1e-3)


# -- segment --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_segment_top_plate_pushed_to_strength():
    """T12-L2 (the mesh of the segment tests): the top plate is pushed down with the bottom face fixed; the
    path's initial stiffness is the linear one, 800 N over the plate's z displacement under the standing load
    (both with the plate's other DOFs free)."""
    c = {"name": "seg", "segment": {"levels": ["T12", "L1", "L2"], "mesh_size": 4.0, "order": 1, "disc": {"fibres": False}},
         "materials": {"preset": "normal"},
         "analysis": {"type": "strength", "max_displacement": 0.4, "steps": 2},
         "loadcases": {"standing": [{"preset": "compression", "force": 800.0}]}}
    model = build_model(c, source="seg.yaml")
    result = solve(model)
    st = model.meta["strength"]
    uz = model.layout.extra_dofs(model.points["superior"].index)[0][2]
    k_lin = 800.0 / -result.loadcases["standing"].u[uz]
    assert st["initial_stiffness"] == pytest.approx(k_lin, rel=1e-6)
    assert set(st["failed_volume_fraction_at_peak_by_level"]) == {"T12", "L1", "L2"}
    risk = result.loadcases["standing"].extra["risk"]
    assert risk["factor_of_risk_nonlinear"] == pytest.approx(800.0 / st["strength"], rel=1e-12)


@pytest.mark.parametrize("change, where", [
    ({"steps": 0}, "analysis.steps"),
    ({"max_displacement": -1.0}, "analysis.max_displacement"),
    ({"laws": {"trabecular": {"post_yield": "perfectly_plastic"}}}, "analysis.laws.trabecular"),
])
def test_segment_strength_input_is_checked_like_a_vertebra(change, where):
    from fembone.cases import parse_case
    from fembone.core.errors import InputError

    c = {"name": "seg", "segment": {"levels": ["T12", "L1"], "mesh_size": 4.0, "order": 1, "disc": {"fibres": False}},
         "analysis": {"type": "strength", **change}, "loadcases": {"s": [{"preset": "compression", "force": 800.0}]}}
    with pytest.raises(InputError) as exc:
        parse_case(c, source="seg.yaml")
    assert where in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("name, dmax, steps", [("L1_lytic_strength.yaml", 1.0, 20), ("L2_verse_ct_strength.yaml", 0.4, 10)])
def test_shipped_example_parses(name, dmax, steps):
    from pathlib import Path

    from fembone.cases import parse_case
    from fembone.core.schema import parse_yaml

    path = Path(__file__).resolve().parents[2] / "cases" / name
    spec = parse_case(parse_yaml(path.read_text(), str(path)), base=path.parent, source=str(path))
    a = spec.extensions["analysis"]
    assert (a.type, a.max_displacement, a.steps) == ("strength", dmax, steps)


@pytest.mark.parametrize("seg, key", [
    ({}, "segment.disc.fibres"),  # the fibres are on by default
    ({"disc": {"fibres": {"E": 400}}}, "segment.disc.fibres"),
    ({"disc": {"fibres": False}, "facets": {"model": "contact"}}, "segment.facets.model"),
    ({"disc": {"fibres": False}, "ligaments": True}, "segment.ligaments"),
])
def test_segment_strength_refuses_unilateral_elements(seg, key):
    """The strength path has no unilateral elements: fibres, facet contact and ligaments are refused by key
    (they would otherwise be dropped silently)."""
    c = {"name": "seg", "segment": {"levels": ["T12", "L1"], "mesh_size": 4.0, "order": 1, **seg},
         "materials": {"preset": "normal"}, "analysis": {"type": "strength"},
         "loadcases": {"standing": [{"preset": "compression", "force": 800.0}]}}
    with pytest.raises(FemboneError) as exc:
        build_model(c, source="seg.yaml")
    msg = str(exc.value)
    print(msg)
    assert msg.startswith(f"seg.yaml: {key}:") and "\n" not in msg
