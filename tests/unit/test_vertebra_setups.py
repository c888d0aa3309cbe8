"""Vertebra set-ups (in_vitro caps with a guided platen, discs), conforming against volume-fraction
regions, void lesions and kyphoplasty, each pinned against a hand computation or an invariance
of the linear model.  Units: mm, N, N mm, MPa, mL.

Coarse generated L1 vertebral bodies (``posterior: false``, tet4, 4 mm; the set-ups do not
depend on the posterior elements) keep the file near a minute: the meshes are generated once
into a module-scoped cache and shared by the tests.  The older volume-fraction path with
endplate supports is tested in test_vertebra_model.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fembone.cases import build_model
from fembone.core.analysis import solve
from fembone.core.errors import InputError
from fembone.spine.geometry import endplate_dish_depth, inclusion_volumes, vertebra_dims

ROOT = Path(__file__).resolve().parents[2]
GEOM = {"level": "L1", "mesh_size": 4.0, "order": 1, "posterior": False}
F = 800.0  # N, compression
U = -0.2  # mm, platen displacement
M = 7500.0  # N mm, pure moment (Rohlmann et al. 2001)
P = 400.0  # N, axial preload




def case(setup: str | None = "in_vitro", loadcases=None, regions: str = "conforming", **extra) -> dict:
    c = {
        "name": "t",
        "vertebra": {**GEOM, "regions": regions},
        "materials": {"preset": "normal"},
        "loadcases": loadcases or {"c": [{"preset": "compression", "force": F}]},
    }
    if setup is not None:
        c["boundary"] = {"setup": setup}
    c.update(extra)
    return c


def build(c: dict, base: Path | str = "."):
    return build_model(c, base=base, source="test.yaml")


def run(c: dict):
    model = build(c)
    return model, solve(model)


def bad(c: dict, base: Path | str = ".") -> InputError:
    """The InputError of case ``c``; its ``where`` names the case file, then the key path."""
    with pytest.raises(InputError) as ei:
        solve(build(c, base))
    err = ei.value
    assert "\n" not in str(err), str(err)
    assert err.where.startswith("test.yaml: "), str(err)
    err.where = err.where.removeprefix("test.yaml: ")
    return err


# -- in_vitro: PMMA caps, guided platen --------------------------------------------------------
@pytest.fixture(scope="module")
def in_vitro(cache):
    force = run(case())
    disp = run(case(loadcases={"d": [{"preset": "compression", "displacement": U}]}))
    return force, disp


def test_in_vitro_force_and_displacement_control_agree(in_vitro):
    (mf, rf), (_, rd) = in_vitro
    f, d = rf.loadcases["c"], rd.loadcases["d"]
    kf, kd = f.summary()["risk"]["axial_stiffness"], d.summary()["risk"]["axial_stiffness"]
    assert kd == pytest.approx(kf, rel=1e-6), f"stiffness under displacement {kd:.2f} vs force control {kf:.2f} N/mm"
    # the platen moves by the prescribed displacement; its force is K |u| with K from the force test
    assert d.points["superior"][2] == pytest.approx(U, abs=1e-12)
    platen = d.summary()["risk"]["platen_force"]
    assert platen == pytest.approx(kf * abs(U), rel=1e-6), f"platen force {platen:.2f} N vs K|u| {kf * abs(U):.2f} N"
    assert abs(d.point_reactions["superior"][2]) == pytest.approx(platen, rel=1e-12)
    # force control: the platen carries F and moves by F / K
    assert f.points["superior"][2] == pytest.approx(-F / kf, rel=1e-9)
    for lc in (f, d):
        s = lc.summary()
        assert s["equilibrium_error"] < 1e-8, f"equilibrium error {s['equilibrium_error']:.2e}"
    assert mf.meta["boundary"]["cap"] == {"thickness": 3.0, "E": 2500.0, "nu": 0.3}


def test_in_vitro_platen_is_guided(in_vitro):
    """Parallel plates: the platen neither tilts nor slides, whatever the specimen's asymmetry."""
    (_, rf), (_, rd) = in_vitro
    for top in (rf.loadcases["c"].points["superior"], rd.loadcases["d"].points["superior"]):
        assert np.abs(np.asarray(top)[[0, 1, 3, 4, 5]]).max() < 1e-14, f"platen moved off axis: {top}"
    # the specimen is not symmetric front to back, so the guide carries a moment about x
    assert abs(rd.loadcases["d"].point_reactions["superior"][3]) > 1.0


