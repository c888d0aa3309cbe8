"""Mechanics of a spinal segment: facet joints, rods, range of motion, load sharing. Units: mm, N, MPa, N mm, rad.

Facet joints (a stated simplified model).  The parametric vertebra has no articular
processes: its lamina is a plate whose lateral ends, at the pedicle-lamina junction, are
where the articular processes stand.  Each facet joint is a linear spring between two
reference points placed at the joint centre (midway between the upper vertebra's inferior
patch and the lower vertebra's superior patch).  Each reference point is a distributing
coupling (RBE3) of its patch: the posterior-element nodes within ``band`` mm of the lamina's
lower (upper vertebra) or upper (lower vertebra) edge and within ``band`` mm of its lateral
end.  The spring has stiffness ``normal_stiffness`` along the joint's normal and
``shear_stiffness`` in its plane; the joint plane is vertical and at ``angle_deg`` to the
sagittal plane (anterior end lateral).  It acts in tension as in compression (no gap, no
contact), and stands for articular processes, cartilage and capsule in series.  Default
normal stiffness E_c A / t = 10 MPa x 120 mm^2 / 2 mm = 600 N/mm for two cartilage layers of
about 1 mm (cartilage modulus, facet area and thickness: typical model values, unverified);
shear 1 % of it (the articular surfaces slide nearly freely); 30 deg to the sagittal plane
(upper lumbar facets are close to sagittal; unverified).  A review of how FE models treat
facets (Mengoni 2021, Biomech Model Mechanobiol 20:389) found mostly contact models; springs
are the simplest stand-in and cannot reproduce facet unloading in flexion.

``model: contact`` makes the normal spring a gap element: it acts only in compression, once
the joint has closed an initial gap (default 0.5 mm: the order of the facet gaps of the
lumbar FE models compared by Dreischarf et al. 2014, J Biomech 47:1757, and of Schmidt et
al. 2007 [M]), with the same 600 N/mm (cartilage in series; a stiffer penalty would only
stand for the bone behind it); shear stays a linear 6 N/mm spring.  Each load case gets its
own contact state, solved exactly by :mod:`fembone.core.unilateral` (rank-1 gap elements,
capacitance matrix, least-index pivoting).  Measured on T12-L2 (README): the joint opens or
closes by only ~0.04 mm in flexion/extension (its normal is horizontal), so contact leaves
extension = flexion and softens axial rotation; springs stay the default.

Range of motion: each vertebral body's rigid rotation is its least-squares (RBE3-type) fit,
theta = A^-1 sum_i r_i x u_i over the body's nodes (uniform weights); a level pair's motion is
the upper minus the lower rotation, reported about the load case's moment axis in degrees.

Load sharing: the force carried across the horizontal plane through the index vertebral
body's centroid, split into what crosses it in the body, in the posterior elements and in
implants (beams).  Solid parts: the exact internal nodal forces int B^T sigma dV of the
elements the plane cuts, at their nodes above the plane (as fembone.spine.screws does for
y = 0); beams: the end forces of the beam elements that cross it.  The parts sum to the
applied axial force.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fembone.core.beam import (
    BeamSection,
    beam_curvature_load,
    beam_end_forces,
    beam_frames,
    beam_global_stiffness,
    beam_results,
)
from fembone.core.errors import FemboneError, InputError
from fembone.core.unilateral import UnilateralSet

# ------------------------------------------------------------------------------------ facets
#: facet joint models: ``spring`` (linear, tension as compression) or ``contact`` (gap element)
FACET_MODELS = ("spring", "contact")


@dataclass(frozen=True)
class FacetModel:
    normal_stiffness: float = 600.0  # N/mm
    shear_stiffness: float = 6.0  # N/mm
    angle_deg: float = 30.0  # joint plane to the sagittal plane
    band: float = 4.0  # mm: patch depth below/above the lamina edge and from its lateral end
    model: str = "spring"  # or "contact": the normal spring acts in compression only, after ``gap``
    gap: float = 0.5  # mm, initial gap of a contact joint (ignored by springs)


def facet_patch(mesh, nodes: np.ndarray, side: int, edge: str, band: float, y_range: tuple[float, float]) -> np.ndarray:
    """Posterior-element nodes at the lateral end (``side`` +1 right, -1 left) of the lamina's
    ``edge`` ('top' or 'bottom'): within ``band`` mm of that edge and of the lateral end."""
    p = mesh.points[nodes]
    lam = nodes[(p[:, 1] >= y_range[0] - 1e-6) & (p[:, 1] <= y_range[1] + 1e-6) & (side * p[:, 0] > 0)]
    q = mesh.points[lam]
    z_edge = q[:, 2].max() if edge == "top" else q[:, 2].min()
    near = np.abs(q[:, 2] - z_edge) <= band
    lam, q = lam[near], q[near]
    x_end = (side * q[:, 0]).max()
    out = lam[side * q[:, 0] >= x_end - band]
    if len(out) < 3:
        raise FemboneError(f"facet patch at the {edge} of the lamina ({'right' if side > 0 else 'left'}) has {len(out)} nodes")
    return out


def add_facets(model, seg, fm: FacetModel) -> list[dict]:
    """Facet springs for every level pair and side; returns what was built (for the summary)."""
    mesh = model.mesh
    info = []
    beta = np.radians(fm.angle_deg)
    for up, lo in seg.pairs():
        for side, name in ((1, "right"), (-1, "left")):
            patches = []
            for lv, edge in ((up, "bottom"), (lo, "top")):
                post = np.unique(mesh.cells[seg.set(lv, "posterior_elements")])
                d = seg.dims[lv]
                y_front = seg.landmarks[lv]["canal_posterior_y"]
                patches.append(facet_patch(mesh, post, side, edge, max(fm.band, 0.0), (y_front - d.lamina_thickness, y_front)))
            centre = 0.5 * (mesh.points[patches[0]].mean(axis=0) + mesh.points[patches[1]].mean(axis=0))
            refs = []
            for lv, nodes in zip((up, lo), patches):
                j = int(model.layout.add_extra(centre)[0])
                model.constraints.distributing_coupling(nodes, np.ones(len(nodes)), j, mesh.points,
                                                        label=f"segment: facet {up}-{lo} {name} ({lv} patch)")
                refs.append(j)
            n = np.array([side * np.cos(beta), -np.sin(beta), 0.0])
            Ks = fm.shear_stiffness * (np.eye(3) - np.outer(n, n))
            if fm.model == "spring":
                Ks = Ks + fm.normal_stiffness * np.outer(n, n)
            da, db = model.layout.extra_dofs(refs[0])[0, :3], model.layout.extra_dofs(refs[1])[0, :3]
            idx = np.concatenate([da, db])
            K = np.block([[Ks, -Ks], [-Ks, Ks]])
            nd = model.layout.n_dofs
            model.meta.setdefault("_extra_stiffness", []).append(
                sp.csr_matrix((K.ravel(), (np.repeat(idx, 6), np.tile(idx, 6))), shape=(nd, nd)))
            nn = mesh.n_nodes
            model.meta["_extra_edges"] = np.vstack([model.meta.get("_extra_edges", np.zeros((0, 2), int)),
                                                    [[nn + refs[0], nn + refs[1]]]])
            model.meta.setdefault("_facets", []).append({"pair": f"{up}-{lo}", "side": name, "refs": refs, "normal": n,
                                                         "K": Ks, "model": fm.model, "kn": fm.normal_stiffness, "gap": fm.gap})
            info.append({"pair": f"{up}-{lo}", "side": name, "centre": centre.tolist(), "normal": n.tolist(),
                         "nodes": [len(p) for p in patches], "model": fm.model,
                         **({"gap": fm.gap} if fm.model == "contact" else {})})
    if fm.model == "contact":
        model.meta["_unilateral"] = facet_contact_set(model)
    return info


def facet_contact_set(model) -> UnilateralSet:
    """The contact joints' normal springs as gap elements (:mod:`fembone.core.unilateral`):
    opening s = n . (u_upper - u_lower) at the joint's two reference points, closed when
    s < -gap, compressive force normal_stiffness (-s - gap).  Direction vectors are sized to
    the DOFs at the time of the call; the solve pads them (extra nodes added later)."""
    facets = [f for f in model.meta["_facets"] if f["model"] == "contact"]
    nd = model.layout.n_dofs
    rows, cols, vals = [], [], []
    for i, f in enumerate(facets):
        a, b = (model.layout.extra_dofs(r)[0, :3] for r in f["refs"])
        rows += [a, b]
        cols += [np.full(3, i), np.full(3, i)]
        vals += [f["normal"], -f["normal"]]
    G = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nd, len(facets)))
    return UnilateralSet(G, np.array([f["kn"] for f in facets]), np.array([f["gap"] for f in facets]),
                         [f"{f['pair']} {f['side']}" for f in facets])


def facet_forces(model, u: np.ndarray) -> dict:
    """Force (N) in each facet joint: normal (compression positive) and shear magnitude; a contact
    joint adds its state (open/closed) and its gap (mm, s + gap: 0 when closed, negative the
    penetration that its compressive force normal_stiffness x |gap| answers)."""
    out = {}
    for f in model.meta.get("_facets", []):
        a, b = (model.layout.extra_dofs(r)[0, :3] for r in f["refs"])
        d = u[a] - u[b]
        F = f["K"] @ d  # force on the upper patch's reference from the spring is -F
        fn = float(F @ f["normal"])
        row = {"normal": round(-fn, 6), "shear": float(np.linalg.norm(F - fn * f["normal"]))}
        if f["model"] == "contact":
            gap = float(d @ f["normal"]) + f["gap"]
            row.update(normal=round(f["kn"] * max(-gap, 0.0), 6), state="closed" if gap < 0 else "open", gap=gap)
        out[f"{f['pair']} {f['side']}"] = row
    return out


# --------------------------------------------------------------------------------- rotation
def rigid_rotation(points: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Least-squares small rotation (rad) of a point cloud: A^-1 sum r x u, A = sum(|r|^2 I - r r^T)."""
    r = points - points.mean(axis=0)
    A = np.einsum("ij,ik->jk", r, r)
    A = np.trace(A) * np.eye(3) - A
    return np.linalg.solve(A, np.cross(r, u - u.mean(axis=0)).sum(axis=0))


