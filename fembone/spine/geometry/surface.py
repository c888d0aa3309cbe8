"""Tetrahedral vertebra meshes from a closed, segmented surface (stl, obj, ply, vtk/vtp).

:func:`mesh_surface` reads the surface, checks it, finds (or is told) the anatomical
frame, meshes the inside with gmsh and names the groups a vertebra case needs, exactly
as the parametric generator (:mod:`fembone.spine.geometry.vertebra`) does:

    element sets  ``cortical_shell``, ``trabecular``, ``posterior_elements``
                  (every tetrahedron in exactly one);
    facet sets    ``endplate_superior``, ``endplate_inferior``, ``posterior_wall``.

Frame of the written mesh (RAS, mm): origin at the volume centroid of the vertebral body
(``cortical_shell`` + ``trabecular``), +x to the patient's right, +y anterior, +z cranial.

Steps: :mod:`~fembone.spine.geometry.surface_read` reads and checks the surface,
:mod:`~fembone.spine.geometry.surface_frame` finds the frame (cranial axis, anterior, sign of
the cranial axis) and the plane between the body and the posterior elements (see its notes);
this module meshes the inside and names the groups:

* **cortical shell** -- body elements nearest the outer surface (exact distance from the
  element centroid), taken in order of distance until their volume equals ``shell area x
  shell_thickness``; every body element with a face on the surface is added so that the
  shell is closed.  The shell's volume (and hence its stiffness contribution) is then
  right for any element size up to ~3.5 x ``shell_thickness``; for coarser meshes the
  closed one-element layer is thicker than asked and a warning gives its effective
  thickness.  The layer is one or two elements thick and ragged (no conforming interface).
* **endplates** -- boundary faces of body elements whose outward normal is within 40 deg
  of +z (superior) or -z (inferior) and that lie in the upper (lower) 35 % of the body
  height; only the largest edge-connected patch is kept.
* **posterior wall** -- boundary faces of body elements whose normal is within 60 deg of
  -y and whose centre projects within 3 mm of the foramen's silhouette.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from fembone.core.errors import FemboneError, InputError
from fembone.spine.geometry.surface_frame import PITCH, SurfaceFrame, detect_frame, parse_axis
from fembone.spine.geometry.surface_read import check_surface, read_surface

__all__ = ["mesh_surface", "read_surface", "check_surface", "detect_frame", "SurfaceFrame", "parse_axis"]

log = logging.getLogger(__name__)

POOR_GAMMA = 0.1  # gmsh "gamma" quality below which the tet mesh gets a Netgen optimisation pass


def _gmsh_tets(Q, F, size, source, verbose=False):
    """Tetrahedra inside the closed surface (Q, F) with gmsh; remeshes the surface if its
    triangles differ much from ``size``.  Returns (points, tet4 cells)."""
    from fembone.spine.geometry.gmsh_session import gmsh_model

    edges = np.linalg.norm(Q[F] - Q[F[:, [1, 2, 0]]], axis=2)
    h0 = float(np.median(edges))
    remesh = not (0.75 * h0 <= size <= 1.35 * h0)
    with tempfile.TemporaryDirectory() as tmp:
        stl = os.path.join(tmp, "surface.stl")
        _write_stl(stl, Q, F)
        try:
            with gmsh_model("surface", verbose) as gmsh:
                gmsh.merge(stl)
                if remesh:
                    gmsh.model.mesh.classifySurfaces(math.radians(60), True, True, math.pi)
                    gmsh.model.mesh.createGeometry()
                surfs = [t for _, t in gmsh.model.getEntities(2)]
                loop = gmsh.model.geo.addSurfaceLoop(surfs)
                gmsh.model.geo.addVolume([loop])
                gmsh.model.geo.synchronize()
                gmsh.option.setNumber("Mesh.MeshSizeMax", size)
                gmsh.option.setNumber("Mesh.MeshSizeMin", 0.3 * size)
                gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
                gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
                gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 1)
                gmsh.option.setNumber("Mesh.Optimize", 1)
                gmsh.option.setNumber("Mesh.ElementOrder", 1)
                gmsh.model.mesh.generate(3)
                etypes, etags, _ = gmsh.model.mesh.getElements(3)
                if 4 in list(etypes):
                    q = gmsh.model.mesh.getElementQualities(etags[list(etypes).index(4)], "gamma")
                    if len(q) and float(np.min(q)) < POOR_GAMMA:  # slivers: one Netgen pass
                        gmsh.model.mesh.optimize("Netgen")
                ntags, xyz, _ = gmsh.model.mesh.getNodes()
                etypes, _, enodes = gmsh.model.mesh.getElements(3)
        except FemboneError:
            raise
        except Exception as exc:  # gmsh raises plain Exception with its last error
            text = str(exc).lower()
            if any(k in text for k in ("intersect", "overlap", "self")):
                raise InputError(f"surface is self-intersecting (gmsh: {exc})", source) from None
            raise FemboneError(f"{source}: gmsh failed to mesh the surface: {exc}") from exc
    if 4 not in list(etypes):
        raise FemboneError(f"{source}: gmsh produced no tetrahedra")
    tets = np.asarray(enodes[list(etypes).index(4)], np.int64).reshape(-1, 4)
    order = np.argsort(ntags)
    pts = np.asarray(xyz, float).reshape(-1, 3)[order]
    idx = np.searchsorted(np.asarray(ntags)[order], tets)
    used = np.unique(idx)
    new = np.full(len(pts), -1, np.int64)
    new[used] = np.arange(len(used))
    return pts[used], new[idx], remesh


def _write_stl(path, Q, F):
    T = Q[F].astype(np.float32)
    n = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
    rec = np.zeros(len(F), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rec["n"], rec["v"] = n, T
    with open(path, "wb") as fh:
        fh.write(b"fembone surface".ljust(80, b" "))
        fh.write(np.uint32(len(F)).tobytes())
        fh.write(rec.tobytes())


def _face_patches(faces: np.ndarray, n_nodes: int) -> np.ndarray:
    """Edge-connected component label of each triangle."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nf = len(faces)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.sort(e, axis=1)
    key = e[:, 0] * n_nodes + e[:, 1]
    fid = np.tile(np.arange(nf), 3)
    o = np.argsort(key, kind="stable")
    k, f = key[o], fid[o]
    same = k[1:] == k[:-1]
    g = coo_matrix((np.ones(same.sum()), (f[:-1][same], f[1:][same])), shape=(nf, nf))
    return connected_components(g, directed=False)[1]


