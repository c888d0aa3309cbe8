"""Two-level p-multigrid (fembone.core.solvers_pmg): exact coarse space and the direct answer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from fembone.core.analysis import assemble, solve
from fembone.core.constraints import ConstraintSet, DofLayout, reduce_system
from fembone.core.errors import SolverError
from fembone.core.materials import Isotropic
from fembone.core.meshgen import box_mesh
from fembone.core.model import Model
from fembone.core.solvers_amg import spectral_radius_dinv
from fembone.core.solvers_pmg import (
    PMG,
    coarse_options,
    p_prolongation,
    smoother_diagonal,
    voigt_poisson,
)


def _model(nu_core: float = 0.499) -> tuple[Model, int]:
    """20 x 10 x 10 mm tet10 bar, a soft nearly incompressible core slice, fixed at x = 0, its end
    face rigidly coupled to a reference node (extra 6-DOF node) carrying a force and a moment."""
    mesh = box_mesh((20.0, 10.0, 10.0), (8, 4, 4), order=2)
    layout = DofLayout(mesh.n_nodes)
    mats = [Isotropic(name="bone", E=300.0, nu=0.3), Isotropic(name="core", E=3.0, nu=nu_core)]
    mid = (np.abs(mesh.centroids()[:, 0] - 10.0) < 3.0).astype(int)
    C = np.stack([mats[i].stiffness() for i in mid])
    model = Model("pmg", mesh, mats, mid, C, layout, ConstraintSet(layout))
    x = mesh.points
    model.constraints.fix(3 * np.flatnonzero(x[:, 0] < 1e-9)[:, None] + np.arange(3), label="xmin")
    ref = int(layout.add_extra([[25.0, 5.0, 5.0]])[0])
    model.constraints.rigid_coupling(np.flatnonzero(x[:, 0] > 20.0 - 1e-9), ref, x)
    d = layout.extra_dofs(ref)[0]
    for name, dof, value in (("push", d[2], -10.0), ("twist", d[3], 50.0)):
        f = np.zeros(layout.n_dofs)
        f[dof] = value
        model.loads[name] = f
    return model, ref


def _corner_dofs(mesh, n_extra: int) -> np.ndarray:
    corner = np.ones(mesh.n_nodes, bool)
    corner[np.unique(mesh.cells[:, 4:])] = False
    return np.concatenate([(3 * np.flatnonzero(corner)[:, None] + np.arange(3)).ravel(),
                           3 * mesh.n_nodes + np.arange(6 * n_extra)])


def test_coarse_space_reproduces_rigid_body_and_linear_fields_exactly():
    """Mid-edge value = mean of the corners' is exact for linear fields (tet10 shape functions
    reproduce them): P applied to a rigid motion sampled at corners and extra nodes is that motion."""
    model, _ = _model()
    mesh, layout = model.mesh, model.layout
    R = layout.rigid_modes(mesh.points)
    G = np.array([[1e-3, 2e-3, -1e-3], [0.5e-3, -2e-3, 0.0], [3e-3, 1e-3, 1e-3]])
    lin = np.zeros(layout.n_dofs)
    lin[: 3 * mesh.n_nodes] = (mesh.points @ G.T + [0.1, -0.2, 0.3]).ravel()
    fields = np.column_stack([R, lin])
    P = p_prolongation(mesh.cells, mesh.n_nodes, layout.n_dofs)
    cd = _corner_dofs(mesh, layout.n_extra)
    assert P.shape == (layout.n_dofs, len(cd))
    assert np.abs(P @ fields[cd] - fields).max() < 1e-12 * np.abs(fields).max()
    # on q: rows of dependent DOFs are zero, the others still reproduce the motion
    dep = model.constraints.build().dependent
    Pq = p_prolongation(mesh.cells, mesh.n_nodes, layout.n_dofs, dep)
    full = p_prolongation(mesh.cells, mesh.n_nodes, layout.n_dofs)
    kept = np.flatnonzero(np.diff(full.multiply(~dep[:, None]).tocsc().indptr) > 0)
    assert np.abs(Pq @ R[cd][kept] - np.where(dep[:, None], 0.0, R)).max() < 1e-12 * np.abs(R).max()
    # a quadratic field is not in the coarse space (the coarse space is really tet4)
    quad = np.zeros(layout.n_dofs)
    quad[0 : 3 * mesh.n_nodes : 3] = mesh.points[:, 0] ** 2
    assert np.abs(P @ quad[cd] - quad).max() > 0.1


def test_voigt_poisson_of_isotropic_stiffness():
    C = np.stack([Isotropic(name="m", E=7.0, nu=nu).stiffness() for nu in (0.0, 0.3, 0.499)])
    assert np.allclose(voigt_poisson(C), [0.0, 0.3, 0.499], atol=1e-12)


@pytest.mark.parametrize("keep", [True, False])
def test_pmg_matches_direct_solve_with_constraints(keep):
    """Reduced system with a rigid coupling and supports: PMG-CG (rtol 1e-13) equals the LU answer
    to < 1e-8 (relative); keeping the nu = 0.499 core quadratic cuts the CG iterations."""
    model, _ = _model()
    _, K = assemble(model)
    red = model.constraints.build()
    F = np.column_stack(list(model.loads.values()))
    Kq, Fq = reduce_system(K, red, F)
    exact = spla.splu(Kq.tocsc()).solve(Fq)
    s = PMG(rtol=1e-13)
    for k, v in coarse_options(model.mesh.cells, model.mesh.n_nodes, model.C).items():
        setattr(s, k, v)
    if not keep:
        s.keep_cells = None
    s.setup(Kq)
    q = s.solve(Fq)
    err = np.abs(q - exact).max() / np.abs(exact).max()
    assert err < 1e-8, f"pmg vs LU {err:.2e}"
    assert s.info["coarse_dofs"] < Kq.shape[0] / (2 if keep else 4)
    if keep:
        assert max(s.info["iterations"]) < 40, s.info["iterations"]


def test_pmg_through_analysis_and_fallback_without_cells():
    """``solver: pmg`` in a model's solve: with the cells in solver_options the p-multigrid cycle,
    without them the smoothed-aggregation cycle; both give the SuperLU answer."""
    model, _ = _model(nu_core=0.45)
    model.solver = "superlu"
    ref = solve(model, nodal=False)
    model.solver = "pmg"
    model.solver_options = {"rtol": 1e-12, **coarse_options(model.mesh.cells, model.mesh.n_nodes, model.C)}
    got = solve(model, nodal=False)
    model.solver_options = {"rtol": 1e-12}
    fallback = solve(model, nodal=False)
    assert got.solver_info["coarse_dofs"] > 0 and fallback.solver_info["coarse"] == "smoothed aggregation"
    for name in model.loads:
        u = ref.loadcases[name].u
        for res in (got, fallback):
            assert np.abs(res.loadcases[name].u - u).max() < 1e-8 * np.abs(u).max()


def test_smoother_diagonal_by_hand():
    """Row sums by hand.  Row 0 of K couples to four others (a tie's master row): |row| = 9 + 4 x 3
    = 21; Jacobi keeps 9, l1 takes 21, capped max(9, 21/4) = 9; the others: |row| = 3 + 3 = 6,
    capped max(3, 6/4) = 3.  A row whose sum exceeds 4x its diagonal is capped to a quarter of it."""
    K = np.diag([9.0, 3.0, 3.0, 3.0, 3.0])
    K[0, 1:] = K[1:, 0] = -3.0
    K = sp.csr_matrix(K)
    assert np.array_equal(smoother_diagonal(K, "jacobi"), [9.0, 3.0, 3.0, 3.0, 3.0])
    assert np.array_equal(smoother_diagonal(K, "l1"), [21.0, 6.0, 6.0, 6.0, 6.0])
    assert np.array_equal(smoother_diagonal(K), [9.0, 3.0, 3.0, 3.0, 3.0])
    K2 = sp.csr_matrix(np.array([[2.0, -4.0, -4.0], [-4.0, 20.0, 0.0], [-4.0, 0.0, 20.0]]))
    assert np.array_equal(smoother_diagonal(K2), [10.0 / 4, 20.0, 20.0])  # row 0: (2 + 8) / 4 = 2.5 > 2
    with pytest.raises(SolverError, match="diagonal 'gauss'"):
        smoother_diagonal(K, "gauss")


def test_smoothers_bound_lambda_max_and_cycle_residual():
    """Gershgorin: lambda_max(D^-1 K) <= 1 for l1 and <= 4 for capped (Jacobi has no such bound:
    4.7 on this coupled bar, 42 on the 0.92M segment); the Chebyshev smoother's returned residual is B - A X, and the cycle with the
    A P shortcut equals the plain two-level formula (smooth, B - A X, coarse, B - A X, smooth)."""
    model, _ = _model()
    _, K = assemble(model)
    red = model.constraints.build()
    F = np.column_stack(list(model.loads.values()))
    Kq, Fq = reduce_system(K, red, F)
    lams = {kind: spectral_radius_dinv(Kq, 1.0 / smoother_diagonal(Kq, kind), 40) for kind in ("jacobi", "l1", "capped")}
    assert lams["l1"] <= 1.0 + 1e-9 and lams["capped"] <= 4.0 + 1e-9, lams
    s = PMG()
    s.precision = "double"
    for k, v in coarse_options(model.mesh.cells, model.mesh.n_nodes, model.C).items():
        setattr(s, k, v)
    s.setup(Kq)
    M = s.M
    X, R = M.S.apply(None, None, Fq)
    assert np.abs(R - (Fq - Kq @ X)).max() < 1e-12 * np.abs(Fq).max()
    X1 = M.S.apply(None, None, Fq, residual=False)[0]
    assert np.array_equal(X1, X)
    e = np.asarray(M.coarse_solve(M.R @ (Fq - Kq @ X1)))
    X2 = X1 + M.P @ e
    plain = M.S.apply(X2, None, Fq, residual=False)[0]
    assert np.abs(M(Fq) - plain).max() < 1e-10 * np.abs(plain).max()
