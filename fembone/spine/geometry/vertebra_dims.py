"""Dimensions and layout of the parametric lumbar vertebra (mm, degrees, RAS frame).

Frame (RAS, as in 3D Slicer), units mm: origin at the centroid of the vertebral body, +x to the
patient's right, +y anterior, +z cranial; posterior elements at negative y, the superior endplate
rim at z = +height/2, the inferior rim at z = -height/2.

Sources for the dimension table: Panjabi et al. 1992, Spine 17:299 (means over L1..L5, quoted from
memory and so marked unverified); Cook & Baker 2021 (L5 body heights and pedicle width, see
/work/shared/design/field.md); field.md ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fembone.core.errors import InputError

__all__ = ["LEVELS", "VertebraDims", "vertebra_dims", "vertebra_landmarks"]


@dataclass(frozen=True)
class VertebraDims:
    """Dimensions of one lumbar vertebra, mm and degrees.

    ``body_width`` (lateral, x), ``body_depth`` (AP, y) are endplate values;
    ``body_height`` is the mean of anterior and posterior heights (no wedging).
    ``pedicle_width``/``pedicle_height`` are isthmus (narrowest) diameters;
    ``pedicle_angle_deg`` is the transverse angle between the pedicle axis and
    the sagittal plane (medial convergence).  ``canal_width`` is the
    interpedicular distance, ``canal_depth`` the midline AP depth of the
    foramen.  ``spinous_length`` runs from the posterior canal border to the
    spinous tip; ``transverse_width`` is the tip-to-tip span of the transverse
    processes.
    """

    level: str
    body_width: float
    body_depth: float
    body_height: float
    pedicle_width: float
    pedicle_height: float
    pedicle_angle_deg: float
    canal_width: float
    canal_depth: float
    spinous_length: float
    transverse_width: float
    waist: float = 0.06  # relative narrowing at mid-height (5-8 % brief; unverified)
    endplate_dish: float = 1.0  # central endplate concavity depth, mm (0 = flat)
    posterior_concavity: float = 1.5  # midline dent of the posterior wall, mm
    lamina_thickness: float = 6.0  # AP thickness of the lamina plate, mm (unverified)
    spinous_thickness: float = 6.0  # lateral thickness of the spinous process, mm (unverified)
    transverse_thickness: float = 6.0  # AP thickness of a transverse process, mm (unverified)
    transverse_height: float = 10.0  # cranio-caudal height of a transverse process, mm (unverified)


# Means for adult lumbar vertebrae.  Columns: W, D, H, PDW, PDH, PDt, SCW, SCD, SPL, TPW.
# W/D: upper endplate width/depth, Panjabi 1992 Spine 17:299 Table (approx., unverified), field.md 40-48 / 30-36.
# H: mean body height, Panjabi 1992 (approx., unverified); L5 = (30.3 + 26.3)/2, Cook & Baker 2021.
# PDW: pedicle width, Panjabi 1992 / Zindrick 1987 (approx., unverified; field.md gives L1 7.4); L5 16.1 Cook & Baker 2021.
# PDH: pedicle height, Panjabi 1992 (approx., unverified), field.md 13-16.
# PDt: pedicle transverse angle, Panjabi 1992 (approx., unverified): 10.9/12.0/14.4/17.7/29.8 deg.
# SCW: canal (interpedicular) width; L1 20.4 field.md, L2-L5 Panjabi 1992 (approx., unverified).
# SCD: canal depth, Panjabi 1992 (approx., unverified).
# SPL/TPW: spinous length and transverse tip-to-tip width, Panjabi 1992 (approx., unverified).
_TABLE: dict[str, tuple[float, ...]] = {
    #      W     D     H     PDW   PDH   PDt   SCW   SCD   SPL   TPW
    "L1": (40.0, 32.0, 25.5, 8.7, 15.4, 10.9, 20.4, 17.5, 31.0, 70.0),
    "L2": (42.0, 33.5, 26.5, 8.9, 15.0, 12.0, 21.5, 17.0, 32.0, 78.0),
    "L3": (44.5, 34.5, 27.0, 10.3, 14.9, 14.4, 22.5, 16.5, 32.0, 86.0),
    "L4": (46.5, 35.0, 27.0, 12.9, 14.8, 17.7, 23.5, 17.0, 30.0, 84.0),
    "L5": (48.5, 35.5, 28.3, 16.1, 14.0, 29.8, 26.0, 16.5, 27.0, 90.0),
}
LEVELS: tuple[str, ...] = tuple(_TABLE)


def vertebra_dims(level: str) -> VertebraDims:
    """Tabulated dimensions (mm, degrees) of lumbar level ``"L1"``..``"L5"``."""
    key = str(level).strip().upper()
    if key not in _TABLE:
        raise InputError(
            f"unknown vertebral level {level!r}; valid levels are {', '.join(LEVELS)}",
            where="level",
        )
    return VertebraDims(key, *_TABLE[key])


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
    """Derived positions shared by the CAD builder and the landmarks (mm, RAS)."""

    dims: VertebraDims
    section: np.ndarray  # (N, 2) dense closed outer endplate section, CCW, centroid at origin
    xw: float  # half-width of the posterior wall segment at the endplates (x = +-xw seams)
    y_back: float  # most posterior y of the endplate section
    y_front: float  # most anterior y of the endplate section
    z_ped: float  # height of the pedicle axes
    y_isthmus: float
    x_isthmus: float  # |x| of the isthmus centres
    y_lamina_front: float  # posterior border of the canal (midline)
    y_lamina_back: float
    dish_axes: tuple[float, float, float]  # semi-axes of the endplate dish ellipsoid


def _scale(dims: VertebraDims, z: float) -> float:
    """Section scale at height z: parabolic waist, 1 at the endplates."""
    return 1.0 - dims.waist * (1.0 - (2.0 * z / dims.body_height) ** 2)


def _raw_section(dims: VertebraDims, n: int = 1440) -> np.ndarray:
    """Kidney-shaped outer section at the endplate, CCW, width W, depth D, centroid 0."""
    a = 0.5 * dims.body_width
    b = 0.5 * dims.body_depth
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    s = np.sin(t)
    x = a * np.cos(t)
    # elliptic anteriorly; superellipse (exponent 2/3, squarer) posteriorly
    y = np.where(s >= 0.0, b * s, -b * np.abs(s) ** (2.0 / 3.0))
    # shallow concave posterior wall facing the canal
    y = y + np.where(s < 0.0, dims.posterior_concavity * np.exp(-((x / (0.45 * a)) ** 2)) * np.abs(s) ** 4, 0.0)
    y = y * (dims.body_depth / (y.max() - y.min()))  # exact AP depth D
    pts = np.column_stack([x, y])
    return pts - _polygon_centroid(pts)


def _polygon_centroid(p: np.ndarray) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cr = x * yn - xn * y
    area = 0.5 * cr.sum()
    return np.array([((x + xn) * cr).sum(), ((y + yn) * cr).sum()]) / (6.0 * area)


def _offset_inward(p: np.ndarray, d: float) -> np.ndarray:
    """Offset a closed CCW polyline by d towards its inside (left normal)."""
    tng = np.roll(p, -1, axis=0) - np.roll(p, 1, axis=0)
    tng /= np.linalg.norm(tng, axis=1, keepdims=True)
    nrm = np.column_stack([-tng[:, 1], tng[:, 0]])
    return p + d * nrm


def _layout(dims: VertebraDims) -> _Layout:
    sec = _raw_section(dims)
    H = dims.body_height
    th = math.radians(dims.pedicle_angle_deg)
    y_back = float(sec[:, 1].min())
    y_front = float(sec[:, 1].max())
    gap = 0.3 * dims.canal_depth  # isthmus lies this far behind the posterior body wall
    y_isth = y_back - gap
    x_isth = 0.5 * dims.canal_width + 0.5 * dims.pedicle_width / math.cos(th)
    # medial pedicle edge where it meets the body; the posterior wall ends 2.5 mm short of it
    # (closer, the seam and the pedicle footprint squeeze the 2 mm shell facets and fold them)
    xw = 0.5 * dims.canal_width - gap * math.tan(th) - 2.5
    if xw < 3.0:
        raise InputError(
            f"{dims.level}: canal width {dims.canal_width} mm is too narrow for pedicle angle "
            f"{dims.pedicle_angle_deg} deg (posterior wall half-width {xw:.1f} mm < 3 mm)",
            where="dims.canal_width",
        )
    z_ped = 0.5 * H - 0.5 * dims.pedicle_height - 1.5  # pedicles join the upper body
    y_lam_front = y_back - dims.canal_depth
    y_lam_back = y_lam_front - dims.lamina_thickness
    # dish footprint 70 % x 60 % of the endplate semi-axes; ellipsoid 4x deeper than the dish
    ce = 4.0 * max(dims.endplate_dish, 1e-9)
    k = math.sqrt(1.0 - (1.0 - 0.25) ** 2)
    dish = (0.35 * dims.body_width / k, 0.30 * dims.body_depth / k, ce)
    return _Layout(dims, sec, xw, y_back, y_front, z_ped, y_isth, x_isth,
                   y_lam_front, y_lam_back, dish)


def _pedicle_frame(lay: _Layout, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Isthmus centre and unit axis (anterior + medial) of the pedicle on ``side`` (+1 right, -1 left)."""
    th = math.radians(lay.dims.pedicle_angle_deg)
    c = np.array([side * lay.x_isthmus, lay.y_isthmus, lay.z_ped])
    u = np.array([-side * math.sin(th), math.cos(th), 0.0])
    return c, u