def _largest_patch(faces: np.ndarray, area: np.ndarray, n_nodes: int) -> np.ndarray:
    if len(faces) == 0:
        return np.zeros(0, bool)
    lab = _face_patches(faces, n_nodes)
    tot = np.bincount(lab, weights=area)
    return lab == int(np.argmax(tot))


def _surface_distance(x: np.ndarray, T: np.ndarray, k: int = 8) -> np.ndarray:
    """Distance from points ``x`` to the triangle surface ``T`` (nt, 3, 3): exact
    point-triangle distances to the ``k`` triangles with the nearest centroids."""
    from scipy.spatial import cKDTree

    k = min(k, len(T))
    _, cand = cKDTree(T.mean(axis=1)).query(x, k=k)
    cand = cand.reshape(len(x), k)
    best = np.full(len(x), np.inf)
    for m in range(k):
        best = np.minimum(best, _point_triangle_distance(x, T[cand[:, m]]))
    return best


def _point_triangle_distance(p: np.ndarray, T: np.ndarray) -> np.ndarray:
    a, b, c = T[:, 0], T[:, 1], T[:, 2]
    n = np.cross(b - a, c - a)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
    h = np.einsum("ij,ij->i", p - a, n)
    q = p - h[:, None] * n
    inside = np.ones(len(p), bool)
    seg = np.full(len(p), np.inf)
    for u, v in ((a, b), (b, c), (c, a)):
        e = v - u
        inside &= np.einsum("ij,ij->i", np.cross(e, q - u), n) >= 0.0
        t = np.clip(np.einsum("ij,ij->i", p - u, e) / np.maximum(np.einsum("ij,ij->i", e, e), 1e-300), 0.0, 1.0)
        seg = np.minimum(seg, np.linalg.norm(p - u - t[:, None] * e, axis=1))
    return np.where(inside, np.abs(h), seg)


