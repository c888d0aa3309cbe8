"""Anatomical frame of a closed vertebra surface (for :mod:`fembone.spine.geometry.surface`).

Frame (RAS, mm): +x to the patient's right, +y anterior, +z cranial.

Heuristics (all in a 1 mm voxel image of the inside, rasterised from the surface):

* **cranial axis** -- first guess: the principal axis of least spread of the whole bone (a
  lumbar vertebra is ~45 mm high and 80-95 mm wide and deep).  Then refined to the mean
  normal of the two endplates, ``normalise(n_sup - n_inf)``, where an endplate is the body
  surface facing within 45 deg of the current axis; two or three rounds converge.
* **anterior** -- projected along the cranial axis, the vertebral foramen is a hole in the
  bone's silhouette (the largest one) and the body is the largest compact blob of tall
  columns (material >= half the typical column height, opened with a 5 mm disk).  Anterior
  is the direction from the foramen's centroid to the body blob's centroid.  Without a
  hole (a silhouette closed by overhanging laminae, a body-only surface) the direction
  from the silhouette centroid to the body blob is used instead and a warning is issued.
* **sign of the cranial axis** -- a majority vote of three features of the posterior
  elements (the material behind the body), each read in the detected frame:
  (1) the spinous tip (most posterior 3 %) lies caudal to the body centre;
  (2) the most cranial 5 % of the posterior elements (superior articular processes) lie
  more lateral than the most caudal 5 % (inferior articular processes); (3) they also lie
  more anterior.  All three agree on the ArtiSynth L4 and the VerSe L2.  They can fail on
  vertebrae without normal posterior elements (fractured or resected arches, sacrum,
  cervical and most thoracic levels, whose spinous processes point steeply down, which
  is still fine for (1)); pass ``cranial=``/``anterior=`` (file axes such as ``"+z"``)
  to override.  Given axes are used exactly, without refinement.
* **body / posterior elements** -- a plane normal to the AP axis through the anterior
  border of the foramen (the most posterior point of its anterior border over the central
  60 % of its width, so the concave posterior wall stays in the body): elements whose
  centroid lies anterior to it are body.  The pedicle bases anterior to that plane (a few
  mm) therefore count as body, and the posterolateral body corners behind it as
  posterior elements.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from fembone.core.errors import InputError

PITCH = 1.0  # voxel size of the rasterised inside, mm
_AXES = {"x": 0, "y": 1, "z": 2}


def parse_axis(text, what: str) -> np.ndarray:
    """``"+x"``, ``"-y"``, ``"z"`` -> unit vector in the file's coordinates."""
    s = str(text).strip().lower()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s not in _AXES:
        raise InputError(f"expected an axis like +x, -y or +z, got {text!r}", what)
    v = np.zeros(3)
    v[_AXES[s]] = sign
    return v


@dataclass
class SurfaceFrame:
    """Anatomical frame found in a surface (file coordinates, mm)."""

    rotation: np.ndarray  # (3, 3) columns: right, anterior, cranial (file coordinates)
    origin: np.ndarray  # (3,) approximate body centroid (file coordinates)
    y_cut: float  # body / posterior-elements plane: frame y (relative to origin)
    foramen: np.ndarray | None  # (k, 2) frame (x, y) of the foramen's silhouette pixels
    detected: dict  # what was detected, with the vote of the cranial-sign cues

    def to_frame(self, P: np.ndarray) -> np.ndarray:
        return (P - self.origin) @ self.rotation


