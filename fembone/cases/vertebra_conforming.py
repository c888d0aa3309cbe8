"""Conforming lesions and cement for generated vertebrae: the inclusions to mesh, and what each
meshed region is made of.  Units: mm, mm^3, mL.

Placement follows the volume-fraction path (:mod:`fembone.cases.vertebra_fractions`) so the two
can be compared on the same lesions: a lesion centre from its ``location`` (offsets of the
body's extent from its centroid), its radius from ``volume_fraction`` of the body.  Cement
fills lesions first (they offer the least resistance); what is left interdigitates the
trabecular bone in spheres around the needle tips, taking ``porosity`` of the bone volume
they cover.  If the cement is less than the lesions, it fills spheres around the tips inside
the lesion.  Kyphoplasty: per needle, a compact PMMA bolus (no interdigitation) in a
balloon cavity, surrounded by a rim of compacted bone (``rim_thickness``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fembone.cases.vertebra_spec import LESION_MATERIAL, LOCATIONS, VertebraSpec
from fembone.core.errors import InputError
from fembone.core.mesh import Mesh
from fembone.spine.geometry.vertebra_regions import Inclusion
from fembone.spine.regions import ellipsoid, sample_elements, solve_radius


@dataclass
class RegionPlan:
    """Inclusions to mesh and the material of every label combination."""

    inclusions: list[Inclusion] = field(default_factory=list)
    void_labels: set[str] = field(default_factory=set)
    lesion_labels: dict[str, str] = field(default_factory=dict)  # label -> lesion type
    filled_lesions: set[str] = field(default_factory=set)  # lesion labels entirely filled with cement
    info: dict = field(default_factory=dict)  # lesions / cement metadata for summary.json

    def material(self, labels: frozenset[str]) -> str | None:
        """Material of a fragment inside the inclusions ``labels``; None keeps the host bone."""
        lesions = [x for x in labels if x in self.lesion_labels]
        if any(x.startswith("kypho") for x in labels):
            return "pmma"
        if any(x.startswith("cement") for x in labels):
            return "pmma" if lesions else "cement_bone"
        if lesions and any(x.startswith("fill") for x in labels):
            return "pmma"
        if lesions:
            if all(x in self.filled_lesions for x in lesions):
                return "pmma"
            kinds = [self.lesion_labels[x] for x in lesions]
            return "void" if "void" in kinds else LESION_MATERIAL[kinds[0]]
        if any(x.startswith("kvoid") for x in labels):
            return "void"
        if any(x.startswith("rim") for x in labels):
            return "compacted_bone"
        return None


def plan_regions(spec: VertebraSpec, plain: Mesh, porosity: float) -> RegionPlan:
    """Inclusions for ``spec``'s lesions and cement, placed on the plain (lesion-free) mesh."""
    plan = RegionPlan()
    body = np.concatenate([plain.cell_sets["cortical_shell"], plain.cell_sets["trabecular"]])
    trab = plain.cell_sets["trabecular"]
    vol = np.abs(plain.volumes())
    body_volume = float(vol[body].sum())
    # a generated vertebra's origin is its body centroid by construction (fembone.spine.geometry
    # .vertebra_dims); the mesh's centroid is off by discretisation (~1e-4 mm), and a sphere whose
    # seam lies that close to the body's own seams and symmetry planes makes OpenCASCADE leave
    # micro-edges: zero-volume slivers or a failed boolean (L1, 30 % central lesion, 2.5-3.5 mm)
    centroid = np.zeros(3)
    nodes = plain.points[np.unique(plain.cells[body])]
    lo, hi = nodes.min(axis=0), nodes.max(axis=0)
    s_body, s_trab = sample_elements(plain, body), sample_elements(plain, trab)
    tp, tw = s_trab.points.reshape(-1, 3), s_trab.volume.ravel()
    in_lesion = np.zeros(len(tp), bool)
    lesion_volume = 0.0
    infos = []
    for k, les in enumerate(spec.lesions):
        c = np.array(les.center) if les.center is not None else centroid + np.array(LOCATIONS[les.location]) * (hi - lo)
        if np.any(c < lo) or np.any(c > hi):
            raise InputError(f"lesion centre {np.round(c, 2).tolist()} lies outside the vertebral body", f"{les.path}.center")
        host = s_body if les.breach else s_trab
        if les.volume_fraction is not None:
            r = solve_radius(host, c, les.volume_fraction * body_volume, where=f"{les.path}.volume_fraction")
            radii = np.array([r, r, r])
        else:
            radii = np.array(les.radii)
        axes = np.array(les.axes) / np.linalg.norm(les.axes, axis=1)[:, None] if les.axes is not None else None
        inside = ellipsoid(c, radii, axes)
        hp = host.points.reshape(-1, 3)
        v = float((inside(hp) * host.volume.ravel()).sum())
        if v <= 0:
            raise InputError(f"lesion at {np.round(c, 2).tolist()} lies outside the bone (no {'body' if les.breach else 'trabecular'} volume inside it)", les.path)
        label = f"lesion{k}"
        plan.inclusions.append(Inclusion(label, tuple(c), tuple(radii), None if axes is None else tuple(map(tuple, axes)),
                                         "body" if les.breach else "trabecular"))
        plan.lesion_labels[label] = les.type
        if les.type == "void":
            plan.void_labels.add(label)
        in_lesion |= inside(tp)
        lesion_volume += v
        infos.append({"type": les.type, "center": c.tolist(), "radii": radii.tolist(), "volume": v, "label": label})
    plan.info["lesions"] = infos
    plan.info["body_volume"] = body_volume
    plan.info["cement"] = [_cement(plan, cem, k, tp, tw, in_lesion, lesion_volume, porosity, lo, hi)
                           for k, cem in enumerate(spec.cement)]
    return plan