def range_of_motion(model, seg, u: np.ndarray, axis: np.ndarray | None) -> dict:
    """Rotation of each level's body and each pair's relative rotation (deg), about ``axis`` when given."""
    mesh = model.mesh
    un = u[: 3 * mesh.n_nodes].reshape(-1, 3)
    rot = {}
    for lv in seg.levels:
        nodes = np.unique(mesh.cells[seg.body(lv)][:, :4])
        rot[lv] = rigid_rotation(mesh.points[nodes], un[nodes])
    out = {"rotation_deg": {lv: np.degrees(r).tolist() for lv, r in rot.items()},
           "relative_rotation_deg": {f"{a}-{b}": np.degrees(rot[a] - rot[b]).tolist() for a, b in seg.pairs()}}
    if axis is not None:
        a = np.asarray(axis, float) / np.linalg.norm(axis)
        out["axis"] = a.tolist()
        out["range_of_motion_deg"] = {f"{x}-{y}": float(np.degrees((rot[x] - rot[y]) @ a)) for x, y in seg.pairs()}
    return out


# ------------------------------------------------------------------------------ load sharing
def solid_plane_force(model, geom, res, elements: np.ndarray, z0: float) -> np.ndarray:
    """Force (N) that ``elements`` above z = z0 transmit across the plane to those below."""
    mesh = model.mesh
    z = mesh.points[:, 2]
    plus = z[mesh.cells[elements]] > z0
    cut = elements[plus.any(axis=1) & ~plus.all(axis=1)]
    if len(cut) == 0:
        return np.zeros(3)
    m = (z[mesh.cells[cut]] > z0).astype(float)
    g = geom.grads[..., cut]
    w = geom.wdet[:, cut]
    sig = res.fields.stress_q[cut]
    return np.einsum("qm,mi,mqab,qibm->a", w, m, sig, g)