def _regions(points, cells, frame: SurfaceFrame, shell_thickness: float, source: str):
    """Element sets and facet sets (see the module notes); points in the final frame."""
    from scipy import ndimage as ndi

    from fembone.core.mesh import Mesh, tet_volumes

    mesh = Mesh(points, cells, source=source)
    vol = np.abs(tet_volumes(points, cells))
    cen = mesh.centroids()
    body = cen[:, 1] > frame.y_cut
    if not body.any() or body.all():
        raise InputError("could not split the vertebral body from the posterior elements", source)
    # origin: body centroid
    bc = (vol[body] @ cen[body]) / vol[body].sum()
    points = points - bc
    cen = cen - bc
    y_cut = frame.y_cut - bc[1]
    mesh = Mesh(points, cells, source=source)
    faces, felem = mesh.boundary_faces()
    T = points[faces]
    fn = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0])
    farea = 0.5 * np.linalg.norm(fn, axis=1)
    fn /= np.maximum(2.0 * farea, 1e-300)[:, None]
    fc = T.mean(axis=1)
    fbody = body[felem]

    # cortical shell: volume-matched distance layer, closed by the face-adjacent elements
    bid = np.flatnonzero(body)
    dist = _surface_distance(cen[bid], T)
    area_body = float(farea[fbody].sum())
    target = area_body * shell_thickness
    o = np.argsort(dist)
    cum = np.cumsum(vol[bid][o])
    n_take = int(np.searchsorted(cum, target)) + 1
    cortical = np.zeros(len(cells), bool)
    cortical[bid[o[:n_take]]] = True
    cortical[felem[fbody]] = True
    eff = float(vol[cortical].sum() / area_body)
    if eff > 1.5 * shell_thickness:
        warnings.warn(
            f"{source}: elements are too coarse for a {shell_thickness:g} mm cortical shell; the closed "
            f"one-element layer is {eff:.2f} mm thick on average (use a smaller size)", stacklevel=3)

    # endplates
    zb = fc[fbody, 2]
    zlo, zhi = float(zb.min()), float(zb.max())
    H = zhi - zlo
    cos40 = math.cos(math.radians(40))
    sup = fbody & (fn[:, 2] >= cos40) & (fc[:, 2] >= zhi - 0.35 * H)
    inf = fbody & (fn[:, 2] <= -cos40) & (fc[:, 2] <= zlo + 0.35 * H)
    for m in (sup, inf):
        ids = np.flatnonzero(m)
        keep = _largest_patch(faces[ids], farea[ids], len(points))
        m[ids[~keep]] = False

    # posterior wall: faces facing the canal
    pw = fbody & (fn[:, 1] <= -0.5)
    if frame.foramen is not None and len(frame.foramen):
        g = frame.foramen - bc[:2]
        lo = g.min(axis=0) - 5.0
        shape = np.ceil((g.max(axis=0) + 5.0 - lo) / PITCH).astype(int) + 1
        img = np.ones(shape, bool)
        ij = np.round((g - lo) / PITCH).astype(int)
        img[ij[:, 0], ij[:, 1]] = False
        dt = ndi.distance_transform_edt(img) * PITCH
        ij = np.round((fc[:, :2] - lo) / PITCH).astype(int)
        inside = (ij >= 0).all(axis=1) & (ij < shape).all(axis=1)
        near = np.zeros(len(faces), bool)
        near[inside] = dt[ij[inside, 0], ij[inside, 1]] <= 3.0
        pw &= near
    else:  # no foramen: the central third of the posterior body surface near the cut
        xb = fc[fbody, 0]
        half = 0.25 * float(xb.max() - xb.min())
        pw &= (np.abs(fc[:, 0]) <= half) & (fc[:, 1] <= y_cut + 6.0)
    pw &= ~sup & ~inf
    names = {"endplate_superior": sup, "endplate_inferior": inf, "posterior_wall": pw}
    for name, m in names.items():
        if not m.any():
            raise InputError(f"could not find the {name.replace('_', ' ')} on the surface; check the frame "
                             "(anterior=/cranial=)", source)
    cell_sets = {
        "cortical_shell": np.flatnonzero(cortical),
        "trabecular": np.flatnonzero(body & ~cortical),
        "posterior_elements": np.flatnonzero(~body),
    }
    facet_sets = {name: faces[m] for name, m in names.items()}
    stats = {"shell_effective_thickness": eff, "body_height": H}
    return Mesh(points, cells, cell_sets, facet_sets, source), stats


