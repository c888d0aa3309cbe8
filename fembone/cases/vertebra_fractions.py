"""Lesions and cement as per-element volume fractions, and the mixing of every element's stiffness.

Used by imported meshes (which cannot be remeshed) and by ``vertebra: {regions: fraction}``;
conforming regions (:mod:`fembone.cases.vertebra_conforming`) set the same fractions to 0 or 1,
so one mixing step serves both.  Mixed elements get a Hill average of their materials
(:func:`fembone.spine.bone.hill_mix`); a void share keeps the solid part's stiffness (Voigt
with a void, :func:`fembone.spine.lesions.void_stiffness`).  Units: mm, mm^3, mL, MPa.
"""

from __future__ import annotations

import numpy as np

from fembone.cases.registry import BuildContext
from fembone.cases.vertebra_spec import LESION_MATERIAL, LOCATIONS, VertebraSpec
from fembone.core.errors import InputError
from fembone.core.mesh import Mesh
from fembone.spine.bone import hill_mix
from fembone.spine.lesions import void_stiffness
from fembone.spine.regions import ellipsoid, fill_cement, fraction_inside, sample_elements, solve_radius


def body_elements(mesh: Mesh) -> np.ndarray:
    return np.concatenate([mesh.cell_sets["cortical_shell"], mesh.cell_sets["trabecular"]])


# -- lesions and cement (volume fractions) ---------------------------------------------------
def paint_lesions(spec: VertebraSpec, ctx: BuildContext) -> None:
    mesh = ctx.mesh
    body = body_elements(mesh)
    trab = mesh.cell_sets["trabecular"]
    vol = np.abs(mesh.volumes())
    body_volume = float(vol[body].sum())
    centroid = (vol[body] @ mesh.centroids()[body]) / body_volume
    body_nodes = mesh.points[np.unique(mesh.cells[body])]
    lo, hi = body_nodes.min(axis=0), body_nodes.max(axis=0)
    info = []
    for les in spec.lesions:
        p = les.path
        host = body if les.breach else trab
        c = np.array(les.center) if les.center is not None else centroid + np.array(LOCATIONS[les.location]) * (hi - lo)
        if np.any(c < lo) or np.any(c > hi):
            raise InputError(f"lesion centre {np.round(c, 2).tolist()} lies outside the vertebral body", f"{p}.center")
        samples = sample_elements(mesh, host)
        axes = np.array(les.axes) if les.axes is not None else None
        if les.volume_fraction is not None:
            r = solve_radius(samples, c, les.volume_fraction * body_volume, where=f"{p}.volume_fraction")
            radii = np.array([r, r, r])
        else:
            radii = np.array(les.radii)
        frac_host = fraction_inside(samples, ellipsoid(c, radii, axes))
        lesion_volume = float((frac_host * vol[host]).sum())
        if lesion_volume <= 0:
            raise InputError(f"lesion at {np.round(c, 2).tolist()} lies outside the bone (no {'body' if les.breach else 'trabecular'} volume inside it)", p)
        full = np.zeros(mesh.n_elements)
        full[host] = frac_host
        name = LESION_MATERIAL.get(les.type, "void")
        ctx.fractions[name] = np.maximum(ctx.fractions.get(name, 0.0), full)
        info.append({"type": les.type, "center": c.tolist(), "radii": radii.tolist(), "volume": lesion_volume})
    ctx.meta["lesions"] = info
    ctx.meta.setdefault("volumes", {})["body"] = body_volume


def _lesion_remaining(ctx: BuildContext) -> np.ndarray:
    """Per-element lesion fraction not yet filled with bulk cement."""
    lesion = sum((ctx.fractions.get(n, 0.0) for n in (*LESION_MATERIAL.values(), "void")), np.zeros(ctx.mesh.n_elements))
    return np.clip(np.minimum(lesion, 1.0) - ctx.fractions.get("pmma", 0.0), 0, 1)


def _add_fill(ctx: BuildContext, fill) -> None:
    ctx.fractions["pmma"] = np.minimum(ctx.fractions.get("pmma", 0.0) + fill.pmma_fraction, 1.0)
    ctx.fractions["cement_bone"] = np.minimum(ctx.fractions.get("cement_bone", 0.0) + fill.composite_fraction, 1.0)


