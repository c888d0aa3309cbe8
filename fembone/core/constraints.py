"""One linear-constraint layer, u = T q + g, for every kinematic condition.

Degrees of freedom: mesh node ``i`` owns DOFs ``3i .. 3i+2`` (ux, uy, uz, mm); extra
6-DOF nodes (coupling reference points, beam nodes) follow, with ``ux, uy, uz, rx, ry,
rz`` (mm, rad).  :class:`DofLayout` says where each node's DOFs are.

Every condition is written as "dependent DOF = sum of coefficients x independent DOFs +
offset": a fixed support (no independent DOFs), a prescribed displacement (offset), a
rigid (kinematic) coupling u_i = u_ref + theta_ref x (x_i - x_ref), a distributing
coupling (reference motion = weighted least-squares fit of the surface, RBE3-like), and
the embedding of beam nodes in host tetrahedra (shape-function interpolation).
:meth:`ConstraintSet.build` turns them into the sparse ``T``, the offset ``g`` and the mask
of dependent DOFs; :func:`reduce_system` forms the symmetric positive definite

    (T^T K T + I_dep) q = T^T (f - K g)

(the identity on dependent DOFs keeps the size and 3x3 block structure).  Before any
solve, :func:`free_rigid_body_modes` reports rigid-body motions the constraints leave
free, per connected body, so an under-constrained model is an error, never garbage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from fembone.core.errors import InputError, ModelError

AXES = "xyz"


@dataclass
class DofLayout:
    """DOF numbering of a model: 3 per mesh node, then 6 per extra node. Coordinates in mm."""

    n_mesh_nodes: int
    extra_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def n_extra(self) -> int:
        return len(self.extra_points)

    @property
    def n_dofs(self) -> int:
        return 3 * self.n_mesh_nodes + 6 * self.n_extra

    def extra_dofs(self, j) -> np.ndarray:
        """(len(j), 6) DOFs of extra nodes ``j``."""
        j = np.atleast_1d(j)
        return 3 * self.n_mesh_nodes + 6 * j[:, None] + np.arange(6)

    def add_extra(self, points: np.ndarray) -> np.ndarray:
        """Append extra 6-DOF nodes; returns their indices."""
        points = np.atleast_2d(np.asarray(points, float))
        start = self.n_extra
        self.extra_points = np.vstack([self.extra_points, points])
        return np.arange(start, start + len(points))

    def rigid_modes(self, mesh_points: np.ndarray, center: np.ndarray | None = None, scale: float = 1.0) -> np.ndarray:
        """(n_dofs, 6) rigid-body motions: 3 translations, 3 rotations (scaled by ``scale`` mm)."""
        pts = np.vstack([mesh_points, self.extra_points])
        c = pts.mean(axis=0) if center is None else center
        R = np.zeros((self.n_dofs, 6))
        nn = self.n_mesh_nodes
        d = (pts - c) / scale
        for k in range(3):
            R[np.arange(nn) * 3 + k, k] = 1.0
        # rotation about axis k: u = e_k x d
        for k in range(3):
            e = np.zeros(3)
            e[k] = 1.0
            u = np.cross(e, d)
            R[: 3 * nn, 3 + k] = u[:nn].ravel()
        if self.n_extra:
            dofs = self.extra_dofs(np.arange(self.n_extra))
            ue = d[nn:]
            for k in range(3):
                R[dofs[:, k], k] = 1.0
                e = np.zeros(3)
                e[k] = 1.0
                R[dofs[:, :3], 3 + k] = np.cross(e, ue)
                R[dofs[:, 3 + k], 3 + k] = 1.0 / scale
        return R


@dataclass
class Reduction:
    """u = T q + g; ``dependent`` marks DOFs that are not independent unknowns."""

    T: sp.csr_matrix
    g: np.ndarray
    dependent: np.ndarray  # bool (n,)
    fixed: np.ndarray  # bool (n,): DOFs tied to ground (where reactions are reported)
    T_react: sp.csr_matrix | None = None  # ties with supports kept: maps residuals onto supports

    def reactions(self, residual: np.ndarray) -> np.ndarray:
        """Support reactions (full DOF vector, zero off the supports) from r = K u - f."""
        r = residual if self.T_react is None else self.T_react.T @ residual
        return np.where(self.fixed, r, 0.0)

    @property
    def n_dofs(self) -> int:
        return len(self.g)

    def expand(self, q: np.ndarray) -> np.ndarray:
        """Full displacement vector(s) u = T q + g."""
        if q.ndim == 2:
            return self.T @ q + self.g[:, None]
        return self.T @ q + self.g

    #: True when T only drops DOFs (no ties): the reduction is then a cheap masking
    is_selection: bool = True
    #: one-level tie matrix (slave rows only), to carry other prescribed values through ties
    T0: sp.csr_matrix | None = None

    def offset(self, dofs: np.ndarray, values: np.ndarray) -> np.ndarray:
        """g for other values of prescribed DOFs (e.g. one load case's platen displacement, mm).

        g is affine in the prescribed values: the change d at ``dofs`` is carried to the DOFs
        tied to them, level by level (g' = g + d + T0 d + T0 T0 d + ...).
        """
        dofs = np.asarray(dofs, np.int64).ravel()
        if not self.fixed[dofs].all():
            raise ModelError(f"DOF {int(dofs[~self.fixed[dofs]][0])} is not prescribed: give it a support first")
        d = np.zeros(self.n_dofs)
        d[dofs] = np.asarray(values, float) - self.g[dofs]
        out = d.copy()
        if self.T0 is not None:
            for _ in range(10):
                nxt = self.T0 @ out + d
                if np.array_equal(nxt, out):
                    break
                out = nxt
        return self.g + out


class ConstraintSet:
    """Collects fixed DOFs and linear ties, then builds the reduction ``u = T q + g``."""

    def __init__(self, layout: DofLayout):
        self.layout = layout
        self._fixed_dofs: list[np.ndarray] = []
        self._fixed_vals: list[np.ndarray] = []
        self._ties: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._labels: list[tuple[str, np.ndarray]] = []

    # -- adding conditions -------------------------------------------------------------
    def fix(self, dofs, values=0.0, label: str = "fixed") -> None:
        """Prescribe ``dofs`` (displacement ``values``, mm; 0 = fixed support)."""
        dofs = np.asarray(dofs, np.int64).ravel()
        vals = np.broadcast_to(np.asarray(values, float), dofs.shape).copy()
        self._fixed_dofs.append(dofs)
        self._fixed_vals.append(vals)
        self._labels.append((label, dofs))

    def tie(self, slaves, masters, coefs, offset=0.0, label: str = "tie") -> None:
        """u[slaves[k]] = sum_j coefs[k, j] u[masters[k, j]] + offset[k]."""
        slaves = np.asarray(slaves, np.int64).ravel()
        masters = np.asarray(masters, np.int64).reshape(len(slaves), -1)
        coefs = np.asarray(coefs, float).reshape(masters.shape)
        off = np.broadcast_to(np.asarray(offset, float), slaves.shape).copy()
        self._ties.append((slaves, masters, coefs, off))
        self._labels.append((label, slaves))

    def rigid_coupling(self, nodes: np.ndarray, ref: int, points: np.ndarray, label: str = "rigid coupling") -> None:
        """Kinematic coupling: mesh ``nodes`` follow extra node ``ref`` rigidly.

        u_i = u_r + theta_r x (x_i - x_r)  (small rotations).
        """
        nodes = np.unique(np.asarray(nodes, np.int64))
        rd = self.layout.extra_dofs(ref)[0]
        d = points[nodes] - self.layout.extra_points[ref]
        n = len(nodes)
        # (theta x d)_x = ty dz - tz dy ; _y = tz dx - tx dz ; _z = tx dy - ty dx
        rot = np.zeros((n, 3, 3))
        rot[:, 0, 1], rot[:, 0, 2] = d[:, 2], -d[:, 1]
        rot[:, 1, 0], rot[:, 1, 2] = -d[:, 2], d[:, 0]
        rot[:, 2, 0], rot[:, 2, 1] = d[:, 1], -d[:, 0]
        slaves = (3 * nodes[:, None] + np.arange(3)).ravel()
        masters = np.empty((n, 3, 4), np.int64)
        coefs = np.empty((n, 3, 4))
        for a in range(3):
            masters[:, a, 0] = rd[a]
            coefs[:, a, 0] = 1.0
            masters[:, a, 1:] = rd[3:]
            coefs[:, a, 1:] = rot[:, a, :]
        self.tie(slaves, masters.reshape(-1, 4), coefs.reshape(-1, 4), label=label)

    def distributing_coupling(
        self, nodes: np.ndarray, weights: np.ndarray, ref: int, points: np.ndarray, label: str = "distributing coupling"
    ) -> None:
        """Reference node moves with the weighted least-squares rigid fit of ``nodes``.

        With weights w_i (sum 1), centroid c and r_i = x_i - c: translation ubar = sum w_i u_i,
        rotation theta = A^-1 sum w_i r_i x u_i, A = sum w_i (|r_i|^2 I - r_i r_i^T);
        u_ref = ubar + theta x (x_ref - c).  A force F and moment M on the reference become
        nodal forces w_i F + w_i (A^-1 M') x r_i: the resultants are transmitted exactly and
        the surface is not stiffened (MSC Nastran RBE3; Abaqus *DISTRIBUTING COUPLING).
        """
        nodes = np.asarray(nodes, np.int64)
        w = np.asarray(weights, float)
        w = w / w.sum()
        x = points[nodes]
        c = w @ x
        r = x - c
        A = np.einsum("i,ij,ik->jk", w, r, r)
        A = np.trace(A) * np.eye(3) - A
        if np.linalg.cond(A) > 1e12:
            raise InputError(f"{label}: the coupled nodes are collinear; rotations cannot be distributed")
        Ainv = np.linalg.inv(A)
        # theta = Ainv sum_i w_i [r_i]_x u_i, with [r]_x the cross-product matrix
        rx = np.zeros((len(nodes), 3, 3))
        rx[:, 0, 1], rx[:, 0, 2] = -r[:, 2], r[:, 1]
        rx[:, 1, 0], rx[:, 1, 2] = r[:, 2], -r[:, 0]
        rx[:, 2, 0], rx[:, 2, 1] = -r[:, 1], r[:, 0]
        Th = np.einsum("ab,i,ibc->iac", Ainv, w, rx)  # d theta_a / d u_ic
        dref = self.layout.extra_points[ref] - c
        # (theta x dref)_a = sum_b eps_abk theta_b dref_k  -> matrix -[dref]_x theta
        dx = np.array([[0, -dref[2], dref[1]], [dref[2], 0, -dref[0]], [-dref[1], dref[0], 0]])
        Tu = w[:, None, None] * np.eye(3) - np.einsum("ab,ibc->iac", dx, Th)  # d u_ref_a / d u_ic
        rd = self.layout.extra_dofs(ref)[0]
        mdofs = (3 * nodes[:, None] + np.arange(3)).ravel()  # (3n,)
        coefs = np.vstack([Tu.transpose(1, 0, 2).reshape(3, -1), Th.transpose(1, 0, 2).reshape(3, -1)])
        self.tie(rd, np.broadcast_to(mdofs, (6, len(mdofs))), coefs, label=label)

    # -- building ----------------------------------------------------------------------
    def build(self) -> Reduction:
        n = self.layout.n_dofs
        dep = np.zeros(n, bool)
        fixed = np.zeros(n, bool)
        g0 = np.zeros(n)
        owner = np.full(n, -1)
        for k, (label, dofs) in enumerate(self._labels):
            if dofs.size and (dofs.min() < 0 or dofs.max() >= n):
                raise InputError(f"{label}: DOF index out of range")
            twice = dofs[owner[dofs] >= 0]
            if twice.size or len(np.unique(dofs)) != len(dofs):
                d = int(twice[0]) if twice.size else int(np.flatnonzero(np.bincount(dofs) > 1)[0])
                other = self._labels[owner[d]][0] if owner[d] >= 0 else label
                raise InputError(
                    f"{label}: {self._describe_dof(d)} is already constrained by {other}; "
                    "a DOF can carry one condition only"
                )
            owner[dofs] = k
        for dofs, vals in zip(self._fixed_dofs, self._fixed_vals, strict=True):
            dep[dofs] = True
            fixed[dofs] = True
            g0[dofs] = vals
        for slaves, masters, coefs, off in self._ties:
            dep[slaves] = True
            g0[slaves] = off
        free = ~dep
        rows = [np.flatnonzero(free)]
        cols = [rows[0]]
        data = [np.ones(len(rows[0]))]
        selection = True
        for slaves, masters, coefs, off in self._ties:
            selection = False
            rows.append(np.repeat(slaves, masters.shape[1]))
            cols.append(masters.ravel())
            data.append(coefs.ravel())
        T0 = sp.csr_matrix(
            (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
        T, g = T0, g0.copy()
        for _ in range(10):  # resolve ties whose masters are themselves dependent
            bad = dep[T.indices] & (T.data != 0)
            if not bad.any():
                break
            T = (T0 @ T).tocsr()
            g = T0 @ g + g0
            T.eliminate_zeros()
        else:
            raise InputError("constraints form a cycle (a DOF depends on itself)")
        T.sum_duplicates()
        red = Reduction(T.tocsr(), g, dep, fixed)
        red.is_selection = selection
        red.T0 = None if selection else T0.tocsr()
        if not selection:
            # the same ties with supported DOFs kept as unknowns: its transpose carries constraint
            # forces of ties onto the supports they lean on (reactions = R^T (K u - f) there)
            Tr0 = T0 + sp.diags(fixed.astype(float), format="csr")
            slave = dep & ~fixed
            R = Tr0
            for _ in range(10):
                if not (slave[R.indices] & (R.data != 0)).any():
                    break
                R = (Tr0 @ R).tocsr()
                R.eliminate_zeros()
            red.T_react = R.tocsr()
        self._T0, self._g0 = T0, g0
        return red

    def _describe_dof(self, d: int) -> str:
        nn = self.layout.n_mesh_nodes
        if d < 3 * nn:
            return f"node {d // 3} DOF u{AXES[d % 3]}"
        j, k = divmod(d - 3 * nn, 6)
        return f"reference node {j} DOF {['ux', 'uy', 'uz', 'rx', 'ry', 'rz'][k]}"


def reduce_system(K: sp.spmatrix, red: Reduction, f: np.ndarray | None = None, fmt: str = "csr"):
    """K_q = T^T K T + I_dep (CSR; ``fmt='upper'`` gives the upper triangle), f_q = T^T (f - K g)."""
    Idep = sp.diags(red.dependent.astype(float), format="csr")
    if red.is_selection:
        Kq = _mask_dependent(K, red.dependent)
        if Kq is None:
            Dm = sp.diags((~red.dependent).astype(float), format="csr")
            Kq = (Dm @ K @ Dm + Idep).tocsr()
    else:
        Kq = (red.T.T @ K @ red.T + Idep).tocsr()
    if fmt == "upper":
        Kq = sp.triu(Kq, format="csr")
    if f is None:
        return Kq
    Kg = K @ red.g if np.any(red.g) else 0.0
    if f.ndim == 2 and np.ndim(Kg):
        Kg = Kg[:, None]
    fq = red.T.T @ (f - Kg)
    return Kq, fq


def _mask_dependent(K: sp.spmatrix, dep: np.ndarray) -> sp.csr_matrix | None:
    """D K D + I_dep for a pure selection, in one pass over K's CSR arrays (no sparse products).

    Rows and columns of dependent DOFs become zero except a unit diagonal; the sparsity
    pattern is kept.  ``None`` when a dependent DOF has no stored diagonal entry.
    """
    K = K.tocsr()
    n = K.shape[0]
    counts = np.diff(K.indptr)
    rows = np.repeat(np.arange(n, dtype=K.indices.dtype), counts)
    diag = rows == K.indices
    if np.count_nonzero(diag & dep[rows]) != np.count_nonzero(dep):
        return None
    drop = dep[rows]
    drop |= dep[K.indices]
    data = np.where(drop, 0.0, K.data)
    data[diag & dep[rows]] = 1.0
    return sp.csr_matrix((data, K.indices.copy(), K.indptr.copy()), shape=K.shape)


def free_rigid_body_modes(
    layout: DofLayout, mesh_points: np.ndarray, cells: np.ndarray, cset: ConstraintSet, red: Reduction,
    extra_edges: np.ndarray | None = None, grounded: np.ndarray | None = None,
) -> list[str]:
    """Descriptions of rigid-body motions the constraints leave free, per connected body.

    A rigid motion R a is admissible when it satisfies the homogeneous constraints:
    (T0 - I) R a = 0 on the dependent rows.  Each body (connected through elements,
    ``extra_edges`` and ties) is checked on its own.
    """
    nn = layout.n_mesh_nodes
    nnode = nn + layout.n_extra
    # node graph: element corners, extra edges, ties
    c = cells[:, :4]
    r = np.concatenate([c[:, 0], c[:, 0], c[:, 0]])
    s = np.concatenate([c[:, 1], c[:, 2], c[:, 3]])
    if cells.shape[1] > 4:  # mid-edge nodes join their corners
        r = np.concatenate([r, np.repeat(c[:, 0], cells.shape[1] - 4)])
        s = np.concatenate([s, cells[:, 4:].ravel()])
    dof_node = np.concatenate([np.arange(3 * nn) // 3, nn + np.arange(6 * layout.n_extra) // 6])
    T0 = cset._T0.tocoo()
    link = T0.row != T0.col
    r = np.concatenate([r, dof_node[T0.row[link]]])
    s = np.concatenate([s, dof_node[T0.col[link]]])
    if extra_edges is not None and len(extra_edges):
        r = np.concatenate([r, extra_edges[:, 0]])
        s = np.concatenate([s, extra_edges[:, 1]])
    G = sp.csr_matrix((np.ones(len(r)), (r, s)), shape=(nnode, nnode))
    ncomp, labels = connected_components(G, directed=False)
    pts = np.vstack([mesh_points, layout.extra_points])
    scale = float(np.ptp(pts, axis=0).max()) or 1.0
    E_op = (cset._T0 - sp.eye(layout.n_dofs, format="csr"))[np.flatnonzero(red.dependent)]
    if grounded is not None and len(grounded):  # DOFs on springs to ground (elastic foundations)
        E_op = sp.vstack([E_op, sp.eye(layout.n_dofs, format="csr")[np.asarray(grounded)]]).tocsr()
    messages = []
    for comp in range(ncomp):
        members = labels == comp
        dof_mask = members[dof_node]
        center = pts[members].mean(axis=0)
        R = layout.rigid_modes(mesh_points, center=center, scale=scale)
        R[~dof_mask] = 0.0
        E = E_op @ R
        M = E.T @ E
        w, V = np.linalg.eigh(M)
        null = V[:, w < 1e-10 * max(1.0, np.abs(np.diag(M)).max() if M.size else 1.0)]
        if null.shape[1] == 0:
            continue
        names = _name_modes(null)
        where = f"body {comp + 1} of {ncomp} ({members.sum()} nodes)" if ncomp > 1 else "the model"
        messages.append(f"{where} is free to move: {', '.join(names)}")
    return messages


def _name_modes(null: np.ndarray) -> list[str]:
    labels = [f"translation {a}" for a in AXES] + [f"rotation about {a}" for a in AXES]
    # the null space basis is arbitrary: name the coordinate directions it contains
    P = null @ null.T
    names = [labels[k] for k in range(6) if P[k, k] > 0.5]
    if len(names) < null.shape[1]:
        names.append(f"{null.shape[1] - len(names)} combined motion(s)")
    return names


def check_constrained(layout, mesh_points, cells, cset, red, extra_edges=None, grounded=None) -> None:
    """Raise :class:`ModelError` listing free rigid-body motions, if any."""
    msgs = free_rigid_body_modes(layout, mesh_points, cells, cset, red, extra_edges, grounded)
    if msgs:
        raise ModelError("under-constrained: " + "; ".join(msgs) + " (add supports or constraints)")
