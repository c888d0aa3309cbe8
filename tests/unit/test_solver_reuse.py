"""Reusing a set-up solver for a model whose values (not pattern) changed gives the fresh answer."""

from __future__ import annotations

import numpy as np
import pytest

from fembone.cases import build_model
from fembone.core.analysis import solve
from fembone.core.meshgen import box_mesh, write_mesh
from fembone.core.solvers import Pardiso


@pytest.fixture(scope="module")
def mesh_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("reuse") / "box.msh"
    m = box_mesh((20.0, 10.0, 10.0), (8, 4, 4))
    m.cell_sets["core"] = np.flatnonzero(np.abs(m.centroids()[:, 1] - 5.0) < 2.6)
    write_mesh(m, p)
    return p


def case(mesh_file, E_core: float, solver: str) -> dict:
    return {
        "name": "reuse", "mesh": {"file": str(mesh_file), "order": 2},
        "materials": {"bone": {"E": 300.0, "nu": 0.3}, "core": {"E": E_core, "nu": 0.45}},
        "assign": [{"material": "bone"}, {"material": "core", "where": {"set": "core"}}],
        "constraints": [{"where": {"set": "xmin"}, "fix": ["x", "y", "z"]}],
        "loadcases": {"bend": [{"where": {"set": "xmax"}, "force": [0.0, 0.0, -10.0]}]},
        "solver": solver,
    }


@pytest.mark.skipif(not Pardiso.available(), reason="MKL PARDISO not installed")
def test_pardiso_reuses_analysis_and_matches_fresh_factorisation(mesh_file):
    first = solve(build_model(case(mesh_file, 5.0, "pardiso")))
    assert first.solver_info["reused_analysis"] is False
    reused = solve(build_model(case(mesh_file, 3000.0, "pardiso")), solver=first.linear_solver)
    fresh = solve(build_model(case(mesh_file, 3000.0, "pardiso")))
    assert reused.solver_info["reused_analysis"] is True
    u_r, u_f = reused.loadcases["bend"].u, fresh.loadcases["bend"].u
    err = np.abs(u_r - u_f).max() / np.abs(u_f).max()
    assert err < 1e-9, f"reused vs fresh factorisation differ by {err:.2e} (relative)"
    assert np.abs(u_f - first.loadcases["bend"].u).max() > 1e-3 * np.abs(u_f).max(), "the two models should differ"


def test_solver_of_another_kind_is_not_reused(mesh_file):
    first = solve(build_model(case(mesh_file, 5.0, "superlu")))
    again = solve(build_model(case(mesh_file, 5.0, "amg")), solver=first.linear_solver)
    assert again.solver == "amg"
    d = np.abs(again.loadcases["bend"].u - first.loadcases["bend"].u).max() / np.abs(first.loadcases["bend"].u).max()
    assert d < 1e-7, f"amg vs superlu differ by {d:.2e}"


def test_path_factorises_small_models_with_pardiso_where_installed():
    """A nonlinear path solves many times on one pattern: below SMALL_LIMIT ``auto`` takes PARDISO
    (not SuperLU) when it is installed; the solve is exact either way."""
    import scipy.sparse as sp

    from fembone.core.nonlinear import LinearSolves

    n = 300
    K = sp.diags([np.full(n - 1, -1.0), np.full(n, 4.0), np.full(n - 1, -1.0)], [-1, 0, 1], format="csr")
    x_exact = np.linspace(1.0, 2.0, n)
    ls = LinearSolves(n, "auto", "reuse", 1e-10, 10, None)
    x = ls.solve(K, K @ x_exact)
    assert np.abs(x - x_exact).max() < 1e-8
    assert ls.stats["solver"] == ("pardiso" if Pardiso.available() else "superlu")
    assert LinearSolves(n, "superlu", "reuse", 1e-10, 10, None).solve(K, K @ x_exact) is not None