def _sphere_radius(tips: np.ndarray, pts: np.ndarray, w: np.ndarray, target: float, where: str) -> float:
    """Common radius of spheres around ``tips`` whose union covers ``target`` of the weights ``w``."""
    d = np.min(np.linalg.norm(pts[:, None, :] - tips[None, :, :], axis=2), axis=1)
    order = np.argsort(d)
    cum = np.cumsum(w[order])
    if cum[-1] < target * (1 - 1e-9):
        raise InputError(f"cement volume exceeds what the bone around the needle tips can take ({cum[-1] / 1000:.2f} mL)", where)
    k = int(np.searchsorted(cum, target))
    return float(d[order[min(k, len(order) - 1)]])


#: share of a kyphoplasty sphere (cavity or bolus) that may lie outside the trabecular core or in
#: the other needle's sphere before the case is refused (the meshed volume would fall short of
#: the request by as much); the sampled estimate is within 0.5 % of OpenCASCADE's at 2-4 mm meshes
KYPHO_FIT_LOSS = 0.05


def _check_kypho_fit(cem, tips: np.ndarray, r: float, key: str, tp: np.ndarray, tw: np.ndarray) -> None:
    """Refuse balloon or bolus spheres (radius ``r`` mm around each tip) that do not fit the core."""
    d = np.min(np.linalg.norm(tp[:, None, :] - tips[None, :, :], axis=2), axis=1)
    want = len(tips) * 4.0 / 3.0 * np.pi * r**3
    lost = 1.0 - float(tw[d <= r].sum()) / want
    if lost > KYPHO_FIT_LOSS:
        what = f"{len(tips)} spheres" if len(tips) > 1 else "a sphere"
        raise InputError(f"{getattr(cem, key):g} mL as {what} of radius {r:.1f} mm around the needle tips does not fit the "
                         f"trabecular core: {100 * lost:.0f} % would lie outside it{' or overlap' if len(tips) > 1 else ''} "
                         f"(at most {100 * KYPHO_FIT_LOSS:.0f} %)", f"{cem.path}.{key}")