def paint_cement(spec: VertebraSpec, ctx: BuildContext) -> None:
    mesh = ctx.mesh
    trab = mesh.cell_sets["trabecular"]
    phi = spec.material_info["porosity"]
    body_nodes = mesh.points[np.unique(mesh.cells[body_elements(mesh)])]
    lo, hi = body_nodes.min(axis=0), body_nodes.max(axis=0)
    info = []
    for cem in spec.cement:
        p = cem.path
        if cem.ellipsoid is not None:  # explicit interdigitated region (lesion parts become bulk PMMA)
            s = sample_elements(mesh, trab)
            inside = fraction_inside(s, ellipsoid(*cem.ellipsoid))
            les = _lesion_remaining(ctx)[trab]
            comp, bulk = np.zeros(mesh.n_elements), np.zeros(mesh.n_elements)
            comp[trab], bulk[trab] = inside * (1 - les), inside * les
            ctx.fractions["pmma"] = np.minimum(ctx.fractions.get("pmma", 0.0) + bulk, 1.0)
            ctx.fractions["cement_bone"] = np.minimum(ctx.fractions.get("cement_bone", 0.0) + comp, 1.0)
            vol = np.abs(mesh.volumes())
            held = float((phi * comp + bulk) @ vol)
            info.append({"volume_ml": held / 1000.0, "access": "ellipsoid", "center": list(cem.ellipsoid[0]),
                         "radii": list(cem.ellipsoid[1]), "filled_ml": held / 1000.0})
            continue
        if cem.technique == "kyphoplasty":
            raise InputError("kyphoplasty needs conforming regions on a generated vertebra", f"{p}.technique")
        tips = np.array(cem.tips)
        for k, t in enumerate(tips):
            if np.any(t < lo) or np.any(t > hi):
                raise InputError(f"needle tip {np.round(t, 2).tolist()} lies outside the vertebral body", f"{p}.tips[{k}]" if cem.access == "tips" else f"{p}.access")
        # remaining capacity: lesion not yet filled, bone pores not yet filled
        fill = fill_cement(mesh, tips, cem.volume_ml * 1000.0, _lesion_remaining(ctx), trab, phi, where=f"{p}.volume_ml")
        _add_fill(ctx, fill)
        info.append({"volume_ml": cem.volume_ml, "access": cem.access, "tips": tips.tolist(), "filled_ml": fill.filled_volume / 1000.0,
                     "in_lesion_ml": fill.lesion_filled / 1000.0, "interdigitated_ml": fill.bone_filled / 1000.0})
    ctx.meta["cement"] = info


def augment_screw(spec: VertebraSpec, ctx: BuildContext, screw, path: str) -> None:
    """Cement around the distal third of a screw: interdigitated into bone nearest to that third."""
    if not spec.materials:
        raise InputError("cement augmentation needs a vertebra model (materials: {preset: ...})", path)
    mesh = ctx.mesh
    t = np.linspace(2.0 / 3.0, 1.0, 6)
    tips = screw.entry + t[:, None] * (screw.tip - screw.entry)
    fill = fill_cement(mesh, tips, screw.augment_ml * 1000.0, _lesion_remaining(ctx), mesh.cell_sets["trabecular"],
                       spec.material_info["porosity"], where=path)
    _add_fill(ctx, fill)
    ctx.meta.setdefault("cement", []).append({"volume_ml": screw.augment_ml, "access": f"screw {screw.name}",
                                              "filled_ml": fill.filled_volume / 1000.0})


