"""Parametric lumbar vertebra (L1..L5) meshed with gmsh / OpenCASCADE.

Frame (RAS, as in 3D Slicer), units mm:
    origin at the centroid of the vertebral body, +x to the patient's right,
    +y anterior, +z cranial.  The posterior elements lie at negative y, the
    superior endplate rim at z = +height/2, the inferior rim at z = -height/2.

Geometry:
    body      waisted (``waist``, default 6 %) loft of a kidney-shaped section
              (elliptic anteriorly, squarer posteriorly with a shallow concave
              posterior wall), endplates dished ``endplate_dish`` mm (default 1);
    shell     conforming cortical layer of ``shell_thickness`` mm (default 1.0):
              body minus an inner body whose section is the outer section
              offset inwards by the thickness and whose endplates lie that
              much deeper; side walls and both endplates are covered;
    posterior elliptic-cylinder pedicles on the transverse (convergence) angle,
              a lamina plate closing the canal, a spinous process and two
              transverse processes (articular processes are not modelled).

Physical groups written to the .msh (names exact):
    volumes   ``cortical_shell``, ``trabecular``, ``posterior_elements``
              (every tetrahedron is in exactly one of them);
    surfaces  ``endplate_superior``, ``endplate_inferior`` (outer cranial/caudal
              faces of the body) and ``posterior_wall`` (outer body wall
              between the pedicles that bounds the vertebral foramen).

Meshing: tet4 (order 1) or tet10 (order 2, mid-edge nodes on the CAD surfaces;
the few tets this folds get straight edges) plus tri3/tri6 facets of the named
surfaces, gmsh MSH 4.1 binary, which ``meshio.read`` returns with the group
names in ``cell_sets_dict``.  The shell is meshed at min(size, 2 x thickness),
so there is at least one element through it.

Sources for the dimension table: Panjabi et al. 1992, Spine 17:299 (means over
L1..L5, quoted from memory and so marked unverified); Cook & Baker 2021 (L5 body
heights and pedicle width, see /work/shared/design/field.md); field.md ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fembone.core.errors import FemboneError, InputError
from fembone.spine.geometry.gmsh_session import gmsh_model

__all__ = [
    "LEVELS",
    "VertebraDims",
    "vertebra_dims",
    "generate_vertebra",
    "vertebra_landmarks",
    "VOLUME_GROUPS",
    "SURFACE_GROUPS",
]

VOLUME_GROUPS = ("cortical_shell", "trabecular", "posterior_elements")
SURFACE_GROUPS = ("endplate_superior", "endplate_inferior", "posterior_wall")

# Section splines interpolate points spaced evenly (mm) in arc length along a dense polyline of the
# analytic section, with the section's tangent at every point: < 0.2 mm from the polyline, and
# tangent-continuous at the posterior-wall seams.  Unevenly spaced points or end-only tangents
# gave curvature spikes at the seams (folded facets where a seam meets an endplate); denser points
# slow the booleans several-fold.
_SPLINE_SPACING = 3.0


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


# ----------------------------------------------------------------------------- CAD


def _arc_length(p: np.ndarray) -> tuple[np.ndarray, float]:
    """Cumulative arc length at each vertex of a closed polyline, and its perimeter."""
    seg = np.linalg.norm(np.roll(p, -1, axis=0) - p, axis=1)
    return np.concatenate([[0.0], np.cumsum(seg[:-1])]), float(seg.sum())


def _posterior_crossing(p: np.ndarray, s: np.ndarray, x0: float) -> float:
    """Arc length where the posterior (y < 0) part of the polyline crosses x = x0."""
    q = np.roll(p, -1, axis=0)
    hit = np.nonzero((p[:, 1] < 0.0) & ((p[:, 0] - x0) * (q[:, 0] - x0) <= 0.0) & (p[:, 0] != q[:, 0]))[0]
    if len(hit) != 1:
        raise FemboneError(f"posterior-wall seam x = {x0:.2f} mm crosses the body section {len(hit)} times")
    i = int(hit[0])
    f = (x0 - p[i, 0]) / (q[i, 0] - p[i, 0])
    seg = float(np.linalg.norm(q[i] - p[i]))
    return float(s[i] + f * seg)


def _section_wire(occ, pts: np.ndarray, z: float, xw: float) -> int:
    """Wire of two splines at height z: the posterior wall (|x| <= xw, y < 0) and the rest.

    Points are spaced evenly in arc length and carry the section's tangent, so
    the wire is tangent-continuous at the seams.
    """
    s, per = _arc_length(pts)
    closed = np.vstack([pts, pts[:1]])
    s_closed = np.concatenate([s, [per]])

    def at(u: np.ndarray) -> np.ndarray:
        u = np.mod(u, per)
        return np.column_stack([np.interp(u, s_closed, closed[:, 0]), np.interp(u, s_closed, closed[:, 1])])

    s_l = _posterior_crossing(pts, s, -xw)
    s_r = _posterior_crossing(pts, s, xw)
    if s_r < s_l:
        s_r += per
    spans = ((s_l, s_r), (s_r, s_l + per))
    ends = {}
    curves = []
    for u0, u1 in spans:
        n = max(4, int(math.ceil((u1 - u0) / _SPLINE_SPACING)))
        u = np.linspace(u0, u1, n + 1)
        xy = at(u)
        tags = []
        for k, (x, y) in enumerate(xy):
            key = round(float(np.mod(u[k], per)), 9) if k in (0, n) else None
            if key is not None and key in ends:
                tags.append(ends[key])
                continue
            tg = occ.addPoint(float(x), float(y), z)
            if key is not None:
                ends[key] = tg
            tags.append(tg)
        # unit tangents at every point (6-entry end tangents make OCC loop near the end)
        h = 0.25 * (u1 - u0) / n
        tng = at(u + h) - at(u - h)
        tng /= np.linalg.norm(tng, axis=1, keepdims=True)
        tng3 = np.column_stack([tng, np.zeros(len(tng))]).ravel().tolist()
        curves.append(occ.addSpline(tags, tangents=tng3))
    return occ.addWire(curves, checkClosed=True)


def _loft(occ, dims: VertebraDims, lay: _Layout, inset: float) -> int:
    """Waisted body solid, section offset inwards by ``inset`` and endplates ``inset`` deeper."""
    h = 0.5 * dims.body_height - inset
    wires = []
    for z in (-h, 0.0, h):
        pts = lay.section * _scale(dims, z)
        if inset > 0.0:
            pts = _offset_inward(pts, inset)
        wires.append(_section_wire(occ, pts, z, lay.xw * _scale(dims, z)))
    vols = occ.addThruSections(wires, makeSolid=True, makeRuled=False)
    vol = [t for d, t in vols if d == 3]
    if len(vol) != 1:
        raise FemboneError(f"{dims.level}: OpenCASCADE loft of the vertebral body failed ({vols})")
    tag = vol[0]
    if dims.endplate_dish > 0.0:
        ae, be, ce = lay.dish_axes
        zc = 0.5 * dims.body_height + ce - dims.endplate_dish
        tools = []
        for sgn in (1.0, -1.0):
            s = occ.addSphere(0.0, 0.0, 0.0, 1.0)
            occ.dilate([(3, s)], 0, 0, 0, ae + inset, be + inset, ce + inset)
            occ.translate([(3, s)], 0, 0, sgn * zc)
            tools.append((3, s))
        res, _ = occ.cut([(3, tag)], tools)
        if len(res) != 1:
            raise FemboneError(f"{dims.level}: endplate dish cut failed ({res}); try dims.endplate_dish=0")
        tag = res[0][1]
    return tag


def _elliptic_prism(occ, base: np.ndarray, axis: np.ndarray, length: float,
                    e1: np.ndarray, r1: float, r2: float) -> int:
    """Elliptic cylinder from ``base`` along unit ``axis`` for ``length`` mm.

    The section has semi-axis ``r1`` along unit ``e1`` (perpendicular to the
    axis) and ``r2`` along ``axis x e1``.  Built by extruding a planar ellipse,
    not by dilating a circular cylinder: dilated cylinders become periodic
    BSpline faces that gmsh may fail to mesh once cut.
    """
    e1 = np.asarray(e1, float)
    if r1 < r2:  # OpenCASCADE wants the major radius along the ellipse's x axis
        e1, (r1, r2) = np.cross(axis, e1), (r2, r1)
    c = occ.addEllipse(*map(float, base), r1, r2, zAxis=list(map(float, axis)), xAxis=list(map(float, e1)))
    s = occ.addPlaneSurface([occ.addCurveLoop([c])])
    out = occ.extrude([(2, s)], *map(float, np.asarray(axis) * length))
    return next(t for d, t in out if d == 3)


def _posterior_solid(occ, dims: VertebraDims, lay: _Layout) -> list[tuple[int, int]]:
    """Pedicles, lamina, spinous and transverse processes, fused (overlaps the body)."""
    parts: list[tuple[int, int]] = []
    y_lam_mid = 0.5 * (lay.y_lamina_front + lay.y_lamina_back)
    lam_h = max(dims.pedicle_height + 4.0, 0.75 * dims.body_height)
    z_lam = lay.z_ped - 1.0
    x_lam = 0.0
    y_tp = lay.y_isthmus - 0.5 * (lay.y_isthmus - lay.y_lamina_front)
    for side in (1, -1):
        c, u = _pedicle_frame(lay, side)
        s_back = (c[1] - y_lam_mid) / u[1]  # to mid-lamina
        s_front = (lay.y_back + 0.45 * dims.body_depth - c[1]) / u[1]  # deep into the body
        length = s_back + s_front
        e_w = np.array([u[1], -u[0], 0.0])  # horizontal, perpendicular to the axis
        p = _elliptic_prism(occ, c - s_back * u, u, length, e_w,
                            0.5 * dims.pedicle_width, 0.5 * dims.pedicle_height)
        parts.append((3, p))
        x_back = abs(c[0] - s_back * u[0])
        x_lam = max(x_lam, x_back + 0.5 * dims.pedicle_width + 1.0)
        # transverse process: from the pedicle axis at y_tp out to the tip
        x_start = abs(c[0] + (y_tp - c[1]) / u[1] * u[0])
        tp_len = 0.5 * dims.transverse_width - x_start
        if tp_len < 5.0:
            raise InputError(
                f"{dims.level}: transverse_width {dims.transverse_width} mm does not reach past the pedicles",
                where="dims.transverse_width",
            )
        t = _elliptic_prism(occ, np.array([side * x_start, y_tp, lay.z_ped]), np.array([side, 0.0, 0.0]),
                            tp_len, np.array([0.0, 0.0, 1.0]),
                            0.5 * dims.transverse_height, 0.5 * dims.transverse_thickness)
        parts.append((3, t))
    lam = occ.addBox(-x_lam, lay.y_lamina_back, z_lam - 0.5 * lam_h,
                     2.0 * x_lam, dims.lamina_thickness, lam_h)
    parts.append((3, lam))
    sp_h = 0.8 * lam_h
    y_tip = lay.y_lamina_front - dims.spinous_length
    sp = occ.addBox(-0.5 * dims.spinous_thickness, y_tip, z_lam - 0.45 * lam_h,
                    dims.spinous_thickness, y_lam_mid - y_tip, sp_h)
    parts.append((3, sp))
    fused, _ = occ.fuse(parts[:1], parts[1:])
    if len(fused) != 1:
        raise FemboneError(f"{dims.level}: posterior elements did not fuse into one solid ({fused})")
    return fused


# ----------------------------------------------------------------------------- meshing


def _validate(size: float, order: int, shell_thickness: float, dims: VertebraDims) -> None:
    if not (isinstance(order, (int, np.integer)) and order in (1, 2)):
        raise InputError(f"order must be 1 (tet4) or 2 (tet10), got {order!r}", where="order")
    if not (math.isfinite(size) and 0.3 <= size <= 10.0):
        raise InputError(f"element size must be between 0.3 and 10 mm, got {size!r}", where="size")
    lim = 0.2 * min(dims.body_width, dims.body_depth, dims.body_height)
    if not (math.isfinite(shell_thickness) and 0.2 <= shell_thickness <= lim):
        raise InputError(
            f"shell_thickness must be between 0.2 and {lim:.1f} mm for {dims.level}, got {shell_thickness!r}",
            where="shell_thickness",
        )
    if dims.endplate_dish < 0.0 or dims.endplate_dish > 0.25 * dims.body_height:
        raise InputError(f"endplate_dish {dims.endplate_dish} mm out of range", where="dims.endplate_dish")


def generate_vertebra(
    path: str | Path,
    level: str = "L1",
    size: float = 2.0,
    order: int = 1,
    shell_thickness: float = 1.0,
    dims: VertebraDims | None = None,
    verbose: bool = False,
) -> Path:
    """Mesh a parametric lumbar vertebra and write it as a gmsh 4.1 ``.msh`` file.

    ``size`` is the characteristic element size in mm (the cortical shell is
    meshed at ``min(size, 2 * shell_thickness)``, small radii with at least 8
    elements per turn); ``order`` 1 gives tet4/tri3, 2 gives tet10/tri6
    (mid-edge nodes on the CAD surfaces).  Frame: RAS, origin at the body
    centroid, mm.  ``dims`` overrides the tabulated ``level``.  Returns the
    written path.  Safe to call from worker threads (calls are serialised);
    gmsh is finalised again on return unless the caller had initialised it.
    Raises :class:`InputError` for bad arguments and :class:`FemboneError`
    when OpenCASCADE or the mesher fails.
    """
    dims = vertebra_dims(level) if dims is None else dims
    _validate(float(size), order, float(shell_thickness), dims)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lay = _layout(dims)
    try:
        with gmsh_model(f"vertebra_{dims.level}", verbose) as gmsh:
            _build_and_mesh(gmsh, dims, lay, float(size), int(order), float(shell_thickness))
            gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
            gmsh.option.setNumber("Mesh.Binary", 1)
            gmsh.option.setNumber("Mesh.SaveAll", 0)
            gmsh.write(str(path))
    except FemboneError:
        raise
    except Exception as exc:  # gmsh raises plain Exception with its last error
        raise FemboneError(f"{dims.level}: gmsh failed to build or mesh the vertebra: {exc}") from exc
    return path


def _build_and_mesh(gmsh, dims: VertebraDims, lay: _Layout, size: float, order: int, t: float) -> None:
    occ = gmsh.model.occ
    outer = _loft(occ, dims, lay, 0.0)
    inner = _loft(occ, dims, lay, t)
    post = _posterior_solid(occ, dims, lay)
    post, _ = occ.cut(post, [(3, outer)], removeObject=True, removeTool=False)
    _, mapping = occ.fragment([(3, outer)], [(3, inner)] + post)
    occ.synchronize()
    core = {tg for _, tg in mapping[1]}
    shell = {tg for _, tg in mapping[0]} - core
    posterior = {tg for m in mapping[2:] for _, tg in m} - core - shell
    if not (core and shell and posterior):
        raise FemboneError(f"{dims.level}: fragmenting body, core and posterior elements failed")

    for name, tags in zip(VOLUME_GROUPS, (shell, core, posterior)):
        gmsh.model.addPhysicalGroup(3, sorted(tags), name=name)

    h_shell = min(size, 2.0 * t)
    f = gmsh.model.mesh.field.add("Constant")
    gmsh.model.mesh.field.setNumbers(f, "VolumesList", sorted(shell))
    gmsh.model.mesh.field.setNumber(f, "IncludeBoundary", 1)
    gmsh.model.mesh.field.setNumber(f, "VIn", h_shell)
    gmsh.model.mesh.field.setNumber(f, "VOut", size)
    gmsh.model.mesh.field.setAsBackgroundMesh(f)
    gmsh.option.setNumber("Mesh.MeshSizeMax", size)
    gmsh.option.setNumber("Mesh.MeshSizeMin", 0.25 * h_shell)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 8)  # >= 8 elements per 2 pi on small radii (processes)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)  # core grows to `size`
    gmsh.option.setNumber("Mesh.Optimize", 1)
    gmsh.option.setNumber("Mesh.OptimizeNetgen", 1)
    gmsh.option.setNumber("Mesh.ElementOrder", 1)
    gmsh.model.mesh.generate(3)
    _surface_groups(gmsh, dims, lay, shell, t)
    if order == 2:
        gmsh.model.mesh.setOrder(2)  # mid-edge nodes on the CAD surfaces
        if not _straighten_inverted(gmsh):  # still folded: straight-sided tet10 everywhere
            gmsh.option.setNumber("Mesh.SecondOrderLinear", 1)
            gmsh.model.mesh.setOrder(1)
            gmsh.model.mesh.setOrder(2)
    if _min_det_jac(gmsh) <= 0.0:
        raise FemboneError(f"{dims.level}: mesh has inverted tetrahedra; try another size")


def _surface_groups(gmsh, dims: VertebraDims, lay: _Layout, shell: set[int], t: float) -> None:
    """Name the outer faces of the shell from the bounding boxes of their mesh nodes.

    (OpenCASCADE boxes of BSpline faces are loose; mesh nodes give tight ones.)
    """
    H = dims.body_height
    sup, inf, pw = [], [], []
    for tg in sorted(shell):
        _, faces = gmsh.model.getAdjacencies(3, tg)
        for f in faces:
            up, _ = gmsh.model.getAdjacencies(2, int(f))
            if len(up) != 1:
                continue  # interface with the core or the posterior elements
            _, xyz, _ = gmsh.model.mesh.getNodes(2, int(f), includeBoundary=True)
            xyz = np.asarray(xyz).reshape(-1, 3)
            (x0, _, z0), (x1, y1, z1) = xyz.min(axis=0), xyz.max(axis=0)
            if z0 > 0.5 * H - dims.endplate_dish - 0.5 * t:
                sup.append(int(f))
            elif z1 < -0.5 * H + dims.endplate_dish + 0.5 * t:
                inf.append(int(f))
            elif x0 > -lay.xw - 0.5 and x1 < lay.xw + 0.5 and y1 < 0.0 and z1 - z0 > 0.9 * H:
                pw.append(int(f))
    if not sup or not inf or len(pw) != 1:
        raise FemboneError(
            f"{dims.level}: could not identify body surfaces (superior {sup}, inferior {inf}, posterior wall {pw})"
        )
    for name, tags in zip(SURFACE_GROUPS, (sup, inf, pw)):
        gmsh.model.addPhysicalGroup(2, sorted(tags), name=name)


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
    etypes, etags, _ = gmsh.model.mesh.getElements(3)
    worst = math.inf
    for tags in etags:
        if len(tags):
            q = gmsh.model.mesh.getElementQualities(tags, "minDetJac")
            worst = min(worst, float(np.min(q)))
    return worst