def beam_plane_force(pts: np.ndarray, ue: np.ndarray, E: float, nu: float, section: BeamSection, z0: float) -> np.ndarray:
    """Force (N) a chain of beams (nodes ``pts``, element displacements ``ue``) carries down across z = z0."""
    below = pts[:, 2] <= z0
    cross = np.flatnonzero(below[:-1] != below[1:])
    if len(cross) == 0:
        return np.zeros(3)
    f = beam_end_forces(pts[:-1][cross], pts[1:][cross], E, nu, section, ue[cross])
    R = beam_frames(pts[:-1][cross], pts[1:][cross])
    f0 = np.einsum("eji,ej->ei", R, f[:, 0:3])  # force the element exerts on node 0 is -f0
    f1 = np.einsum("eji,ej->ei", R, f[:, 6:9])
    upper_is_1 = (pts[1:][cross, 2] > pts[:-1][cross, 2])[:, None]
    # what the part above the plane pushes onto the part below: the force on the element at its upper node
    return np.where(upper_is_1, f1, f0).sum(axis=0)


# ------------------------------------------------------------------------------------- rods
POSTERIOR = (0.0, -1.0, 0.0)  # the segment frame: x right, y anterior, z superior


@dataclass
class Rod:
    """A rod through screw heads (extra-node ids), a chain of Timoshenko beams. mm, MPa.

    ``prebend`` (1/mm): curvature of the surgeon's contour, the rod's stress-free shape, in
    the plane of the rod and ``posterior``; positive is lordotic (centre of curvature
    posterior: the rod is concave backwards, like the lumbar lordosis), negative kyphotic,
    0 a straight rod.  It is counted from the heads' own line (a rod that fits the heads
    exactly is prebend 0), is uniform along the rod and bends it about its lateral axis
    t x p (t the rod tangent, p the posterior direction normal to it).  Forced through the
    heads it preloads rod, screws and bone in every load case (:func:`rod_preload`).
    """

    name: str
    heads: list[int]
    section: BeamSection
    E: float
    nu: float
    yield_strength: float
    nodes: np.ndarray | None = None
    prebend: float = 0.0  # 1/mm, + lordotic
    posterior: tuple[float, float, float] = POSTERIOR
    kappa0: np.ndarray | None = None  # (n_beams, 3) rad/mm, set by add_rod when prebend != 0
    preload: tuple[np.ndarray, np.ndarray] | None = None  # (dofs, N and N mm), set by add_rod