def test_in_vitro_rejects_moment_presets(cache):
    err = bad(case(loadcases={"c": [{"preset": "compression", "force": F}], "bend": [{"preset": "flexion", "moment": M}]}))
    assert err.where == "loadcases.bend[0]", str(err)
    assert "in_vitro" in err.message and "setup: discs" in err.message


def test_displacement_and_force_presets_do_not_mix(cache):
    err = bad(case(loadcases={"d": [{"preset": "compression", "displacement": U}], "f": [{"preset": "compression", "force": F}]}))
    assert err.where == "loadcases.d[0]", str(err)
    assert "mix platen displacement" in err.message


# -- discs: moments through the disc plates ----------------------------------------------------
@pytest.fixture(scope="module")
def discs(cache):
    lcs = {
        "flexion": [{"preset": "flexion", "moment": M, "preload": P}],
        "flexion_half": [{"preset": "flexion", "moment": M / 2, "preload": P}],
        "flexion_alone": [{"preset": "flexion", "moment": M}],
        "extension": [{"preset": "extension", "moment": M, "follower": P}],
    }
    return run(case("discs", lcs))


def test_discs_flexion_and_extension_rotate_opposite(discs):
    model, res = discs
    assert model.meta["boundary"]["setup"] == "discs"
    th_f = res.loadcases["flexion"].points["superior"][3]
    th_e = res.loadcases["extension"].points["superior"][3]
    assert th_f < 0 < th_e, f"flexion must tilt the superior plate about -x, extension about +x: {th_f:.3g}, {th_e:.3g} rad"
    for name, lc in res.loadcases.items():
        s = lc.summary()
        assert s["equilibrium_error"] < 1e-8, f"{name}: equilibrium error {s['equilibrium_error']:.2e}"
        assert s["risk"]["rotational_stiffness"] > 0


def test_companion_preload_cases_stay_internal(discs):
    model, res = discs
    assert set(res.loadcases) == {"flexion", "flexion_half", "flexion_alone", "extension"}
    assert model.meta["_preload_companions"] == {"flexion": "_flexion_preload", "flexion_half": "_flexion_half_preload",
                                                 "extension": "_extension_preload"}
    r = res.loadcases["flexion"].summary()["risk"]
    assert r["axial_preload"] == P
    assert "axial_preload" not in res.loadcases["flexion_alone"].summary()["risk"]


def test_moment_strength_holds_the_preload_fixed(discs):
    """Linear superposition: with the preload held fixed the moment at failure cannot depend on the
    moment applied (were the preload scaled with the moment, halving M would double P/M and change
    it); without a preload it is M / factor of risk for any M; a compressive preload adds strain
    energy where flexion compresses the bone, so it lowers the moment at failure."""
    _, res = discs
    r = {n: res.loadcases[n].summary()["risk"] for n in res.loadcases}
    s_full, s_half = r["flexion"]["strength_estimate"], r["flexion_half"]["strength_estimate"]
    assert s_half == pytest.approx(s_full, rel=1e-7), f"strength at M = {M:g}: {s_full:.1f}, at M/2: {s_half:.1f} N mm"
    assert r["flexion"]["factor_of_risk"] == pytest.approx(2 * r["flexion_half"]["factor_of_risk"], rel=1e-7)
    alone = r["flexion_alone"]
    assert alone["strength_estimate"] == pytest.approx(M / alone["factor_of_risk"], rel=1e-12)
    assert s_full < alone["strength_estimate"], f"preload should lower the flexion strength: {s_full:.0f} vs {alone['strength_estimate']:.0f}"


def test_moment_strength_is_where_two_percent_fails(discs, cache):
    """Re-solving at the estimated moment (preload unchanged) puts the 2 % tail at the critical
    strain: the failed trabecular share, computed on the full field of a new solve (not by
    superposition), crosses Pistoia's 2 % between 0.999 and 1.001 x the strength."""
    _, res = discs
    s = res.loadcases["flexion"].summary()["risk"]["strength_estimate"]
    lcs = {"below": [{"preset": "flexion", "moment": 0.999 * s, "preload": P}],
           "above": [{"preset": "flexion", "moment": 1.001 * s, "preload": P}]}
    _, again = run(case("discs", lcs))
    below = again.loadcases["below"].summary()["risk"]["failed_volume_fraction"]
    above = again.loadcases["above"].summary()["risk"]["failed_volume_fraction"]
    assert below < 0.02 <= above, f"failed share {below:.4f} at 0.999 S and {above:.4f} at 1.001 S (S = {s:.0f} N mm)"


