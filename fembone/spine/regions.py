"""Lesion and cement regions painted onto a mesh as per-element volume fractions. Units: mm, mm^3, mL.

Each element is sampled at the 14 points of a degree-4 Keast rule (positive weights); the
fraction of an element inside a region is the weighted share of its points inside.  Mixed
elements get a Hill-averaged stiffness (:func:`fembone.spine.bone.hill_mix`), so stiffness
changes smoothly with lesion size or cement volume instead of jumping element by element.

Cement filling (a simple, deterministic model of vertebroplasty): cement first fills the
lesion, nearest to the needle tips first, then interdigitates into the trabecular bone
around the tips, filling the pore space (porosity phi) of the points nearest to a tip
until the injected volume is reached.  The filled volume is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fembone.core.elements import tet_quadrature
from fembone.core.errors import InputError
from fembone.core.mesh import Mesh


@dataclass
class Samples:
    """Sample points (ne, nq, 3) and their volumes (ne, nq) for a set of elements."""

    elements: np.ndarray
    points: np.ndarray
    volume: np.ndarray


def sample_elements(mesh: Mesh, elements: np.ndarray | None = None, degree: int = 4) -> Samples:
    """Points of a degree-``degree`` tetrahedron rule in each element (straight-sided map)."""
    elements = np.arange(mesh.n_elements) if elements is None else np.asarray(elements)
    q = tet_quadrature(degree)
    L = np.column_stack([1.0 - q.points.sum(axis=1), q.points])  # (nq, 4)
    x = mesh.points[mesh.cells[elements, :4]]  # (ne, 4, 3)
    pts = np.einsum("qk,ekj->eqj", L, x)
    vol = np.abs(mesh.volumes()[elements])[:, None] * (q.weights / q.weights.sum())[None, :]
    return Samples(elements, pts, vol)


def fraction_inside(s: Samples, inside) -> np.ndarray:
    """Volume fraction of each sampled element inside ``inside(points) -> bool``."""
    m = inside(s.points.reshape(-1, 3)).reshape(s.points.shape[:2])
    return (m * s.volume).sum(axis=1) / s.volume.sum(axis=1)


def ellipsoid(center, radii, axes=None):
    """inside(points) for an ellipsoid (mm); ``axes`` rows are principal directions."""
    c = np.asarray(center, float)
    r = np.asarray(radii, float)
    R = np.eye(3) if axes is None else np.asarray(axes, float) / np.linalg.norm(axes, axis=1)[:, None]
    return lambda x: ((((x - c) @ R.T) / r) ** 2).sum(axis=1) <= 1.0


def solve_radius(s: Samples, center, target_volume: float, aspect=(1.0, 1.0, 1.0), where: str = "lesion") -> float:
    """Scale r of an ellipsoid (radii r * aspect) whose intersection with the samples has ``target_volume``.

    Bisection on r; the sampled volume is monotone in r.
    """
    aspect = np.asarray(aspect, float)
    total = s.volume.sum()
    if target_volume >= total:
        raise InputError(
            f"a lesion of {target_volume:.0f} mm^3 does not fit in the available {total:.0f} mm^3 of bone", where
        )
    pts = s.points.reshape(-1, 3)
    w = s.volume.ravel()
    d = np.sqrt(((((pts - np.asarray(center)) / aspect)) ** 2).sum(axis=1))
    order = np.argsort(d)
    cum = np.cumsum(w[order])
    k = np.searchsorted(cum, target_volume)
    if k >= len(cum):
        raise InputError(f"a lesion of {target_volume:.0f} mm^3 does not fit in the bone around its centre", where)
    # interpolate between the sample distances for a continuous radius
    d_sorted = d[order]
    lo = cum[k - 1] if k > 0 else 0.0
    t = (target_volume - lo) / max(cum[k] - lo, 1e-300)
    prev = d_sorted[k - 1] if k > 0 else 0.0
    return float(prev + t * (d_sorted[k] - prev))


@dataclass
class CementFill:
    """Result of :func:`fill_cement`: per-element fractions and volumes (mm^3)."""

    pmma_fraction: np.ndarray  # (ne,) bulk cement replacing lesion
    composite_fraction: np.ndarray  # (ne,) cement-bone composite (interdigitated)
    filled_volume: float  # cement volume placed, mm^3
    lesion_filled: float  # of which inside the lesion
    bone_filled: float  # of which interdigitated into bone pores
    requested: float


def fill_cement(
    mesh: Mesh,
    tips: np.ndarray,
    volume: float,
    lesion_fraction: np.ndarray,
    trabecular: np.ndarray,
    porosity: float,
    where: str = "cement",
) -> CementFill:
    """Place ``volume`` mm^3 of cement: lesion first (nearest tips first), then trabecular pores.

    ``lesion_fraction`` (ne,) is the lesion share of each element; ``trabecular`` the ids of
    elements cement may interdigitate into.  A lesion sample consumes its volume times the
    lesion share; a bone sample its volume times ``porosity`` times the bone share.
    """
    ne = mesh.n_elements
    tips = np.atleast_2d(np.asarray(tips, float))
    cand = np.unique(np.concatenate([np.flatnonzero(lesion_fraction > 0), np.asarray(trabecular)]))
    s = sample_elements(mesh, cand)
    pts = s.points.reshape(-1, 3)
    dv = s.volume.ravel()
    elem = np.repeat(cand, s.points.shape[1])
    d = np.min(np.linalg.norm(pts[:, None, :] - tips[None, :, :], axis=2), axis=1)
    lf = lesion_fraction[elem]
    is_trab = np.isin(elem, trabecular)
    cap_lesion = dv * lf
    cap_bone = np.where(is_trab, dv * (1.0 - lf) * porosity, 0.0)
    available = cap_lesion.sum() + cap_bone.sum()
    if volume > available * (1 + 1e-9):
        raise InputError(
            f"cement volume {volume / 1000:.2f} mL exceeds the {available / 1000:.2f} mL the lesion and the "
            f"trabecular pores can take", where,
        )
    # fill order: lesion capacity sorted by distance, then bone capacity sorted by distance
    cap = np.concatenate([cap_lesion, cap_bone])
    dist = np.concatenate([d, d])
    prio = np.concatenate([np.zeros(len(d)), np.ones(len(d))])
    order = np.lexsort((dist, prio))
    cum = np.cumsum(cap[order])
    take = np.zeros(len(cap))
    k = int(np.searchsorted(cum, volume))
    take[order[:k]] = 1.0
    if k < len(order):
        before = cum[k - 1] if k > 0 else 0.0
        take[order[k]] = (volume - before) / max(cap[order[k]], 1e-300)
    filled_lesion = take[: len(d)] * cap_lesion
    filled_bone = take[len(d) :] * cap_bone
    # element fractions: bulk PMMA = filled lesion volume / element volume; composite = filled
    # bone-pore volume / porosity / element volume
    vol_e = np.abs(mesh.volumes())
    pmma = np.bincount(elem, weights=filled_lesion, minlength=ne) / vol_e
    comp = np.bincount(elem, weights=filled_bone / porosity, minlength=ne) / vol_e
    return CementFill(
        np.clip(pmma, 0, 1), np.clip(comp, 0, 1), float(filled_lesion.sum() + filled_bone.sum()),
        float(filled_lesion.sum()), float(filled_bone.sum()), float(volume),
    )
