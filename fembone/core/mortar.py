"""Dual mortar tie of two coincident flat faces with non-matching meshes (tri3 or tri6). Units: mm.

The slave face's nodal displacements are eliminated, d_s = D^-1 M d_m, through the one
linear-constraint layer (:mod:`fembone.core.constraints`).  With the dual (biorthogonal)
Lagrange multiplier basis Phi_j of Wohlmuth (2000, SIAM J. Numer. Anal. 38:989), the weak
continuity condition  int Phi_j (u_s - u_m) dA = 0  gives a diagonal D_jj = int Phi_j N_j dA
and M_jk = int Phi_j N_mk dA, so every slave node follows a few master nodes and T stays
sparse.  Because sum_j Phi_j = 1, a constant traction does the same work on both sides, and
because the slave basis reproduces linear fields, so does the tie: the patch test is passed
exactly (a node-to-surface tie passes neither in general).  The integrals are taken
segment to segment (Puso & Laursen 2004, Comput. Methods Appl. Mech. Eng. 193:601): every
slave triangle is clipped against the master triangles it overlaps (Sutherland & Hodgman
1974), each convex overlap polygon is split into a fan of triangles and integrated with the
degree-4 Dunavant rule, exact for the products of quadratic functions on straight-sided
(affine) elements.

tri6 corners have a zero integral (int N_c dA = 0), so D would be singular; the slave basis is
first transformed (Popp, Wohlmuth, Gee & Wall 2012, SIAM J. Sci. Comput. 34:B421):
N~_c = N_c + a (N_m1 + N_m2) over the corner's two mid-edge nodes, N~_m = (1 - 2a) N_m, with
a = 1/5, which keeps the partition of unity and linear reproduction; the nodal values follow
d_m = (1 - 2a) d~_m + a (d~_c1 + d~_c2), d_c = d~_c.

Outlines that do not coincide: on a slave element only partly over the master, the dual basis
is built on the overlapped part (Cichosz & Bischoff 2011, Comput. Methods Appl. Mech. Eng.
200:1317), which keeps linear fields (rigid rotations included) exact; elements covered less
than :data:`MIN_COVER` are left out, and slave nodes left with no overlap stay free (that part
of the slave face is a free surface beyond the master's outline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from fembone.core.elements import TRI6_EDGES, face_element, tri_quadrature
from fembone.core.errors import InputError

#: tri6 basis transformation parameter a (Popp et al. 2012)
ALPHA_TRI6 = 0.2
#: slave elements overlapped by the master over less than this share of their area are left out
MIN_COVER = 0.5
#: a slave node is tied when its D_jj is at least this share of its value on a fully covered support
MIN_NODE_WEIGHT = 0.05
#: overlap polygons have at most 6 vertices (triangle clipped by a triangle); room for rounding
_MAXV = 9


@dataclass
class MortarTie:
    """Rows d_s = sum coefs * d_master (same for x, y, z) of the tied slave nodes."""

    nodes: np.ndarray  # (n,) tied slave node ids
    masters: np.ndarray  # (n, k) node ids (master nodes, or untied slave nodes for tri6 edges)
    coefs: np.ndarray  # (n, k)
    free: np.ndarray  # slave-face node ids left untied (beyond the master's outline)
    overlap_area: float  # mm^2 of slave face tied
    slave_area: float  # mm^2
    max_coef: float


def straighten_faces(points: np.ndarray, faces: np.ndarray) -> float:
    """Move the mid-edge nodes of tri6 ``faces`` to their edge midpoints (in place); the largest shift (mm).

    A tri6 face of a flat surface whose mid-edge nodes gmsh placed off the chords (curved
    outlines, or a non-affine parametrisation) has a non-affine map; the segment-to-segment
    integration needs straight sides.
    """
    if faces.shape[1] != 6:
        return 0.0
    mids = faces[:, 3:].ravel()
    ends = faces[:, TRI6_EDGES].reshape(-1, 2)
    target = 0.5 * (points[ends[:, 0]] + points[ends[:, 1]])
    shift = float(np.linalg.norm(points[mids] - target, axis=1).max()) if len(mids) else 0.0
    points[mids] = target
    return shift


def _frame(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = points[faces[:, :3]]
    n = np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0]).sum(axis=0)
    n /= np.linalg.norm(n)
    e1 = np.cross(n, np.eye(3)[int(np.argmin(np.abs(n)))])
    e1 /= np.linalg.norm(e1)
    return n, e1, np.cross(n, e1)


def _ccw(c: np.ndarray) -> np.ndarray:
    """Corner triangles (n, 3, 2) in counter-clockwise order (for clipping only)."""
    a = _cross2(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
    out = c.copy()
    out[a < 0] = c[a < 0][:, [0, 2, 1]]
    return out


def _cross2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def clip_triangles(subject: np.ndarray, clip: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Convex polygons subject_i ∩ clip_i of counter-clockwise triangle pairs (Sutherland-Hodgman).

    Returns vertices (P, _MAXV, 2) and counts (P,); vectorised over pairs, short loops over
    the three clip edges and the polygon's vertex slots.
    """
    P = len(subject)
    poly = np.zeros((P, _MAXV, 2))
    poly[:, :3] = subject
    cnt = np.full(P, 3)
    rows = np.arange(P)
    for k in range(3):
        a, b = clip[:, k], clip[:, (k + 1) % 3]
        ab = b - a
        side = _cross2(ab[:, None, :], poly - a[:, None, :])  # > 0 inside
        inside = side >= -tol
        new = np.zeros_like(poly)
        ncnt = np.zeros(P, int)
        for i in range(_MAXV):
            act = i < cnt
            if not act.any():
                break
            j = np.where(i == 0, cnt - 1, i - 1)  # previous vertex
            cur, prev = poly[:, i], poly[rows, j]
            ci, pi = inside[:, i], inside[rows, j]
            sc, sp_ = side[:, i], side[rows, j]
            cross_edge = act & (ci != pi)
            den = np.where(cross_edge, sp_ - sc, 1.0)
            t = np.where(cross_edge, sp_ / den, 0.0)
            x = prev + t[:, None] * (cur - prev)
            m = cross_edge & (ncnt < _MAXV)
            new[rows[m], ncnt[m]] = x[m]
            ncnt += m
            m = act & ci & (ncnt < _MAXV)
            new[rows[m], ncnt[m]] = cur[m]
            ncnt += m
        poly, cnt = new, ncnt
    return poly, cnt


