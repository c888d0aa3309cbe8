"""Stiffness symmetry, rigid-body null space, equilibrium and agreement of every solver."""

from __future__ import annotations

import numpy as np
import pytest

from fembone.apps import verify as V
from fembone.core.assembly import Assembler
from fembone.core.materials import Isotropic
from fembone.core.solvers import SOLVERS

MATERIALS = {"isotropic": Isotropic(name="iso", E=1000.0, nu=0.3), "transverse_isotropic": V.TI_BONE}


@pytest.mark.parametrize("material", list(MATERIALS))
@pytest.mark.parametrize("order", [1, 2], ids=["tet4", "tet10"])
def test_symmetric_with_rigid_body_null_space(order, material):
    sym, null, n = V.stiffness_properties(order, MATERIALS[material])
    assert sym <= 1e-12, f"max|K - K^T| / max|K| computed {sym:.3e}, exact 0, error {sym:.3e} ({n} DOFs)"
    assert null <= 1e-12, f"max|K R| / (max|K| max|R|) computed {null:.3e}, exact 0, error {null:.3e} ({n} DOFs)"


@pytest.mark.parametrize("material", list(MATERIALS))
@pytest.mark.parametrize("order", [1, 2], ids=["tet4", "tet10"])
def test_exactly_six_zero_eigenvalues(order, material):
    """The null space is the rigid motions and nothing else (no spurious zero-energy modes)."""
    mesh = V.distorted_box(2, order=order, seed=5)
    C = np.broadcast_to(MATERIALS[material].stiffness(), (mesh.n_elements, 6, 6))
    K = Assembler(mesh).matrix(C=C).toarray()
    w = np.linalg.eigvalsh(K)
    rel = w / w.max()
    assert np.all(np.abs(rel[:6]) < 1e-12) and rel[6] > 1e-6, (
        f"7 smallest eigenvalues / largest: {rel[:7]} (expected 6 zeros, then positive)"
    )


@pytest.fixture(scope="module")
def results():
    return {name: V.solver_problem(name) for name in V.available_solvers()}


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_reactions_balance_loads(solver, results):
    if solver not in results:
        pytest.skip(f"solver {solver} not installed")
    lc = results[solver].loadcases["mixed"]
    assert lc.equilibrium_error <= V.EQUILIBRIUM_TOL, (
        f"{solver}: equilibrium error computed {lc.equilibrium_error:.3e}, exact 0 (tolerance {V.EQUILIBRIUM_TOL:g})"
    )
    F = np.linalg.norm(lc.applied_force)
    err = np.linalg.norm(lc.reaction_force + lc.applied_force) / F
    assert err <= V.EQUILIBRIUM_TOL, (
        f"{solver}: reaction force {lc.reaction_force} vs applied {lc.applied_force}: error {err:.3e}"
    )
    M = np.linalg.norm(lc.applied_moment)
    err = np.linalg.norm(lc.reaction_moment + lc.applied_moment) / M
    assert err <= V.EQUILIBRIUM_TOL, (
        f"{solver}: reaction moment {lc.reaction_moment} vs applied {lc.applied_moment}: error {err:.3e}"
    )


def test_solvers_agree(results):
    assert "superlu" in results
    ref = results["superlu"].loadcases["mixed"].u
    for name, res in results.items():
        u = res.loadcases["mixed"].u
        diff = np.abs(u - ref).max() / np.abs(ref).max()
        assert diff <= V.AGREEMENT_TOL, (
            f"{name} vs superlu: max|u| computed {np.abs(u).max():.12g}, superlu {np.abs(ref).max():.12g}, "
            f"max difference {diff:.3e} (tolerance {V.AGREEMENT_TOL:g})"
        )


def test_solver_rows(results):
    for row in V.solver_rows():
        assert row["ok"], V.describe(row)