def parse_prebend(value, path: str = "rods.prebend") -> dict[str, float]:
    """``{radius: R}`` (mm) or ``{angle_deg: a}`` (total bend between the end heads), signed
    (+ lordotic); ``None`` -> ``{}`` (straight).  Bad input raises a one-line InputError."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("radius", "angle_deg"):
        raise InputError(f"give one of radius (mm) or angle_deg, e.g. {{radius: 200}}; got {value!r}", path)
    key, x = next(iter(value.items()))
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x):
        raise InputError(f"must be a number, got {x!r}", f"{path}.{key}")
    if key == "radius" and abs(x) < 20.0:
        raise InputError(f"|radius| must be >= 20 mm (a rod bent tighter than that is out of the linear range), got {x!r}",
                         f"{path}.radius")
    if key == "angle_deg" and abs(x) > 60.0:
        raise InputError(f"|angle_deg| must be <= 60, got {x!r}", f"{path}.angle_deg")
    return {key: float(x)}


def prebend_curvature(prebend: dict[str, float] | None, heads: np.ndarray) -> float:
    """Curvature (1/mm, + lordotic) of a :func:`parse_prebend` dict for a rod through the head
    points ``heads`` (m, 3) mm: 1/R, or the bend angle over the heads' polyline length."""
    if not prebend:
        return 0.0
    if "radius" in prebend:
        return 1.0 / prebend["radius"]
    length = float(np.linalg.norm(np.diff(np.asarray(heads, float), axis=0), axis=1).sum())
    return float(np.radians(prebend["angle_deg"])) / length


def rod_kappa0(pts: np.ndarray, prebend: float, posterior=POSTERIOR) -> np.ndarray:
    """Initial curvature vectors (n-1, 3) rad/mm of the beams along the polyline ``pts`` (n, 3):
    kappa0 = prebend t x p, p the unit part of ``posterior`` normal to the beam's tangent t
    (d t0/ds = prebend p: the stress-free rod turns towards posterior)."""
    t = np.diff(pts, axis=0)
    t /= np.linalg.norm(t, axis=1)[:, None]
    p = np.asarray(posterior, float)
    p = p - np.einsum("ni,i->n", t, p)[:, None] * t
    norm = np.linalg.norm(p, axis=1)
    if np.any(norm < 1e-6):
        raise FemboneError("a prebent rod cannot run along the posterior direction (its sagittal plane is undefined)")
    return prebend * np.cross(t, p / norm[:, None])