def _bary(c: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Reference coordinates (xi, eta) of points x (n, q, 2) in triangles with corners c (n, 3, 2)."""
    J = np.stack([c[:, 1] - c[:, 0], c[:, 2] - c[:, 0]], axis=2)  # (n, 2, 2)
    return np.einsum("nij,nqj->nqi", np.linalg.inv(J), x - c[:, None, 0])


def _transform(nen: int, alpha: float) -> np.ndarray:
    """Tr with N~ = Tr N (tri6), identity for tri3."""
    Tr = np.eye(nen)
    if nen == 6:
        for m, (i, j) in enumerate(TRI6_EDGES):
            Tr[i, 3 + m] = Tr[j, 3 + m] = alpha
            Tr[3 + m, 3 + m] = 1.0 - 2.0 * alpha
    return Tr


def flat_mortar(points: np.ndarray, slave: np.ndarray, master: np.ndarray, alpha: float = ALPHA_TRI6) -> MortarTie:
    """Dual mortar rows tying the slave face's nodes to the master face (coincident flat faces)."""
    n, e1, e2 = _frame(points, master)
    allc = np.concatenate([slave[:, :3].ravel(), master[:, :3].ravel()])
    size = float(np.ptp(points[allc], axis=0).max())
    z = points[allc] @ n
    if np.ptp(z) > 1e-6 * size:
        raise InputError(f"tied faces are not flat and coincident (out of plane by {np.ptp(z):.3g} mm)")
    for f in (slave, master):
        if f.shape[1] == 6 and straighten_faces(points.copy(), f) > 1e-9 * size:
            raise InputError("tied tri6 faces have curved edges; straighten them first (straighten_faces)")
    xy = lambda p: np.stack([p @ e1, p @ e2], axis=-1)
    cs, cm = xy(points[slave[:, :3]]), xy(points[master[:, :3]])  # (nf, 3, 2), original node order
    fs, fm = face_element(slave.shape[1]), face_element(master.shape[1])
    area_s = 0.5 * np.abs(_cross2(cs[:, 1] - cs[:, 0], cs[:, 2] - cs[:, 0]))
    # candidate pairs: centroids closer than the two largest circumradii
    rs = np.linalg.norm(cs - cs.mean(axis=1, keepdims=True), axis=2).max()
    rm = np.linalg.norm(cm - cm.mean(axis=1, keepdims=True), axis=2).max()
    pairs = cKDTree(cs.mean(axis=1)).sparse_distance_matrix(cKDTree(cm.mean(axis=1)), rs + rm, output_type="ndarray")
    ps, pm = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
    poly, cnt = clip_triangles(_ccw(cs)[ps], _ccw(cm)[pm], tol=1e-12 * size)
    # fan triangles (0, t, t+1) of each polygon, with the degree-4 rule
    q = tri_quadrature(4)
    t_idx = np.arange(1, _MAXV - 1)
    v0 = np.broadcast_to(poly[:, None, 0], (len(ps), len(t_idx), 2))
    v1, v2 = poly[:, t_idx], poly[:, t_idx + 1]
    a2 = _cross2(v1 - v0, v2 - v0)  # twice the signed area
    ok = (t_idx[None, :] + 1 < cnt[:, None]) & (a2 > 0)
    pi, ti = np.nonzero(ok)
    x = (v0[pi, ti, None] + q.points[None, :, 0, None] * (v1[pi, ti] - v0[pi, ti])[:, None]
         + q.points[None, :, 1, None] * (v2[pi, ti] - v0[pi, ti])[:, None])  # (nt, nq, 2)
    w = a2[pi, ti, None] * q.weights[None, :]  # (nt, nq) mm^2
    es, em = ps[pi], pm[pi]
    Ns = fs.shape(_bary(cs[es], x).reshape(-1, 2)).reshape(len(es), len(q.weights), -1)
    Nm = fm.shape(_bary(cm[em], x).reshape(-1, 2)).reshape(len(em), len(q.weights), -1)
    Tr = _transform(slave.shape[1], alpha)
    Nt = Ns @ Tr.T  # transformed slave basis N~ (nt, nq, ns)
    # element matrices on the overlapped part: Me = int N~ N~^T, cover = overlap / area
    ns = slave.shape[1]
    Me = np.zeros((len(slave), ns, ns))
    np.add.at(Me, es, np.einsum("tq,tqi,tqj->tij", w, Nt, Nt))
    cover = np.bincount(es, weights=w.sum(axis=1), minlength=len(slave)) / area_s
    use = cover >= MIN_COVER
    De = Me.sum(axis=2)  # int N~_j over the overlap
    De[~use] = 0.0
    De[De < 0] = 0.0  # a transformed corner function with a negative integral on a sliver: not used there
    A = np.zeros_like(Me)
    A[use] = De[use][:, :, None] * np.linalg.inv(Me[use])  # Phi = A N~,  A = De Me^-1
    Phi = np.einsum("tij,tqj->tqi", A[es], Nt)
    # assemble D (diagonal) and M over slave face nodes x master face nodes
    snodes, sinv = np.unique(slave, return_inverse=True)
    sloc = sinv.reshape(slave.shape)
    mnodes, minv = np.unique(master, return_inverse=True)
    mloc = minv.reshape(master.shape)
    D = np.bincount(sloc.ravel(), weights=De.ravel(), minlength=len(snodes))
    Mc = np.einsum("tq,tqi,tqk->tik", w, Phi, Nm)
    rows = np.broadcast_to(sloc[es][:, :, None], Mc.shape).ravel()
    cols = np.broadcast_to(mloc[em][:, None, :], Mc.shape).ravel()
    M = sp.csr_matrix((Mc.ravel(), (rows, cols)), shape=(len(snodes), len(mnodes)))
    # full-support reference value of D_jj: int N~_j over the whole slave elements
    Nq = fs.shape(q.points) @ Tr.T  # (nq, ns)
    full = np.bincount(sloc.ravel(), weights=(2 * area_s[:, None] * (q.weights @ Nq)[None, :]).ravel(),
                       minlength=len(snodes))
    tied = D >= MIN_NODE_WEIGHT * full
    P = sp.diags(np.where(tied, 1.0 / np.where(tied, D, 1.0), 0.0)) @ M  # d~_s = D^-1 M d_m (tied rows)
    # back to nodal values, d = Tr^T d~ per slave element; columns [master nodes, slave nodes]:
    # an untied slave node is its own master (a tied tri6 mid-edge node may lean on it)
    X = sp.hstack([P, sp.diags((~tied).astype(float))]).tocsr()
    if ns == 6:
        mid = sloc[:, 3:].ravel()
        ends = sloc[:, TRI6_EDGES].reshape(-1, 2)
        pair = np.unique(np.column_stack([np.repeat(mid, 2), ends.ravel()]), axis=0)
        is_mid = np.zeros(len(snodes), bool)
        is_mid[mid] = True
        Q = sp.diags(np.where(is_mid, 1.0 - 2.0 * alpha, 1.0)) + sp.csr_matrix(
            (np.full(len(pair), alpha), (pair[:, 0], pair[:, 1])), shape=(len(snodes),) * 2)
        X = (Q.tocsr() @ X).tocsr()
    slave_is_tied = tied
    R = X[np.flatnonzero(slave_is_tied)].tocsr()
    R.eliminate_zeros()
    gid = np.concatenate([mnodes, snodes])
    k = max(int(np.diff(R.indptr).max()) if R.nnz else 1, 1)
    nr = R.shape[0]
    masters = np.zeros((nr, k), np.int64)
    coefs = np.zeros((nr, k))
    lens = np.diff(R.indptr)
    pos = np.arange(R.nnz) - np.repeat(R.indptr[:-1], lens)
    r_of = np.repeat(np.arange(nr), lens)
    masters[r_of, pos] = gid[R.indices]
    coefs[r_of, pos] = R.data
    first = masters[:, :1].copy()
    masters = np.where(np.arange(k)[None, :] < lens[:, None], masters, first)  # pads: coefficient 0
    return MortarTie(snodes[slave_is_tied], masters, coefs, snodes[~slave_is_tied],
                     float((cover * area_s)[use].sum()), float(area_s.sum()), float(np.abs(coefs).max()))
