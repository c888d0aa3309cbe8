"""Meshing helpers of the parametric vertebra: size fields, named facets, tet10 validity (mm)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from fembone.core.errors import FemboneError
from fembone.spine.geometry.vertebra_dims import VertebraDims, _Layout


def _mesh_sizes(gmsh, size: float, thin: Iterable[int], h_thin: float) -> None:
    """``h_thin`` in the thin volumes (the cortical shell and what replaces it), ``size`` elsewhere."""
    f = gmsh.model.mesh.field.add("Constant")
    gmsh.model.mesh.field.setNumbers(f, "VolumesList", sorted(thin))
    gmsh.model.mesh.field.setNumber(f, "IncludeBoundary", 1)
    gmsh.model.mesh.field.setNumber(f, "VIn", h_thin)
    gmsh.model.mesh.field.setNumber(f, "VOut", size)
    gmsh.model.mesh.field.setAsBackgroundMesh(f)
    gmsh.option.setNumber("Mesh.MeshSizeMax", size)
    gmsh.option.setNumber("Mesh.MeshSizeMin", 0.25 * h_thin)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 8)  # >= 8 elements per 2 pi on small radii (processes)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)  # core grows to `size`
    gmsh.option.setNumber("Mesh.Optimize", 1)
    gmsh.option.setNumber("Mesh.OptimizeNetgen", 1)
    gmsh.option.setNumber("Mesh.ElementOrder", 1)


def _face_box(gmsh, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Tight bounding box of a meshed face from its nodes (OpenCASCADE boxes of BSpline faces are loose)."""
    _, xyz, _ = gmsh.model.mesh.getNodes(2, int(f), includeBoundary=True)
    xyz = np.asarray(xyz).reshape(-1, 3)
    return xyz.min(axis=0), xyz.max(axis=0)


def _outer_faces(gmsh, vols: Iterable[int], inside: set[int]) -> list[int]:
    """Faces of ``vols`` that bound exactly one volume of ``inside`` (in the order found)."""
    out = []
    for tg in sorted(vols):
        _, faces = gmsh.model.getAdjacencies(3, tg)
        for f in faces:
            up, _ = gmsh.model.getAdjacencies(2, int(f))
            if sum(int(u) in inside for u in up) == 1 and int(f) not in out:
                out.append(int(f))
    return out


def _body_surfaces(gmsh, dims: VertebraDims, lay: _Layout, body: set[int], bone: set[int],
                   exclude: set[int], t: float) -> dict[str, list[int]]:
    """Outer endplate faces and the posterior wall of the body, from the bounding boxes of their nodes.

    ``body``: volumes of the vertebral body (shell, core, inclusions in it); ``bone``: body and
    posterior elements (faces shared with them are interfaces, faces shared with caps or discs are
    not); ``exclude``: faces of void surfaces.  The posterior wall is the outer body face(s) between
    the posterior-wall seams (|x| <= xw) facing the canal; it spans the body height.
    """
    H = dims.body_height
    sup, inf, pw = [], [], []
    z_min_wall = math.inf
    z_max_wall = -math.inf
    for f in _outer_faces(gmsh, body, bone):
        if f in exclude:
            continue
        (x0, y0, z0), (x1, y1, z1) = _face_box(gmsh, f)
        if z0 > 0.5 * H - dims.endplate_dish - 0.5 * t:
            sup.append(f)
        elif z1 < -0.5 * H + dims.endplate_dish + 0.5 * t:
            inf.append(f)
        elif x0 > -lay.xw - 0.5 and x1 < lay.xw + 0.5 and y1 < 0.0 and y0 > lay.y_back - 0.5:
            pw.append(f)
            z_min_wall, z_max_wall = min(z_min_wall, z0), max(z_max_wall, z1)
    if not sup or not inf or not pw or z_max_wall - z_min_wall < 0.9 * H:
        raise FemboneError(
            f"{dims.level}: could not identify body surfaces (superior {sup}, inferior {inf}, posterior wall {pw})"
        )
    return {"endplate_superior": sorted(sup), "endplate_inferior": sorted(inf), "posterior_wall": sorted(pw)}


def _flat_faces(gmsh, vols: Iterable[int], z: float, tol: float = 1e-6) -> list[int]:
    """Faces of ``vols`` lying in the plane at height ``z`` (mm)."""
    out = set()
    for tg in vols:
        _, faces = gmsh.model.getAdjacencies(3, int(tg))
        for f in faces:
            (_, _, z0), (_, _, z1) = _face_box(gmsh, int(f))
            if abs(z0 - z) <= tol and abs(z1 - z) <= tol:
                out.add(int(f))
    return sorted(out)


def _straighten_inverted(gmsh, max_passes: int = 4) -> bool:
    """Put the mid-edge nodes of tet10s with det J <= 0 back on their chords.

    Curving mid-edge nodes onto the CAD surfaces folds a few thin tets where
    the posterior-wall seam meets an endplate; straightening those edges (and
    so the neighbours sharing them) unfolds them.  Returns True when no
    inverted tet is left.
    """
    _, _, _, _, ref, _ = gmsh.model.mesh.getElementProperties(11)
    ref = np.asarray(ref).reshape(10, 3)
    pairs = []
    for k in range(4, 10):
        for i in range(4):
            for j in range(i + 1, 4):
                if np.allclose(0.5 * (ref[i] + ref[j]), ref[k]):
                    pairs.append((k, i, j))
    for _ in range(max_passes):
        etypes, etags, enodes = gmsh.model.mesh.getElements(3)
        bad_any = False
        for et, tags, nodes in zip(etypes, etags, enodes):
            if et != 11 or not len(tags):
                continue
            q = np.asarray(gmsh.model.mesh.getElementQualities(tags, "minDetJac"))
            bad = np.nonzero(q <= 0.0)[0]
            if not len(bad):
                continue
            bad_any = True
            conn = np.asarray(nodes).reshape(-1, 10)[bad]
            for row in conn:
                xyz = {int(n): np.asarray(gmsh.model.mesh.getNode(int(n))[0]) for n in row[:4]}
                for k, i, j in pairs:
                    mid = 0.5 * (xyz[int(row[i])] + xyz[int(row[j])])
                    gmsh.model.mesh.setNode(int(row[k]), mid.tolist(), [])
        if not bad_any:
            return True
    return _min_det_jac(gmsh) > 0.0


def _min_det_jac(gmsh) -> float:
    _, etags, _ = gmsh.model.mesh.getElements(3)
    worst = math.inf
    for tags in etags:
        if len(tags):
            q = gmsh.model.mesh.getElementQualities(tags, "minDetJac")
            worst = min(worst, float(np.min(q)))
    return worst


def _finish_order(gmsh, order: int, level: str) -> None:
    """Raise to tet10 when asked (unfolding tets that curved edges invert) and check det J > 0."""
    if order == 2:
        gmsh.model.mesh.setOrder(2)  # mid-edge nodes on the CAD surfaces
        if not _straighten_inverted(gmsh):  # still folded: straight-sided tet10 everywhere
            gmsh.option.setNumber("Mesh.SecondOrderLinear", 1)
            gmsh.model.mesh.setOrder(1)
            gmsh.model.mesh.setOrder(2)
    if _min_det_jac(gmsh) <= 0.0:
        raise FemboneError(f"{level}: mesh has inverted tetrahedra; try another size")
