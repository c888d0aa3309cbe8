"""Screw results pinned against beam-theory hand calculations. Units: mm, N, MPa, N mm.

Harness: a 10 x 10 x 40 mm block (z in [0, 40]) with *every* node fixed, i.e. an
infinitely stiff bone, and a screw that protrudes from it: head (entry) at z = 50, tip at
z = 15, off the grid lines at (x, y) = (0.31, 0.17).  The screw is built through the case
API (``screws:`` section); loads are put on the head node afterwards, as in
tests/verification/test_embedded_screws.py.  Because the host does not move, every tied
screw node has exactly zero translation and zero spin, and the screw is a statically
simple structure:

* the free part, from the head to the first tied node (free length ``l``), is a Timoshenko
  cantilever: axial force, shear, torque and the bending moment M(s) = P s follow from
  statics alone; head deflection P l^3/(3 EI) + P l/(k G A) + theta_0 l (Timoshenko and
  Gere, *Mechanics of Materials*; shear term with Cowper's k = 6(1+nu)/(7+6nu),
  J Appl Mech 33:335, 1966), where theta_0 is the rotation of the first tied node;
* the tied part is a continuous beam on pinned supports (the tied nodes) loaded by the
  moment P l at its first support: theta_0 and the span-end moments come from the
  slope-deflection equations of a Timoshenko span (M_ab = EI/(h(1+Phi)) [(4+Phi) th_a +
  (2-Phi) th_b], Phi = 12 EI/(k G A h^2); e.g. Przemieniecki 1968, §5.6), solved here as a
  small tridiagonal system;
* section properties from closed forms: A = pi (D^2 - d^2)/4, I = pi (D^4 - d^4)/64,
  J = 2 I, outer-fibre stress |N|/A + M r/I, torsional shear T r/J, neutral-axis
  transverse shear f V/A with Jourawski's f = 4/3 (r_o^2 + r_o r_i + r_i^2)/(r_o^2 + r_i^2)
  (Gere & Goodno §5.9), von Mises sqrt(sigma^2 + 3 tau^2).

A second harness (iso-strain block, as in test_embedded_screws.py) pins the interface
strains: a uniform uniaxial-stress field eps_zz = -delta/L, eps_xx = eps_yy = nu delta/L
has the von Mises equivalent strain (2/3)(1 + nu) delta/L in every host element.

Every failing assertion prints the measured and the expected value.
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.cases import build_model
from fembone.core.analysis import solve
from fembone.core.meshgen import box_mesh, write_mesh
from fembone.spine.screws import screw_results

W, L = 10.0, 40.0  # block width and height (mm)
XY = (0.31, 0.17)  # screw position in the section (mm)
Z_HEAD, Z_TIP = 50.0, 15.0  # head 10 mm above the block, tip 25 mm deep
P_LAT, P_AX, TORQUE = 40.0, 300.0, 500.0  # N, N, N mm
#: Ti-6Al-4V ELI (ASTM F136): E 110 GPa (datasheets give 105-120 GPa), nu 0.3 (fembone's value)
E_TI, NU_TI = 110000.0, 0.3

SCREWS = {
    # name: (case-file screw spec, E, nu, yield, outer diameter D, inner diameter d of the beam section)
    "solid-d2": ({"diameter": 2.0, "core_diameter": 2.0, "material": {"E": 1.0e5, "nu": 0.3, "yield": 1000.0}},
                 1.0e5, 0.3, 1000.0, 2.0, 0.0),
    "titanium-6.5/4.8": ({"diameter": 6.5, "core_diameter": 4.8, "material": "titanium"},
                         E_TI, NU_TI, None, 4.8, 0.0),
    "cannulated-6.5/4.8/1.6": ({"diameter": 6.5, "core_diameter": 4.8, "cannula_diameter": 1.6,
                                "material": {"E": 1.1e5, "nu": 0.3, "yield": 900.0}}, 1.1e5, 0.3, 900.0, 4.8, 1.6),
}


# ------------------------------------------------------------------------ hand calculation
class Section:
    """Closed-form properties of a circular (annular) section, D outer, d inner (mm)."""

    def __init__(self, D: float, d: float, E: float, nu: float):
        self.D, self.d, self.E, self.nu = D, d, E, nu
        self.A = np.pi * (D**2 - d**2) / 4.0
        self.I = np.pi * (D**4 - d**4) / 64.0
        self.J = 2.0 * self.I  # perpendicular-axis theorem (exact torsion constant for circles)
        self.r = D / 2.0
        self.G = E / (2.0 * (1.0 + nu))
        m2 = (d / D) ** 2  # Cowper (1966), Table 1, hollow circle; m = 0: 6(1+nu)/(7+6nu)
        self.k = 6 * (1 + nu) * (1 + m2) ** 2 / ((7 + 6 * nu) * (1 + m2) ** 2 + (20 + 12 * nu) * m2)
        ro, ri = D / 2.0, d / 2.0
        self.f = 4.0 / 3.0 * (ro * ro + ro * ri + ri * ri) / (ro * ro + ri * ri)  # Jourawski

    def vm_outer(self, N, M, T):
        return np.sqrt((np.abs(N) / self.A + np.abs(M) * self.r / self.I) ** 2 + 3.0 * (np.abs(T) * self.r / self.J) ** 2)

    def vm_neutral(self, N, V, T):
        return np.sqrt((N / self.A) ** 2 + 3.0 * (np.abs(T) * self.r / self.J + self.f * np.abs(V) / self.A) ** 2)


def slope_deflection(sec: Section, z_tied: np.ndarray, M0: float):
    """Continuous Timoshenko beam on pinned supports at ``z_tied`` (first = loaded support),
    moment ``M0`` applied at the first support, far end free to rotate.

    Returns the rotation of the first support (rad), and per span the end moments (N mm)
    and the shear force (N).
    """
    h = np.abs(np.diff(z_tied))
    n = len(z_tied)
    EI = sec.E * sec.I
    phi = 12.0 * EI / (sec.k * sec.G * sec.A * h**2)
    c = EI / (h * (1.0 + phi))
    near, far = (4.0 + phi) * c, (2.0 - phi) * c
    Kr = np.zeros((n, n))
    i = np.arange(n - 1)
    np.add.at(Kr, (i, i), near)
    np.add.at(Kr, (i + 1, i + 1), near)
    Kr[i, i + 1] += far
    Kr[i + 1, i] += far
    rhs = np.zeros(n)
    rhs[0] = M0
    th = np.linalg.solve(Kr, rhs)
    Ma = near * th[:-1] + far * th[1:]
    Mb = far * th[:-1] + near * th[1:]
    return th[0], np.stack([Ma, Mb], axis=1), (Ma + Mb) / h


# ------------------------------------------------------------------------------ harness
@pytest.fixture(scope="module")
def block_file(tmp_path_factory):
    m = box_mesh((W, W, L), (4, 4, 16), origin=(-W / 2, -W / 2, 0.0))
    p = tmp_path_factory.mktemp("screw-section") / "block.msh"
    write_mesh(m, p)
    return str(p)


LOADS = ("lateral", "pullout", "torque", "combined")


def _loads(model, screw) -> None:
    """Head loads: lateral force along x, pull-out force (+z, along -axis), torque about the axis."""
    head = model.layout.extra_dofs(screw.nodes)[0]
    axis = screw.axis  # head -> tip, here -z
    parts = {
        "lateral": (np.array([P_LAT, 0.0, 0.0]), np.zeros(3)),
        "pullout": (-P_AX * axis, np.zeros(3)),
        "torque": (np.zeros(3), TORQUE * axis),
    }
    parts["combined"] = tuple(sum(p[k] for p in parts.values()) for k in (0, 1))
    for name, (F, Mv) in parts.items():
        f = np.zeros(model.n_dofs)
        f[head[:3]] = F
        f[head[3:]] = Mv
        model.loads[name] = f


@pytest.fixture(scope="module", params=list(SCREWS))
def rigid_host(request, block_file):
    """(name, model, result, section, expected-data) for a screw in a fully fixed block."""
    spec, E, nu, yld, D, d = SCREWS[request.param]
    # the hand calculation is for the line embedding (translations tied, rotations free inside the
    # bone: a continuous beam on pinned supports); surface coupling is verified in
    # test_screw_surface_coupling.py
    screw = {"name": "s", "entry": [XY[0], XY[1], Z_HEAD], "target": [XY[0], XY[1], Z_TIP], "protruding": True,
             "coupling": "line", **spec}
    case = {
        "name": "rigid-host",
        "mesh": block_file,
        "materials": {"bone": {"E": 100.0, "nu": 0.3}},
        "constraints": [{"where": {"box": {"min": [-W, -W, -1.0], "max": [W, W, L + 1.0]}}, "fix": ["x", "y", "z"]}],
        "loadcases": {n: [{"where": {"set": "zmax"}, "pressure": 0.0}] for n in LOADS},
        "screws": [screw],
    }
    model = build_model(case, base=".", source="test_screw_section")
    s = model.meta["_screws"][0]
    _loads(model, s)
    res = solve(model)
    z = model.layout.extra_points[s.nodes][:, 2]
    j = int(np.argmax(s.embedded))  # first tied node
    assert not s.embedded[:j].any() and s.embedded[j:].all(), "tied nodes should form one run from the bone surface to the tip"
    geo = {"z": z, "j": j, "l": Z_HEAD - z[j], "yield": yld if yld is not None else s.yield_strength}
    return request.param, model, res, Section(D, d, E, nu), geo


def _expected_lateral(sec: Section, geo: dict, P: float):
    """Head deflection, per-element max |M| and |V| for a lateral head force P."""
    z, j, l = geo["z"], geo["j"], geo["l"]
    th0, Mends, V = slope_deflection(sec, z[j:], P * l)
    delta = P * l**3 / (3 * sec.E * sec.I) + P * l / (sec.k * sec.G * sec.A) + th0 * l
    s_free = Z_HEAD - z[: j + 1]  # distance from the head of the free-part nodes
    M_free = P * np.maximum(s_free[:-1], s_free[1:])
    M = np.concatenate([M_free, np.abs(Mends).max(axis=1)])
    Vall = np.concatenate([np.full(j, P), np.abs(V)])
    return delta, M, Vall


def _report(name, what, got, exp):
    return f"{name}: {what} = {got!r}, expected {exp!r} (rel err {np.max(np.abs(np.asarray(got) / np.asarray(exp) - 1)):.2e})"


# ------------------------------------------------------------------------------- tests
def test_lateral_head_load_deflection(rigid_host):
    """Bending stiffness: head deflection = P l^3/(3EI) + P l/(kGA) + theta_0 l."""
    name, model, res, sec, geo = rigid_host
    lc = res.loadcases["lateral"]
    s = model.meta["_screws"][0]
    u_head = lc.u[model.layout.extra_dofs(s.nodes)[0, :3]]
    delta, _, _ = _expected_lateral(sec, geo, P_LAT)
    bending_only = P_LAT * geo["l"] ** 3 / (3 * sec.E * sec.I)
    print(f"{name}: free length {geo['l']:.4f} mm; head deflection {u_head[0]:.8e} mm, expected {delta:.8e} "
          f"(cantilever bending part {bending_only:.4e}, rel err {u_head[0] / delta - 1:.2e})")
    assert u_head[0] == pytest.approx(delta, rel=1e-7), _report(name, "head deflection (mm)", u_head[0], delta)
    assert abs(u_head[1]) < 1e-9 * delta and abs(u_head[2]) < 1e-9 * delta


def test_lateral_bending_moment_and_stress(rigid_host):
    """max_bending_moment = P l (statics); element moments from slope-deflection; peak von Mises
    = max over elements of M r / I (outer fibre) and sqrt(3) f V / A (neutral axis); yield ratio."""
    name, model, res, sec, geo = rigid_host
    out = res.loadcases["lateral"].extra["screws"]["s"]
    s = model.meta["_screws"][0]
    r = screw_results(model, s, res.loadcases["lateral"].u)
    _, M, V = _expected_lateral(sec, geo, P_LAT)
    vm = np.maximum(sec.vm_outer(0.0, M, 0.0), sec.vm_neutral(0.0, V, 0.0))
    print(f"{name}: max bending {out['max_bending_moment']:.8g} N mm vs P l = {P_LAT * geo['l']:.8g}; "
          f"peak von Mises {out['peak_von_mises']:.8g} MPa vs {vm.max():.8g} (M r / I = {P_LAT * geo['l'] * sec.r / sec.I:.8g})")
    assert out["max_bending_moment"] == pytest.approx(P_LAT * geo["l"], rel=1e-8), _report(name, "max bending moment", out["max_bending_moment"], P_LAT * geo["l"])
    assert out["peak_von_mises"] == pytest.approx(vm.max(), rel=1e-8), _report(name, "peak von Mises (MPa)", out["peak_von_mises"], vm.max())
    assert out["yield_ratio"] == pytest.approx(vm.max() / geo["yield"], rel=1e-8), _report(name, "yield ratio", out["yield_ratio"], vm.max() / geo["yield"])
    assert np.allclose(r["_bending"], M, rtol=1e-6, atol=1e-9 * M.max()), _report(name, "element bending moments", r["_bending"], M)
    assert out["max_axial_force"] < 1e-9 * P_LAT and out["max_torsion"] < 1e-9 * P_LAT * geo["l"]


def test_pullout_axial_force_stress_and_stretch(rigid_host):
    """Pull-out force P at the head: N = P in the free part, 0 in the tied part (rigid host);
    head moves P l/(EA); peak von Mises P/A."""
    name, model, res, sec, geo = rigid_host
    lc = res.loadcases["pullout"]
    out = lc.extra["screws"]["s"]
    s = model.meta["_screws"][0]
    N = screw_results(model, s, lc.u)["_axial_force"]
    j = geo["j"]
    stretch = -lc.u[model.layout.extra_dofs(s.nodes)[0, :3]] @ s.axis
    exp_stretch = P_AX * geo["l"] / (sec.E * sec.A)
    print(f"{name}: max axial force {out['max_axial_force']:.10g} N vs {P_AX}; head stretch {stretch:.8e} vs {exp_stretch:.8e} mm; "
          f"peak von Mises {out['peak_von_mises']:.8g} vs P/A = {P_AX / sec.A:.8g} MPa")
    assert out["max_axial_force"] == pytest.approx(P_AX, rel=1e-9), _report(name, "max axial force", out["max_axial_force"], P_AX)
    assert np.allclose(N[:j], P_AX, rtol=1e-9), _report(name, "free-part axial force (tension)", N[:j], P_AX)
    assert np.abs(N[j:]).max() < 1e-9 * P_AX, f"{name}: tied part carries axial force {N[j:]}, expected 0"
    assert stretch == pytest.approx(exp_stretch, rel=1e-8), _report(name, "head stretch (mm)", stretch, exp_stretch)
    assert out["peak_von_mises"] == pytest.approx(P_AX / sec.A, rel=1e-9), _report(name, "peak von Mises", out["peak_von_mises"], P_AX / sec.A)
    assert out["yield_ratio"] == pytest.approx(P_AX / sec.A / geo["yield"], rel=1e-9)


def test_torque_torsion_twist_and_stress(rigid_host):
    """Torque T at the head: torsion T in the free part, twist T l/(G J) with J = 2 I,
    peak von Mises sqrt(3) T r / J."""
    name, model, res, sec, geo = rigid_host
    lc = res.loadcases["torque"]
    out = lc.extra["screws"]["s"]
    s = model.meta["_screws"][0]
    twist = lc.u[model.layout.extra_dofs(s.nodes)[0, 3:]] @ s.axis
    exp_twist = TORQUE * geo["l"] / (sec.G * sec.J)
    exp_vm = np.sqrt(3.0) * TORQUE * sec.r / sec.J
    print(f"{name}: max torsion {out['max_torsion']:.10g} vs {TORQUE} N mm; twist {twist:.8e} vs {exp_twist:.8e} rad; "
          f"peak von Mises {out['peak_von_mises']:.8g} vs {exp_vm:.8g} MPa")
    assert out["max_torsion"] == pytest.approx(TORQUE, rel=1e-9), _report(name, "max torsion", out["max_torsion"], TORQUE)
    assert twist == pytest.approx(exp_twist, rel=1e-8), _report(name, "head twist (rad)", twist, exp_twist)
    assert out["peak_von_mises"] == pytest.approx(exp_vm, rel=1e-9), _report(name, "peak von Mises", out["peak_von_mises"], exp_vm)


def test_combined_head_load_von_mises(rigid_host):
    """Lateral force + pull-out + torque: von Mises combines sigma = N/A + M r/I with
    tau = T r/J at the outer fibre (and the neutral-axis point with f V / A)."""
    name, _, res, sec, geo = rigid_host
    out = res.loadcases["combined"].extra["screws"]["s"]
    j = geo["j"]
    _, M, V = _expected_lateral(sec, geo, P_LAT)
    N = np.where(np.arange(len(M)) < j, P_AX, 0.0)
    T = np.where(np.arange(len(M)) < j, TORQUE, 0.0)
    vm = np.maximum(sec.vm_outer(N, M, T), sec.vm_neutral(N, V, T)).max()
    print(f"{name}: peak von Mises {out['peak_von_mises']:.10g} vs {vm:.10g} MPa; "
          f"max axial {out['max_axial_force']:.6g}, bending {out['max_bending_moment']:.6g}, torsion {out['max_torsion']:.6g}")
    assert out["peak_von_mises"] == pytest.approx(vm, rel=1e-8), _report(name, "peak von Mises", out["peak_von_mises"], vm)
    assert out["max_bending_moment"] == pytest.approx(P_LAT * geo["l"], rel=1e-8)
    assert out["max_axial_force"] == pytest.approx(P_AX, rel=1e-9)
    assert out["max_torsion"] == pytest.approx(TORQUE, rel=1e-9)


def test_rigid_host_has_no_interface_strain(rigid_host):
    """The fixed host does not deform: both interface strains are exactly zero."""
    name, _, res, _, _ = rigid_host
    for lname, lc in res.loadcases.items():
        out = lc.extra["screws"]["s"]
        assert out["interface_max_strain"] == 0.0 and out["interface_mean_strain"] == 0.0, (name, lname, out)


# ------------------------------------------------------------------- interface strains
def test_interface_strain_and_bar_stress_under_iso_strain(tmp_path):
    """Block moved by -delta at the top (lateral faces free, rollers below) with a bar along z
    from face to face (so its end forces go straight into the supports):
    the host strain is uniform uniaxial stress, eps = diag(nu, nu, -1) delta/L, so every host
    element has the von Mises equivalent strain sqrt(2/3 e':e') = (2/3)(1 + nu) delta/L; the
    bar carries E_s a delta/L (stress E_s delta/L = peak von Mises)."""
    E_b, nu_b, E_s, d, delta = 100.0, 0.3, 1.0e5, 2.0, 0.04
    m = box_mesh((W, W, L), (2, 2, 8), origin=(-W / 2, -W / 2, 0.0))
    p = tmp_path / "iso.msh"
    write_mesh(m, p)

    def node_box(x, y, z, tol=1e-3):
        return {"box": {"min": [x - tol, y - tol, z - tol], "max": [x + tol, y + tol, z + tol]}}

    case = {
        "name": "iso",
        "mesh": str(p),
        "materials": {"bone": {"E": E_b, "nu": nu_b}},
        "constraints": [
            {"where": {"set": "zmin"}, "fix": ["z"]},
            {"where": node_box(-W / 2, -W / 2, 0.0), "fix": ["x", "y"]},
            {"where": node_box(W / 2, -W / 2, 0.0), "fix": ["y"]},
            {"where": {"set": "zmax"}, "value": [None, None, -delta]},
        ],
        "loadcases": {"push": [{"where": {"set": "zmax"}, "force": [0.0, 0.0, 0.0]}]},
        "screws": [{"name": "bar", "entry": [XY[0], XY[1], 0.0], "target": [XY[0], XY[1], L], "diameter": d,
                    "core_diameter": d, "material": {"E": E_s, "nu": 0.3, "yield": 500.0}}],
    }
    out = solve(build_model(case, base=".", source="iso")).loadcases["push"].extra["screws"]["bar"]
    eps = delta / L
    eq = 2.0 / 3.0 * (1.0 + nu_b) * eps
    N = E_s * np.pi * d * d / 4.0 * eps
    print(f"interface strain max {out['interface_max_strain']:.10e}, mean {out['interface_mean_strain']:.10e}, expected {eq:.10e}; "
          f"axial force {out['max_axial_force']:.10g} vs {N:.10g} N; peak von Mises {out['peak_von_mises']:.10g} vs {E_s * eps:.10g} MPa")
    assert out["interface_max_strain"] == pytest.approx(eq, rel=1e-8), _report("iso", "interface_max_strain", out["interface_max_strain"], eq)
    assert out["interface_mean_strain"] == pytest.approx(eq, rel=1e-8), _report("iso", "interface_mean_strain", out["interface_mean_strain"], eq)
    assert out["max_axial_force"] == pytest.approx(N, rel=1e-8), _report("iso", "max_axial_force", out["max_axial_force"], N)
    assert out["peak_von_mises"] == pytest.approx(E_s * eps, rel=1e-8), _report("iso", "peak_von_mises", out["peak_von_mises"], E_s * eps)
    assert out["yield_ratio"] == pytest.approx(E_s * eps / 500.0, rel=1e-8)
    assert out["max_bending_moment"] < 1e-6 * N * d and out["max_torsion"] < 1e-6 * N * d
