"""Verification of screws as Timoshenko beams embedded in bone (fembone.spine.screws).

Most checks use a prismatic block, 10 x 10 x 40 mm (x, y in [-5, 5], z in [0, 40]), of an
isotropic "bone" (E_b = 100 MPa, nu = 0.3), built through a case dict with a plain
``mesh:`` + ``materials:`` + ``screws:`` (no vertebra), so they also show that the
``screws:`` section works for any mesh.  The bar/screw lies slightly off the axis, at
(x, y) = (0.31, 0.17), so that it crosses element interiors rather than running along grid
lines.  Closed-form expectations:

* iso-strain (both end faces moved uniformly along z, lateral faces free, supports that do
  not restrain Poisson contraction): the uniform strain field eps = -delta/L lies in the
  finite-element space of the host and of the beam, so the discrete solution is exact on
  any mesh.  The embedded beam *overlaps* the host (the host volume is not removed), so the
  exact axial stiffness is the overlapping rule of mixtures k = (E_b A + E_s a) / L, not the
  removed-volume rule (E_b (A - a) + E_s a) / L; with E_s / E_b = 1000 the two differ by
  E_b a / (E_b (A - a) + E_s a) ~ 1e-3, far above the round-off tolerance used here.
* compatibility: the bar's axial force is E_s a times the host's axial strain at the bar.
* Under a *pressure* on the top face instead, the load enters the bar through the host
  (shear lag, Cox 1952): the stiffness is below the iso-strain (Voigt) bound, and since a
  beam embedded along a line has no radius, the load transfer depends on the element size
  (it does not converge to the rule of mixtures with refinement) - see
  test_pressure_loading_stays_below_voigt_bound, which prints the numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fembone.core.analysis import assemble, solve
from fembone.cases import build_model, load_case
from fembone.core.constraints import check_constrained, reduce_system
from fembone.core.errors import InputError
from fembone.core.meshgen import box_mesh, write_mesh
from fembone.spine.screws import screw_results

W, L = 10.0, 40.0  # block width and length (mm)
A_BLOCK = W * W  # mm^2
E_B, NU_B = 100.0, 0.3  # host "bone" (MPa, -)
XY = (0.31, 0.17)  # bar position in the section (mm)
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    """Box mesh files by (divisions across, order); written once per module."""
    d = tmp_path_factory.mktemp("screw-boxes")
    made: dict[tuple[int, int], str] = {}

    def get(div: int, order: int) -> str:
        if (div, order) not in made:
            m = box_mesh((W, W, L), (div, div, 4 * div), origin=(-W / 2, -W / 2, 0.0), order=order)
            p = d / f"box_{div}_{order}.msh"
            write_mesh(m, p)
            made[(div, order)] = str(p)
        return made[(div, order)]

    return get


def node_box(x, y, z, tol=1e-3):
    return {"box": {"min": [x - tol, y - tol, z - tol], "max": [x + tol, y + tol, z + tol]}}


# bottom face on rollers; two bottom corners remove the in-plane rigid motions without
# restraining the Poisson contraction
ROLLERS = [
    {"where": {"set": "zmin"}, "fix": ["z"]},
    {"where": node_box(-W / 2, -W / 2, 0.0), "fix": ["x", "y"]},
    {"where": node_box(W / 2, -W / 2, 0.0), "fix": ["y"]},
]
CLAMPED = [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]}]


def bar(name="bar", z0=0.0, z1=L, d=2.0, E=1.0e5, nu=0.3, **kw) -> dict:
    """A solid circular bar along z at XY (``diameter`` = core diameter = d), embedded along its
    line (``coupling: line``; the surface coupling is verified in test_screw_surface_coupling.py)."""
    spec = {"name": name, "entry": [XY[0], XY[1], z0], "target": [XY[0], XY[1], z1], "diameter": d,
            "core_diameter": d, "material": {"E": E, "nu": nu, "yield": 1000.0}, "coupling": "line"}
    spec.update(kw)
    return spec


def area(d: float) -> float:
    return np.pi * d * d / 4.0


def block_case(mesh_file: str, screws=None, constraints=ROLLERS, loadcases=None) -> dict:
    c = {
        "name": "block",
        "mesh": mesh_file,
        "materials": {"bone": {"E": E_B, "nu": NU_B}},
        "constraints": constraints,
        "loadcases": loadcases or {"push": [{"where": {"set": "zmax"}, "pressure": 1.0}]},
    }
    if screws:
        c["screws"] = screws
    return c


def build(c: dict):
    return build_model(c, base=".", source="test_embedded_screws")


def iso_strain(mesh_file: str, delta: float, screws) -> tuple:
    """Top face moved by -delta along z (x, y free), bottom on rollers."""
    cons = ROLLERS + [{"where": {"set": "zmax"}, "value": [None, None, -delta]}]
    c = block_case(mesh_file, screws, cons, {"push": [{"where": {"set": "zmax"}, "force": [0.0, 0.0, 0.0]}]})
    model = build(c)
    return model, solve(model).loadcases["push"]


def host_strain_zz_at(model, lc, points: np.ndarray) -> np.ndarray:
    """Axial strain du_z/dz of the host at each point (tet10: the linear strain at the point)."""
    from fembone.core.locate import isoparametric, locate
    from fembone.spine.screws import _host_gradients

    mesh = model.mesh
    host, Lb, *_ = locate(mesh, points)
    assert (host >= 0).all()
    Lb = isoparametric(mesh, host, points, Lb)
    G = _host_gradients(mesh, host, Lb)  # (n, nen, 3)
    uz = lc.u[: 3 * mesh.n_nodes].reshape(-1, 3)[mesh.cells[host], 2]  # (n, nen)
    return np.einsum("pn,pn->p", G[:, :, 2], uz)


def bar_mid_force(model, lc, screw_index=0, ends=False):
    """Axial force (N) of the bar element nearest to mid-length, and that element's mid-point
    (or, with ``ends``, its two end points)."""
    s = model.meta["_screws"][screw_index]
    r = screw_results(model, s, lc.u)
    pts = model.layout.extra_points[s.nodes]
    mid = 0.5 * (pts[:-1] + pts[1:])
    c = 0.5 * (pts[0] + pts[-1])
    i = int(np.argmin(np.linalg.norm(mid - c, axis=1)))
    return float(r["_axial_force"][i]), (pts[i : i + 2] if ends else mid[i])


# ------------------------------------------------------------- rule of mixtures (iso-strain)
MESHES_ISO = [(2, 1), (4, 1), (8, 1), (2, 2)]


@pytest.mark.parametrize("div,order", MESHES_ISO, ids=[f"tet{4 if o == 1 else 10}-{d}x{d}x{4 * d}" for d, o in MESHES_ISO])
def test_rule_of_mixtures_iso_strain(meshes, div, order):
    d, Es, delta = 2.0, 1.0e5, 0.04
    a = area(d)
    model, lc = iso_strain(meshes(div, order), delta, [bar(d=d, E=Es)])
    k = 2.0 * lc.strain_energy / delta**2  # reaction = k delta, energy = k delta^2 / 2
    k_overlap = (E_B * A_BLOCK + Es * a) / L
    k_removed = (E_B * (A_BLOCK - a) + Es * a) / L
    err, err_removed = k / k_overlap - 1.0, k / k_removed - 1.0
    msg = (f"{div}x{div}x{4 * div} tet{4 if order == 1 else 10}: k = {k:.10g} N/mm; overlapping rule "
           f"{k_overlap:.10g} (rel err {err:.2e}); removed-volume rule {k_removed:.10g} (rel err {err_removed:.2e})")
    print(msg)
    assert abs(err) < 1e-9, msg
    assert abs(err_removed) > 1e3 * 1e-9, "the test cannot tell the two rules apart"
    # compatibility: every bar element carries E_s a eps, eps = -delta / L
    s = model.meta["_screws"][0]
    N = screw_results(model, s, lc.u)["_axial_force"]
    expected = -Es * a * delta / L
    assert np.abs(N / expected - 1).max() < 1e-9, f"bar forces {N} vs E_s a eps = {expected}"


@pytest.mark.filterwarnings("ignore:load case 'push'. equilibrium error")  # see test_reactions_through_screw_ties
def test_pressure_loading_stays_below_voigt_bound(meshes):
    """Pressure on the top face: the shear-lag (force-controlled) stiffness is bounded by the
    iso-strain one.  Also prints how far it is from the rule of mixtures on three meshes: the
    line inclusion's load transfer depends on the element size, so this gap does not close."""
    d, Es = 2.0, 1.0e5
    k_overlap = (E_B * A_BLOCK + Es * area(d)) / L
    rows = []
    for div in (2, 4, 8):
        model = build(block_case(meshes(div, 1), [bar(d=d, E=Es)]))
        lc = solve(model).loadcases["push"]
        top = np.unique(model.mesh.facet_sets["zmax"])
        k = A_BLOCK * 1.0 / abs(lc.fields.displacement[top, 2].mean())
        N, _ = bar_mid_force(model, lc)
        rows.append((div, k, k / k_overlap - 1, -N / A_BLOCK))
    print("mesh   k (N/mm)   k/k_rule-1   bar share at mid-length")
    for div, k, e, share in rows:
        print(f"{div:>2}x{div}x{4 * div:<3} {k:10.2f} {e:+10.3f}   {share:.4f} (iso-strain {Es * area(d) / (k_overlap * L):.4f})")
    for div, k, e, share in rows:
        assert k < k_overlap, f"{div}: k = {k} above the iso-strain bound {k_overlap}"
        assert 0.0 < share < 1.0


