"""Pedicle screws as Timoshenko beams embedded in bone. Units: mm, N, MPa, N mm.

A screw is a chain of 2-node beams (:mod:`fembone.core.beam`) from its entry point to its tip,
discretised at about the host element size.  Each screw node is an extra 6-DOF node whose
translations are tied to the host tetrahedron it lies in, u_s = sum_i N_i(xi_s) u_i
(embedded elements, as in Abaqus *EMBEDDED ELEMENT), and whose rotation about the screw
axis is tied to the host's local rotation, theta . a = a . (curl u)/2, which removes the
free spin of an embedded beam.  Bending rotations stay free: the beam's own bending
stiffness carries them.  All of it goes through the one constraint layer (u = T q + g).
Optionally the ties become springs of stiffness ``interface_stiffness`` (N/mm per mm of
screw) to model a loosened bone-screw interface.

Case-file keys (parsed in :mod:`fembone.cases.screws`)::

    screws:
      - {name: L, entry: [-14, -28, 3], target: [-5, 8, 3], diameter: 6.5, core_diameter: 4.8, material: titanium}
      - {name: R, entry: [...], direction: [...], length: 40, cannula_diameter: 1.6, augment_ml: 2.0}
      - {placement: bilateral_transpedicular, diameter: 6.5, length_fraction: 0.8}

Screw materials (E, nu, yield strength): Ti-6Al-4V 110000 MPa, 0.3, 830 MPa (ASTM F136
minimum 795 MPa); 316L stainless steel 200000 MPa, 0.3, 690 MPa (ASTM F138 cold-worked).
The beam section is the core (root) diameter of the thread, annular when cannulated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from fembone.core.beam import BeamSection, beam_global_stiffness, beam_results
from fembone.core.errors import InputError
from fembone.core.locate import locate, shape_values
from fembone.core.mesh import Mesh

SCREW_MATERIALS = {
    "titanium": {"E": 110000.0, "nu": 0.3, "yield": 830.0},
    "stainless_steel": {"E": 200000.0, "nu": 0.3, "yield": 690.0},
}


@dataclass
class Screw:
    """One screw: geometry (mm), section, material, and its extra-node indices once embedded."""

    name: str
    entry: np.ndarray
    tip: np.ndarray
    section: BeamSection
    E: float
    nu: float
    yield_strength: float
    protruding: bool = False
    augment_ml: float = 0.0
    #: how beam nodes hold on to the bone: ``surface`` (a ring on the screw's cylindrical surface,
    #: :mod:`fembone.spine.screw_coupling`) or ``line`` (the host element at the node)
    coupling: str = "surface"
    thread_diameter: float | None = None  # mm; the coupling ring's diameter (default: the core's)
    level: str | None = None  # vertebral level (segments)
    side: str | None = None  # left | right (placement helpers)
    nodes: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # extra-node ids along the screw
    embedded: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    hosts: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.tip - self.entry))

    @property
    def axis(self) -> np.ndarray:
        return (self.tip - self.entry) / self.length

    @property
    def coupling_radius(self) -> float:
        """Radius (mm) of the surface over which the screw holds the bone: the thread's."""
        return 0.5 * (self.thread_diameter if self.thread_diameter else self.section.outer_diameter)


def discretise(screw: Screw, h: float) -> np.ndarray:
    """Node positions from entry to tip, spacing at most ``h`` (mm)."""
    n = max(2, int(np.ceil(screw.length / h)))
    t = np.linspace(0.0, 1.0, n + 1)
    return screw.entry + t[:, None] * (screw.tip - screw.entry)


def _mean_edge(mesh: Mesh, elements: np.ndarray) -> float:
    x = mesh.points[mesh.cells[elements, :4]]
    return float(np.linalg.norm(x[:, 1] - x[:, 0], axis=1).mean())