def mesh_surface(
    surface,
    out,
    units: str = "mm",
    size: float = 2.0,
    order: int = 2,
    shell_thickness: float = 1.0,
    anterior=None,
    cranial=None,
    verbose: bool = False,
) -> Path:
    """Mesh the inside of a closed vertebra surface and write a gmsh 2.2 ``.msh`` with groups.

    ``units``: of the surface file (``"m"`` scales by 1000).  ``size``: element size, mm (the
    surface is remeshed when its own triangles are more than ~25-35 % off).  ``order``: 1
    (tet4) or 2 (tet10, straight-sided).  ``shell_thickness``: cortical shell, mm.
    ``anterior`` / ``cranial``: the file's axes (``"+x"``, ``"-z"``, ...), detected when
    omitted.  Output frame: origin at the body centroid, +x right, +y anterior, +z cranial,
    mm.  Returns the written path.  Raises :class:`InputError` for bad surfaces or options.
    """
    from fembone.core.mesh import check_mesh, promote_to_tet10
    from fembone.core.meshgen import write_mesh

    src = str(surface)
    if not (isinstance(order, (int, np.integer)) and order in (1, 2)):
        raise InputError(f"order must be 1 (tet4) or 2 (tet10), got {order!r}", "order")
    if not (isinstance(size, (int, float)) and math.isfinite(size) and 0.3 <= size <= 10.0):
        raise InputError(f"element size must be between 0.3 and 10 mm, got {size!r}", "size")
    if not (isinstance(shell_thickness, (int, float)) and math.isfinite(shell_thickness) and 0.2 <= shell_thickness <= 5.0):
        raise InputError(f"shell_thickness must be between 0.2 and 5 mm, got {shell_thickness!r}", "shell_thickness")
    out = Path(out)
    if out.suffix.lower() != ".msh":
        raise InputError("output must be a .msh file", str(out))
    t0 = time.perf_counter()
    P, F = read_surface(surface, units)
    F = check_surface(P, F, src)
    t1 = time.perf_counter()
    frame = detect_frame(P, F, anterior, cranial, src)
    t2 = time.perf_counter()
    Q = frame.to_frame(P)
    pts, tets, remeshed = _gmsh_tets(Q, F, float(size), src, verbose)
    t3 = time.perf_counter()
    mesh, stats = _regions(pts, tets, frame, float(shell_thickness), src)
    if order == 2:
        mesh = promote_to_tet10(mesh)
    check_mesh(mesh)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_mesh(mesh, out)
    t4 = time.perf_counter()
    log.info("%s: %d tets, frame %s, read+check %.2fs, frame %.2fs, gmsh %.2fs (remeshed %s), groups+write %.2fs",
             src, mesh.n_elements, frame.detected, t1 - t0, t2 - t1, t3 - t2, remeshed, t4 - t3)
    return out