# --------------------------------------------------------------------- compatibility
@pytest.mark.parametrize("div,order", [(2, 1), (4, 1), (2, 2)])
def test_bar_force_compatible_with_block_strain(meshes, div, order):
    """Bar inside the block (z 5..35), pressure on top: at mid-length the bar's axial force is
    E_s a times the axial strain of the block along the bar (averaged over the bar element;
    also compared with the strain at its mid-point, which differs by the strain gradient
    around the bar)."""
    d, Es = 2.0, 2000.0
    model = build(block_case(meshes(div, order), [bar(z0=5.0, z1=35.0, d=d, E=Es)]))
    lc = solve(model).loadcases["push"]
    N, (x0, x1) = bar_mid_force(model, lc, ends=True)
    t = (np.arange(400) + 0.5) / 400  # midpoint rule along the bar element (host strain is piecewise smooth)
    eps_along = host_strain_zz_at(model, lc, x0 + t[:, None] * (x1 - x0))
    eps_host = float(eps_along.mean())
    eps_point = float(eps_along[200])
    expected = Es * area(d) * eps_host
    err = N / expected - 1
    err_point = N / (Es * area(d) * eps_point) - 1
    # section-average strain of the block at mid-length (informative: shear lag around a line)
    zs = model.mesh.points[:, 2]
    uz = lc.fields.displacement[:, 2]
    za, zb = 15.0, 25.0
    eps_mean = (uz[np.abs(zs - zb) < 1e-9].mean() - uz[np.abs(zs - za) < 1e-9].mean()) / (zb - za)
    print(f"{div}x{div}x{4 * div} order {order}: N = {N:.5g} N, E_s a eps_host = {expected:.5g} N "
          f"(rel err {err:.2e}; with the strain at the mid-point {err_point:.2e}); E_s a eps_section-mean = {Es * area(d) * eps_mean:.5g} N")
    assert abs(err) < 2e-3, f"bar force {N} vs E_s a eps = {expected} (rel err {err:.2e})"
    assert abs(err_point) < 0.03, f"bar force {N} vs E_s a eps(mid-point) (rel err {err_point:.2e})"
    assert lc.equilibrium_error < 1e-8


