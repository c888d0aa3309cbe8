"""Meshed loading set-ups around the parametric vertebra: PMMA endplate caps and half discs (mm, RAS).

``caps`` (in-vitro test): a PMMA block on each endplate, filling the endplate dish, covering the
    body outline, with a flat outer face perpendicular to z at ``cap_thickness`` from the deepest
    point of the dish (z = +-(H/2 - dish + cap_thickness)).  Potting of >= 3 mm is the Bonelab/Ogo
    pipeline's practice (field.md).
``discs`` (physiological loading): half an intervertebral disc on each endplate, same outline and
    dish filling, flat outer face at ``disc_height`` from the deepest dish point.  Default 5 mm is
    half of a mid-disc height of about 10 mm: MRI mid-disc heights at L1/L2..L4/L5 are 7.9..12.0 mm
    (Mansur et al. 2021, Journal of Lumbini Medical College, MRI, 106 scans) and 10.0 +- 1.9 ..
    13.8 +- 2.0 mm in 14 adults aged 40-59 (MRI study "Measuring dimensions of lumbar intervertebral
    discs in normal subjects", anatomyjournal.ir; authors not retrieved).  Mid-disc height is
    measured between the endplate centres, hence from the deepest dish point here.
    Each half disc is split into a nucleus, a central elliptic cylinder concentric with the dish
    footprint (same aspect) covering ``nucleus_area_fraction`` of the disc cross-section, and the
    annulus around it.  Default 0.43: within the nucleus-to-disc area ratios 0.21-0.60 studied by
    Yang, Um, Lu & O'Connell 2019 (J Biomech Eng 141:051004) and the 30-50 % of White & Panjabi 1990
    (Clinical Biomechanics of the Spine, 2nd ed.; quoted, unverified).  The nucleus is centred on the
    body centroid (anatomically it sits slightly posterior, Yang et al. 2019).

The endplates (``endplate_superior``/``endplate_inferior``) become interfaces with the cap or the
disc; their facets are still written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fembone.core.errors import FemboneError, InputError
from fembone.spine.geometry.vertebra_cad import _elliptic_prism, _section_wire
from fembone.spine.geometry.vertebra_dims import VertebraDims, _Layout

__all__ = ["SETUPS", "SETUP_SURFACE_GROUPS", "SETUP_VOLUME_GROUPS", "Setup", "endplate_dish_depth"]

SETUPS = (None, "caps", "discs")
SETUP_VOLUME_GROUPS = {
    "caps": ("cap_superior", "cap_inferior"),
    "discs": ("disc_superior_annulus", "disc_superior_nucleus", "disc_inferior_annulus", "disc_inferior_nucleus"),
}
SETUP_SURFACE_GROUPS = {
    "caps": ("cap_superior_face", "cap_inferior_face"),
    "discs": ("disc_superior_face", "disc_inferior_face"),
}
_RIM_CLEARANCE = 0.5  # mm of cap or disc above the endplate rim, at least
_NUCLEUS_RANGE = (0.2, 0.6)  # nucleus/disc area ratios, Yang et al. 2019 (0.21-0.60)
_NUCLEUS_RIM_GAP = 0.3  # mm; a nucleus wall closer than this to the dish rim would leave slivers
_DISH_FILL_MARGIN = 1.5  # mm beyond the dish footprint of the helper prism that fills the dish


def endplate_dish_depth(dims: VertebraDims) -> float:
    """Depth (mm) of the endplate concavity: its deepest point lies this far inside the rim plane."""
    return float(dims.endplate_dish)


def _section_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


@dataclass(frozen=True)
class Setup:
    """A validated set-up: ``kind`` (``"caps"``/``"discs"``), outer face height ``z_face`` (mm, > 0),
    and for discs the nucleus semi-axes (mm, along x and y)."""

    kind: str
    z_face: float
    nucleus_axes: tuple[float, float] | None = None

    @staticmethod
    def build(kind, dims: VertebraDims, lay: _Layout, cap_thickness: float, disc_height: float,
              nucleus_area_fraction: float) -> Setup | None:
        """Validate the set-up parameters against the vertebra's geometry."""
        if kind not in SETUPS:
            raise InputError(f"setup must be one of none, caps, discs; got {kind!r}", "boundary.setup")
        if kind is None:
            return None
        dish = endplate_dish_depth(dims)
        H = dims.body_height
        if kind == "caps":
            t, key, what = float(cap_thickness), "boundary.cap.thickness", "cap thickness"
        else:
            t, key, what = float(disc_height), "boundary.disc.height", "disc height"
        if not math.isfinite(t) or t > H:
            raise InputError(f"{what} must be a finite number of mm up to the body height {H:g}, got {t!r}", key)
        if t < dish + _RIM_CLEARANCE:
            raise InputError(
                f"{what} {t:g} mm is less than the endplate dishing {dish:g} mm "
                f"(+ {_RIM_CLEARANCE:g} mm over the endplate rim); use at least {dish + _RIM_CLEARANCE:g} mm",
                key,
            )
        z_face = 0.5 * H - dish + t
        if kind == "caps":
            return Setup("caps", z_face)
        f = float(nucleus_area_fraction)
        lo, hi = _NUCLEUS_RANGE
        if not (math.isfinite(f) and lo <= f <= hi):
            raise InputError(f"nucleus_area_fraction must be between {lo} and {hi}, got {f!r}",
                             "boundary.disc.nucleus_area_fraction")
        ae, be = lay.dish_axes[0], lay.dish_axes[1]
        k = math.sqrt(1.0 - (1.0 - 0.25) ** 2)  # dish footprint / ellipsoid semi-axes (see _layout)
        fa, fb = k * ae, k * be  # dish footprint semi-axes at the rim plane
        s = math.sqrt(f * _section_area(lay.section) / (math.pi * fa * fb))
        if dish > 0.0 and abs(s - 1.0) * min(fa, fb) < _NUCLEUS_RIM_GAP:
            f1 = math.pi * fa * fb / _section_area(lay.section)
            g = _NUCLEUS_RIM_GAP / min(fa, fb)
            raise InputError(
                f"nucleus_area_fraction {f:g} puts the nucleus boundary within {_NUCLEUS_RIM_GAP} mm of the "
                f"endplate dish rim (which encloses {f1:.3f} of the section); choose a value outside "
                f"{f1 * (1 - g) ** 2:.3f}..{f1 * (1 + g) ** 2:.3f}", "boundary.disc.nucleus_area_fraction",
            )
        return Setup("discs", z_face, (s * fa, s * fb))


