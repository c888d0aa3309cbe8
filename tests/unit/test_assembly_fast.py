"""Fast assembly: affine pair products from one matrix product, CSR straight from the blocks.

References are computed here independently: element stiffness B^T C B summed over a
degree-2 Keast rule with B built row by row from dN/dx = dN/dxi J^-1 (Zienkiewicz & Taylor
vol. 1, ch. 6), assembled densely; the block-by-block CSR is compared with SciPy's BSR
conversion.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fembone.core.assembly import Assembler, affine_elements, blocks_to_csr, blocks_to_matrix
from fembone.core.materials import isotropic_stiffness
from fembone.core.mesh import promote_to_tet10
from fembone.core.meshgen import box_mesh


def dense_reference(mesh, C: np.ndarray) -> np.ndarray:
    """Dense global K (N/mm) by explicit B matrices at the 4-point rule (degree 2)."""
    el = mesh.element
    q = el.quadrature(2)
    n = 3 * mesh.n_nodes
    K = np.zeros((n, n))
    dN = el.grad(q.points)  # (nq, nen, 3)
    for e, cell in enumerate(mesh.cells):
        x = mesh.points[cell]
        dofs = (3 * cell[:, None] + np.arange(3)).ravel()
        Ke = np.zeros((len(dofs), len(dofs)))
        for k in range(len(q.weights)):
            J = dN[k].T @ x  # J[a, j] = dx_j / dxi_a
            g = dN[k] @ np.linalg.inv(J).T  # dN/dx (nen, 3)
            B = np.zeros((6, len(dofs)))
            for i in range(len(cell)):  # fembone's Voigt order xx yy zz xy yz xz, engineering shears
                gx, gy, gz = g[i]
                B[:, 3 * i : 3 * i + 3] = [[gx, 0, 0], [0, gy, 0], [0, 0, gz], [gy, gx, 0], [0, gz, gy], [gz, 0, gx]]
            Ke += q.weights[k] * np.linalg.det(J) * B.T @ C[e] @ B
        K[np.ix_(dofs, dofs)] += Ke
    return K


def distorted(order: int, curve: float = 0.0, seed: int = 3):
    m = box_mesh((3.0, 2.0, 2.0), (3, 2, 2))
    rng = np.random.default_rng(seed)
    interior = np.all((m.points > 1e-9) & (m.points < np.array([3.0, 2.0, 2.0]) - 1e-9), axis=1)
    m.points[interior] += rng.uniform(-0.15, 0.15, (interior.sum(), 3))
    if order == 2:
        m = promote_to_tet10(m)
        if curve:  # move some mid-edge nodes off their edge: curved elements
            mids = np.unique(m.cells[:4, 4:])
            m.points[mids] += curve * rng.standard_normal((len(mids), 3))
    return m


def materials(ne: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    E = rng.uniform(5.0, 12000.0, ne)
    nu = rng.uniform(0.2, 0.45, ne)
    return E, nu


@pytest.mark.parametrize("order,curve", [(1, 0.0), (2, 0.0), (2, 0.05)], ids=["tet4", "tet10-affine", "tet10-half-curved"])
def test_isotropic_matches_dense_b_matrices(order, curve):
    m = distorted(order, curve)
    aff = affine_elements(m)
    assert aff.all() if curve == 0 else (0 < aff.sum() < m.n_elements)
    E, nu = materials(m.n_elements)
    lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    C = np.array([isotropic_stiffness(a, b) for a, b in zip(E, nu, strict=True)])
    K = Assembler(m).matrix(lam, mu).toarray()
    ref = dense_reference(m, C)
    err = np.abs(K - ref).max() / np.abs(ref).max()
    assert err < 1e-12, f"fast isotropic assembly vs dense B^T C B: {err:.2e}"
    Kc = Assembler(m).matrix(C=C).toarray()  # the general (anisotropic) path, same numbers
    assert np.abs(Kc - ref).max() / np.abs(ref).max() < 1e-12


def test_anisotropic_on_affine_tet10():
    m = distorted(2)
    rng = np.random.default_rng(11)
    A = rng.standard_normal((m.n_elements, 6, 6))
    C = np.einsum("eij,ekj->eik", A, A) + 6 * np.eye(6)  # symmetric positive definite, fully anisotropic
    K = Assembler(m).matrix(C=C).toarray()
    ref = dense_reference(m, C)
    assert np.abs(K - ref).max() / np.abs(ref).max() < 1e-12


def test_csr_from_blocks_equals_scipy_bsr_route():
    m = distorted(2)
    asm = Assembler(m)
    E, nu = materials(m.n_elements)
    U = asm.upper_blocks(E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu)))
    ours = blocks_to_csr(asm.pattern, U)
    theirs = blocks_to_matrix(asm.pattern, U, "bsr").tocsr()
    theirs.sort_indices()
    assert ours.has_sorted_indices
    assert np.array_equal(ours.indptr, theirs.indptr) and np.array_equal(ours.indices, theirs.indices)
    assert np.array_equal(ours.data, theirs.data)
    assert (ours - ours.T).count_nonzero() == 0 and isinstance(ours, sp.csr_matrix)


def test_geometry_is_made_on_first_use_only():
    m = distorted(2)
    asm = Assembler(m)
    E, nu = materials(m.n_elements)
    asm.matrix(E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu)))
    assert asm._geometry is None  # affine elements need no quadrature gradients
    vol = asm.geometry.volumes
    assert np.isclose(vol.sum(), 12.0)  # the 3 x 2 x 2 box (mm^3)


def test_csr_positions_adds_a_sub_pattern_in_place():
    """Adding dK (a sub-pattern of K, fewer rows) through the position map equals K + dK exactly
    and keeps K's structure; an entry K lacks gives None (the caller then forms the sum)."""
    import scipy.sparse as sp

    from fembone.core.assembly import csr_positions

    rng = np.random.default_rng(3)
    A = sp.random(40, 40, density=0.2, random_state=4, format="csr")
    K = (A + A.T + sp.eye(40)).tocsr()
    K.sort_indices()
    mask = sp.csr_matrix(K[:30].copy())
    mask.data = rng.standard_normal(mask.nnz)
    keep = rng.random(mask.nnz) < 0.6  # a sub-pattern of the first 30 rows
    dK = sp.csr_matrix((mask.data * keep, mask.indices, mask.indptr), shape=(30, 40))
    dK.eliminate_zeros()
    dK.sort_indices()
    pos = csr_positions(K, dK)
    data = K.data.copy()
    data[pos] += dK.data
    S = sp.csr_matrix((data, K.indices, K.indptr), shape=K.shape)
    dK40 = sp.csr_matrix((dK.data, dK.indices, np.concatenate([dK.indptr, np.full(10, dK.indptr[-1])])), shape=(40, 40))
    assert abs(S - (K + dK40)).max() == 0.0
    assert np.array_equal(S.indices, K.indices) and np.array_equal(S.indptr, K.indptr)
    missing = sp.csr_matrix(([1.0], ([0], [39])), shape=(30, 40))
    Kd = K.copy()
    Kd[0, 39] = 0.0  # make sure the test's missing entry is truly absent from a copy
    Kd.eliminate_zeros()
    assert csr_positions(Kd, missing) is None
