"""Vectorised assembly of the global stiffness of tet4/tet10 linear elasticity. Units: N/mm.

Element stiffness (Zienkiewicz & Taylor vol. 1, ch. 6; Hughes, *The Finite Element
Method*, §2.7), written in index form to avoid the 6 x 3n B matrix:

    K_e[i a, j b] = sum_q w_q |J_q| sum_cd C_acbd dN_i/dx_c dN_j/dx_d
                  = sum_cd C_acbd P_icjd,    P_icjd = sum_q g_qic g_qjd,

with g = dN/dx * sqrt(w |J|) stored once per mesh (:class:`ElementGeometry`).  For an
isotropic material this collapses to lambda P_iajb + mu (delta_ab sum_c P_icjc + P_ibja).
The sparsity pattern is built once per mesh on 3x3 node blocks of the upper triangle;
assembly is then one ``np.bincount`` per chunk of elements, and a change of material
values (the parametric-study case) reuses geometry and pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fembone.core.mesh import Mesh
from fembone.core.materials import VOIGT

CHUNK = 8192  # elements per batch: bounds the memory of temporary element blocks
PASS_BYTES = 512 * 2**20  # element blocks held at once before they are summed (bytes)


@dataclass
class ElementGeometry:
    """Shape-function gradients at quadrature points, for every element (element index last).

    ``grads``: (nq, nen, 3, ne) dN/dx (1/mm); ``wdet``: (nq, ne) w_q |J_q| (mm^3, sums to the
    element volume).  Keeping the element index last makes every batched operation a long
    contiguous vector operation (3x faster than stacked small matrix products).
    """

    grads: np.ndarray
    wdet: np.ndarray
    qpoints: np.ndarray  # (nq, 3) reference coordinates

    @property
    def volumes(self) -> np.ndarray:
        return self.wdet.sum(axis=0)

    @property
    def n_elements(self) -> int:
        return self.wdet.shape[1]


def inv3(J: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and determinant of 3x3 matrices stored as J[a, b, ...] (batch last)."""
    c00 = J[1, 1] * J[2, 2] - J[1, 2] * J[2, 1]
    c01 = J[1, 2] * J[2, 0] - J[1, 0] * J[2, 2]
    c02 = J[1, 0] * J[2, 1] - J[1, 1] * J[2, 0]
    det = J[0, 0] * c00 + J[0, 1] * c01 + J[0, 2] * c02
    inv = np.empty_like(J)
    inv[0, 0] = c00
    inv[1, 0] = c01
    inv[2, 0] = c02
    inv[0, 1] = J[0, 2] * J[2, 1] - J[0, 1] * J[2, 2]
    inv[1, 1] = J[0, 0] * J[2, 2] - J[0, 2] * J[2, 0]
    inv[2, 1] = J[0, 1] * J[2, 0] - J[0, 0] * J[2, 1]
    inv[0, 2] = J[0, 1] * J[1, 2] - J[0, 2] * J[1, 1]
    inv[1, 2] = J[0, 2] * J[1, 0] - J[0, 0] * J[1, 2]
    inv[2, 2] = J[0, 0] * J[1, 1] - J[0, 1] * J[1, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv /= det
    return inv, det


def gradients_at(mesh: Mesh, xi: np.ndarray, elements: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """dN/dx (np, nen, 3, ne) and |J| (np, ne) at reference points ``xi`` (np, 3)."""
    cells = mesh.cells if elements is None else mesh.cells[elements]
    dNdxi = mesh.element.grad(xi)  # (np, nen, 3)
    npnt, nen, _ = dNdxi.shape
    x = mesh.points[cells].transpose(1, 2, 0).reshape(nen, -1)  # (nen, 3 ne)
    J = (dNdxi.transpose(0, 2, 1).reshape(npnt * 3, nen) @ x).reshape(npnt, 3, 3, -1)  # J[q, a, j, e]
    Jinv, det = inv3(J.transpose(1, 2, 0, 3))  # (a, j, q, e)
    grads = np.einsum("qna,jaqe->qnje", dNdxi, Jinv, optimize=True)  # Jinv[j, a] = d xi_a / d x_j
    return grads, det


def element_geometry(mesh: Mesh, degree: int | None = None) -> ElementGeometry:
    """Isoparametric gradients dN/dx = dN/dxi J^-1 at the element's quadrature points.

    Default rule: 1 point for tet4, 4 points (degree 2) for tet10, which integrates the
    stiffness of straight-sided elements exactly.
    """
    quad = mesh.element.quadrature(degree)
    grads, det = gradients_at(mesh, quad.points)
    return ElementGeometry(grads, det * quad.weights[:, None], quad.points)


@dataclass
class Pattern:
    """Upper-triangular 3x3 node-block sparsity of a mesh, built once and reused.

    For each element and each upper pair (i <= j) of its nodes, ``inv`` (npair, ne) is the
    id of the unique global block it adds to and ``swap`` (npair, ne) says whether the
    block is stored transposed (global row > column).  ``rows``/``cols`` of the unique
    blocks are sorted row-major; ``perm`` orders [upper, transposed strict-upper] blocks
    into BSR order for the full symmetric matrix.
    """

    n_nodes: int
    n_dofs: int
    inv: np.ndarray
    swap: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    strict: np.ndarray
    perm: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    upper_indptr: np.ndarray

    @property
    def n_blocks(self) -> int:
        return len(self.rows)


def build_pattern(cells: np.ndarray, n_nodes: int, n_dofs: int | None = None) -> Pattern:
    """Sparsity pattern of the node-block matrix; ``n_dofs`` >= 3 n_nodes pads extra DOFs."""
    ne, nen = cells.shape
    n_dofs = 3 * n_nodes if n_dofs is None else n_dofs
    if n_dofs % 3:
        raise ValueError("n_dofs must be a multiple of 3 (3x3 blocks)")
    iu, ju = np.triu_indices(nen)
    a = cells[:, iu].T  # (npair, ne)
    b = cells[:, ju].T
    swap = a > b
    key = np.minimum(a, b).astype(np.int64) * n_nodes + np.maximum(a, b)
    key = key.ravel()
    order = np.argsort(key)  # any order of equal keys gives the same unique ids
    sk = key[order]
    first = np.empty(len(sk), bool)
    first[0] = True
    np.not_equal(sk[1:], sk[:-1], out=first[1:])
    uid = np.cumsum(first) - 1
    inv = np.empty(len(key), np.int64)
    inv[order] = uid
    ukey = sk[first]
    rows = ukey // n_nodes
    cols = ukey % n_nodes
    strict = rows < cols
    nbr = n_dofs // 3
    frow = np.concatenate([rows, cols[strict]])
    fcol = np.concatenate([cols, rows[strict]])
    perm = np.argsort(frow * np.int64(n_nodes) + fcol)  # keys are unique: one sort, no lexsort
    indptr = np.zeros(nbr + 1, np.int64)
    np.cumsum(np.bincount(frow, minlength=nbr), out=indptr[1:])
    upper_indptr = np.zeros(nbr + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=nbr), out=upper_indptr[1:])
    itype = np.int32 if n_dofs < 2**31 - 1 else np.int64
    return Pattern(
        n_nodes, n_dofs, inv.reshape(a.shape), swap, rows, cols, strict, perm, indptr,
        fcol[perm].astype(itype), upper_indptr,
    )


def pair_products(grads: np.ndarray, wdet: np.ndarray) -> np.ndarray:
    """P_icjd = sum_q w_q |J_q| dN_i/dx_c dN_j/dx_d for the upper node pairs i <= j.

    Returns (npair, 3, 3, nc) with indices (pair, c, d, element).
    """
    nq, nen, _, nc = grads.shape
    iu, ju = np.triu_indices(nen)
    P = np.zeros((len(iu), 3, 3, nc))
    for q in range(nq):
        g = grads[q] * wdet[q]
        P += g[iu][:, :, None, :] * grads[q][ju][:, None, :, :]
    return P


def stiffness_blocks(P: np.ndarray, lam=None, mu=None, C=None) -> np.ndarray:
    """Element 3x3 blocks K_ab (npair, 3, 3, nc) from pair products and material data.

    Isotropic: ``lam``, ``mu`` (nc,) Lame parameters (MPa); general: Voigt ``C`` (nc, 6, 6).
    """
    if C is None:
        K = lam * P + mu * P.transpose(0, 2, 1, 3)
        tr = mu * (P[:, 0, 0] + P[:, 1, 1] + P[:, 2, 2])
        for a in range(3):
            K[:, a, a] += tr
        return K
    # K_ab = sum_cd C_acbd P_cd with C_acbd = C[V[a, c], V[b, d]]
    C4 = np.asarray(C)[:, VOIGT[:, :, None, None], VOIGT[None, None, :, :]]  # (nc, a, c, b, d)
    return np.einsum("pcde,eacbd->pabe", P, C4, optimize=True)


class Assembler:
    """Global stiffness of one mesh; geometry and pattern are computed once, then reused."""

    def __init__(self, mesh: Mesh, n_dofs: int | None = None, degree: int | None = None):
        self.mesh = mesh
        self.geometry = element_geometry(mesh, degree)
        self.pattern = build_pattern(mesh.cells, mesh.n_nodes, n_dofs)

    @property
    def n_dofs(self) -> int:
        return self.pattern.n_dofs

    def upper_blocks(self, lam=None, mu=None, C=None) -> np.ndarray:
        """Summed unique upper 3x3 blocks (nb, 3, 3), N/mm.

        Give per-element Lame parameters ``lam, mu`` (MPa, arrays (ne,)) for isotropic
        materials, or Voigt stiffnesses ``C`` (ne, 6, 6) in general.
        """
        pat, geo = self.pattern, self.geometry
        ne = self.mesh.n_elements
        npair = pat.inv.shape[0]
        # element blocks are summed pass by pass: one pass holds at most PASS_BYTES of them
        # (all of them at once was the peak memory of a 2M-DOF model)
        per_pass = max(CHUNK, (PASS_BYTES // (9 * npair * 8)) // CHUNK * CHUNK)
        out = np.zeros((3, 3, pat.n_blocks))
        for p0 in range(0, ne, per_pass):
            p1 = min(p0 + per_pass, ne)
            vals = np.empty((3, 3, npair, p1 - p0))
            for s0 in range(p0, p1, CHUNK):
                s = slice(s0, min(s0 + CHUNK, p1))
                P = pair_products(geo.grads[..., s], geo.wdet[:, s])
                if C is None:
                    K = stiffness_blocks(P, np.asarray(lam)[s], np.asarray(mu)[s])
                else:
                    K = stiffness_blocks(P, C=np.asarray(C)[s])
                sw = pat.swap[:, s][:, None, None, :]
                K = np.where(sw, K.transpose(0, 2, 1, 3), K)
                vals[..., s0 - p0 : s.stop - p0] = K.transpose(1, 2, 0, 3)
                del P, K
            idx = pat.inv[:, p0:p1].ravel()
            for a in range(3):
                for b in range(3):
                    out[a, b] += np.bincount(idx, weights=vals[a, b].ravel(), minlength=pat.n_blocks)
            del vals, idx
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    def matrix(self, lam=None, mu=None, C=None, fmt: str = "csr") -> sp.spmatrix:
        """Full symmetric stiffness (N/mm): ``fmt`` 'bsr' (3x3 blocks), 'csr' or 'upper' (CSR triangle)."""
        return blocks_to_matrix(self.pattern, self.upper_blocks(lam, mu, C), fmt)


def blocks_to_matrix(pat: Pattern, U: np.ndarray, fmt: str = "csr") -> sp.spmatrix:
    """Symmetric matrix from its unique upper blocks: 'bsr', 'csr', or 'upper' (upper-triangular CSR)."""
    n = pat.n_dofs
    if fmt == "upper":
        Ub = sp.bsr_matrix((U, pat.cols.astype(pat.indices.dtype), pat.upper_indptr), shape=(n, n))
        return sp.triu(Ub.tocsr(), format="csr")
    data = np.concatenate([U, U[pat.strict].transpose(0, 2, 1)])[pat.perm]
    K = sp.bsr_matrix((data, pat.indices, pat.indptr), shape=(n, n))
    if fmt == "bsr":
        return K
    return K.tocsr() if fmt == "csr" else K.asformat(fmt)
