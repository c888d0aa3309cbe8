"""``where:`` selectors: pick nodes, elements or boundary faces of a mesh. Units: mm.

A selector is a one-key mapping:

* ``set: NAME`` - a named element set or facet set of the mesh;
* ``plane: {x|y|z: value, tol: t}`` - on a coordinate plane (default tol: 1e-6 of the model size);
* ``box: {min: [..], max: [..]}``;  ``sphere: {center, radius}``;
* ``ellipsoid: {center, radii, axes}`` (``axes``: optional 3x3 rows = the principal directions);
* ``cylinder: {start, end, radius}`` (finite, capped).

An element is selected when its centroid is inside, a node when it is inside, a face
(of the mesh boundary) when all its nodes are.  Empty selections are errors naming the
key path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fembone.core.errors import InputError, show
from fembone.core.schema import is_number
from fembone.core.mesh import Mesh, face_keys

SHAPES = ("set", "plane", "box", "sphere", "ellipsoid", "cylinder")


def _vec(v, n, path, name) -> np.ndarray:
    if not (isinstance(v, list | tuple) and len(v) == n and all(is_number(x) for x in v)):
        raise InputError(f"expected a list of {n} numbers, got {show(v)}", f"{path}.{name}")
    return np.asarray(v, float)


def _scalar(v, path, name, positive=True) -> float:
    if not is_number(v) or (positive and v <= 0):
        raise InputError(f"expected a {'positive ' if positive else ''}number, got {show(v)}", f"{path}.{name}")
    return float(v)


def _keys(d, allowed, required, path):
    if not isinstance(d, dict):
        raise InputError(f"expected a mapping, got {type(d).__name__}", path)
    for k in d:
        if k not in allowed:
            raise InputError(f"unknown key (expected one of: {', '.join(allowed)})", f"{path}.{k}")
    for k in required:
        if k not in d:
            raise InputError(f"missing key '{k}'", path)


def region(where: dict, path: str, scale: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """A function points (n, 3) -> bool mask for a geometric selector (not ``set``)."""
    (kind, spec), = where.items()
    p = f"{path}.{kind}"
    if kind == "plane":
        if not isinstance(spec, dict):
            raise InputError("expected a mapping like {x: 0.0}", p)
        axes = [k for k in spec if k in ("x", "y", "z")]
        _keys(spec, ("x", "y", "z", "tol"), (), p)
        if len(axes) != 1:
            raise InputError("give exactly one of x, y, z", p)
        ax = "xyz".index(axes[0])
        val = _scalar(spec[axes[0]], p, axes[0], positive=False)
        tol = _scalar(spec.get("tol", 1e-6 * scale), p, "tol")
        return lambda x: np.abs(x[:, ax] - val) <= tol
    if kind == "box":
        _keys(spec, ("min", "max"), ("min", "max"), p)
        lo, hi = _vec(spec["min"], 3, p, "min"), _vec(spec["max"], 3, p, "max")
        if np.any(hi < lo):
            raise InputError(f"max {hi.tolist()} is below min {lo.tolist()}", p)
        eps = 1e-9 * scale
        return lambda x: np.all((x >= lo - eps) & (x <= hi + eps), axis=1)
    if kind == "sphere":
        _keys(spec, ("center", "radius"), ("center", "radius"), p)
        c, r = _vec(spec["center"], 3, p, "center"), _scalar(spec["radius"], p, "radius")
        return lambda x: ((x - c) ** 2).sum(axis=1) <= r * r
    if kind == "ellipsoid":
        _keys(spec, ("center", "radii", "axes"), ("center", "radii"), p)
        c, radii = _vec(spec["center"], 3, p, "center"), _vec(spec["radii"], 3, p, "radii")
        if np.any(radii <= 0):
            raise InputError(f"radii must be positive, got {radii.tolist()}", f"{p}.radii")
        R = np.eye(3)
        if "axes" in spec:
            a = spec["axes"]
            if not (isinstance(a, list) and len(a) == 3):
                raise InputError("expected 3 axis vectors", f"{p}.axes")
            R = np.array([_vec(v, 3, p, f"axes[{i}]") for i, v in enumerate(a)])
            R /= np.linalg.norm(R, axis=1)[:, None]
        return lambda x: ((((x - c) @ R.T) / radii) ** 2).sum(axis=1) <= 1.0
    if kind == "cylinder":
        _keys(spec, ("start", "end", "radius"), ("start", "end", "radius"), p)
        a, b = _vec(spec["start"], 3, p, "start"), _vec(spec["end"], 3, p, "end")
        r = _scalar(spec["radius"], p, "radius")
        d = b - a
        L2 = d @ d
        if L2 == 0:
            raise InputError("start and end coincide", p)

        def inside(x):
            t = (x - a) @ d / L2
            perp = (x - a) - t[:, None] * d
            return (t >= 0) & (t <= 1) & ((perp**2).sum(axis=1) <= r * r)

        return inside
    raise InputError(f"unknown selector '{kind}' (expected one of: {', '.join(SHAPES)})", p)


@dataclass(frozen=True)
class Selector:
    """A validated ``where:`` selector: its kind, its (checked) spec and the key path it came from.

    Syntax is checked by :func:`parse_selector` before any mesh exists; that a named set
    exists, and that the selection is not empty, can only be checked against the mesh.
    """

    kind: str
    spec: object
    path: str

    @property
    def where(self) -> dict:
        return {self.kind: self.spec}


def parse_selector(where, path: str = "where") -> Selector:
    """Validate the syntax of a ``where:`` mapping (no mesh needed) into a :class:`Selector`."""
    if isinstance(where, Selector):
        return where
    if not isinstance(where, dict) or len(where) != 1:
        raise InputError(
            f"a selector is a mapping with one of: {', '.join(SHAPES)} (got {show(where)})", path
        )
    (kind, spec), = where.items()
    if kind not in SHAPES:
        raise InputError(f"unknown selector (expected one of: {', '.join(SHAPES)})", f"{path}.{kind}")
    if kind == "set":
        if not isinstance(spec, str):
            raise InputError(f"expected a set name, got {show(spec)}", f"{path}.set")
    else:
        region(where, path)  # raises on malformed shapes
    return Selector(kind, spec, path)


def _check_where(mesh: Mesh, where, path) -> tuple[str, object]:
    sel = parse_selector(where, path)
    if sel.kind == "set" and sel.spec not in mesh.cell_sets and sel.spec not in mesh.facet_sets:
        known = sorted(set(mesh.cell_sets) | set(mesh.facet_sets)) or ["none"]
        raise InputError(f"no set '{sel.spec}' in mesh {mesh.source} (sets: {', '.join(known)})", f"{sel.path}.set")
    return sel.kind, sel.spec


def _scale(mesh: Mesh) -> float:
    return float(np.ptp(mesh.points, axis=0).max()) or 1.0


def _nonempty(ids, what, path, mesh: Mesh | None = None, where=None):
    """``ids`` unless empty; then one line naming the selector and the mesh's bounding box (mm)."""
    if len(ids) == 0:
        sel = f" {show(where)}" if where is not None else ""
        box = ""
        if mesh is not None and mesh.n_nodes:
            lo, hi = mesh.points.min(axis=0), mesh.points.max(axis=0)
            box = f"; the mesh spans x {lo[0]:.4g}..{hi[0]:.4g}, y {lo[1]:.4g}..{hi[1]:.4g}, z {lo[2]:.4g}..{hi[2]:.4g} mm"
        raise InputError(f"selector{sel} selects no {what}{box}", path)
    return ids