# -- void lesions: conforming against volume fractions ----------------------------------------
VOID = [{"type": "void", "volume_fraction": 0.15, "location": "central"}]


@pytest.fixture(scope="module")
def voids(in_vitro):
    intact, _ = in_vitro
    frac = run(case(regions="fraction", lesions=VOID))
    conf = run(case(regions="conforming", lesions=VOID))
    return intact, frac, conf


def body_volume(mesh) -> float:
    body = np.concatenate([mesh.cell_sets["cortical_shell"], mesh.cell_sets["trabecular"]])
    return float(np.abs(mesh.volumes())[body].sum())


def test_void_lesion_volume_matches_request(voids):
    """The lesion's sphere lies inside the trabecular core (r + dish + shell < half the body height),
    so its volume is 4/3 pi r^3 exactly, to be compared with 15 % of the body volume from
    OpenCASCADE (closed form, no mesh)."""
    _, (mf, _), (mc, _) = voids
    exact_body = inclusion_volumes("L1", 1.0)["body"]
    half_core = 0.5 * vertebra_dims("L1").body_height - 1.0 - endplate_dish_depth(vertebra_dims("L1"))
    for name, model in (("fraction", mf), ("conforming", mc)):
        les = model.meta["lesions"][0]
        r = les["radii"][0]
        assert r < half_core, f"{name}: r = {r:.2f} mm reaches the endplate ({half_core:.2f} mm)"
        sphere = 4.0 / 3.0 * math.pi * r**3
        assert sphere / exact_body == pytest.approx(0.15, rel=0.02), f"{name}: sphere {sphere:.0f} mm^3 = {sphere / exact_body:.4f} of the body"
        v = model.meta["volumes"]
        assert v["lesion"] / v["body"] == pytest.approx(0.15, rel=0.02), f"{name}: reported {v['lesion'] / v['body']:.4f}"
    # conforming: the hole is meshed; its tet4 walls are chords of the sphere, so the removed volume
    # is below 4/3 pi r^3 by the faceting error (a few % at 4 mm elements)
    r = mc.meta["lesions"][0]["radii"][0]
    removed = mc.meta["volumes"]["body"] - body_volume(mc.mesh)
    sphere = 4.0 / 3.0 * math.pi * r**3
    assert 0.9 * sphere < removed <= sphere * (1 + 1e-9), f"removed {removed:.0f} mm^3 vs sphere {sphere:.0f} mm^3"


def test_void_lesion_removes_elements_in_conforming_meshes(voids):
    (m0, _), (mf, _), (mc, _) = voids
    les = mc.meta["lesions"][0]
    c, r = np.asarray(les["center"]), les["radii"][0]
    assert "void_surface" in mc.mesh.facet_sets and "void_surface" not in mf.mesh.facet_sets
    wall = np.unique(mc.mesh.facet_sets["void_surface"])
    dist = np.linalg.norm(mc.mesh.points[wall] - c, axis=1)
    assert np.abs(dist - r).max() < 1e-6 * r, f"hole wall nodes off the sphere by {np.abs(dist - r).max():.2e} mm"
    # an element with every node in the closed ball lies in the (convex, inscribed) hole
    node_in = np.linalg.norm(mc.mesh.points - c, axis=1) <= r * (1 + 1e-6)
    inside = node_in[mc.mesh.cells].all(axis=1)
    assert not inside.any(), f"{inside.sum()} element(s) left inside the void"
    assert node_in[mc.mesh.cells].any(axis=1).sum() > 0  # the wall's neighbours remain
    # the hole's elements are gone: the body keeps less volume than on the plain mesh
    assert body_volume(mc.mesh) < body_volume(m0.mesh) - 0.1 * les["volume"]
    # the volume-fraction path keeps every element of the plain mesh and gives the void share to the stiffness
    assert mf.mesh.n_elements == m0.mesh.n_elements
    assert mf.cell_data["void_fraction"].max() == pytest.approx(1.0)