def _voxelise(P, F, R, c, pitch=PITCH):
    """Inside of the closed, outward surface as voxels of a grid aligned with R's columns.

    Returns ``(vox (nx, ny, nz) bool, centre of voxel 0 in the frame)``; rays along the
    frame's third axis, crossing counts signed by the faces' orientation.
    """
    Q = (P - c) @ R
    T = Q[F]
    lo = T[:, :, :2].min(axis=1)
    hi = T[:, :, :2].max(axis=1)
    jit = np.array([0.5 + 1.234567e-4, 0.5 + 2.345671e-4])  # keep rays off vertices and edges
    g0 = np.floor(Q.min(axis=0) / pitch) - 1
    n = (np.ceil(Q.max(axis=0) / pitch) + 2 - g0).astype(int)
    i0 = np.ceil(lo / pitch - g0[:2] - jit).astype(int)
    i1 = np.floor(hi / pitch - g0[:2] - jit).astype(int)
    cnt = np.maximum(i1 - i0 + 1, 0)
    tot = cnt[:, 0] * cnt[:, 1]
    tri = np.repeat(np.arange(len(F)), tot)
    off = np.arange(int(tot.sum())) - np.repeat(np.cumsum(tot) - tot, tot)
    ci = cnt[tri, 1]
    ix = i0[tri, 0] + off // ci
    iy = i0[tri, 1] + off % ci
    px = (g0[0] + ix + jit[0]) * pitch
    py = (g0[1] + iy + jit[1]) * pitch
    A, B, C = T[tri, 0], T[tri, 1], T[tri, 2]
    d = (B[:, 0] - A[:, 0]) * (C[:, 1] - A[:, 1]) - (C[:, 0] - A[:, 0]) * (B[:, 1] - A[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        w1 = ((px - A[:, 0]) * (C[:, 1] - A[:, 1]) - (C[:, 0] - A[:, 0]) * (py - A[:, 1])) / d
        w2 = ((B[:, 0] - A[:, 0]) * (py - A[:, 1]) - (px - A[:, 0]) * (B[:, 1] - A[:, 1])) / d
        w0 = 1.0 - w1 - w2
    ok = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (d != 0)
    z = (w0 * A[:, 2] + w1 * B[:, 2] + w2 * C[:, 2])[ok]
    k = np.clip(np.ceil(z / pitch - g0[2] - 0.5).astype(int), 0, n[2] - 1)
    acc = np.zeros(n, np.int32)
    np.add.at(acc, (ix[ok], iy[ok], k), -np.sign(d[ok]).astype(np.int32))
    return np.cumsum(acc, axis=2) > 0, (g0 + 0.5) * pitch


def _volume_moments(P, F):
    """Volume, centroid and covariance (second central moment / volume) of the enclosed solid."""
    c0 = P.mean(axis=0)
    a, b, c = P[F[:, 0]] - c0, P[F[:, 1]] - c0, P[F[:, 2]] - c0
    v = np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0
    V = v.sum()
    s = a + b + c
    cen = (v[:, None] * s).sum(axis=0) / 4.0 / V
    # int x x^T over the tet (0, a, b, c) = v/20 (a a^T + b b^T + c c^T + s s^T)
    M = np.einsum("t,ti,tj->ij", v, a, a) + np.einsum("t,ti,tj->ij", v, b, b)
    M += np.einsum("t,ti,tj->ij", v, c, c) + np.einsum("t,ti,tj->ij", v, s, s)
    M /= 20.0 * V
    return V, cen + c0, M - np.outer(cen, cen)


def _disk(r: float) -> np.ndarray:
    k = int(math.ceil(r / PITCH))
    g = np.mgrid[-k : k + 1, -k : k + 1] * PITCH
    return np.hypot(g[0], g[1]) <= r + 1e-9


def _silhouette(vox):
    """Height map, silhouette, foramen mask (or None) and body blob mask of a voxel image."""
    from scipy import ndimage as ndi

    h = vox.sum(axis=2) * PITCH
    occ = h > 0
    holes = ndi.binary_fill_holes(occ) & ~occ
    foramen = None
    lab, k = ndi.label(holes)
    if k:
        sizes = ndi.sum(holes, lab, range(1, k + 1))
        if sizes.max() * PITCH**2 >= 20.0:  # mm^2; smaller holes are pores or artefacts
            foramen = lab == 1 + int(np.argmax(sizes))
    tall = h >= 0.5 * np.percentile(h[occ], 90)
    op = ndi.binary_opening(tall, _disk(5.0))
    if not op.any():
        op = tall
    lab, k = ndi.label(op)
    sizes = ndi.sum(op, lab, range(1, k + 1))
    body = lab == 1 + int(np.argmax(sizes))
    return h, occ, foramen, body


def _orthonormal(anterior, cranial):
    z = cranial / np.linalg.norm(cranial)
    y = anterior - (anterior @ z) * z
    ny = np.linalg.norm(y)
    if ny < 1e-6:
        raise InputError("anterior and cranial axes are parallel")
    y /= ny
    return np.column_stack([np.cross(y, z), y, z])


def detect_frame(P: np.ndarray, F: np.ndarray, anterior=None, cranial=None, source: str = "<surface>") -> SurfaceFrame:
    """Find the anatomical frame of a closed outward surface (see the module notes).

    ``anterior`` / ``cranial``: file axes (strings like ``"+x"`` or vectors) that override
    detection.  Raises :class:`InputError` when the frame cannot be found.
    """
    ant_given = None if anterior is None else (parse_axis(anterior, "anterior") if isinstance(anterior, str) else np.asarray(anterior, float))
    cra_given = None if cranial is None else (parse_axis(cranial, "cranial") if isinstance(cranial, str) else np.asarray(cranial, float))
    if ant_given is not None and cra_given is not None and abs(ant_given @ cra_given) > 1e-6 * np.linalg.norm(ant_given) * np.linalg.norm(cra_given):
        raise InputError(f"anterior {anterior!r} and cranial {cranial!r} must be perpendicular axes", source)
    _, cen, cov = _volume_moments(P, F)
    _, V = np.linalg.eigh(cov)
    info: dict = {"anterior": "given" if ant_given is not None else "detected",
                  "cranial": "given" if cra_given is not None else "detected"}
    if cra_given is not None:
        z = cra_given / np.linalg.norm(cra_given)
    elif ant_given is not None:  # least spread within the plane normal to anterior
        a = ant_given / np.linalg.norm(ant_given)
        Pm = np.eye(3) - np.outer(a, a)
        _, V2 = np.linalg.eigh(Pm @ cov @ Pm + 1e12 * np.outer(a, a))
        z = V2[:, 0]
    else:
        z = V[:, 0]
    # a provisional in-plane axis (anterior unknown yet)
    y = ant_given if ant_given is not None else (V[:, 2] if abs(V[:, 2] @ z) < 0.9 else V[:, 1])
    R = _orthonormal(y, z)
    c = cen.copy()
    fixed_axis = cra_given is not None
    for it in range(4):
        vox, o = _voxelise(P, F, R, c)
        h, occ, foramen, body = _silhouette(vox)
        gx, gy = np.nonzero(body)
        bc = np.array([gx.mean(), gy.mean()]) * PITCH + o[:2]
        if ant_given is None:
            if foramen is not None:
                fx, fy = np.nonzero(foramen)
                ref = np.array([fx.mean(), fy.mean()]) * PITCH + o[:2]
            else:
                ox, oy = np.nonzero(occ)
                wts = h[ox, oy]
                ref = np.array([ox @ wts, oy @ wts]) / wts.sum() * PITCH + o[:2]
            d2 = bc - ref
            if np.linalg.norm(d2) < 2.0:
                raise InputError("cannot find the anterior direction (no vertebral body apart from the "
                                 "posterior elements); give anterior=/--anterior", source)
            ant = R[:, :2] @ (d2 / np.linalg.norm(d2))
            R = _orthonormal(ant, R[:, 2])
            # redo the image in the rotated frame so that y is anterior
            vox, o = _voxelise(P, F, R, c)
            h, occ, foramen, body = _silhouette(vox)
        y_cut = _cut_plane(vox, o, foramen, body)
        Q = (P - c) @ R
        if fixed_axis or it == 3:
            break
        nz = _endplate_axis(Q, F, y_cut)
        if nz is None:
            break
        znew = R @ nz
        if ant_given is not None:  # keep the given anterior axis exact
            a = ant_given / np.linalg.norm(ant_given)
            znew = znew - (znew @ a) * a
            znew /= np.linalg.norm(znew)
        if math.degrees(math.acos(min(1.0, abs(znew @ R[:, 2])))) < 0.3:
            break  # converged: keep the image that matches R
        R = _orthonormal(R[:, 1], znew)
    # body centroid (voxels anterior to the cut) as origin; posterior-element cues for the sign
    idx = np.argwhere(vox) * PITCH + o
    is_body = idx[:, 1] > y_cut
    if is_body.sum() < 0.2 * len(idx):
        raise InputError("cannot find the vertebral body (less than 20 % of the volume lies anterior "
                         "to the vertebral foramen); give anterior=/cranial=", source)
    zc = idx[is_body].mean(axis=0)
    post = idx[~is_body] - zc
    votes = []
    if len(post) > 50:
        tip = post[post[:, 1] <= np.percentile(post[:, 1], 3)]
        top = post[post[:, 2] >= np.percentile(post[:, 2], 95)]
        bot = post[post[:, 2] <= np.percentile(post[:, 2], 5)]
        votes = [
            float(np.sign(-tip[:, 2].mean())),  # spinous tip caudal to the body centre
            float(np.sign(np.abs(top[:, 0]).mean() - np.abs(bot[:, 0]).mean())),  # superior processes wider apart
            float(np.sign(top[:, 1].mean() - bot[:, 1].mean())),  # ... and more anterior
        ]
    info["cranial_votes"] = votes
    if cra_given is None:
        if not votes or sum(votes) == 0:
            raise InputError("cannot tell cranial from caudal (posterior elements missing or ambiguous); "
                             "give cranial=/--cranial", source)
        if sum(votes) < 0:  # flip cranial, keep anterior: right flips too
            R = np.column_stack([-R[:, 0], R[:, 1], -R[:, 2]])
            zc = zc * np.array([-1.0, 1.0, -1.0])
        info["cranial_confidence"] = abs(sum(votes)) / len(votes)
    origin = c + R @ zc
    fpts = None
    if foramen is not None:
        fx, fy = np.nonzero(foramen)
        fpts = np.column_stack([fx, fy]) * PITCH + o[:2]
        if cra_given is None and sum(votes) < 0:
            fpts[:, 0] *= -1.0
        fpts = fpts - zc[:2]
    info["foramen_found"] = foramen is not None
    if foramen is None and ant_given is None:
        warnings.warn(f"{source}: no vertebral foramen in the silhouette; anterior taken from the body's "
                      "offset from the bone's centroid (check it, or give anterior=/--anterior)", stacklevel=2)
    return SurfaceFrame(R, origin, float(y_cut - zc[1]), fpts, info)


def _cut_plane(vox, o, foramen, body) -> float:
    """Frame y of the body / posterior-elements plane (see the module notes)."""
    if foramen is not None:
        fx, fy = np.nonzero(foramen)
        x0, x1 = fx.min(), fx.max()
        lo, hi = x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0)
        cols = [fy[fx == i].max() for i in range(int(math.ceil(lo)), int(math.floor(hi)) + 1) if np.any(fx == i)]
        if cols:
            return float((min(cols) + 0.5) * PITCH + o[1])
    # no foramen: the posterior edge of the body blob's central part
    bx, by = np.nonzero(body)
    mid = np.abs(bx - bx.mean()) <= 0.2 * (bx.max() - bx.min())
    return float((by[mid].min() - 0.5) * PITCH + o[1])


def _endplate_axis(Q, F, y_cut):
    """Unit mean-endplate normal ``n_sup - n_inf`` (frame coordinates) of the body, or None."""
    T = Q[F]
    cen = T.mean(axis=1)
    n = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0])  # 2 x area, outward
    area = np.linalg.norm(n, axis=1)
    u = n / np.maximum(area, 1e-300)[:, None]
    body = cen[:, 1] > y_cut + 2.0
    if body.sum() < 20:
        return None
    zc = np.average(cen[body, 2], weights=area[body])
    sup = body & (u[:, 2] > math.cos(math.radians(45))) & (cen[:, 2] > zc)
    inf = body & (u[:, 2] < -math.cos(math.radians(45))) & (cen[:, 2] < zc)
    if not sup.any() or not inf.any():
        return None
    v = n[sup].sum(axis=0) / area[sup].sum() - n[inf].sum(axis=0) / area[inf].sum()
    return v / np.linalg.norm(v)