def _dish_fill_prism(occ, dims: VertebraDims, lay: _Layout, sign: float) -> int:
    """Elliptic prism from below the deepest dish point up to the rim plane, just wider than the dish."""
    k = math.sqrt(1.0 - (1.0 - 0.25) ** 2)
    fa, fb = k * lay.dish_axes[0] + _DISH_FILL_MARGIN, k * lay.dish_axes[1] + _DISH_FILL_MARGIN
    z_rim = 0.5 * dims.body_height
    depth = endplate_dish_depth(dims) + 0.5
    base = np.array([0.0, 0.0, sign * (z_rim - depth)])
    return _elliptic_prism(occ, base, np.array([0.0, 0.0, sign]), depth, np.array([1.0, 0.0, 0.0]), fa, fb)


def setup_solids(occ, dims: VertebraDims, lay: _Layout, setup: Setup, outer: int,
                 post: list[tuple[int, int]], post_z: tuple[float, float] | None = None,
                 ) -> tuple[dict[str, list[tuple[int, int]]], bool]:
    """Cap or disc solids on both endplates, not overlapping the bone.

    Returns lists of volumes keyed ``"superior"``/``"inferior"`` (the cap, or the disc annulus) and,
    for discs, ``"superior_nucleus"``/``"inferior_nucleus"``.  Each block is the body-outline prism
    from the rim plane to the flat face, fused with the dish filling (an elliptic prism cut by the
    body), then cut by the posterior elements where they reach into it (``post_z``: their z range
    before they were cut by the body, mm; ``None``: always cut); the nucleus is an elliptic prism
    cut by the body, the annulus the block minus the nucleus.  The solids only touch the bone and
    each other (no overlaps), so they can be joined to it in OpenCASCADE's glue mode.  The flag
    returned is True when a block was cut by the posterior elements (it may touch them).
    """
    z_rim = 0.5 * dims.body_height
    dish = endplate_dish_depth(dims)
    sides = (("superior", 1.0), ("inferior", -1.0))
    blocks: dict[str, list[tuple[int, int]]] = {}
    for name, sign in sides:
        wire = _section_wire(occ, lay.section, sign * z_rim, lay.xw)
        face = occ.addPlaneSurface([wire])
        ext = occ.extrude([(2, face)], 0.0, 0.0, sign * (setup.z_face - z_rim))
        blocks[name] = [dt for dt in ext if dt[0] == 3]
    # the solids that meet the endplate dish are cut by the body, both sides in one boolean
    # (objects of one boolean must not overlap each other: fills and nuclei go separately)
    fills: list[tuple[str, tuple[int, int]]] = []
    nuclei: list[tuple[str, tuple[int, int]]] = []
    for name, sign in sides:
        if dish > 0.0:
            fills.append((name, (3, _dish_fill_prism(occ, dims, lay, sign))))
        if setup.kind == "discs":
            a, b = setup.nucleus_axes
            base = np.array([0.0, 0.0, sign * (z_rim - dish - 0.5)])
            nuc = _elliptic_prism(occ, base, np.array([0.0, 0.0, sign]), setup.z_face - z_rim + dish + 0.5,
                                  np.array([1.0, 0.0, 0.0]), a, b)
            nuclei.append((f"{name}_nucleus", (3, nuc)))
    cut_parts: dict[str, list[tuple[int, int]]] = {}
    for group in (fills, nuclei):
        if group:
            _, mapping = occ.cut([dt for _, dt in group], [(3, outer)], removeObject=True, removeTool=False)
            for (key, _), m in zip(group, mapping):
                cut_parts[key] = [dt for dt in m if dt[0] == 3]
    out: dict[str, list[tuple[int, int]]] = {}
    touches_post = False
    for name, sign in sides:
        block = blocks[name]
        if name in cut_parts:
            block, _ = occ.fuse(block, cut_parts[name])
        reaches = post_z is None or (post_z[1] > z_rim - 1e-3 if sign > 0 else post_z[0] < -z_rim + 1e-3)
        if post and reaches:
            block, _ = occ.cut(block, post, removeObject=True, removeTool=False)
            touches_post = True
        if len(block) != 1:
            raise FemboneError(f"{dims.level}: the {name} {setup.kind[:-1]} did not form one solid ({block})")
        out[name] = block
    if setup.kind == "discs":
        for name, _ in sides:
            nuc = cut_parts[f"{name}_nucleus"]
            if len(nuc) != 1:
                raise FemboneError(f"{dims.level}: the {name} nucleus did not form one solid ({nuc})")
            out[f"{name}_nucleus"] = nuc
        objs = out["superior"] + out["inferior"]
        _, mapping = occ.cut(objs, out["superior_nucleus"] + out["inferior_nucleus"],
                             removeObject=True, removeTool=False)
        for (name, _), m in zip(sides, mapping):
            annulus = [dt for dt in m if dt[0] == 3]
            if len(annulus) != 1:
                raise FemboneError(f"{dims.level}: the {name} annulus did not form one solid ({annulus})")
            out[name] = annulus
    return out, touches_post