# ------------------------------------------------------------------- negligible screw
def test_negligible_screw_with_host_modulus_changes_nothing(meshes):
    """An oblique beam with the host's own E and a 0.01 mm diameter: same displacement field."""
    f = meshes(2, 2)
    loads = {"push": [{"where": {"set": "zmax"}, "pressure": 1.0}, {"where": {"set": "zmax"}, "traction": [0.2, -0.1, 0.0]}]}
    d = 0.01
    screw = {"name": "ghost", "entry": [-2.0, -1.5, 4.0], "target": [2.5, 1.7, 36.0], "diameter": d, "core_diameter": d,
             "material": {"E": E_B, "nu": NU_B, "yield": 1.0}, "coupling": "line"}
    u0 = solve(build(block_case(f, None, CLAMPED, loads))).loadcases["push"].fields.displacement
    m1 = build(block_case(f, [screw], CLAMPED, loads))
    lc1 = solve(m1).loadcases["push"]
    u1 = lc1.fields.displacement
    rel = np.abs(u1 - u0).max() / np.abs(u0).max()
    scale = E_B * area(d) / (E_B * A_BLOCK)  # the beam's share of the axial stiffness
    print(f"max |u_with - u_without| / max |u| = {rel:.2e} (beam EA / block EA = {scale:.1e})")
    assert rel < 1e-6, f"relative change {rel:.2e}"
    assert lc1.equilibrium_error < 1e-8