def select_nodes(mesh: Mesh, where: dict, path: str = "where") -> np.ndarray:
    """Node ids selected by ``where``."""
    path = where.path if isinstance(where, Selector) else path
    kind, spec = _check_where(mesh, where, path)
    where = {kind: spec}
    if kind == "set":
        if spec in mesh.facet_sets:
            ids = np.unique(mesh.facet_sets[spec])
        else:
            ids = np.unique(mesh.cells[mesh.cell_sets[spec]])
    else:
        ids = np.flatnonzero(region(where, path, _scale(mesh))(mesh.points))
        used = np.zeros(mesh.n_nodes, bool)
        used[ids] = True
        ids = np.flatnonzero(used)
    return _nonempty(ids, "nodes", path, mesh, where)


def select_elements(mesh: Mesh, where: dict | Selector | None, path: str = "where") -> np.ndarray:
    """Element ids selected by ``where`` (``None``: every element)."""
    if where is None:
        return np.arange(mesh.n_elements)
    path = where.path if isinstance(where, Selector) else path
    kind, spec = _check_where(mesh, where, path)
    where = {kind: spec}
    if kind == "set":
        if spec not in mesh.cell_sets:
            raise InputError(f"'{spec}' is a surface (facet) set; an element set is needed here", f"{path}.set")
        ids = mesh.cell_sets[spec]
    else:
        ids = np.flatnonzero(region(where, path, _scale(mesh))(mesh.centroids()))
    return _nonempty(ids, "elements", path, mesh, where)


def orient_faces(mesh: Mesh, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Faces re-oriented like the mesh boundary (outward normal); mask of those on the boundary."""
    bfaces, _ = mesh.boundary_faces()
    nn = mesh.n_nodes

    def key(f):
        return face_keys(np.sort(f[:, :3], axis=1), nn)

    bk = key(bfaces)
    order = np.argsort(bk)
    fk = key(faces)
    pos = np.searchsorted(bk, fk, sorter=order)
    pos = np.minimum(pos, len(bk) - 1)
    hit = bk[order[pos]] == fk
    out = faces.copy()
    out[hit] = bfaces[order[pos[hit]]]
    return out, hit


def select_faces(mesh: Mesh, where: dict, path: str = "where") -> tuple[np.ndarray, np.ndarray]:
    """Faces (nf, 3|6) selected by ``where`` and a mask of those on the mesh boundary (outward)."""
    path = where.path if isinstance(where, Selector) else path
    kind, spec = _check_where(mesh, where, path)
    where = {kind: spec}
    if kind == "set" and spec in mesh.facet_sets:
        faces, on_boundary = orient_faces(mesh, mesh.facet_sets[spec])
    else:
        nodes = select_nodes(mesh, where, path)
        inside = np.zeros(mesh.n_nodes, bool)
        inside[nodes] = True
        bfaces, _ = mesh.boundary_faces()
        faces = bfaces[inside[bfaces].all(axis=1)]
        on_boundary = np.ones(len(faces), bool)
    _nonempty(faces, "boundary faces", path, mesh, where)
    return faces, on_boundary