def _cement(plan: RegionPlan, cem, k: int, tp, tw, in_lesion, lesion_volume, porosity, lo, hi) -> dict:
    tips = np.array(cem.tips)
    for j, t in enumerate(tips):
        if np.any(t < lo) or np.any(t > hi):
            raise InputError(f"needle tip {np.round(t, 2).tolist()} lies outside the vertebral body",
                             f"{cem.path}.tips[{j}]" if cem.access == "tips" else f"{cem.path}.access")
    if cem.ellipsoid is not None:  # an explicit interdigitated region: it holds porosity x its bone volume
        center, radii = cem.ellipsoid
        inside = ellipsoid(center, radii)(tp)
        held = porosity * float(tw[inside & ~in_lesion].sum()) + float(tw[inside & in_lesion].sum())
        if held <= 0:
            raise InputError(f"cement ellipsoid at {np.round(center, 1).tolist()} holds no trabecular bone", f"{cem.path}.ellipsoid")
        plan.inclusions.append(Inclusion(f"cement{k}", tuple(center), tuple(radii)))
        return {"volume_ml": held / 1000.0, "access": "ellipsoid", "technique": "vertebroplasty", "center": list(center),
                "radii": list(radii), "filled_ml": held / 1000.0, "in_lesion_ml": float(tw[inside & in_lesion].sum()) / 1000.0,
                "interdigitated_ml": porosity * float(tw[inside & ~in_lesion].sum()) / 1000.0}
    V = cem.volume_ml * 1000.0
    for label, kind in plan.lesion_labels.items():
        if kind == "void" and cem.technique == "vertebroplasty":
            inc = next(i for i in plan.inclusions if i.label == label)
            if not any(ellipsoid(inc.center, inc.radii, inc.axes)(tips[None, j])[0] for j in range(len(tips))):
                raise InputError(f"no needle tip reaches the void lesion at {np.round(inc.center, 1).tolist()} "
                                 "(cement can only fill a hole the needle is in); give tips inside it", f"{cem.path}.tips" if cem.access == "tips" else f"{cem.path}.access")
    info = {"volume_ml": cem.volume_ml, "access": cem.access, "technique": cem.technique, "tips": tips.tolist()}
    if cem.technique == "kyphoplasty":
        trab_volume = float(tw.sum())
        vb = cem.balloon_ml * 1000.0
        if max(vb, V) > 0.9 * trab_volume:
            raise InputError(f"balloon of {cem.balloon_ml:g} mL does not fit the {trab_volume / 1000:.1f} mL trabecular core", f"{cem.path}.balloon_ml")
        n = len(tips)
        r_bolus = (3 * V / n / (4 * np.pi)) ** (1 / 3)
        r_cav = (3 * vb / n / (4 * np.pi)) ** (1 / 3)
        _check_kypho_fit(cem, tips, max(r_bolus, r_cav), "balloon_ml" if vb >= V else "volume_ml", tp, tw)
        for j, t in enumerate(tips):
            plan.inclusions.append(Inclusion(f"kypho{k}", tuple(t), (r_bolus,) * 3))
            if r_cav > r_bolus:
                plan.inclusions.append(Inclusion(f"kvoid{k}", tuple(t), (r_cav,) * 3))
            if cem.rim_thickness > 0:
                plan.inclusions.append(Inclusion(f"rim{k}", tuple(t), (max(r_cav, r_bolus) + cem.rim_thickness,) * 3))
        info.update(balloon_ml=cem.balloon_ml, bolus_radius=r_bolus, cavity_radius=r_cav, rim_thickness=cem.rim_thickness,
                    filled_ml=cem.volume_ml, in_lesion_ml=0.0, interdigitated_ml=0.0)
        return info
    if V <= lesion_volume:  # cement fills part of the lesions, around the tips
        r = _sphere_radius(tips, tp[in_lesion], tw[in_lesion], V, f"{cem.path}.volume_ml")
        for t in tips:
            plan.inclusions.append(Inclusion(f"fill{k}", tuple(t), (r,) * 3))
        info.update(filled_ml=cem.volume_ml, in_lesion_ml=cem.volume_ml, interdigitated_ml=0.0, radius=r)
        return info
    plan.filled_lesions |= set(plan.lesion_labels)
    rest = V - lesion_volume
    r = _sphere_radius(tips, tp[~in_lesion], porosity * tw[~in_lesion], rest, f"{cem.path}.volume_ml")
    for t in tips:
        plan.inclusions.append(Inclusion(f"cement{k}", tuple(t), (r,) * 3))
    info.update(filled_ml=cem.volume_ml, in_lesion_ml=lesion_volume / 1000.0, interdigitated_ml=rest / 1000.0, radius=r)
    return info