def embed(model, screw: Screw, h: float | None = None, interface_stiffness: float | None = None, where: str = "screws") -> None:
    """Add the screw's nodes to the model and tie them to the bone (or spring them, if loosened)."""
    mesh = model.mesh
    if h is None:
        _, _, _, nearest = locate(mesh, np.vstack([screw.entry, screw.tip]))
        h = _mean_edge(mesh, np.unique(nearest))
    pts = discretise(screw, h)
    host, L, score, nearest = locate(mesh, pts)
    tol_out = 0.25 * h  # nodes this close outside the surface count as on it (faceted boundary)
    dist_out = _outside_distance(mesh, nearest, L, score)
    strictly_inside = host >= 0
    inside = strictly_inside | (dist_out <= tol_out)
    host = np.where(host >= 0, host, nearest)
    from fembone.core.locate import isoparametric

    L = isoparametric(mesh, host, pts, L)
    if not inside.all():
        # the outside length (20 bisection steps of point location) only goes into the error messages
        if not screw.protruding:
            out_len = _outside_length(mesh, pts, strictly_inside)
            raise InputError(
                f"screw '{screw.name}' leaves the bone: {out_len:.1f} mm of its {screw.length:.1f} mm lie outside "
                "(move it, or mark it protruding: true for a head outside the bone)", where,
            )
        # a protruding screw: the part inside is tied, the rest is a free beam; it must hold on somewhere
        if inside.sum() < 2:
            out_len = _outside_length(mesh, pts, strictly_inside)
            raise InputError(
                f"screw '{screw.name}' lies outside the bone: {out_len:.1f} mm of its {screw.length:.1f} mm are outside "
                "and fewer than two of its nodes inside (move it into the bone)", where,
            )
    ids = model.layout.add_extra(pts)
    screw.nodes = ids
    screw.embedded = inside
    screw.hosts = host
    dofs = model.layout.extra_dofs(ids)  # (n, 6)
    trib = np.zeros(len(pts))  # tributary length of each node (mm)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    trib[:-1] += seg / 2
    trib[1:] += seg / 2
    on_surface = np.zeros(len(pts), bool)
    if screw.coupling == "surface":
        on_surface = _couple_surface(model, screw, pts, inside, dofs, h, trib, interface_stiffness, where)
    elif screw.coupling != "line":
        raise InputError(f"screw '{screw.name}': coupling must be 'surface' or 'line', got {screw.coupling!r}", where)
    line = np.flatnonzero(inside & ~on_surface)
    if len(line):
        _couple_line(model, screw, host[line], L[line], dofs[line], trib[line], interface_stiffness, where)
    # beam stiffness and connectivity
    Ke = beam_global_stiffness(pts[:-1], pts[1:], screw.E, screw.nu, screw.section)  # (n-1, 12, 12)
    edofs = np.hstack([dofs[:-1], dofs[1:]])  # (n-1, 12)
    r = np.repeat(edofs, 12, axis=1).ravel()
    cc = np.tile(edofs, (1, 12)).ravel()
    Kb = sp.csr_matrix((Ke.ravel(), (r, cc)), shape=(model.layout.n_dofs, model.layout.n_dofs))
    model.meta.setdefault("_extra_stiffness", []).append(Kb)
    nn = mesh.n_nodes
    edges = np.column_stack([nn + ids[:-1], nn + ids[1:]])
    model.meta["_extra_edges"] = np.vstack([model.meta.get("_extra_edges", np.zeros((0, 2), int)), edges])
    lines = np.column_stack([ids[:-1], ids[1:]])
    model.meta.setdefault("_lines", []).append((screw.name, lines))