# ------------------------------------------------------------- equilibrium, vertebra case
@pytest.fixture(scope="module")
def vertebra_result():
    model = load_case(ROOT / "cases" / "L1_lytic_screws.yaml", {"vertebra.mesh_size": 4.0, "vertebra.order": 1})
    return model, solve(model)


def _check_equilibrium(model, res):
    from fembone.core.analysis import force_resultants

    size = float(np.ptp(model.mesh.points, axis=0).max())
    for name, lc in res.loadcases.items():
        f = model.loads[name]
        r = res.K @ lc.u - f
        RF, RM = force_resultants(model, r, res.reduction.fixed)
        AF, AM = force_resultants(model, f)
        fs = max(np.linalg.norm(AF), np.abs(r[res.reduction.fixed]).sum() / 2)
        ef = np.linalg.norm(RF + AF) / fs
        em = np.linalg.norm(RM + AM) / max(np.linalg.norm(AM), fs * size)
        # the tie forces between screws and bone are internal: their resultant vanishes
        TF, TM = force_resultants(model, r, ~res.reduction.fixed)
        et = max(np.linalg.norm(TF) / fs, np.linalg.norm(TM) / (fs * size))
        print(f"{name}: force {ef:.1e}, moment {em:.1e}, tie resultant {et:.1e}, reported {lc.equilibrium_error:.1e}; "
              f"reaction {np.round(RF, 6).tolist()} N, {np.round(RM, 3).tolist()} N mm")
        assert ef < 1e-8 and em < 1e-8 and et < 1e-8
        assert lc.equilibrium_error < 1e-8


def test_vertebra_with_screws_equilibrium(vertebra_result):
    model, res = vertebra_result
    assert len(model.meta["_screws"]) == 2
    assert all(s.embedded.all() for s in model.meta["_screws"])
    _check_equilibrium(model, res)
    for name, lc in res.loadcases.items():
        for sname, sr in lc.extra["screws"].items():
            assert np.isfinite(sr["peak_von_mises"]) and sr["peak_von_mises"] > 0, (name, sname, sr)
            assert 0 < sr["yield_ratio"] < 1


@pytest.mark.slow
def test_vertebra_with_screws_equilibrium_tet10():
    model = load_case(ROOT / "cases" / "L1_lytic_screws.yaml", {"vertebra.mesh_size": 4.0, "vertebra.order": 2})
    _check_equilibrium(model, solve(model))


def test_vertebra_screws_written_as_vtu_lines(vertebra_result, tmp_path):
    import meshio

    from fembone.core.output import write_vtu

    model, res = vertebra_result
    p = write_vtu(res, res.loadcases["standing"], tmp_path / "standing.vtu")
    m = meshio.read(p)
    lines = [c for c in m.cells if c.type == "line"]
    n_seg = sum(len(s.nodes) - 1 for s in model.meta["_screws"])
    assert lines and sum(len(c.data) for c in lines) == n_seg
    vm = np.concatenate([d for c, d in zip(m.cells, m.cell_data["von_mises"]) if c.type == "line"])
    peak = max(v["peak_von_mises"] for v in res.loadcases["standing"].extra["screws"].values())
    assert vm.max() == pytest.approx(peak, rel=1e-12)