# -- mixing -----------------------------------------------------------------------------------
def mix_materials(spec: VertebraSpec, ctx: BuildContext) -> None:
    model, mesh = ctx.model, ctx.mesh
    fr = ctx.fractions
    names = [m.name for m in model.materials]
    Cs = np.array([m.stiffness() for m in model.materials])
    ne = mesh.n_elements
    F = np.zeros((ne, len(names)))
    base = model.material_id
    # lesions replace the host; cement replaces lesion (bulk) and host (composite)
    lesion_total = np.zeros(ne)
    for lname in LESION_MATERIAL.values():
        if lname in fr:
            F[:, names.index(lname)] = fr[lname]
            lesion_total += fr[lname]
    for other in set(fr) - set(LESION_MATERIAL.values()) - {"pmma", "cement_bone", "void"}:  # e.g. compacted_bone
        F[:, names.index(other)] = fr[other]
        lesion_total += fr[other]  # replaces the host like a lesion does
    scale = np.where(lesion_total > 1, 1 / np.maximum(lesion_total, 1e-300), 1.0)
    F *= scale[:, None]
    lesion_total = np.minimum(lesion_total, 1.0)
    pm = fr.get("pmma", np.zeros(ne))
    cb = fr.get("cement_bone", np.zeros(ne))
    if pm.any():
        # bulk cement displaces lesion tissue proportionally
        keep = np.where(lesion_total > 0, np.clip(1 - pm / np.maximum(lesion_total, 1e-300), 0, 1), 1.0)
        for lname in LESION_MATERIAL.values():
            F[:, names.index(lname)] *= keep
        F[:, names.index("pmma")] = pm
    host = np.clip(1.0 - F.sum(axis=1) - cb, 0.0, 1.0)
    F[:, names.index("cement_bone")] = cb
    F[np.arange(ne), base] += host
    mixed = np.flatnonzero(F.max(axis=1) < 1 - 1e-12)
    base_C = getattr(ctx, "base_C", None)  # per-element host stiffness (CT mapping)
    if len(mixed):
        if base_C is None:
            model.C[mixed] = hill_mix(Cs, F[mixed])
        else:  # the host phase of each mixed element is its own mapped stiffness
            Ce = np.broadcast_to(Cs, (len(mixed),) + Cs.shape).copy()
            Ce[np.arange(len(mixed)), base[mixed]] = base_C[mixed]
            f = F[mixed] / F[mixed].sum(axis=1, keepdims=True)
            voigt = np.einsum("em,emij->eij", f, Ce)
            reuss = np.linalg.inv(np.einsum("em,emij->eij", f, np.linalg.inv(Ce)))
            model.C[mixed] = 0.5 * (voigt + reuss)
    pure = np.setdiff1d(np.arange(ne), mixed)
    top = F[pure].argmax(axis=1)
    model.C[pure] = Cs[top]
    if base_C is not None:
        host = pure[top == base[pure]]
        model.C[host] = base_C[host]
    model.material_id = F.argmax(axis=1)
    vol = np.abs(mesh.volumes())
    lesion_share = F[:, [names.index(n) for n in LESION_MATERIAL.values()]].sum(axis=1)
    cement_share = F[:, names.index("pmma")] + F[:, names.index("cement_bone")]
    model.cell_data["lesion_fraction"] = lesion_share
    model.cell_data["cement_fraction"] = cement_share
    body = body_elements(mesh)
    vols = ctx.meta.setdefault("volumes", {})
    vols["body"] = float(vol[body].sum())
    vols["lesion"] = float((lesion_share * vol).sum())
    vols["cement_filled"] = float((F[:, names.index("pmma")] * vol).sum() + spec.material_info["porosity"] * (F[:, names.index("cement_bone")] * vol).sum())
    share = {n: np.zeros(ne) for n in ("cortical_shell", "trabecular")}
    for n in share:
        share[n][body] = F[body, names.index(n)]
    void = np.clip(fr.get("void", np.zeros(ne)) - pm, 0.0, 1.0)  # a hole, less the cement that fills it
    if void.any():  # Voigt with a void phase: the solid part keeps its stiffness (fembone.spine.lesions)
        model.C = void_stiffness(model.C, void)
        for n in share:
            share[n] *= 1.0 - void
        model.cell_data["void_fraction"] = void
        vols["lesion"] += float((void * vol).sum())
    model.meta["_bone_share"] = share["cortical_shell"] + share["trabecular"]
    model.meta["_trabecular_share"] = share["trabecular"]
    model.meta["_cortical_share"] = share["cortical_shell"]
    model.meta["_cement_share"] = F[:, names.index("pmma")]
    model.meta["_interdigitated_share"] = F[:, names.index("cement_bone")]