def _couple_line(model, screw: Screw, host: np.ndarray, L: np.ndarray, dofs: np.ndarray, trib: np.ndarray,
                 interface_stiffness: float | None, where: str) -> None:
    """Line embedding of beam nodes: translations from the host element at the node (tied, or
    springs of ``interface_stiffness`` x tributary length); spin tied to the host's rotation."""
    mesh = model.mesh
    N = shape_values(mesh, L)  # (n, nen)
    hn = mesh.cells[host]  # (n, nen)
    if interface_stiffness is None:
        for a in range(3):
            model.constraints.tie(dofs[:, a], 3 * hn + a, N, label=f"{where} (screw '{screw.name}' embedded)")
    else:
        _add_interface_springs(model, dofs[:, :3], hn, N, interface_stiffness * trib)
    # axial spin tied to the host's local rotation (curl u)/2
    a = screw.axis
    k = int(np.argmax(np.abs(a)))
    G = _host_gradients(mesh, host, L)  # (m, nen, 3)
    c = 0.5 * np.cross(a[None, None, :], G)  # (m, nen, 3): coefficient of u_il
    others = [j for j in range(3) if j != k]
    n = len(host)
    masters = np.concatenate([(3 * hn[:, :, None] + np.arange(3)).reshape(n, -1), dofs[:, [3 + j for j in others]]], axis=1)
    coefs = np.concatenate([c.reshape(n, -1) / a[k], -np.tile(a[others], (n, 1)) / a[k]], axis=1)
    model.constraints.tie(dofs[:, 3 + k], masters, coefs, label=f"{where} (screw '{screw.name}' spin)")


def _couple_surface(model, screw: Screw, pts: np.ndarray, inside: np.ndarray, dofs: np.ndarray, h: float,
                    trib: np.ndarray, interface_stiffness: float | None, where: str) -> np.ndarray:
    """Ring (surface) coupling of the nodes whose ring lies mostly in bone; removes the bone in
    the core.  Returns the mask of nodes it coupled (the others fall back to the line)."""
    from fembone.spine import screw_coupling as sc

    mesh = model.mesh
    R = screw.coupling_radius
    m = sc.ring_count(R, h)
    P = sc.ring_points(pts, screw.axis, R, m)  # (n, m, 3)
    w = np.broadcast_to((2.0 * np.pi * R * trib / m)[:, None], (len(pts), m))  # lateral area per point (mm^2)
    rhost, rN, ok = sc.locate_ring(mesh, P, tol=0.05 * h)
    use = inside & (ok.mean(axis=1) >= sc.MIN_RING_SHARE)
    groups = []  # (nodes, points, weights, hosts, shape values)
    mid = np.flatnonzero(use)
    mid = mid[(mid > 0) & (mid < len(pts) - 1)]
    if len(mid):
        groups.append((mid, P[mid], w[mid] * ok[mid], rhost[mid], rN[mid]))
    for end in {0, len(pts) - 1}:  # end nodes also hold the bone over the screw's flat end face
        if not use[end]:
            continue
        Pc, wc = sc.end_cap_points(pts[end], screw.axis, screw.section.outer_radius, m)
        ch, cN, cok = sc.locate_ring(mesh, Pc[None], tol=0.05 * h)
        groups.append((np.array([end]), np.concatenate([P[end], Pc])[None], np.concatenate([w[end] * ok[end], wc * cok[0]])[None],
                       np.concatenate([rhost[end], ch[0]])[None], np.concatenate([rN[end], cN[0]])[None]))
    for sel, Pg, wg, hg, Ng in groups:
        if interface_stiffness is None:
            sc.couple_nodes(model, dofs[sel], pts[sel], Pg, hg, Ng, wg, label=f"{where} (screw '{screw.name}' surface coupling)")
        else:
            sc.ring_springs(model, dofs[sel], pts[sel], Pg, hg, Ng, wg, interface_stiffness * trib[sel], screw.axis, R)
    elems, phi = sc.core_fractions(mesh, screw.entry, screw.tip, screw.section.outer_radius, h)
    sc.soften_core(model, elems, phi)
    model.meta.setdefault("screw_coupling", {})[screw.name] = {
        "coupling": "surface", "radius": R, "ring_points": m, "nodes_on_surface": int(use.sum()),
        "nodes_on_line": int((inside & ~use).sum()), "nodes_free": int((~inside).sum()),
        "core_volume_removed": float((phi * np.abs(mesh.volumes()[elems])).sum()),
    }
    return use


