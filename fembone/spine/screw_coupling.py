"""Screw-bone coupling over the screw's cylindrical surface. Units: mm, N, MPa, N mm.

A beam embedded along a line (:func:`fembone.spine.screws.embed` with ``coupling: line``)
hands its load to the bone at points of a line: in 3D elasticity a line load has unbounded
energy (the displacement under it grows like log(1/r)), so the load transfer and the
stiffness keep changing as the mesh is refined.  Here each beam node is tied instead to a
*ring* of points on the screw's real cylindrical surface (radius = thread radius), in the
plane normal to the screw axis, distributing-coupling style (MSC Nastran RBE3; Abaqus
*DISTRIBUTING COUPLING):

    u_s = sum_k w_k u(p_k) + theta_s x (x_s - c),
    theta_s = A^-1 sum_k w_k r_k x u(p_k),   A = sum_k w_k (|r_k|^2 I - r_k r_k^T),

with r_k = p_k - c, c = sum_k w_k p_k, uniform weights w_k over the ring points that lie in
the bone and u(p_k) interpolated from the host element's shape functions.  All six DOFs of
the beam node follow the ring: translations, spin about the axis (from the ring's tangential
motion) and the two bending rotations (from the ring's axial motion), i.e. the beam's
cross-section follows the bone's cross-section in the mean.  The constraint forces are
spread over the ring with the weights (no stiffening of the bone), so the load enters the
bone over a surface of the screw's radius: the continuum problem has finite energy and
the discrete one converges with refinement.  Ring points are about one host element size
apart (8 to 24 per ring) and rings sit at the beam nodes (spaced at the host size).

This is the collocated (nodal) counterpart of the mortar-type beam-to-solid couplings:
Steinbrecher, Mayr, Grill, Kremheller, Meier & Popp 2020, "A mortar-type finite element
approach for embedding 1D beams into 3D solid volumes", Comput Mech 66:1377-1398 (pages from
memory) - line (1D-3D) coupling of positions, whose mesh dependence for thick beams they
discuss; Steinbrecher, Popp & Meier 2022, "Consistent coupling of positions and rotations for
embedding 1D Cosserat beams into 3D solid volumes", Comput Mech 69:701-732 (pages from
memory) - the rotational (cross-section) coupling; Khristenko, Schuss, Krueger, Schmidt,
Wohlmuth & Hesch 2021, "Multidimensional coupling: a variationally consistent approach to
fiber-reinforced materials", Comput Methods Appl Mech Eng 382:113869 (volume from memory) -
coupling forces and moments of the beam to the solid over the fibre's cross-section.

Bone inside the screw's core (root) radius is *removed*: elements the core cylinder
overlaps keep (1 - phi) + phi * 1e-3 of their stiffness, phi = the volume fraction of the
element inside the core (integrated exactly for the cylinder's volume by a midpoint rule in
cylindrical coordinates).  Bone between the core and the thread radius is kept: it is
interlocked with the thread.  Interface springs (a loosened screw) act between each beam
node and the mean motion of its ring (:func:`ring_springs`), k per mm of screw.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fembone.core.locate import isoparametric, locate, shape_values

RING_MIN, RING_MAX = 8, 24  # ring points per beam node
CORE_RESIDUAL = 1e-3  # stiffness left to bone inside the screw core (fraction of its own)
MIN_RING_SHARE = 0.5  # a node is surface-coupled when at least this share of its ring is in bone


def perpendicular_frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors e1, e2 with (e1, e2, axis) right-handed and orthonormal."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    helper = np.eye(3)[int(np.argmin(np.abs(a)))]
    e1 = np.cross(a, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(a, e1)


def ring_count(radius: float, h: float) -> int:
    """Ring points per node: about one per host element size h along the circumference 2 pi R."""
    return int(np.clip(np.ceil(2.0 * np.pi * radius / max(h, 1e-12)), RING_MIN, RING_MAX))


def ring_points(centres: np.ndarray, axis: np.ndarray, radius: float, m: int) -> np.ndarray:
    """(n, m, 3) points on circles of ``radius`` (mm) around ``centres`` (n, 3), normal to ``axis``;
    odd rings are turned by half a step so that neighbouring rings sample different angles."""
    e1, e2 = perpendicular_frame(axis)
    n = len(centres)
    phi = 2.0 * np.pi * (np.arange(m)[None, :] + 0.5 * (np.arange(n) % 2)[:, None]) / m
    return centres[:, None, :] + radius * (np.cos(phi)[..., None] * e1 + np.sin(phi)[..., None] * e2)


def end_cap_points(centre: np.ndarray, axis: np.ndarray, radius: float, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (2m, 3) and area weights (2m,) on the flat end face (a disk of ``radius``) of the
    screw at ``centre``: midpoint rule in r with two rings, at R/4 (area pi R^2/4) and 3R/4 (area 3 pi R^2/4)."""
    P = np.concatenate([ring_points(centre[None], axis, 0.25 * radius, m)[0], ring_points(centre[None], axis, 0.75 * radius, m)[0]])
    w = np.concatenate([np.full(m, 0.25 * np.pi * radius**2 / m), np.full(m, 0.75 * np.pi * radius**2 / m)])
    return P, w


