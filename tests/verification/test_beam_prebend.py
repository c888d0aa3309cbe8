"""Verification of the beams' initial (stress-free) curvature kappa0 against hand solutions.

kappa0 is an eigenstrain: nodal loads -E I kappa0 / +E I kappa0 at the ends, section moment
M = E I (kappa - kappa0) (Przemieniecki 1968, thermal loads) [M].  Hand answers, beam of
length L, kappa0 = c b with b a unit vector normal to the axis t, d = b x t the direction the
stress-free beam bends towards:

1. free cantilever: tip displacement c L^2 / 2 along d, tip rotation c L b, no stress;
2. clamped at both ends: no displacement, uniform moment -E I c b (M = E I (0 - kappa0));
3. propped cantilever (clamp + support normal to the axis along d at the tip): tip
   deflection of the free beam c L^2/2 must be cancelled by the reaction R,
   R (L^3/(3EI) + L/(kGA)) = -c L^2/2, so R = -3 E I c / (2 L) for Euler-Bernoulli; root
   moment M(0) = R L, M(L) = 0;
4. two cantilevered screws joined by a prebent rod: hand-derived below (``frame_hand``).

Beams lie along oblique axes (1-3) so no global axis is privileged; 1 and 4 elements.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from fembone.core.beam import (
    BeamSection,
    beam_curvature_load,
    beam_frames,
    beam_global_stiffness,
    beam_results,
)
from fembone.core.constraints import DofLayout
from fembone.spine.segment_mechanics import Rod, add_rod, chain_results, rod_preload

E, NU = 110000.0, 0.3  # titanium alloy (MPa, -)
G = E / (2 * (1 + NU))
L = 40.0  # mm
C = 1.0 / 200.0  # 1/mm: a rod contoured to R = 200 mm
RTOL = 1e-10

AXIS = np.array([2.0, -3.0, 6.0]) / 7.0
START = np.array([12.0, -4.0, 30.0])
_b = np.cross(AXIS, [1.0, 0.0, 0.0])
B = _b / np.linalg.norm(_b)  # kappa0 direction, normal to AXIS
D = np.cross(B, AXIS)  # the stress-free beam bends towards D
ROD = BeamSection(5.5)
SCREW = BeamSection(6.5)
N_ELEMENTS = [1, 4]


def assert_close(what: str, computed, exact, scale: float, rtol: float = RTOL) -> None:
    computed, exact = np.asarray(computed, float), np.asarray(exact, float)
    err = float(np.abs(computed - exact).max()) / scale
    assert err <= rtol, f"{what}: computed {computed!r}, hand {exact!r}, relative error {err:.3e} > {rtol:.0e}"


def solve(nodes0, nodes1, dofs, Ke, f, basis):
    """u = basis q with basis^T (K u - f) = 0; returns u and the support reactions K u - f."""
    n = basis.shape[0]
    rows = np.broadcast_to(dofs[:, :, None], Ke.shape).ravel()
    cols = np.broadcast_to(dofs[:, None, :], Ke.shape).ravel()
    K = sp.coo_matrix((Ke.ravel(), (rows, cols)), shape=(n, n)).toarray()
    q = np.linalg.solve(basis.T @ K @ basis, basis.T @ f)
    u = basis @ q
    return u, K @ u - f


def chain(n_el: int, shear_rigid: bool):
    """Beam chain of ``n_el`` equal elements along AXIS; (x0, x1, element dofs, Ke, f0 assembled)."""
    s = np.linspace(0.0, L, n_el + 1)
    nodes = START + s[:, None] * AXIS
    x0, x1 = nodes[:-1], nodes[1:]
    Ke = beam_global_stiffness(x0, x1, E, NU, ROD, shear_rigid=shear_rigid)
    dofs = (6 * np.arange(n_el))[:, None] + np.arange(12)[None, :]
    fe = beam_curvature_load(x0, x1, E, ROD, C * B)
    f = np.bincount(dofs.ravel(), weights=fe.ravel(), minlength=6 * (n_el + 1))
    return x0, x1, dofs, Ke, f


def global_moments(x0, x1, res) -> np.ndarray:
    """(n, 2, 3) section moment vectors (N mm) at [end 0, end 1] in global axes."""
    R = beam_frames(x0, x1)
    return res["bending_y"][:, :, None] * R[:, None, 1, :] + res["bending_z"][:, :, None] * R[:, None, 2, :]


@pytest.mark.parametrize("shear_rigid", [True, False], ids=["euler_bernoulli", "timoshenko"])
@pytest.mark.parametrize("n_el", N_ELEMENTS)
def test_free_cantilever_takes_the_stress_free_arc(n_el: int, shear_rigid: bool) -> None:
    x0, x1, dofs, Ke, f = chain(n_el, shear_rigid)
    n = f.size
    u, _ = solve(x0, x1, dofs, Ke, f, np.eye(n)[:, 6:])
    tip = u[-6:]
    assert_close("tip deflection, hand c L^2/2 along b x t", tip[:3], 0.5 * C * L**2 * D, 0.5 * C * L**2)
    assert_close("tip rotation, hand c L b", tip[3:], C * L * B, C * L)
    res = beam_results(x0, x1, E, NU, ROD, u[dofs], shear_rigid=shear_rigid, kappa0=C * B)
    ei_c = E * ROD.second_moment() * C
    assert_close("bending moment (free beam: zero)", res["bending"], 0.0, ei_c)
    assert_close("end forces (free beam: zero)", res["end_forces"], 0.0, ei_c)
    assert_close("outer fibre stress (free beam: zero)", res["outer_fibre_stress"], 0.0, E * C * ROD.outer_radius)


@pytest.mark.parametrize("shear_rigid", [True, False], ids=["euler_bernoulli", "timoshenko"])
@pytest.mark.parametrize("n_el", N_ELEMENTS)
def test_clamped_clamped_uniform_moment(n_el: int, shear_rigid: bool) -> None:
    x0, x1, dofs, Ke, f = chain(n_el, shear_rigid)
    n = f.size
    u, reac = solve(x0, x1, dofs, Ke, f, np.eye(n)[:, 6 : n - 6])
    assert_close("displacement (clamped both ends: zero)", u, 0.0, C * L**2)
    res = beam_results(x0, x1, E, NU, ROD, u[dofs], shear_rigid=shear_rigid, kappa0=C * B)
    ei_c = E * ROD.second_moment() * C
    M = global_moments(x0, x1, res)
    assert_close("section moment, hand -E I kappa0 everywhere", M, np.broadcast_to(-ei_c * B, M.shape), ei_c)
    r = ROD.outer_radius
    assert_close("outer fibre stress, hand E c r", res["outer_fibre_stress"], E * C * r, E * C * r)
    assert_close("clamp reactions, hand moments -/+ E I kappa0", reac[[3, 4, 5, n - 3, n - 2, n - 1]],
                 np.concatenate([ei_c * B, -ei_c * B]), ei_c)


@pytest.mark.parametrize("shear_rigid", [True, False], ids=["euler_bernoulli", "timoshenko"])
@pytest.mark.parametrize("n_el", N_ELEMENTS)
def test_propped_cantilever_reaction(n_el: int, shear_rigid: bool) -> None:
    x0, x1, dofs, Ke, f = chain(n_el, shear_rigid)
    n = f.size
    # free: all but node 0; at the tip the translation along D is suppressed (the prop)
    keep = np.eye(n)[:, 6:]
    tip_t = np.arange(n - 6, n - 3) - 6
    perp = np.linalg.svd(D[None, :])[2][1:]  # two unit vectors normal to D
    basis = np.delete(keep, tip_t, axis=1)
    extra = np.zeros((n, 2))
    extra[n - 6 : n - 3] = perp.T
    basis = np.hstack([basis, extra])
    u, reac = solve(x0, x1, dofs, Ke, f, basis)
    EI = E * ROD.second_moment()
    flex = L**3 / (3 * EI) + (0.0 if shear_rigid else L / (ROD.shear_coefficient(NU) * G * ROD.area()))
    R = -0.5 * C * L**2 / flex
    if shear_rigid:
        assert abs(R + 3 * EI * C / (2 * L)) < 1e-12 * abs(R)  # the textbook form -3 E I c / (2 L)
    assert_close("prop reaction, hand -3 E I c/(2 L) along b x t (EB)", reac[n - 6 : n - 3], R * D, abs(R))
    res = beam_results(x0, x1, E, NU, ROD, u[dofs], shear_rigid=shear_rigid, kappa0=C * B)
    M = global_moments(x0, x1, res)
    assert_close("root moment, hand R L b", M[0, 0], R * L * B, abs(R) * L)
    assert_close("tip moment, hand 0", M[-1, 1], 0.0, abs(R) * L)


# ------------------------------------------------------------------ two screws + prebent rod
A_SCREW = 45.0  # mm, screw base (clamped in bone) to head
H_ROD = 38.0  # mm, head-to-head


def frame_hand(kappa: float) -> dict[str, float]:
    """Two screws along -y clamped at y = 0 (z = 0 and z = H), heads at y = -a joined by a rod
    along +z with initial curvature kappa x (lordotic for posterior -y), rigid joints.

    By symmetry about z = H/2 the rod carries no shear and a uniform moment M x and axial
    force N; it acts on head A with (N z, M x) and on head B with the opposite.  Cantilever
    screw (tip force F along z, tip moment m about -x): w = F f_s - M g, theta_x =
    -F g + M h with f_s = a^3/(3 E I_s) + a/(k G A_s), g = a^2/(2 E I_s), h = a/(E I_s)
    (Timoshenko & Gere) [M].  Rod: N = E A_r (w_B - w_A)/H = -2 E A_r w_A / H,
    M = E I_r ((theta_B - theta_A)/H - kappa) = E I_r (-2 theta_A / H - kappa).
    Eliminating: N = c1 M, c1 = (2 E A_r g / H) / (1 + 2 E A_r f_s / H), and
    M = -E I_r kappa / (1 + 2 E I_r h / H - 2 E I_r g c1 / H).
    """
    a, Hr = A_SCREW, H_ROD
    EIs, EIr, EAr = E * SCREW.second_moment(), E * ROD.second_moment(), E * ROD.area()
    fs = a**3 / (3 * EIs) + a / (SCREW.shear_coefficient(NU) * G * SCREW.area())
    g, h = a**2 / (2 * EIs), a / EIs
    c1 = (2 * EAr * g / Hr) / (1 + 2 * EAr * fs / Hr)
    M = -EIr * kappa / (1 + 2 * EIr * h / Hr - 2 * EIr * g * c1 / Hr)
    N = c1 * M
    return {"M": M, "N": N, "w_A": fs * N - g * M, "theta_A": -g * N + h * M}


def _frame_model(n_rod: int, n_screw: int):
    """Extra-node model: screw A base, screw B base, head A, head B, screw interior nodes."""
    layout = DofLayout(0)
    bases = layout.add_extra([[0.0, 0.0, 0.0], [0.0, 0.0, H_ROD]])
    heads = layout.add_extra([[0.0, -A_SCREW, 0.0], [0.0, -A_SCREW, H_ROD]])
    model = SimpleNamespace(layout=layout, meta={}, mesh=SimpleNamespace(n_nodes=0), loads={})
    screws = []
    for base, head in zip(bases, heads):
        p0, p1 = layout.extra_points[base], layout.extra_points[head]
        mid = layout.add_extra(p0 + (np.arange(1, n_screw)[:, None] / n_screw) * (p1 - p0)) if n_screw > 1 else []
        screws.append(np.concatenate([[base], mid, [head]]).astype(int))
    return model, bases, heads, screws


@pytest.mark.parametrize("n_el", N_ELEMENTS)
def test_two_screws_and_a_prebent_rod(n_el: int) -> None:
    """The segment path: Rod + add_rod (load vector) + rod_preload + chain_results, screws as beams."""
    model, bases, heads, screws = _frame_model(n_el, n_el)
    rod = Rod("rod_right", [int(heads[0]), int(heads[1])], ROD, E, NU, 900.0, prebend=C)
    for ids in screws:  # screws: Timoshenko beams, stiffness in global extra-node DOFs
        pts = model.layout.extra_points[ids]
        ed = np.hstack([model.layout.extra_dofs(ids[:-1]), model.layout.extra_dofs(ids[1:])])
        Ke = beam_global_stiffness(pts[:-1], pts[1:], E, NU, SCREW)
        model.meta.setdefault("_extra_stiffness", []).append((ed, Ke))
    add_rod(model, rod, H_ROD / n_el + 1e-9)
    assert np.allclose(rod.kappa0, C * np.array([1.0, 0.0, 0.0]), rtol=0, atol=1e-15), rod.kappa0
    n = model.layout.n_dofs
    K = np.zeros((n, n))
    for item in model.meta["_extra_stiffness"]:
        if isinstance(item, tuple):
            ed, Ke = item
            for e in range(len(ed)):  # a handful of test elements
                K[np.ix_(ed[e], ed[e])] += Ke[e]
        else:
            K += item.toarray()
    f = rod_preload([rod], n)
    free = np.setdiff1d(np.arange(n), model.layout.extra_dofs(bases).ravel())
    u = np.zeros(n)
    u[free] = np.linalg.solve(K[np.ix_(free, free)], f[free])
    hand = frame_hand(C)
    dA, dB = model.layout.extra_dofs(heads)
    scale_w = abs(hand["w_A"])
    assert_close("head A z-displacement w_A", u[dA[2]], hand["w_A"], scale_w, 1e-9)
    assert_close("head B z-displacement -w_A", u[dB[2]], -hand["w_A"], scale_w, 1e-9)
    assert_close("head A rotation theta_A", u[dA[3]], hand["theta_A"], abs(hand["theta_A"]), 1e-9)
    assert_close("head B rotation -theta_A", u[dB[3]], -hand["theta_A"], abs(hand["theta_A"]), 1e-9)
    # base A (clamped in bone) holds the screw against the head loads (N z, M x): reaction
    # force -N z and moment -(M - a N) x about the base (statics of the cantilever); with a
    # stiff rod N ~ 3 M / (2 a), so the base sees about -M/2: the carry-over reverses the sign
    reac = K @ u - f
    bA = model.layout.extra_dofs(bases[0])[0]
    base_exact = np.array([0.0, 0.0, -hand["N"], -(hand["M"] - A_SCREW * hand["N"]), 0.0, 0.0])
    assert_close("screw base A reaction (force, moment)", reac[bA], base_exact, abs(hand["M"]), 1e-9)
    # rod resultants with M = E I (kappa - kappa0)
    pts = model.layout.extra_points[rod.nodes]
    ue = np.hstack([u[model.layout.extra_dofs(rod.nodes[:-1])], u[model.layout.extra_dofs(rod.nodes[1:])]])
    res = beam_results(pts[:-1], pts[1:], E, NU, ROD, ue, kappa0=rod.kappa0)
    M = global_moments(pts[:-1], pts[1:], res)
    exact_M = np.broadcast_to(hand["M"] * np.array([1.0, 0.0, 0.0]), M.shape)
    assert_close("rod moment, hand uniform M x", M, exact_M, abs(hand["M"]), 1e-9)
    assert_close("rod axial force, hand N", res["axial_force"], hand["N"], abs(hand["M"]) / H_ROD, 1e-9)
    cr = chain_results(model, rod.nodes, E, NU, ROD, 900.0, u, kappa0=rod.kappa0)
    assert_close("chain_results max bending moment", cr["max_bending_moment"], abs(hand["M"]), abs(hand["M"]), 1e-9)
    # the preload is a fraction of the moment needed to straighten the rod (E I kappa0)
    ratio = hand["M"] / (-E * ROD.second_moment() * C)
    assert 0.0 < ratio < 1.0, ratio
    # without kappa0 in the recovery the rod moment would be wrong by E I kappa0
    wrong = beam_results(pts[:-1], pts[1:], E, NU, ROD, ue)
    assert np.abs(global_moments(pts[:-1], pts[1:], wrong) - exact_M).max() > 0.5 * E * ROD.second_moment() * C
