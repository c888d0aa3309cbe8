"""Tetrahedral meshes: reading (any format meshio reads), checking, tet4 -> tet10 promotion.

A :class:`Mesh` is a plain dataclass of arrays.  Coordinates are in mm.  Named
element sets (gmsh physical volumes, Abaqus ELSETs, ...) live in ``cell_sets``
as element indices; named surfaces (gmsh physical surfaces, or boundary faces
whose nodes all lie in an Abaqus NSET) in ``facet_sets`` as (nf, 3|6) node ids.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fembone.core.elements import TET4_FACES, TET10_EDGES, TET10_FACES, TRI6_EDGES, volume_element
from fembone.core.errors import InputError

log = logging.getLogger(__name__)

_TET_TYPES = {"tetra": 4, "tetra10": 10}
_TRI_TYPES = {"triangle": 3, "triangle6": 6}

#: elements with shape quality below this trigger a warning (1 = regular tetrahedron)
POOR_QUALITY = 0.05
#: below this (relative to the mean element volume) an element counts as degenerate
DEGENERATE_VOLUME = 1e-10


@dataclass
class Mesh:
    """Tetrahedral mesh (tet4 or tet10) with named element and facet sets. Units: mm."""

    points: np.ndarray  # (nn, 3) float
    cells: np.ndarray  # (ne, 4|10) int
    cell_sets: dict[str, np.ndarray] = field(default_factory=dict)  # name -> element ids
    facet_sets: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (nf, 3|6) node ids
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=float)
        self.cells = np.ascontiguousarray(self.cells, dtype=np.int64)

    @property
    def n_nodes(self) -> int:
        return len(self.points)

    @property
    def n_elements(self) -> int:
        return len(self.cells)

    @property
    def nodes_per_cell(self) -> int:
        return self.cells.shape[1]

    @property
    def order(self) -> int:
        return 1 if self.nodes_per_cell == 4 else 2

    @property
    def element(self):
        return volume_element(self.nodes_per_cell)

    def corner_cells(self) -> np.ndarray:
        return self.cells[:, :4]

    def centroids(self) -> np.ndarray:
        return self.points[self.cells[:, :4]].mean(axis=1)

    def volumes(self) -> np.ndarray:
        """Signed volumes of the straight-sided (corner) tetrahedra, mm^3."""
        return tet_volumes(self.points, self.cells)

    def boundary_faces(self) -> tuple[np.ndarray, np.ndarray]:
        """Faces on the boundary: (nf, 3|6) node ids (outward orientation) and their element ids."""
        if not hasattr(self, "_boundary"):
            self._boundary = _boundary_faces(self.cells)
        return self._boundary


def remove_elements(mesh: Mesh, drop: np.ndarray, hole: str | None = None) -> Mesh:
    """The mesh without the elements ``drop`` (e.g. a void), nodes renumbered, sets kept.

    Element sets lose the dropped ids (empty sets vanish); facet sets lose faces whose nodes
    are gone.  With ``hole``, the faces the dropped elements shared with kept ones become the
    facet set of that name (the hole's surface, oriented out of the remaining body).
    """
    drop = np.unique(np.asarray(drop, np.int64))
    keep = np.ones(mesh.n_elements, bool)
    keep[drop] = False
    new_id = np.full(mesh.n_elements, -1, np.int64)
    new_id[keep] = np.arange(keep.sum())
    sets = {n: new_id[ids][new_id[ids] >= 0] for n, ids in mesh.cell_sets.items()}
    facets = dict(mesh.facet_sets)
    if hole is not None and len(drop):
        kept_faces, _ = _boundary_faces(mesh.cells[keep])
        all_faces, _ = _boundary_faces(mesh.cells)
        nn = mesh.n_nodes
        outer = face_keys(np.sort(all_faces[:, :3], axis=1), nn)
        k = face_keys(np.sort(kept_faces[:, :3], axis=1), nn)
        facets[hole] = kept_faces[~np.isin(k, outer)]
    points, cells, facets = _compact(mesh.points, mesh.cells[keep], facets)
    return Mesh(points, cells, {n: s for n, s in sets.items() if len(s)}, facets, mesh.source)


def tet_volumes(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Signed volume of each tetrahedron from its 4 corners: det[x1-x0, x2-x0, x3-x0] / 6."""
    x = points[cells[:, :4]]
    d = x[:, 1:] - x[:, :1]
    return np.einsum("ij,ij->i", d[:, 0], np.cross(d[:, 1], d[:, 2])) / 6.0


def tet_quality(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Shape quality 6*sqrt(2)*V / l_rms^3: 1 for a regular tetrahedron, 0 for a flat one (signed)."""
    x = points[cells[:, :4]]
    e = x[:, TET10_EDGES[:, 1]] - x[:, TET10_EDGES[:, 0]]
    lrms = np.sqrt((e**2).sum(axis=2).mean(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = 6.0 * np.sqrt(2.0) * tet_volumes(points, cells) / lrms**3
    return np.nan_to_num(q)


def face_keys(sorted_corners: np.ndarray, n_nodes: int) -> np.ndarray:
    """A unique integer per face from its sorted corner ids (int64 while n^3 fits, else void-view)."""
    s = np.ascontiguousarray(sorted_corners, dtype=np.int64)
    if n_nodes < 2_000_000:
        return (s[:, 0] * n_nodes + s[:, 1]) * n_nodes + s[:, 2]
    return s.view(np.dtype((np.void, 24))).ravel()  # exact bytes key for very large meshes


def _boundary_faces(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    faces_local = TET4_FACES if cells.shape[1] == 4 else TET10_FACES
    ne = len(cells)
    faces = cells[:, faces_local].reshape(-1, faces_local.shape[1])  # (4 ne, 3|6)
    s = np.sort(faces[:, :3], axis=1).astype(np.int64)
    key = face_keys(s, int(cells.max()) + 1)  # one integer per face: a 1-D sort, not a row-unique
    order = np.argsort(key, kind="stable")
    k = key[order]
    dup = np.zeros(len(k), bool)
    same = k[1:] == k[:-1]
    dup[1:] |= same
    dup[:-1] |= same
    once = np.empty(len(k), bool)
    once[order] = ~dup
    elem = np.repeat(np.arange(ne), 4)
    return faces[once], elem[once]


def check_mesh(mesh: Mesh) -> dict:
    """Reject inverted or degenerate elements; warn on poor shape quality.

    Raises :class:`InputError` naming how many elements are bad and the worst one.
    Returns statistics (min/mean quality, volume).
    """
    if mesh.n_elements == 0:
        raise InputError("mesh has no tetrahedra", mesh.source)
    if not np.all(np.isfinite(mesh.points)):
        raise InputError("mesh has non-finite node coordinates", mesh.source)
    vol = mesh.volumes()
    q = tet_quality(mesh.points, mesh.cells)
    ref = np.abs(vol).mean()
    bad = (vol <= DEGENERATE_VOLUME * ref) | (q <= 1e-6)
    if mesh.order == 2:
        detj = _tet10_min_jacobian(mesh)
        bad |= detj <= DEGENERATE_VOLUME * ref * 6.0
    if bad.any():
        ids = np.flatnonzero(bad)
        worst = ids[np.argmin(vol[ids])]
        kind = "inverted" if vol[worst] < 0 else "degenerate"
        raise InputError(
            f"{len(ids)} inverted or degenerate element(s); worst: element {worst} "
            f"({kind}, volume {vol[worst]:.3g} mm^3, quality {q[worst]:.3g})",
            mesh.source,
        )
    if q.min() < POOR_QUALITY:
        worst = int(np.argmin(q))
        n = int((q < POOR_QUALITY).sum())
        warnings.warn(
            f"{mesh.source}: {n} element(s) of poor quality (< {POOR_QUALITY}); worst: element {worst}, "
            f"quality {q[worst]:.3g}",
            stacklevel=2,
        )
    return {"min_quality": float(q.min()), "mean_quality": float(q.mean()), "volume": float(vol.sum())}


def _tet10_min_jacobian(mesh: Mesh) -> np.ndarray:
    """Smallest Jacobian determinant of each tet10 over its nodes and the 4-point rule."""
    el = mesh.element
    pts = np.vstack([el.node_coords(), el.quadrature(2).points])
    dN = el.grad(pts)  # (np, 10, 3)
    x = mesh.points[mesh.cells]  # (ne, 10, 3)
    J = np.einsum("pna,enj->epaj", dN, x)
    return np.linalg.det(J).min(axis=1)


def _edge_midnodes(points: np.ndarray, cells4: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique edges of tet4 cells: (edge list (m,2), per-cell edge ids (ne,6), edge keys sorted)."""
    e = cells4[:, TET10_EDGES]  # (ne, 6, 2)
    e = np.sort(e, axis=2).reshape(-1, 2)
    nn = len(points)
    key = e[:, 0] * nn + e[:, 1]
    ukey, inv = np.unique(key, return_inverse=True)
    edges = np.column_stack([ukey // nn, ukey % nn])
    return edges, inv.reshape(-1, 6), ukey


def promote_to_tet10(mesh: Mesh) -> Mesh:
    """Quadratic mesh from a linear one: a shared node at the midpoint of every edge.

    Facet sets are promoted to tri6 with the same mid-edge nodes.
    """
    if mesh.order == 2:
        return mesh
    nn = mesh.n_nodes
    edges, cell_edges, ukey = _edge_midnodes(mesh.points, mesh.cells)
    mid = 0.5 * (mesh.points[edges[:, 0]] + mesh.points[edges[:, 1]])
    points = np.vstack([mesh.points, mid])
    cells = np.hstack([mesh.cells, nn + cell_edges])
    facet_sets = {}
    for name, f in mesh.facet_sets.items():
        if f.shape[1] == 6:
            facet_sets[name] = f
            continue
        fe = np.sort(f[:, TRI6_EDGES], axis=2).reshape(-1, 2)
        k = fe[:, 0] * nn + fe[:, 1]
        pos = np.searchsorted(ukey, k)
        if np.any(pos >= len(ukey)) or np.any(ukey[np.minimum(pos, len(ukey) - 1)] != k):
            raise InputError(f"facet set '{name}' has edges that belong to no tetrahedron", mesh.source)
        facet_sets[name] = np.hstack([f, nn + pos.reshape(-1, 3)])
    return Mesh(points, cells, dict(mesh.cell_sets), facet_sets, mesh.source)


def _compact(points: np.ndarray, cells: np.ndarray, facets: dict[str, np.ndarray]):
    """Drop nodes that no tetrahedron uses (gmsh keeps geometry points), renumber."""
    used = np.zeros(len(points), bool)
    used[cells.ravel()] = True
    if used.all():
        return points, cells, facets
    new = np.full(len(points), -1, np.int64)
    new[used] = np.arange(used.sum())
    out = {}
    for name, f in facets.items():
        nf = new[f]
        out[name] = nf[(nf >= 0).all(axis=1)]
    return points[used], new[cells], out


def read_mesh(path: str | Path, order: int | None = None, check: bool = True) -> Mesh:
    """Read a volume mesh with meshio (gmsh .msh, .vtu, Abaqus .inp, ...). Units: mm.

    ``order=2`` promotes tet4 to tet10; ``order=1`` with a tet10 file is an error.
    """
    import meshio

    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise InputError("mesh file not found", src)
    # meshio prints its reader errors and then calls sys.exit(1) when no reader accepts the
    # file: keep its chatter off the terminal and turn the exit into one input error
    chatter = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            warnings.simplefilter("ignore")
            m = meshio.read(path)
    except SystemExit:
        text = " ".join(chatter.getvalue().split())
        fmt = re.search(r" as (?:either of )?([\w, -]+)$", text)
        what = f"not a valid {fmt.group(1).replace(', ', ' or ')} file" if fmt else "not a mesh meshio can read"
        raise InputError(f"cannot read mesh ({what})", src) from None
    except Exception as exc:  # meshio raises many types; report them as one input error
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read mesh ({msg})", src) from None
    return from_meshio(m, source=src, order=order, check=check)


def from_meshio(m, source: str = "<meshio>", order: int | None = None, check: bool = True) -> Mesh:
    """Convert a ``meshio.Mesh``: tetra/tetra10 cells, named cell sets and facet sets."""
    tet_blocks = [(i, b) for i, b in enumerate(m.cells) if b.type in _TET_TYPES]
    if not tet_blocks:
        types = sorted({b.type for b in m.cells}) or ["none"]
        raise InputError(f"no tetrahedra in mesh (cell types: {', '.join(types)})", source)
    kinds = {b.type for _, b in tet_blocks}
    if len(kinds) > 1:
        raise InputError("mesh mixes tet4 and tet10 cells", source)
    offsets, cells, n = {}, [], 0
    for i, b in tet_blocks:
        offsets[i] = n
        cells.append(b.data)
        n += len(b.data)
    cells = np.vstack(cells).astype(np.int64)
    points = np.asarray(m.points, float)
    if points.shape[1] == 2:
        raise InputError("mesh is two-dimensional; fembone needs a 3D tetrahedral mesh", source)

    cell_sets: dict[str, np.ndarray] = {}
    facet_sets: dict[str, np.ndarray] = {}
    names = _set_names(m)
    for name, per_block in names.items():
        eids, facets = [], []
        for i, idx in enumerate(per_block):
            if idx is None or len(idx) == 0:
                continue
            b = m.cells[i]
            idx = np.asarray(idx, dtype=np.int64)
            if b.type in _TET_TYPES:
                eids.append(offsets[i] + idx)
            elif b.type in _TRI_TYPES:
                facets.append(b.data[idx])
        if eids:
            cell_sets[name] = np.unique(np.concatenate(eids))
        if facets:
            widths = {f.shape[1] for f in facets}
            if len(widths) == 1:
                facet_sets[name] = np.vstack(facets).astype(np.int64)
    points, cells, facet_sets = _compact(points, cells, facet_sets)
    mesh = Mesh(points, cells, cell_sets, facet_sets, source)
    # Abaqus-style node sets become facet sets: boundary faces whose nodes all lie in the set
    for name, nodes in getattr(m, "point_sets", {}).items():
        if name in mesh.facet_sets or len(nodes) == 0:
            continue
        faces, _ = mesh.boundary_faces()
        inside = np.zeros(len(m.points), bool)
        inside[np.asarray(nodes, int)] = True
        # point sets refer to the original numbering; compacting only ever drops unused nodes
        if len(m.points) != mesh.n_nodes:
            continue
        sel = inside[faces[:, :3]].all(axis=1)
        if sel.any():
            mesh.facet_sets[name] = faces[sel]
    if check:
        check_mesh(mesh)
    if order == 2:
        mesh = promote_to_tet10(mesh)
    elif order == 1 and mesh.order == 2:
        raise InputError("order 1 asked for a tet10 mesh; fembone does not demote meshes", source)
    elif order not in (None, 1, 2):
        raise InputError(f"order must be 1 or 2, got {order!r}", source)
    return mesh


def _set_names(m) -> dict[str, list]:
    """Named sets of a meshio mesh as name -> per-block index arrays."""
    out: dict[str, list] = {}
    for name, per_block in (m.cell_sets or {}).items():
        if name.startswith("gmsh:"):
            continue
        out[name] = list(per_block)
    if not out and "gmsh:physical" in (m.cell_data or {}) and m.field_data:
        tags = m.cell_data["gmsh:physical"]
        for name, (tag, _dim) in m.field_data.items():
            out[name] = [np.flatnonzero(np.asarray(t) == tag) for t in tags]
    return out


def to_meshio(mesh: Mesh):
    """A ``meshio.Mesh`` with the tetrahedra (for writing VTU etc.)."""
    import meshio

    ctype = "tetra" if mesh.order == 1 else "tetra10"
    return meshio.Mesh(mesh.points, [(ctype, mesh.cells)])


class MeshCache:
    """Memoised :func:`read_mesh`, keyed by (resolved file, mtime, size, order, check).

    Passed explicitly to the case builder (``build_model(..., mesh_cache=cache)``) so that
    the cases of a study share parsed meshes; thread-safe; keeps the ``size`` most recent.
    """

    def __init__(self, size: int = 4):
        import threading
        from collections import OrderedDict

        self.size = size
        self.hits = 0
        self._meshes: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: str | Path, order: int | None = None, check: bool = True) -> Mesh:
        try:
            st = Path(path).stat()
            key = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size, order, check)
        except OSError:
            return read_mesh(path, order=order, check=check)  # read_mesh names the missing file
        with self._lock:
            mesh = self._meshes.get(key)
            if mesh is not None:
                self._meshes.move_to_end(key)
                self.hits += 1
                return mesh
        mesh = read_mesh(path, order=order, check=check)
        with self._lock:
            self._meshes[key] = mesh
            while len(self._meshes) > self.size:
                self._meshes.popitem(last=False)
        return mesh

    def clear(self) -> None:
        with self._lock:
            self._meshes.clear()
