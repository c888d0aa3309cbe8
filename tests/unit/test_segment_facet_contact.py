"""Facet contact (gap elements) solved by the low-rank active-set correction (fembone.core.unilateral).

Hand answers on tiny spring systems: a gap that stays open, a gap that closes, a joint in
tension that stays open; a seesaw whose first closed support goes into tension and reopens
(the pivoting's tension branch); random systems against brute force over all active sets.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from fembone.core.unilateral import UnilateralSet, correct, lcp_murty


def _solve(K0: np.ndarray, G: np.ndarray, k, h, F: np.ndarray):
    """correct() with a dense solve of K0 (identity reduction)."""
    uset = UnilateralSet(sp.csc_matrix(G), np.asarray(k, float), np.asarray(h, float), [f"j{i}" for i in range(G.shape[1])])
    F = F.reshape(len(K0), -1)
    U0 = np.linalg.solve(K0, F)
    names = [f"case{j}" for j in range(F.shape[1])]
    U, Fc = correct(uset, lambda B: np.linalg.solve(K0, B), sp.identity(len(K0), format="csr"), U0, F, names)
    return U, Fc, uset


def test_one_dof_gap_open_closed_and_tension():
    """u on a ground spring k1 = 100 N/mm; a contact spring k = 1000 N/mm to ground with gap 0.5 mm
    (closed when u < -0.5).  F = -20 N: u = -0.2 (gap open); F = -100 N: 100 u + 1000 (u + 0.5)
    = -100, u = -6/11, contact force 1000 (6/11 - 0.5) = 500/11 N; F = +100 N (tension): u = 1."""
    U, Fc, uset = _solve(np.array([[100.0]]), np.array([[1.0]]), [1000.0], [0.5], np.array([[-20.0, -100.0, 100.0]]))
    assert U[0] == pytest.approx([-0.2, -6 / 11, 1.0], rel=1e-12)
    assert Fc[0] == pytest.approx([-20.0, -100.0 + 500 / 11, 100.0], rel=1e-12)  # the contact force joins the loads
    assert uset.info["closed"] == {"case0": [], "case1": ["j0"], "case2": []}
    assert uset.info["blocks"] == 1


def test_zero_gap_tension_opens_compression_closes():
    """Gap 0: a pull (+50 N) leaves the joint open (u = 0.5), a push (-50 N) closes it at once:
    u = -50 / 1100."""
    U, _, uset = _solve(np.array([[100.0]]), np.array([[1.0]]), [1000.0], [0.0], np.array([[50.0, -50.0]]))
    assert U[0] == pytest.approx([0.5, -50 / 1100], rel=1e-12)
    assert uset.info["closed"] == {"case0": [], "case1": ["j0"]}


def test_seesaw_support_in_tension_reopens():
    """A rigid bar, DOFs w (mm) and theta (rad), on a centre spring k0 = 10 N/mm and a rotational
    spring 100 N mm/rad; supports at x = -1 and x = +1 mm (s = w -+ theta, k = 1000 N/mm, gap 0);
    100 N down at x = 1.5 (overhang).  Open: both supports penetrate (w = -10, theta = -1.5);
    both closed: the left one pulls (w - theta = +0.0217 mm); right alone (hand solve of
    [[1010, 1000], [1000, 1100]] (w, theta) = (-100, -150)): w = 40/111, theta = -51.5/111,
    right support w + theta = -23/222 mm (force 23000/222 N), left w - theta = 183/222 mm open."""
    K0 = np.diag([10.0, 100.0])
    G = np.array([[1.0, 1.0], [-1.0, 1.0]])  # columns: left, right
    U, Fc, uset = _solve(K0, G, [1000.0, 1000.0], [0.0, 0.0], np.array([-100.0, -150.0]))
    w, th = U[:, 0]
    assert w == pytest.approx(40 / 111, rel=1e-12) and th == pytest.approx(-51.5 / 111, rel=1e-12)
    assert w + th == pytest.approx(-23 / 222, rel=1e-12) and w - th == pytest.approx(183 / 222, rel=1e-12)
    assert uset.info["closed"]["case0"] == ["j1"]
    assert uset.info["pivots"]["case0"] == 3  # close left, close right, reopen left (in tension)
    assert (G.T @ (Fc[:, 0] - np.array([-100.0, -150.0])))[1] == pytest.approx(2 * 23000 / 222, rel=1e-12)


def _brute_force(K0, G, k, h, f):
    """The one active set whose solution has every closed joint in compression and no open one penetrating."""
    m = G.shape[1]
    found = []
    for A in itertools.product([False, True], repeat=m):
        A = np.array(A)
        K = K0 + (G[:, A] * k[A]) @ G[:, A].T
        u = np.linalg.solve(K, f - G[:, A] @ (k[A] * h[A]))
        s = G.T @ u
        if np.all(s[A] + h[A] <= 1e-12) and np.all(s[~A] + h[~A] >= -1e-12):
            found.append(u)
    assert len(found) >= 1
    return found[0]


@pytest.mark.parametrize("seed", range(12))
def test_random_systems_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, m = 6, 4
    A = rng.normal(size=(n, n))
    K0 = A @ A.T + 0.5 * np.eye(n)
    G = rng.normal(size=(n, m))
    k = rng.uniform(5, 50, m)
    h = rng.uniform(0, 0.5, m) * (seed % 2)
    F = rng.normal(scale=5, size=(n, 3))
    U, _, _ = _solve(K0, G, k, h, F)
    for j in range(F.shape[1]):
        assert U[:, j] == pytest.approx(_brute_force(K0, G, k, h, F[:, j]), rel=1e-9, abs=1e-10)


def test_columns_are_solved_only_when_needed():
    """Seesaw (as above, centre spring 100 N/mm, rotational 10 N mm/rad), 100 N down at x = 0.5:
    open w = -1, theta = -5, the left end rises (+4 mm) and only the right support penetrates:
    one column.  Once the right one is closed the bar pivots on it and the left end goes down
    (w - theta = -96/111 mm): its column is solved in a second block.  Both closed:
    diag(2100, 2010) (w, theta) = (-100, -50): w = -1/21, theta = -50/2010."""
    K0 = np.diag([100.0, 10.0])
    G = np.array([[1.0, 1.0], [-1.0, 1.0]])
    U, _, uset = _solve(K0, G, [1000.0, 1000.0], [0.0, 0.0], np.array([-100.0, -50.0]))
    assert U[:, 0] == pytest.approx([-1 / 21, -50 / 2010], rel=1e-12)
    assert uset.info["blocks"] == 2 and uset.info["columns"] == ["j0", "j1"]
    assert uset.info["closed"]["case0"] == ["j0", "j1"]
    # a load that only ever closes the right support never solves the left one's column
    _, _, uset = _solve(K0, G, [1000.0, 1000.0], [0.0, 0.0], np.array([-100.0, -150.0]))
    assert uset.info["columns"] == ["j1"] and uset.info["blocks"] == 1


def test_lcp_rejects_a_singular_system():
    """A non-P matrix may make the pivoting cycle: bounded, one-line error."""
    from fembone.core.errors import FemboneError

    C = np.array([[-2.0, 0.0], [0.0, -2.0]])
    with pytest.raises(FemboneError, match="did not settle"):
        lcp_murty(np.array([-1.0, -1.0]), C, np.array([1.0, 1.0]), np.array([True, True]), 1e-12)


# ------------------------------------------------------------------------- segment input
def _case(facets, **kw) -> dict:
    """The facet mechanism alone: an isotropic annulus (its tension-only fibres are unilateral too and
    would break the springs' flexion/extension symmetry these tests pin)."""
    c = {"name": "seg", "segment": {"levels": ["T12", "L1", "L2"], "mesh_size": 6.0, "order": 1, "facets": facets,
                                    "disc": {"fibres": False}},
         "materials": {"preset": "normal"},
         "loadcases": {k: [{"preset": k, "moment": 7500}] for k in ("flexion", "extension", "axial_rotation")}}
    c.update(kw)
    return c


@pytest.mark.parametrize("facets, key, words", [
    ({"model": "hinge"}, "segment.facets.model", "spring, contact"),
    ({"model": "contact", "gap": -0.1}, "segment.facets.gap", ">="),
    ({"model": "contact", "gap": "wide"}, "segment.facets.gap", "number"),
    ({"gap": 0.5}, "segment.facets.gap", "model: contact"),
    ({"model": "spring", "gap": 0.5}, "segment.facets.gap", "model: contact"),
    ({"model": "contact", "normal_stif": 600}, "segment.facets", "normal_stif"),
])
def test_bad_facet_input_is_one_line_naming_the_key(facets, key, words):
    from fembone.cases import parse_case
    from fembone.core.errors import InputError

    with pytest.raises(InputError) as exc:
        parse_case(_case(facets), ".", "seg.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and key in msg and words in msg, msg


def test_facet_input_parses():
    from fembone.cases.segment_spec import _parse_facets

    assert _parse_facets(True, "f").model == "spring"  # the default (README: contact measured, not adopted)
    fm = _parse_facets({"model": "contact", "gap": 0.25, "normal_stiffness": 900}, "f")
    assert (fm.model, fm.gap, fm.normal_stiffness, fm.shear_stiffness) == ("contact", 0.25, 900.0, 6.0)
    assert _parse_facets(False, "f") is None


# ------------------------------------------------------------------- small segment (tet4, 6 mm)
def _run(facets, loads=("flexion", "extension", "axial_rotation"), **kw):
    from fembone.cases import build_model
    from fembone.core.analysis import solve

    c = _case(facets, **kw)
    c["loadcases"] = {k: [{"preset": k, "moment": 7500}] for k in loads}
    model = build_model(c, base=".", source="test")
    return model, solve(model, nodal=False)


@pytest.fixture(scope="module")
def springs():
    return _run(True)


@pytest.fixture(scope="module")
def contact0():
    return _run({"model": "contact", "gap": 0.0})


def _rom(res, case):
    return res.loadcases[case].extra["segment"]["range_of_motion_deg"]


def test_extension_exceeds_flexion_with_contact_equals_it_with_springs(springs, contact0):
    """Springs are linear: extension = flexion.  With contact (gap 0) the joints close in flexion
    and open in extension in this geometry, so extension is the softer direction: the top
    plate's rotation (work-conjugate to the moment: removing springs cannot stiffen it) and the
    whole segment's range of motion are larger.  (Per pair, T12-L1 alone may lose ~1e-5 of it
    to L1-L2: the motion redistributes.)"""
    def plate(res, case):
        return abs(res.loadcases[case].points["superior"][3])

    def total(res, case):
        return sum(_rom(res, case).values())

    for res in (springs[1],):
        assert plate(res, "extension") == pytest.approx(plate(res, "flexion"), rel=1e-9)
        assert total(res, "extension") == pytest.approx(total(res, "flexion"), rel=1e-9)
    res = contact0[1]
    assert plate(res, "extension") > plate(res, "flexion") * (1 + 1e-5)
    assert total(res, "extension") > total(res, "flexion") * (1 + 1e-5)
    assert total(res, "flexion") == pytest.approx(total(springs[1], "flexion"), rel=1e-9)  # all closed: the springs exactly
    ff = res.loadcases["flexion"].extra["segment"]["facet_forces"]
    fe = res.loadcases["extension"].extra["segment"]["facet_forces"]
    assert all(v["state"] == "closed" and v["normal"] > 0 for v in ff.values())
    assert all(v["state"] == "open" and v["normal"] == 0 and v["gap"] > 0 for v in fe.values())


@pytest.mark.parametrize("gap", [0.0, 0.2])
def test_contact_solution_is_the_direct_solve_with_its_active_set(gap):
    """The low-rank answer equals a direct solve of K0 + sum_closed k g g^T with the gap loads
    -k h g, and its active set is consistent (closed: compression; open: no penetration)."""
    import scipy.sparse.linalg as spla

    from fembone.core.constraints import reduce_system

    model, res = _run({"model": "contact", "gap": gap}, loads=("axial_rotation", "lateral_bending"))
    us = model.meta["_unilateral"]
    G = sp.vstack([us.G, sp.csc_matrix((model.n_dofs - us.G.shape[0], us.G.shape[1]))]).tocsc()
    for name, r in res.loadcases.items():
        closed = [us.labels.index(j) for j in us.info["closed"][name]]
        assert closed or (name, gap) == ("lateral_bending", 0.2), name  # axial rotation closes a joint per level
        Gc = G[:, closed]
        K = res.K + Gc @ sp.diags(us.k[closed]) @ Gc.T
        f = model.loads[name] - Gc @ (us.k[closed] * us.h[closed])
        Kq, fq = reduce_system(K.tocsr(), res.reduction, f[:, None])
        u = res.reduction.expand(spla.spsolve(Kq.tocsc(), fq[:, 0]))
        assert r.u == pytest.approx(u, abs=1e-9 * np.abs(u).max())
        s = G.T @ r.u + us.h
        assert np.all(s[closed] < 0) and np.all(np.delete(s, closed) >= 0)
        for j, v in r.extra["segment"]["facet_forces"].items():
            assert v["state"] == ("closed" if us.labels.index(j) in closed else "open")
            assert v["normal"] == pytest.approx(us.k[0] * max(-v["gap"], 0.0), abs=1e-6)


def test_each_load_case_has_its_own_active_set_with_the_rod_preload():
    """No superposition: with prebent rods (the preload joins every load case and is a load case of
    its own, from which ranges of motion are measured) extension solved with flexion equals
    extension solved alone, the preload state included."""
    kw = {"screws": [{"placement": "bilateral_transpedicular", "levels": ["T12", "L2"]}],
          "rods": {"diameter": 5.5, "material": "titanium", "prebend": {"radius": 400}}}
    facets = {"model": "contact", "gap": 0.0}
    _, both = _run(facets, loads=("flexion", "extension"), **kw)
    _, alone = _run(facets, loads=("extension",), **kw)
    for name in ("extension", "rod_preload"):
        u = alone.loadcases[name].u
        assert both.loadcases[name].u == pytest.approx(u, abs=1e-8 * np.abs(u).max())
    ext = both.loadcases["extension"].extra["segment"]
    assert "installed state" in ext["measured_from"]
    assert ext["range_of_motion_deg"] == pytest.approx(alone.loadcases["extension"].extra["segment"]["range_of_motion_deg"])
    assert "facet_contact" in both.loadcases["rod_preload"].extra["segment"]