# ----------------------------------------------------------------- screws outside the bone
@pytest.mark.parametrize("z_head,outside", [(50.0, 10.0), (43.0, 3.0)])
def test_screw_outside_bone_rejected(meshes, z_head, outside):
    c = block_case(meshes(4, 1), [bar(name="wayward", z0=z_head, z1=20.0)], CLAMPED)
    with pytest.raises(InputError) as exc:
        build(c)
    msg = str(exc.value)
    print(msg)
    assert "wayward" in msg and "screws[0]" in msg
    import re

    got = float(re.search(r"([0-9.]+) mm of its", msg).group(1))
    assert got == pytest.approx(outside, abs=0.1), f"reported {got} mm outside, expected {outside}"


def test_protruding_head_accepted(meshes):
    c = block_case(meshes(4, 1), [bar(name="head", z0=50.0, z1=20.0, protruding=True)], CLAMPED)
    model = build(c)
    s = model.meta["_screws"][0]
    z = model.layout.extra_points[s.nodes][:, 2]
    assert not s.embedded.all() and s.embedded.any()
    assert (z[~s.embedded] > L).all(), "only nodes above the top face are left free"
    lc = solve(model).loadcases["push"]
    assert lc.equilibrium_error < 1e-8


def test_screw_wholly_outside_rejected_even_if_protruding(meshes):
    c = block_case(meshes(4, 1), [bar(name="astray", z0=60.0, z1=45.0, protruding=True)], CLAMPED)
    with pytest.raises(InputError, match="astray"):
        build(c)


def test_vertebra_only_options_rejected_on_plain_mesh(meshes):
    f = meshes(2, 1)
    with pytest.raises(InputError, match="vertebra"):
        build(block_case(f, [{"placement": "bilateral_transpedicular"}], CLAMPED))
    with pytest.raises(InputError, match="vertebra"):
        build(block_case(f, [bar(z0=5.0, z1=35.0, augment_ml=1.0)], CLAMPED))


# ------------------------------------------------------------------------------ spin tie
def _reduced_eigen_ratio(model) -> float:
    _, K = assemble(model)
    red = model.constraints.build()
    Kq = reduce_system(K, red).toarray()
    w = np.linalg.eigvalsh(Kq)
    return float(w.min() / w.max())


def _drop_spin_ties(model) -> None:
    cs = model.constraints
    spin = [i for i, (lab, _) in enumerate(cs._labels) if "spin" in lab]
    slaves = [cs._labels[i][1] for i in spin]
    cs._ties = [t for t in cs._ties if not any(t[0] is s for s in slaves)]
    cs._labels = [lab for i, lab in enumerate(cs._labels) if i not in spin]


def test_spin_tie_removes_the_free_screw_rotation(meshes):
    """Torque-free load: the model is not under-constrained (reduced stiffness positive
    definite, no free rigid-body motion) and the screw spins exactly as the bone around it;
    without the spin tie the screw would be free to turn about its axis (singular matrix)."""
    c = block_case(meshes(2, 1), [bar(z0=5.0, z1=35.0)], CLAMPED)
    model = build(c)
    lam = _reduced_eigen_ratio(model)
    red = model.constraints.build()
    check_constrained(model.layout, model.mesh.points, model.mesh.cells, model.constraints, red, model.meta["_extra_edges"])
    lc = solve(model).loadcases["push"]
    s = model.meta["_screws"][0]
    spin = lc.u[model.layout.extra_dofs(s.nodes)[:, 3:]] @ s.axis
    # the host's rotation about the axis, a . curl(u) / 2, at the screw nodes
    from fembone.core.locate import locate
    from fembone.spine.screws import _host_gradients

    pts = model.layout.extra_points[s.nodes]
    host, Lb, *_ = locate(model.mesh, pts)
    G = _host_gradients(model.mesh, host, Lb)
    un = lc.u[: 3 * model.mesh.n_nodes].reshape(-1, 3)[model.mesh.cells[host]]
    curl = np.cross(G, un).sum(axis=1)
    host_spin = 0.5 * curl @ s.axis
    bare = build(c)
    _drop_spin_ties(bare)
    lam_free = _reduced_eigen_ratio(bare)
    print(f"lambda_min/lambda_max: with spin tie {lam:.2e}, without {lam_free:.2e}; "
          f"screw spin {spin.max():.3e} rad vs host {host_spin.max():.3e} rad")
    assert lam > 1e-9, f"reduced stiffness nearly singular ({lam:.2e})"
    assert lam_free < 1e-12 * 1e3 * lam, "without the spin tie the screw should be free to spin"
    assert np.allclose(spin, host_spin, rtol=1e-8, atol=1e-12 * np.abs(host_spin).max()), (spin, host_spin)