def _ray_exit(poly: np.ndarray, p0: np.ndarray, u: np.ndarray) -> float:
    """Largest s > 0 with p0 + s u on the closed polyline (2D), or nan."""
    q0, q1 = poly, np.roll(poly, -1, axis=0)
    e = q1 - q0
    w = q0 - p0
    den = u[0] * e[:, 1] - u[1] * e[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (w[:, 0] * e[:, 1] - w[:, 1] * e[:, 0]) / den
        r = (w[:, 0] * u[1] - w[:, 1] * u[0]) / den
    ok = (np.abs(den) > 1e-12) & (r >= 0.0) & (r <= 1.0) & (s > 0.0)
    return float(s[ok].max()) if ok.any() else float("nan")


def vertebra_landmarks(dims: VertebraDims | str) -> dict:
    """Landmarks for screw placement, consistent with :func:`generate_vertebra` (mm, RAS).

    Returns a dict with ``"right"`` and ``"left"`` entries, each holding
    ``entry`` (where the pedicle axis leaves the posterior lamina surface),
    ``isthmus`` (pedicle axis point at its narrowest section), ``direction``
    (unit vector, anterior and medial), ``length_to_anterior_cortex`` (mm from
    the entry to the outer anterior body wall along the axis),
    ``pedicle_width`` and ``pedicle_height``; and body values ``body_width``,
    ``body_depth``, ``body_height``, ``body_anterior_y``, ``body_posterior_y``
    (endplate section extremes), ``posterior_wall_y`` (outer posterior wall at
    the midline, mid-height), ``posterior_wall_half_width``,
    ``superior_endplate_z``, ``inferior_endplate_z``, ``canal_posterior_y``.
    """
    if isinstance(dims, str):
        dims = vertebra_dims(dims)
    lay = _layout(dims)
    out: dict = {"level": dims.level}
    for name, side in (("right", 1), ("left", -1)):
        c, u = _pedicle_frame(lay, side)
        s_entry = (c[1] - lay.y_lamina_back) / u[1]  # back along the axis to the lamina's back face
        entry = c - s_entry * u
        sec = lay.section * _scale(dims, lay.z_ped)
        s_front = _ray_exit(sec, entry[:2], u[:2])
        out[name] = {
            "entry": entry,
            "isthmus": c,
            "direction": u,
            "length_to_anterior_cortex": s_front,
            "pedicle_width": dims.pedicle_width,
            "pedicle_height": dims.pedicle_height,
        }
    mid = lay.section * _scale(dims, 0.0)
    near = np.abs(mid[:, 0]) < 1.0
    out.update(
        body_width=dims.body_width,
        body_depth=dims.body_depth,
        body_height=dims.body_height,
        body_anterior_y=lay.y_front,
        body_posterior_y=lay.y_back,
        posterior_wall_y=float(mid[near & (mid[:, 1] < 0), 1].max()),
        posterior_wall_half_width=lay.xw,
        superior_endplate_z=0.5 * dims.body_height,
        inferior_endplate_z=-0.5 * dims.body_height,
        canal_posterior_y=lay.y_lamina_front,
    )
    return out
