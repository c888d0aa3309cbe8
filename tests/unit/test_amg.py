"""Smoothed-aggregation AMG: the spectral radius estimate, the masked operator, and CG answers.

References: the eigenvalues of D^-1 A for the 1-D Laplacian tridiag(-1, 2, -1) are
1 - cos(k pi / (n + 1)) (closed form); the reduced system of a pure selection is
D K D + I_dep (:func:`fembone.core.constraints.reduce_system`); SuperLU's direct solution
is the answer CG must reproduce.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from fembone.cases import build_model
from fembone.core.analysis import assemble, solve
from fembone.core.constraints import reduce_system
from fembone.core.meshgen import box_mesh, write_mesh
from fembone.core.solvers import AMG, MaskedMatrix, spectral_radius_dinv


def laplacian(n: int) -> sp.csr_matrix:
    return sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1], format="csr")


def test_lanczos_spectral_radius_of_the_1d_laplacian():
    n = 40
    A = laplacian(n)
    exact = 1.0 + np.cos(np.pi / (n + 1))  # largest eigenvalue of D^-1 A = A / 2
    full = spectral_radius_dinv(A, np.full(n, 0.5), steps=n)
    assert abs(full - exact) < 1e-10 * exact, (full, exact)
    short = spectral_radius_dinv(A, np.full(n, 0.5), steps=8)  # a Ritz value: a lower bound, close
    assert exact * 0.95 < short <= exact * (1 + 1e-12), (short, exact)


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """A cantilever box, tet10, soft core: K, the reduction and the loads."""
    p = tmp_path_factory.mktemp("amg") / "box.msh"
    m = box_mesh((20.0, 10.0, 10.0), (8, 4, 4))
    m.cell_sets["core"] = np.flatnonzero(np.abs(m.centroids()[:, 1] - 5.0) < 2.6)
    write_mesh(m, p)
    case = {
        "name": "amg", "mesh": {"file": str(p), "order": 2},
        "materials": {"bone": {"E": 12000.0, "nu": 0.3}, "core": {"E": 5.0, "nu": 0.45}},
        "assign": [{"material": "bone"}, {"material": "core", "where": {"set": "core"}}],
        "constraints": [{"where": {"set": "xmin"}, "fix": ["x", "y", "z"]}],
        "loadcases": {"bend": [{"where": {"set": "xmax"}, "force": [0.0, 0.0, -10.0]}],
                      "pull": [{"where": {"set": "xmax"}, "force": [5.0, 0.0, 0.0]}]},
    }
    model = build_model(case)
    _, K = assemble(model)
    red = model.constraints.build()
    F = np.column_stack([model.loads[n] for n in model.loads])
    return case, model, K, red, F


def test_masked_matrix_is_the_reduced_system(box):
    _, _, K, red, F = box
    Kq, _ = reduce_system(K, red, F)
    M = MaskedMatrix(K, red.dependent)
    x = np.random.default_rng(0).standard_normal((K.shape[0], 2))
    assert np.array_equal(M @ x[:, 0], Kq @ x[:, 0]) and np.allclose(M @ x, Kq @ x, rtol=0, atol=0)
    assert np.array_equal(M.diagonal(), Kq.diagonal())
    assert abs(M.csr(np.float64) - Kq).max() == 0 and abs(M.bsr(3).tocsr() - Kq).max() == 0
    A32 = M.csr(np.float32)
    assert A32.dtype == np.float32 and np.shares_memory(A32.indices, K.indices)  # no index copy
    assert MaskedMatrix.fits(K, red.dependent)


@pytest.mark.parametrize("precision", ["single", "double"])
def test_amg_cg_reproduces_the_direct_solution(box, precision):
    _, _, K, red, F = box
    Kq, Fq = reduce_system(K, red, F)
    ref = spla.splu(Kq.tocsc()).solve(Fq)
    B = box[1].layout.rigid_modes(box[1].mesh.points, scale=20.0)
    B[red.dependent] = 0.0
    s = AMG()
    s.precision, s.rtol, s.max_coarse = precision, 1e-10, 20
    s.setup(MaskedMatrix(K, red.dependent), near_nullspace=B)
    assert s.info["levels"] >= 2 and s.info["level_sizes"][0] == K.shape[0]
    u = s.solve(Fq)
    err = np.abs(u - ref).max() / np.abs(ref).max()
    assert err < 1e-8, f"AMG-CG ({precision}) vs SuperLU: {err:.2e}"
    assert s.info["residual"] <= 1e-10 and max(s.info["iterations"]) < 100  # plain CG needs thousands here


def test_analysis_with_amg_matches_superlu(box):
    case = box[0]
    amg = solve(build_model({**case, "solver": {"name": "amg", "rtol": 1e-10}}))
    ref = solve(build_model({**case, "solver": "superlu"}))
    for name in ("bend", "pull"):
        u, u0 = amg.loadcases[name].u, ref.loadcases[name].u
        err = np.abs(u - u0).max() / np.abs(u0).max()
        assert err < 1e-8, f"{name}: AMG-CG vs SuperLU {err:.2e}"
        assert amg.loadcases[name].equilibrium_error < 1e-8
    assert amg.linear_solver.M is None  # the hierarchy is not kept through post-processing


def test_direct_limit_grows_with_load_cases():
    from fembone.core.solvers import DIRECT_CAP, DIRECT_LIMIT, direct_limit

    assert direct_limit(1) == DIRECT_LIMIT == 120_000
    # two load cases: AMG pays 0.25 + 2 x 0.75 = 1.75 one-case times; a n^1.6 = 1.75 b n
    # moves the cross-over by 1.75^(1/0.6) = exp(0.5596 x 1.6667) = 2.5413
    assert abs(direct_limit(2) - 120_000 * 2.5413) < 120_000 * 1e-4
    assert direct_limit(5) == DIRECT_CAP == 500_000


def test_strict_upper_in_row_blocks_equals_scipy_triu():
    from fembone.core.solvers_amg import strict_upper

    A = sp.random(300, 300, 0.05, format="csr", random_state=1, dtype=np.float32)
    A = (A + A.T).tolil()
    A[5, :] = 0  # an empty row, and one at the end
    A[299, :] = 0
    A = A.tocsr()
    A.eliminate_zeros()
    A.sort_indices()
    for chunk in (7, 100, 1 << 22):
        U = strict_upper(A, chunk)
        ref = sp.triu(A, k=1, format="csr")
        assert np.array_equal(U.indptr, ref.indptr) and np.array_equal(U.indices, ref.indices)
        assert np.array_equal(U.data, ref.data) and U.dtype == np.float32