def _outside_length(mesh: Mesh, pts: np.ndarray, inside: np.ndarray, iters: int = 20) -> float:
    """Length (mm) of the polyline ``pts`` outside the mesh: whole segments with both nodes outside,
    and the outside part of a segment that crosses the surface (crossing found by bisection)."""
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    a_in, b_in = inside[:-1], inside[1:]
    out = float(seg[~a_in & ~b_in].sum())
    mixed = np.flatnonzero(a_in != b_in)
    if len(mixed) == 0:
        return out
    p_in = np.where(a_in[mixed, None], pts[mixed], pts[mixed + 1])  # the inside end
    p_out = np.where(a_in[mixed, None], pts[mixed + 1], pts[mixed])
    lo, hi = np.zeros(len(mixed)), np.ones(len(mixed))  # parameter from the inside end: lo inside, hi outside
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        host, *_ = locate(mesh, p_in + mid[:, None] * (p_out - p_in))
        lo = np.where(host >= 0, mid, lo)
        hi = np.where(host >= 0, hi, mid)
    return out + float(((1.0 - 0.5 * (lo + hi)) * seg[mixed]).sum())


def _outside_distance(mesh: Mesh, nearest: np.ndarray, L: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Rough distance (mm) of a point outside its nearest element: -min barycentric x element size."""
    x = mesh.points[mesh.cells[nearest, :4]]
    size = np.linalg.norm(x[:, 1] - x[:, 0], axis=1)
    return np.maximum(-score, 0.0) * size


def _host_gradients(mesh: Mesh, elements: np.ndarray, L: np.ndarray) -> np.ndarray:
    """dN/dx (m, nen, 3) of host elements at barycentric points L (m, 4)."""
    el = mesh.element
    dN = el.grad(L[:, 1:])  # (m, nen, 3)
    x = mesh.points[mesh.cells[elements]]  # (m, nen, 3)
    J = np.einsum("mna,mnj->maj", dN, x)
    return np.linalg.solve(J, dN.transpose(0, 2, 1)).transpose(0, 2, 1)


def _add_interface_springs(model, sdofs: np.ndarray, hnodes: np.ndarray, N: np.ndarray, k: np.ndarray) -> None:
    """Springs k (N/mm) between screw translations and the interpolated host displacement."""
    m, nen = N.shape
    rows, cols, vals = [], [], []
    for a in range(3):
        idx = np.hstack([sdofs[:, a : a + 1], 3 * hnodes + a])  # (m, 1 + nen)
        w = np.hstack([np.ones((m, 1)), -N])  # relative displacement = u_s - sum N u_host
        Kl = k[:, None, None] * w[:, :, None] * w[:, None, :]
        rows.append(np.repeat(idx, idx.shape[1], axis=1).ravel())
        cols.append(np.tile(idx, (1, idx.shape[1])).ravel())
        vals.append(Kl.ravel())
    n = model.layout.n_dofs
    Ks = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    model.meta.setdefault("_extra_stiffness", []).append(Ks)


def screw_results(model, screw: Screw, u: np.ndarray) -> dict:
    """Internal forces and peak outer-fibre von Mises stress along a screw."""
    pts = model.layout.extra_points[screw.nodes]
    dofs = model.layout.extra_dofs(screw.nodes)
    ue = np.hstack([u[dofs[:-1]], u[dofs[1:]]])
    r = beam_results(pts[:-1], pts[1:], screw.E, screw.nu, screw.section, ue)
    vm = r["von_mises"]
    return {
        "peak_von_mises": float(vm.max()),
        "yield_ratio": float(vm.max() / screw.yield_strength),
        "max_axial_force": float(np.abs(r["axial_force"]).max()),
        "max_bending_moment": float(np.abs(r["bending"]).max()),
        "max_torsion": float(np.abs(r["torsion"]).max()),
        "_element_von_mises": vm,
        "_axial_force": r["axial_force"],
        "_bending": r["bending"].max(axis=1),
    }


def screw_postprocessor(model, geom, res) -> dict:
    """Per-screw results and the screw/bone load sharing across the plane y = 0 (a model postprocessor)."""
    from fembone.core.results import equivalent_strain

    out = {}
    line_vm, line_n, line_m = [], [], []
    F_screw = np.zeros(3)
    y0 = 0.0
    for s in model.meta["_screws"]:
        r = screw_results(model, s, res.u)
        line_vm.append(r.pop("_element_von_mises"))
        line_n.append(r.pop("_axial_force"))
        line_m.append(r.pop("_bending"))
        hosts = np.unique(s.hosts[s.embedded])
        eq = equivalent_strain(res.fields.strain[hosts])
        r["interface_max_strain"] = float(eq.max())
        r["interface_mean_strain"] = float((eq * geom.volumes[hosts]).sum() / geom.volumes[hosts].sum())
        out[s.name] = r
        F_screw += _crossing_force(model, s, res.u, y0)
    F_bone = _bone_force(model, geom, res, y0)
    share = float(np.linalg.norm(F_screw) / max(np.linalg.norm(F_screw) + np.linalg.norm(F_bone), 1e-300))
    res.extra["_line_data"] = {
        "von_mises": np.concatenate(line_vm), "axial_force": np.concatenate(line_n), "bending_moment": np.concatenate(line_m),
    }
    return {"screws": out, "load_sharing": {"plane": {"y": y0}, "screws_force": F_screw.tolist(),
                                            "bone_force": F_bone.tolist(), "screw_share": share}}


def _crossing_force(model, s: Screw, u: np.ndarray, y0: float) -> np.ndarray:
    """Force (N, global) transmitted through the screw across the plane y = y0 (anterior on posterior side)."""
    from fembone.core.beam import beam_end_forces, beam_frames

    pts = model.layout.extra_points[s.nodes]
    y = pts[:, 1]
    below = y < y0  # half-open test: a node exactly on the plane belongs to one crossing segment, not none
    cross = np.flatnonzero(below[:-1] != below[1:])
    if len(cross) == 0:
        return np.zeros(3)
    dofs = model.layout.extra_dofs(s.nodes)
    ue = np.hstack([u[dofs[:-1]], u[dofs[1:]]])[cross]
    f = beam_end_forces(pts[:-1][cross], pts[1:][cross], s.E, s.nu, s.section, ue)
    R = beam_frames(pts[:-1][cross], pts[1:][cross])
    f1 = np.einsum("eji,ej->ei", R, f[:, 6:9])  # end-1 force, global
    f0 = np.einsum("eji,ej->ei", R, f[:, 0:3])
    up = (pts[1:][cross, 1] > pts[:-1][cross, 1])[:, None]
    return np.where(up, f1, f0).sum(axis=0)


def _bone_force(model, geom, res, y0: float) -> np.ndarray:
    """Force (N) that the bone on the side y > y0 exerts across the plane y = y0.

    Exact for the FE field: the sum, over elements cut by the plane, of their internal nodal
    forces int B^T sigma dV at the nodes on the + side (uncut elements are self-equilibrated).
    """
    mesh = model.mesh
    y = mesh.points[:, 1]
    plus = y[mesh.cells] > y0  # (ne, nen), half-open like the screw crossing test
    cut = np.flatnonzero(plus.any(axis=1) & ~plus.all(axis=1))
    if len(cut) == 0:
        return np.zeros(3)
    g = geom.grads[..., cut]  # (nq, nen, 3, m)
    w = geom.wdet[:, cut]  # (nq, m)
    sig = res.fields.stress_q[cut]  # (m, nq, 3, 3)
    m = plus[cut].astype(float)  # (m, nen)
    return np.einsum("qm,mi,mqab,qibm->a", w, m, sig, g)
