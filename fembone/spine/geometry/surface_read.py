"""Reading and checking closed triangle surfaces (stl, obj, ply, vtk/vtp) for :mod:`fembone.spine.geometry.surface`.

Units: mm (a file in metres is scaled with ``units="m"``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from fembone.core.errors import InputError

_SUFFIXES = (".stl", ".obj", ".ply", ".vtk", ".vtp")


def read_surface(surface, units: str = "mm"):
    """Read a triangle surface as ``(points (n,3) mm, triangles (m,3))``.

    Vertices are merged (OBJ files with a normal per face would otherwise fall apart into
    loose triangles), polygons triangulated, unused points and degenerate triangles removed.
    """
    path = Path(surface)
    src = str(surface)
    if units not in ("m", "mm"):
        raise InputError(f"units must be 'm' or 'mm', got {units!r}", src)
    if not path.is_file():
        raise InputError("surface file not found", src)
    if path.suffix.lower() not in _SUFFIXES:
        raise InputError(f"unsupported surface format {path.suffix!r} (use {', '.join(_SUFFIXES)})", src)
    import pyvista as pv

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = pv.read(str(path))
        if not isinstance(data, pv.PolyData):
            data = data.extract_surface()
        data = data.triangulate().clean(tolerance=0.0)
    except Exception as exc:  # pyvista/vtk raise many types
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read surface ({msg})", src) from None
    if data.n_cells == 0 or data.n_points < 4:
        raise InputError("surface has no triangles", src)
    faces = data.faces.reshape(-1, 4)
    if np.any(faces[:, 0] != 3):
        raise InputError("surface has cells that are not triangles", src)
    P = np.asarray(data.points, float) * (1000.0 if units == "m" else 1.0)
    F = faces[:, 1:].astype(np.int64)
    if not np.all(np.isfinite(P)):
        raise InputError("surface has non-finite coordinates", src)
    # drop zero-area triangles (repeated vertex)
    ok = (F[:, 0] != F[:, 1]) & (F[:, 1] != F[:, 2]) & (F[:, 0] != F[:, 2])
    F = F[ok]
    ext = float(np.ptp(P, axis=0).max())
    if not (10.0 <= ext <= 500.0):
        hint = " (metres? use units='m', --units m)" if ext < 10.0 and units == "mm" else ""
        raise InputError(f"surface is {ext:.3g} mm across, not a vertebra{hint}", src)
    return P, F


def check_surface(P: np.ndarray, F: np.ndarray, source: str = "<surface>") -> np.ndarray:
    """Check a triangle surface encloses one solid; return the triangles oriented outwards.

    Raises :class:`InputError` when the surface is open, non-manifold, inconsistently
    oriented, self-intersecting or made of several separate parts.
    """
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    key = np.sort(e, axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    n_open = int((cnt == 1).sum())
    if n_open:
        raise InputError(f"surface is not closed: {n_open} boundary edges", source)
    n_nm = int((cnt > 2).sum())
    if n_nm:
        raise InputError(f"surface is not manifold: {n_nm} edges shared by more than two triangles", source)
    # consistent orientation: the two triangles at an edge traverse it in opposite directions
    fwd = e[:, 0] < e[:, 1]
    n_fwd = np.bincount(inv, weights=fwd, minlength=len(cnt))
    n_bad = int((n_fwd != 1).sum())
    if n_bad:
        raise InputError(f"surface is not consistently oriented: {n_bad} edges with both triangles the same way round", source)
    n_parts = _n_components(F, len(P))
    hits = _self_intersections(P, F)
    if hits:
        raise InputError(f"surface is self-intersecting: {hits} intersecting triangle pairs", source)
    if n_parts > 1:
        raise InputError(f"surface has {n_parts} separate parts; expected one closed vertebra", source)
    vol = _signed_volume(P, F)
    if abs(vol) < 1e-9:
        raise InputError("surface encloses no volume", source)
    return F if vol > 0 else F[:, [0, 2, 1]]


def _signed_volume(P: np.ndarray, F: np.ndarray) -> float:
    c = P.mean(axis=0)
    a, b, d = P[F[:, 0]] - c, P[F[:, 1]] - c, P[F[:, 2]] - c
    return float(np.einsum("ij,ij->i", a, np.cross(b, d)).sum() / 6.0)


def _n_components(F: np.ndarray, n: int) -> int:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    r = np.concatenate([F[:, 0], F[:, 1], F[:, 2]])
    c = np.concatenate([F[:, 1], F[:, 2], F[:, 0]])
    used = np.zeros(n, bool)
    used[F.ravel()] = True
    g = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    return len(np.unique(lab[used]))


def _self_intersections(P: np.ndarray, F: np.ndarray, max_pairs: int = 20_000_000) -> int:
    """Number of pairs of triangles, sharing no vertex, where an edge of one crosses the other.

    Candidate pairs come from a KD-tree on the triangle centroids (radius: twice the largest
    centroid-to-corner distance); coplanar overlaps are not detected.
    """
    from scipy.spatial import cKDTree

    T = P[F]
    cen = T.mean(axis=1)
    rad = np.linalg.norm(T - cen[:, None], axis=2).max(axis=1)
    tree = cKDTree(cen)
    pairs = tree.query_pairs(2.0 * float(rad.max()), output_type="ndarray")
    if len(pairs) > max_pairs:  # very uneven triangles: check a sample only
        rng = np.random.default_rng(0)
        pairs = pairs[rng.choice(len(pairs), max_pairs, replace=False)]
    i, j = pairs[:, 0], pairs[:, 1]
    near = np.linalg.norm(cen[i] - cen[j], axis=1) <= rad[i] + rad[j]
    i, j = i[near], j[near]
    share = (F[i][:, :, None] == F[j][:, None, :]).any(axis=(1, 2))
    i, j = i[~share], j[~share]
    if len(i) == 0:
        return 0
    hit = np.zeros(len(i), bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for chunk in np.array_split(np.arange(len(i)), max(1, len(i) // 200_000)):
            a, b = i[chunk], j[chunk]
            hit[chunk] = _edges_cross(T[a], T[b]) | _edges_cross(T[b], T[a])
    return int(hit.sum())


def _edges_cross(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """For each pair, does any edge of triangle A pass through the inside of triangle B?"""
    out = np.zeros(len(A), bool)
    n = np.cross(B[:, 1] - B[:, 0], B[:, 2] - B[:, 0])
    nn = np.linalg.norm(n, axis=1)
    eps = 1e-9 * np.maximum(nn, 1e-300)
    for k in range(3):
        p, q = A[:, k], A[:, (k + 1) % 3]
        dp = np.einsum("ij,ij->i", p - B[:, 0], n)
        dq = np.einsum("ij,ij->i", q - B[:, 0], n)
        straddle = ((dp > eps) & (dq < -eps)) | ((dp < -eps) & (dq > eps))
        t = dp / (dp - dq)
        x = p + t[:, None] * (q - p)
        inside = np.ones(len(A), bool)
        for m in range(3):
            u, v = B[:, m], B[:, (m + 1) % 3]
            s = np.einsum("ij,ij->i", np.cross(v - u, x - u), n)
            inside &= s > 0
        out |= straddle & inside
    return out