def test_conforming_and_fraction_lesion_effects_agree(voids):
    (_, intact), (_, rf), (_, rc) = voids
    k0 = intact.loadcases["c"].summary()["risk"]["axial_stiffness"]
    kf = rf.loadcases["c"].summary()["risk"]["axial_stiffness"]
    kc = rc.loadcases["c"].summary()["risk"]["axial_stiffness"]
    loss_f, loss_c = 100 * (1 - kf / k0), 100 * (1 - kc / k0)
    assert loss_f > 0 and loss_c > 0, f"a hole must soften the body: {loss_f:.2f} %, {loss_c:.2f} %"
    assert abs(loss_f - loss_c) < 2.0, f"stiffness loss: fraction {loss_f:.2f} %, conforming {loss_c:.2f} %"


def degenerate_mesh(path: Path) -> Path:
    """Two tets, the second flat (four corners in z = 0): what gmsh leaves at a tangency."""
    from fembone.core.mesh import Mesh
    from fembone.core.meshgen import write_mesh

    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], float)
    write_mesh(Mesh(pts, np.array([[0, 1, 2, 3], [0, 1, 4, 2]])), path)
    return path


@pytest.mark.parametrize("failure", ["boolean", "sliver"])
def test_generator_failure_at_a_tangency_falls_back_to_fractions(failure, in_vitro, monkeypatch, tmp_path):
    """The plan put the lesion inside the bone, so a failed OpenCASCADE boolean (reported by the
    generator as a misplaced inclusion) or a mesh with zero-volume slivers is the generator's
    failure: the same lesion is painted as volume fractions, with a warning."""
    import fembone.cases.vertebra as V

    real = V._generate

    def failing(g, **options):
        if not options.get("inclusions"):
            return real(g, **options)
        if failure == "boolean":
            raise InputError("L1: inclusion 'lesion0' does not overlap the trabecular core", "inclusions.lesion0.center")
        return degenerate_mesh(tmp_path / "sliver.msh")

    monkeypatch.setattr(V, "_generate", failing)
    with pytest.warns(UserWarning, match="painted as volume fractions"):
        model = build(case(regions="conforming", lesions=VOID))
    assert model.meta["vertebra"]["regions"] == "fraction (conforming meshing failed)"
    assert model.cell_data["void_fraction"].max() == pytest.approx(1.0)


def test_set_up_errors_are_not_mistaken_for_generator_failures(cache):
    """A cap thinner than the dishing, on a case with conforming regions (the set-up is first
    meshed with the inclusions), stays the case's error."""
    err = bad(case(None, boundary={"setup": "in_vitro", "cap": {"thickness": 0.3}}, lesions=VOID))
    assert err.where == "boundary.cap.thickness", str(err)


# -- kyphoplasty -------------------------------------------------------------------------------
KYPHO = [{"technique": "kyphoplasty", "balloon_ml": 3.0, "volume_ml": 4.0, "access": "bipedicular"}]


@pytest.fixture(scope="module")
def kypho(cache):
    return run(case(cement=KYPHO))


def test_kyphoplasty_regions_and_radii(kypho, in_vitro):
    model, res = kypho
    names = [m.name for m in model.materials]
    vol = np.abs(model.mesh.volumes())
    count = {n: int((model.material_id == names.index(n)).sum()) for n in ("pmma", "compacted_bone", "cement_bone")}
    assert count["pmma"] > 0 and count["compacted_bone"] > 0, count
    assert count["cement_bone"] == 0, f"kyphoplasty cement does not interdigitate: {count}"
    cem = model.meta["cement"][0]
    # one balloon and one bolus per needle (bipedicular: 2), spheres of V / 2 each
    assert cem["balloon_ml"] == 3.0 and cem["technique"] == "kyphoplasty"
    assert cem["bolus_radius"] == pytest.approx((3 * 2000.0 / (4 * math.pi)) ** (1 / 3), rel=1e-12)  # 7.816 mm
    assert cem["cavity_radius"] == pytest.approx((3 * 1500.0 / (4 * math.pi)) ** (1 / 3), rel=1e-12)  # 7.101 mm
    assert cem["interdigitated_ml"] == 0.0
    # the bolus mesh holds the injected 4 mL less the tet4 faceting of two r = 7.8 mm spheres
    pmma = vol[model.material_id == names.index("pmma")].sum()
    assert 0.88 * 4000.0 < pmma <= 4000.0, f"meshed bolus {pmma:.0f} mm^3 for 4 mL"
    (_, intact), _ = in_vitro
    k0 = intact.loadcases["c"].summary()["risk"]["axial_stiffness"]
    k1 = res.loadcases["c"].summary()["risk"]["axial_stiffness"]
    assert k1 > k0, f"a PMMA bolus with a compacted rim should stiffen an intact body: {k1:.0f} vs {k0:.0f} N/mm"