def _cross_matrix(r: np.ndarray) -> np.ndarray:
    """[r]_x (..., 3, 3) with [r]_x v = r x v."""
    out = np.zeros(r.shape + (3,))
    out[..., 0, 1], out[..., 0, 2] = -r[..., 2], r[..., 1]
    out[..., 1, 0], out[..., 1, 2] = r[..., 2], -r[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -r[..., 1], r[..., 0]
    return out


def distributing_coefficients(P: np.ndarray, w: np.ndarray, x_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RBE3 coefficients of n reference points on n point sets (vectorised over sets).

    ``P`` (n, m, 3) points, ``w`` (n, m) weights (zero: point unused; each row is
    normalised), ``x_ref`` (n, 3).  Returns Tu, Th (n, m, 3, 3): d u_ref_a / d u_kc and
    d theta_a / d u_kc, as in :meth:`fembone.core.constraints.ConstraintSet.distributing_coupling`.
    """
    w = w / w.sum(axis=1, keepdims=True)
    c = np.einsum("nm,nma->na", w, P)
    r = P - c[:, None, :]
    A = np.einsum("nm,nma,nmb->nab", w, r, r)
    A = np.einsum("nii->n", A)[:, None, None] * np.eye(3) - A
    Ainv = np.linalg.inv(A)
    Th = np.einsum("nab,nm,nmbc->nmac", Ainv, w, _cross_matrix(r))
    dx = _cross_matrix(x_ref - c)
    Tu = w[:, :, None, None] * np.eye(3) - np.einsum("nab,nmbc->nmac", dx, Th)
    return Tu, Th


def locate_ring(mesh, P: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host element (n, m), shape values (n, m, nen) and an inside mask (n, m) of ring points
    ``P``; points at most ``tol`` mm outside the faceted surface count as inside."""
    n, m, _ = P.shape
    flat = P.reshape(-1, 3)
    host, L, score, nearest = locate(mesh, flat)
    x = mesh.points[mesh.cells[nearest, :4]]
    size = np.linalg.norm(x[:, 1] - x[:, 0], axis=1)
    inside = (host >= 0) | (np.maximum(-score, 0.0) * size <= tol)
    host = np.where(host >= 0, host, nearest)
    L = isoparametric(mesh, host, flat, L)
    N = shape_values(mesh, L)
    return host.reshape(n, m), N.reshape(n, m, -1), inside.reshape(n, m)


def couple_nodes(model, dofs: np.ndarray, centres: np.ndarray, P: np.ndarray, host: np.ndarray, N: np.ndarray,
                 w: np.ndarray, label: str) -> None:
    """Tie all six DOFs ``dofs`` (n, 6) of beam nodes at ``centres`` to their rings (RBE3)."""
    mesh = model.mesh
    n, m, nen = N.shape
    Tu, Th = distributing_coefficients(P, w, centres)
    T6 = np.concatenate([Tu, Th], axis=2)  # (n, m, 6, 3): row a of the node, component c of ring point k
    coefs = np.einsum("nmac,nmj->namjc", T6, N).reshape(n, 6, m * nen * 3)
    hn = mesh.cells[host]  # (n, m, nen)
    masters = (3 * hn[..., None] + np.arange(3)).reshape(n, 1, m * nen * 3)
    masters = np.broadcast_to(masters, (n, 6, m * nen * 3))
    model.constraints.tie(dofs.reshape(-1), masters.reshape(n * 6, -1), coefs.reshape(n * 6, -1), label=label)


def ring_springs(model, dofs: np.ndarray, centres: np.ndarray, P: np.ndarray, host: np.ndarray, N: np.ndarray,
                 w: np.ndarray, k_node: np.ndarray, axis: np.ndarray, radius: float) -> None:
    """Springs between each beam node and the mean motion of its ring (a loosened interface).

    With d_u = u_s - u_ring and d_theta = theta_s - theta_ring (the RBE3 mean of
    :func:`distributing_coefficients`), the energy per node is
    1/2 k_node (|d_u|^2 + R^2 (d_theta . a)^2 + R^2/2 |d_theta x a|^2): a uniform layer of
    stiffness k_node / (2 pi R) per unit area around the screw, whose moment about the axis is
    k R^2 theta and about a transverse axis k R^2/2 theta.  k_node -> inf gives the tied coupling.
    """
    mesh = model.mesh
    n, m, nen = N.shape
    Tu, Th = distributing_coefficients(P, w, centres)
    T6 = np.concatenate([Tu, Th], axis=2)  # (n, m, 6, 3)
    host_c = -np.einsum("nmac,nmj->namjc", T6, N).reshape(n, 6, m * nen * 3)
    C = np.concatenate([np.broadcast_to(np.eye(6), (n, 6, 6)), host_c], axis=2)  # (n, 6, nl)
    hn = mesh.cells[host]
    idx = np.concatenate([dofs, (3 * hn[..., None] + np.arange(3)).reshape(n, -1)], axis=1)  # (n, nl)
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    S = np.zeros((n, 6, 6))
    S[:, :3, :3] = k_node[:, None, None] * np.eye(3)
    S[:, 3:, 3:] = (k_node * radius**2)[:, None, None] * (np.outer(a, a) + 0.5 * (np.eye(3) - np.outer(a, a)))
    K = np.einsum("nai,nab,nbj->nij", C, S, C)
    nl = idx.shape[1]
    nd = model.layout.n_dofs
    Ks = sp.csr_matrix((K.ravel(), (np.repeat(idx, nl, axis=1).ravel(), np.tile(idx, (1, nl)).ravel())), shape=(nd, nd))
    model.meta.setdefault("_extra_stiffness", []).append(Ks)
    # the springs join the beam to the bone: one graph edge per node for the rigid-body check
    nn = mesh.n_nodes
    ids = (dofs[:, 0] - 3 * nn) // 6
    edges = np.column_stack([nn + ids, hn[:, 0, 0]])
    model.meta["_extra_edges"] = np.vstack([model.meta.get("_extra_edges", np.zeros((0, 2), int)), edges])


def core_fractions(mesh, entry: np.ndarray, tip: np.ndarray, radius: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Elements overlapped by the cylinder (entry -> tip, ``radius``) and their volume fractions inside it.

    Midpoint rule in (r, phi, s) with cells of about h/4: the cell volumes r dr dphi ds sum to
    pi R^2 L exactly; each cell's volume goes to the element holding its centre.  Cells
    outside the mesh are dropped.
    """
    axis = tip - entry
    L = float(np.linalg.norm(axis))
    step = max(min(h / 4.0, radius / 2.0), 1e-3)
    nr = max(2, int(np.ceil(radius / step)))
    ns = max(2, int(np.ceil(L / step)))
    r_edges = np.linspace(0.0, radius, nr + 1)
    rc = 0.5 * (r_edges[1:] + r_edges[:-1])
    dr = np.diff(r_edges)
    nphi = np.maximum(6, np.ceil(2 * np.pi * rc / step)).astype(int)
    s = (np.arange(ns) + 0.5) / ns * L
    e1, e2 = perpendicular_frame(axis)
    pts, vol = [], []
    for r, d, k in zip(rc, dr, nphi):  # a few radial layers
        phi = 2 * np.pi * (np.arange(k) + 0.5) / k
        off = r * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)
        pts.append((entry + s[:, None, None] * axis / L + off[None, :, :]).reshape(-1, 3))
        vol.append(np.full(ns * k, r * d * (2 * np.pi / k) * (L / ns)))
    pts, vol = np.vstack(pts), np.concatenate(vol)
    host, *_ = locate(mesh, pts)
    ok = host >= 0
    v = np.bincount(host[ok], weights=vol[ok], minlength=mesh.n_elements)
    elems = np.flatnonzero(v > 0)
    return elems, np.minimum(v[elems] / np.abs(mesh.volumes()[elems]), 1.0)


def soften_core(model, elements: np.ndarray, fractions: np.ndarray, residual: float | None = None) -> None:
    """Remove bone inside a screw core: C_e *= 1 - phi_e (1 - residual); remembered in
    ``model.meta['_screw_core']`` so that it can be applied again after the materials are re-mixed."""
    residual = CORE_RESIDUAL if residual is None else residual
    factor = 1.0 - fractions * (1.0 - residual)
    model.C[elements] *= factor[:, None, None]
    core = model.meta.setdefault("_screw_core", {"elements": np.zeros(0, np.int64), "factor": np.zeros(0)})
    core["elements"] = np.concatenate([core["elements"], elements])
    core["factor"] = np.concatenate([core["factor"], factor])
    frac = model.cell_data.get("screw_core_fraction")
    if frac is None or len(frac) != model.mesh.n_elements:
        frac = np.zeros(model.mesh.n_elements)
    frac[elements] = np.minimum(frac[elements] + fractions, 1.0)
    model.cell_data["screw_core_fraction"] = frac


def reapply_core_softening(model) -> None:
    """Apply the recorded screw-core softening again (after model.C was rebuilt from the materials)."""
    core = model.meta.get("_screw_core")
    if core is not None and len(core["elements"]):
        np.multiply.at(model.C, core["elements"], core["factor"][:, None, None])