def test_torque_at_protruding_head_twists_screw_with_bone(meshes):
    """A torsional moment at the head (outside the bone) twists the screw and the bone
    with it: finite rotations, the free length in pure torsion (T = M, twist M l / G J), the
    moment carried to the support, and the embedded screw turning with the bone."""
    M, d, Es, nu = 1000.0, 2.0, 1.0e5, 0.3
    c = block_case(meshes(4, 1), [bar(name="head", z0=50.0, z1=15.0, d=d, E=Es, nu=nu, protruding=True)], CLAMPED,
                   {"torque": [{"where": {"set": "zmax"}, "pressure": 0.0}]})
    model = build(c)
    s = model.meta["_screws"][0]
    dofs = model.layout.extra_dofs(s.nodes)
    f = np.zeros(model.n_dofs)
    f[dofs[0, 3:]] = M * np.array([0.0, 0.0, 1.0])  # about +z at the head (node 0 = entry)
    model.loads["torque"] = f
    lc = solve(model).loadcases["torque"]
    twist = lc.u[dofs[:, 3:]] @ np.array([0.0, 0.0, 1.0])
    from fembone.core.beam import beam_results

    pts = model.layout.extra_points[s.nodes]
    ue = np.hstack([lc.u[dofs[:-1]], lc.u[dofs[1:]]])
    torsion = np.abs(beam_results(pts[:-1], pts[1:], s.E, s.nu, s.section, ue)["torsion"])
    free = ~(s.embedded[:-1] & s.embedded[1:])  # segments with a free (outside) node
    first_in = int(np.argmax(s.embedded))
    l_free = float(np.linalg.norm(pts[first_in] - pts[0]))
    GJ = Es / (2 * (1 + nu)) * s.section.polar_moment()
    print(f"head twist {twist[0]:.4e} rad, at the bone {twist[first_in]:.4e} rad, tip {twist[-1]:.4e} rad; "
          f"free-part twist {twist[0] - twist[first_in]:.6e} vs M l / GJ {M * l_free / GJ:.6e}; "
          f"torsion in the free part {torsion[free]}, at the tip {torsion[-1]:.4g}; reaction moment {lc.reaction_moment}")
    assert np.isfinite(twist).all() and twist[0] > 0 and twist[first_in] > 0
    assert np.allclose(torsion[free], M, rtol=1e-8)
    assert twist[0] - twist[first_in] == pytest.approx(M * l_free / GJ, rel=1e-8)
    assert lc.reaction_moment[2] == pytest.approx(-M, rel=1e-8)
    assert lc.equilibrium_error < 1e-8
    # torque is handed to the bone along the embedded length: it falls towards the tip
    assert torsion[-1] < 0.5 * M


# ---------------------------------------------------------------------- loosening springs
def test_interface_springs(meshes):
    """Very stiff interface springs reproduce the tied screw; softer ones carry less load."""
    f = meshes(4, 1)
    d, Es = 2.0, 1.0e5

    def run(k=None):
        spec = bar(z0=5.0, z1=35.0, d=d, E=Es)
        if k is not None:
            spec["interface_stiffness"] = k
        model = build(block_case(f, [spec]))
        lc = solve(model).loadcases["push"]
        assert lc.equilibrium_error < 1e-8
        return bar_mid_force(model, lc)[0], lc.fields.displacement

    N_tied, u_tied = run()
    N_stiff, u_stiff = run(1e9)
    rel_N = abs(N_stiff / N_tied - 1)
    rel_u = np.abs(u_stiff - u_tied).max() / np.abs(u_tied).max()
    forces = {k: run(k)[0] for k in (1e3, 10.0, 0.1)}
    print(f"tied N = {N_tied:.6g} N; k = 1e9 N/mm/mm: N = {N_stiff:.6g} (rel {rel_N:.1e}), max du/u {rel_u:.1e}; "
          + ", ".join(f"k = {k:g}: N = {v:.4g}" for k, v in forces.items()))
    assert rel_N < 1e-5 and rel_u < 1e-5
    seq = [abs(N_tied)] + [abs(v) for v in forces.values()]
    assert all(a > b for a, b in zip(seq, seq[1:])), f"load carried should fall with the stiffness: {seq}"
    assert abs(forces[0.1]) < 0.2 * abs(N_tied)