def test_kyphoplasty_rim_density_conserves_bone_mass(kypho):
    """The bone of the sphere of radius R + t (R the larger of cavity and bolus) ends in the rim shell:
    rho_rim = rho (R + t)^3 / ((R + t)^3 - R^3); its modulus follows Morgan et al. 2003
    (J Biomech 36:897; vertebra: E = 4730 rho^1.56 MPa)."""
    model, _ = kypho
    rho, t = 0.2, 1.5  # preset normal trabecular density (g/cm^3); default rim (mm)
    R = (3 * 2000.0 / (4 * math.pi)) ** (1 / 3)
    hand = rho * (R + t) ** 3 / ((R + t) ** 3 - R**3)  # 0.4885 g/cm^3
    assert model.meta["materials"]["compacted_rim_density"] == pytest.approx(hand, rel=1e-12)
    E = next(m for m in model.materials if m.name == "compacted_bone").E
    assert E == pytest.approx(4730.0 * hand**1.56, rel=1e-12)


# -- bad input: one line naming the key --------------------------------------------------------
def test_void_lesion_out_of_the_needles_reach(cache):
    # central 15 % hole: r = 9.6 mm; bipedicular tips sit 11.1 mm from the centre
    err = bad(case(lesions=VOID, cement=[{"volume_ml": 4.0, "access": "bipedicular"}]))
    assert err.where == "cement[0].access", str(err)
    assert "no needle tip reaches the void lesion" in err.message


def test_cap_thinner_than_endplate_dishing(cache):
    err = bad(case(None, boundary={"setup": "in_vitro", "cap": {"thickness": 0.3}}))
    assert err.where == "boundary.cap.thickness", str(err)
    assert "0.3 mm is less than the endplate dishing" in err.message


def test_kyphoplasty_balloon_larger_than_the_body(cache):
    err = bad(case(cement=[{"technique": "kyphoplasty", "balloon_ml": 40, "volume_ml": 4}]))
    assert err.where == "cement[0].balloon_ml", str(err)
    assert "40" in err.message


def test_kyphoplasty_balloon_sticking_out_of_the_core(cache):
    """8 mL in two balloons: spheres of r = 9.85 mm around tips 10.5 mm off the midline reach
    past the 20 mm half-width of L1; OpenCASCADE puts 9.2 % of them outside the trabecular core."""
    err = bad(case(cement=[{"technique": "kyphoplasty", "balloon_ml": 8, "volume_ml": 4}]))
    assert err.where == "cement[0].balloon_ml", str(err)
    assert "radius 9.8 mm" in err.message and "9 % would lie outside it" in err.message, str(err)


def test_discs_need_disc_geometry_on_imported_meshes():
    c = {"name": "t", "mesh": "meshes/L1_coarse.msh", "materials": {"preset": "normal"}, "boundary": {"setup": "discs"},
         "loadcases": {"c": [{"preset": "compression", "force": F}]}}
    err = bad(c, base=ROOT)
    assert err.where == "boundary.setup", str(err)
    assert "needs disc geometry" in err.message and "L1_coarse.msh" in err.message


@pytest.mark.parametrize("load, where, fragment", [
    ({"preset": "compression", "displacement": 0.2}, "loadcases.x[0].displacement", "must point along the preset (negative z"),
    ({"preset": "compression", "force": F, "preload": P}, "loadcases.x[0].preload", "is itself an axial force"),
    ({"preset": "compression", "force": F, "displacement": U}, "loadcases.x[0].displacement", "not both"),
    ({"preset": "flexion", "displacement": U}, "loadcases.x[0].displacement", "for force presets"),
])
def test_bad_preset_loads(load, where, fragment):
    err = bad(case(loadcases={"x": [load]}))
    assert err.where == where, str(err)
    assert fragment in err.message, str(err)


def test_cap_key_belongs_to_in_vitro():
    err = bad(case(None, boundary={"setup": "discs", "cap": {"thickness": 3.0}}))
    assert err.where == "boundary.cap", str(err)
    assert "in_vitro" in err.message
