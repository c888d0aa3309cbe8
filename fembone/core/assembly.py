"""Vectorised assembly of the global stiffness of tet4/tet10 linear elasticity. Units: N/mm.

Element stiffness (Zienkiewicz & Taylor vol. 1, ch. 6; Hughes, *The Finite Element
Method*, §2.7), written in index form to avoid the 6 x 3n B matrix:

    K_e[i a, j b] = sum_q w_q |J_q| sum_cd C_acbd dN_i/dx_c dN_j/dx_d
                  = sum_cd C_acbd P_icjd,    P_icjd = sum_q g_qic g_qjd,

with g = dN/dx * sqrt(w |J|) stored once per mesh (:class:`ElementGeometry`).  For an
isotropic material this collapses to lambda P_iajb + mu (delta_ab sum_c P_icjc + P_ibja).
For straight-sided (affine) elements J is constant, dN/dx = dN/dxi J^-1, and

    P_icjd = det J sum_ab M_iajb Jinv_ca Jinv_db,   M_iajb = sum_q w_q dN_i/dxi_a dN_j/dxi_b,

with M the same for every element: the pair products of all affine elements come from one
matrix product (npair, 9) x (9, 9 ne) instead of a loop over quadrature points (the rule
is exact for the affine stiffness, so both paths agree to round-off).  Curved tet10 take
the quadrature path.  The sparsity pattern is built once per mesh on 3x3 node blocks of
the upper triangle; assembly is then nine ``np.bincount`` calls per pass over the
elements, and a change of material values (the parametric-study case) reuses geometry,
affine data and pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fembone.core.mesh import Mesh
from fembone.core.materials import VOIGT

CHUNK = 8192  # elements per batch: bounds the memory of temporary element blocks
SCATTER_CHUNK = 1 << 20  # blocks per batch when the CSR is written from the blocks
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


#: mid-edge nodes this close (relative to the element size) to their edge's midpoint make a tet10 affine
AFFINE_TOL = 1e-10


def affine_elements(mesh: Mesh) -> np.ndarray:
    """Mask (ne,) of elements whose map from the reference tetrahedron is affine (tet4 always;
    tet10 when every mid-edge node lies at its edge's midpoint)."""
    if mesh.order == 1:
        return np.ones(mesh.n_elements, bool)
    from fembone.core.elements import TET10_EDGES

    x = mesh.points[mesh.cells]  # (ne, 10, 3)
    mid = 0.5 * (x[:, TET10_EDGES[:, 0]] + x[:, TET10_EDGES[:, 1]])
    dev = np.abs(x[:, 4:] - mid).max(axis=(1, 2))
    size = np.abs(x[:, 1:4] - x[:, :1]).max(axis=(1, 2))
    return dev <= AFFINE_TOL * size


def reference_pair_moments(mesh: Mesh, degree: int | None = None) -> np.ndarray:
    """M (npair, 3, 3): sum_q w_q dN_i/dxi_a dN_j/dxi_b for the upper node pairs i <= j."""
    quad = mesh.element.quadrature(degree)
    g = mesh.element.grad(quad.points)  # (nq, nen, 3)
    iu, ju = np.triu_indices(g.shape[1])
    return np.einsum("q,qpa,qpb->pab", quad.weights, g[:, iu], g[:, ju])


def affine_pair_products(M: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Pair products P (npair, 3, 3, nc) of affine elements from their corner coordinates (nc, 4, 3).

    P_icjd = det J sum_ab M_iajb Jinv_ca Jinv_db with J_aj = x_{a+1, j} - x_{0, j}: one
    (npair, 9) x (9, 9 nc) matrix product.
    """
    nc = corners.shape[0]
    J = (corners[:, 1:] - corners[:, :1]).transpose(1, 2, 0)  # (a, j, e)
    Jinv, det = inv3(J)  # Jinv[j, a] = d xi_a / d x_j
    H = np.einsum("cae,dbe->abcde", Jinv, Jinv, optimize=False).reshape(9, 9 * nc)
    P = (M.reshape(len(M), 9) @ H).reshape(len(M), 3, 3, nc)
    P *= det
    # pairs (i, i): P_icid is symmetric in (c, d); the product's summation order is not,
    # so make it exact (a symmetric K bit for bit, as the quadrature path gives)
    nen = int(round((np.sqrt(8 * len(M) + 1) - 1) / 2))
    iu, ju = np.triu_indices(nen)
    d = np.flatnonzero(iu == ju)
    P[d] = 0.5 * (P[d] + P[d].transpose(0, 2, 1, 3))
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
    """Global stiffness of one mesh; geometry, affine data and pattern are computed once, then reused."""

    def __init__(self, mesh: Mesh, n_dofs: int | None = None, degree: int | None = None):
        self.mesh = mesh
        self.degree = degree
        self._geometry: ElementGeometry | None = None
        self.pattern = build_pattern(mesh.cells, mesh.n_nodes, n_dofs)
        self.affine = affine_elements(mesh)
        self.moments = reference_pair_moments(mesh, degree)

    @property
    def geometry(self) -> ElementGeometry:
        """dN/dx at the quadrature points of every element, computed on first use: affine
        elements assemble without it, so it is first made for post-processing (after the
        solver's set-up, whose peak memory it would otherwise add to)."""
        if getattr(self, "_geometry", None) is None:
            self._geometry = element_geometry(self.mesh, getattr(self, "degree", None))
        return self._geometry

    @geometry.setter
    def geometry(self, geo: ElementGeometry) -> None:
        self._geometry = geo

    @property
    def n_dofs(self) -> int:
        return self.pattern.n_dofs

    def pair_products(self, s: slice) -> np.ndarray:
        """P (npair, 3, 3, nc) of the elements in slice ``s``: one matrix product for the
        affine ones, the quadrature sum for the others (curved tet10)."""
        aff = getattr(self, "affine", None)
        aff = np.zeros(s.stop - s.start, bool) if aff is None else aff[s]
        if not aff.any():
            geo = self.geometry
            return pair_products(geo.grads[..., s], geo.wdet[:, s])
        M = getattr(self, "moments", None)
        if M is None:
            M = self.moments = reference_pair_moments(self.mesh)
        corners = self.mesh.points[self.mesh.cells[s, :4]]
        if aff.all():
            return affine_pair_products(M, corners)
        P = np.empty((len(M), 3, 3, len(aff)))
        P[..., aff] = affine_pair_products(M, corners[aff])
        cur = np.flatnonzero(~aff) + s.start
        geo = self.geometry
        P[..., ~aff] = pair_products(geo.grads[..., cur], geo.wdet[:, cur])
        return P

    def upper_blocks(self, lam=None, mu=None, C=None) -> np.ndarray:
        """Summed unique upper 3x3 blocks (nb, 3, 3), N/mm.

        Give per-element Lame parameters ``lam, mu`` (MPa, arrays (ne,)) for isotropic
        materials, or Voigt stiffnesses ``C`` (ne, 6, 6) in general.
        """
        pat = self.pattern
        ne = self.mesh.n_elements
        npair = pat.inv.shape[0]
        out = np.zeros((3, 3, pat.n_blocks))
        if C is None:
            lam, mu = np.asarray(lam, float), np.asarray(mu, float)
            # isotropic: K_ab = lam P_ab + mu P_ba + mu tr(P) delta_ab; a block stored transposed
            # (global row > column) swaps the roles of lam and mu off the diagonal
            for s0 in range(0, ne, CHUNK):
                s = slice(s0, min(s0 + CHUNK, ne))
                P = self.pair_products(s)
                sw = pat.swap[:, s]
                lo = np.where(sw, mu[s], lam[s])  # (npair, nc) coefficient of P_ab
                hi = np.where(sw, lam[s], mu[s])  # coefficient of P_ba
                tr = mu[s] * (P[:, 0, 0] + P[:, 1, 1] + P[:, 2, 2])
                idx = pat.inv[:, s].ravel()
                for a in range(3):
                    for b in range(3):
                        w = lo * P[:, a, b] + hi * P[:, b, a]
                        if a == b:
                            w += tr
                        out[a, b] += np.bincount(idx, weights=w.ravel(), minlength=pat.n_blocks)
                del P
            return np.ascontiguousarray(out.transpose(2, 0, 1))
        # general anisotropic: element blocks summed pass by pass, at most PASS_BYTES held at once
        per_pass = max(CHUNK, (PASS_BYTES // (9 * npair * 8)) // CHUNK * CHUNK)
        for p0 in range(0, ne, per_pass):
            p1 = min(p0 + per_pass, ne)
            vals = np.empty((3, 3, npair, p1 - p0))
            for s0 in range(p0, p1, CHUNK):
                s = slice(s0, min(s0 + CHUNK, p1))
                K = stiffness_blocks(self.pair_products(s), C=np.asarray(C)[s])
                sw = pat.swap[:, s][:, None, None, :]
                K = np.where(sw, K.transpose(0, 2, 1, 3), K)
                vals[..., s0 - p0 : s.stop - p0] = K.transpose(1, 2, 0, 3)
                del K
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
    if fmt == "csr":
        return blocks_to_csr(pat, U)
    data = np.concatenate([U, U[pat.strict].transpose(0, 2, 1)])[pat.perm]
    K = sp.bsr_matrix((data, pat.indices, pat.indptr), shape=(n, n))
    return K if fmt == "bsr" else K.asformat(fmt)


def blocks_to_csr(pat: Pattern, U: np.ndarray) -> sp.csr_matrix:
    """Full symmetric CSR (sorted indices) straight from the unique upper blocks U (nb, 3, 3).

    Block rows are converted a batch at a time (about SCATTER_CHUNK blocks: gather the row
    batch's blocks, transposing the mirrored ones, and let SciPy's BSR-to-CSR lay them out)
    into CSR arrays allocated once: the whole matrix is never held as blocks a second time
    (at 804k DOFs the one-go conversion held two extra copies of the values, 1.1 GB).
    """
    n = pat.n_dofs
    nnzb = len(pat.indices)
    nb = pat.n_blocks
    nbr = len(pat.indptr) - 1
    itype = np.int32 if 9 * nnzb < 2**31 - 1 and n < 2**31 - 1 else np.int64
    data = np.empty(9 * nnzb)
    indices = np.empty(9 * nnzb, itype)
    strict = np.flatnonzero(pat.strict)
    i0 = 0
    while i0 < nbr:
        i1 = int(np.searchsorted(pat.indptr, pat.indptr[i0] + SCATTER_CHUNK, side="right")) - 1
        i1 = min(max(i1, i0 + 1), nbr)
        b0, b1 = int(pat.indptr[i0]), int(pat.indptr[i1])
        src = pat.perm[b0:b1]
        up = src < nb
        blk = np.empty((b1 - b0, 3, 3))
        blk[up] = U[src[up]]
        blk[~up] = U[strict[src[~up] - nb]].transpose(0, 2, 1)
        sub = sp.bsr_matrix((blk, pat.indices[b0:b1], pat.indptr[i0 : i1 + 1] - b0), shape=(3 * (i1 - i0), n)).tocsr()
        data[9 * b0 : 9 * b1] = sub.data
        indices[9 * b0 : 9 * b1] = sub.indices
        i0 = i1
    indptr = np.empty(n + 1, itype)
    rows_per_block = np.diff(pat.indptr)
    indptr[:-1] = (9 * pat.indptr[:-1, None] + 3 * np.arange(3) * rows_per_block[:, None]).ravel()
    indptr[-1] = 9 * nnzb
    K = sp.csr_matrix((data, indices, indptr), shape=(n, n), copy=False)
    K.has_sorted_indices = True
    return K


def csr_positions(K: sp.csr_matrix, dK: sp.csr_matrix) -> np.ndarray | None:
    """Where each stored entry of ``dK`` sits in ``K.data`` (None if one is missing): adding a
    matrix of a sub-pattern into K's values without a sparse sum (indices sorted in both)."""
    pos = None
    if K.has_sorted_indices and dK.has_sorted_indices and dK.shape[0] <= K.shape[0]:
        ncol = np.int64(K.shape[1])
        kk = np.repeat(np.arange(K.shape[0], dtype=np.int64), np.diff(K.indptr)) * ncol + K.indices
        kd = np.repeat(np.arange(dK.shape[0], dtype=np.int64), np.diff(dK.indptr)) * ncol + dK.indices
        p = np.searchsorted(kk, kd)
        p[p >= len(kk)] = 0
        if np.array_equal(kk[p], kd):
            pos = p.astype(np.int32 if K.nnz < 2**31 - 1 else np.int64)
    return pos