# ------------------------------------------------------------------ known limitation
@pytest.mark.filterwarnings("ignore:load case 'push'. equilibrium error")
def test_reactions_through_screw_ties(meshes):
    """A bar whose end sits in elements on the supported face: the support reaction must
    include what the bar delivers there (here ~95 % of the load)."""
    model = build(block_case(meshes(2, 1), [bar()]))  # bar from z = 0 (rollers) to z = L
    lc = solve(model).loadcases["push"]
    print(f"reported reaction {lc.reaction_force} N for an applied {lc.applied_force} N "
          f"(equilibrium error {lc.equilibrium_error:.2e})")
    assert lc.equilibrium_error < 1e-8


# ------------------------------------------------------------------------- load sharing
def _ybox_sharing(tmp_path):
    """Iso-strain compression along y of a block crossed by a bar along y (uniform stress)."""
    m = box_mesh((W, L, W), (2, 8, 2), origin=(-W / 2, -L / 2, 0.0))
    p = tmp_path / "ybox.msh"
    write_mesh(m, p)
    d, Es, delta = 2.0, 1.0e5, 0.04
    cons = [
        {"where": {"set": "ymin"}, "fix": ["y"]},
        {"where": node_box(-W / 2, -L / 2, 0.0), "fix": ["x", "z"]},
        {"where": node_box(W / 2, -L / 2, 0.0), "fix": ["z"]},
        {"where": {"set": "ymax"}, "value": [None, -delta, None]},
    ]
    spec = {"name": "bar", "entry": [XY[0], -L / 2, 5.0 + XY[1]], "target": [XY[0], L / 2, 5.0 + XY[1]],
            "diameter": d, "core_diameter": d, "material": {"E": Es, "nu": 0.3, "yield": 1000.0}, "coupling": "line"}
    c = block_case(str(p), [spec], cons, {"push": [{"where": {"set": "ymax"}, "force": [0.0, 0.0, 0.0]}]})
    ls = solve(build(c)).loadcases["push"].extra["load_sharing"]
    eps = delta / L
    return ls, Es * area(d) * eps, E_B * A_BLOCK * eps


def test_load_sharing_screw_force_across_plane_y0(tmp_path):
    """Across y = 0 the bar carries exactly E_s a eps (the bar has a node on the plane)."""
    ls, Fs_exact, Fb_exact = _ybox_sharing(tmp_path)
    Fs = np.asarray(ls["screws_force"])
    print(f"screws force {Fs} N, expected |F_y| {Fs_exact:.10g}")
    assert abs(Fs[1]) == pytest.approx(Fs_exact, rel=1e-9)
    assert np.abs(Fs[[0, 2]]).max() < 1e-9 * Fs_exact


def test_load_sharing_bone_force_across_plane_y0(tmp_path):
    """Across y = 0 the bone carries E_b A eps; the share is E_s a / (E_s a + E_b A)."""
    ls, Fs_exact, Fb_exact = _ybox_sharing(tmp_path)
    Fb = np.asarray(ls["bone_force"])
    share = Fs_exact / (Fs_exact + Fb_exact)
    print(f"bone force {Fb} N, expected |F_y| {Fb_exact:.10g}; share {ls['screw_share']:.8f} vs {share:.8f}")
    assert abs(Fb[1]) == pytest.approx(Fb_exact, rel=1e-6)
    assert ls["screw_share"] == pytest.approx(share, rel=1e-6)