def add_rod(model, rod: Rod, h: float) -> None:
    """Beams along straight pieces between consecutive heads (spacing <= h); the end nodes are the
    heads themselves, so the joints are rigid (all six DOFs shared).  A nonzero ``rod.prebend``
    sets ``rod.kappa0`` and ``rod.preload``, the curvature's nodal loads (:func:`rod_preload`)."""
    pts_all = model.layout.extra_points
    ids = [rod.heads[0]]
    for a, b in zip(rod.heads[:-1], rod.heads[1:]):
        pa, pb = pts_all[a], pts_all[b]
        n = max(1, int(np.ceil(np.linalg.norm(pb - pa) / h)))
        t = np.arange(1, n)[:, None] / n
        if len(t):
            ids.extend(model.layout.add_extra(pa + t * (pb - pa)).tolist())
        ids.append(b)
    ids = np.asarray(ids)
    rod.nodes = ids
    pts = model.layout.extra_points[ids]
    dofs = model.layout.extra_dofs(ids)
    Ke = beam_global_stiffness(pts[:-1], pts[1:], rod.E, rod.nu, rod.section)
    edofs = np.hstack([dofs[:-1], dofs[1:]])
    nd = model.layout.n_dofs
    model.meta.setdefault("_extra_stiffness", []).append(
        sp.csr_matrix((Ke.ravel(), (np.repeat(edofs, 12, axis=1).ravel(), np.tile(edofs, (1, 12)).ravel())), shape=(nd, nd)))
    nn = model.mesh.n_nodes
    model.meta["_extra_edges"] = np.vstack([model.meta.get("_extra_edges", np.zeros((0, 2), int)),
                                            np.column_stack([nn + ids[:-1], nn + ids[1:]])])
    model.meta.setdefault("_lines", []).append((rod.name, np.column_stack([ids[:-1], ids[1:]])))
    if rod.prebend != 0.0:
        rod.kappa0 = rod_kappa0(pts, rod.prebend, rod.posterior)
        rod.preload = (edofs.ravel(), beam_curvature_load(pts[:-1], pts[1:], rod.E, rod.section, rod.kappa0).ravel())


def rod_preload(rods: list[Rod], n_dofs: int) -> np.ndarray:
    """Sum of the rods' prebend loads (N, N mm), shape (n_dofs,); zeros without prebend.

    The loads are self-equilibrated (no net force or moment), so adding them to every load
    case leaves the reactions' balance against the applied loads unchanged."""
    f = np.zeros(n_dofs)
    for rod in rods:  # one or two rods, each vectorised over its beams
        if rod.preload is not None:
            f += np.bincount(rod.preload[0], weights=rod.preload[1], minlength=n_dofs)
    return f


def add_rod_preloads(model, rods: list[Rod]) -> None:
    """Add :func:`rod_preload` to every load case in ``model.loads`` (call once, after they are built)."""
    if not any(r.preload is not None for r in rods):
        return
    f = rod_preload(rods, model.layout.n_dofs)
    for name, vec in model.loads.items():
        model.loads[name] = vec + f[: len(vec)]


def chain_results(model, ids: np.ndarray, E: float, nu: float, section: BeamSection, yield_strength: float, u: np.ndarray,
                  kappa0: np.ndarray | None = None) -> dict:
    """Peak von Mises stress (MPa) against yield, axial force and bending moment of a beam chain;
    ``kappa0`` (n-1, 3) rad/mm: a prebent rod's initial curvature (M = E I (kappa - kappa0))."""
    pts = model.layout.extra_points[ids]
    dofs = model.layout.extra_dofs(ids)
    ue = np.hstack([u[dofs[:-1]], u[dofs[1:]]])
    r = beam_results(pts[:-1], pts[1:], E, nu, section, ue, kappa0=kappa0)
    vm = r["von_mises"]
    return {"peak_von_mises": float(vm.max()), "yield_ratio": float(vm.max() / yield_strength),
            "max_axial_force": float(np.abs(r["axial_force"]).max()), "max_bending_moment": float(r["bending"].max()),
            "_ue": ue, "_pts": pts}
