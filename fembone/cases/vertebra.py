"""The vertebra extension: builds generated or imported vertebra models from a parsed
:class:`~fembone.cases.vertebra_spec.VertebraSpec` (keys documented there).

Frame (generated vertebrae, and expected of imported ones): origin at the vertebral body
centroid, +x to the patient's right, +y anterior, +z cranial (RAS, as in 3D Slicer).
Moments follow the right-hand rule: flexion is a moment about -x (the superior endplate
tilts anteriorly), extension about +x, right lateral bending about +y, axial rotation
(counter-clockwise seen from above) about +z.  Mesh groups needed: ``cortical_shell``,
``trabecular``, ``posterior_elements`` (element sets), ``endplate_superior``,
``endplate_inferior``, ``posterior_wall`` (facet sets).  Units: mm, N, MPa, N mm.
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path

import numpy as np

from fembone.cases import screws as screw_section
from fembone.cases.registry import BuildContext, Extension, register
from fembone.cases.vertebra_spec import (
    LESION_MATERIAL, LOCATIONS, PresetLoad, VertebraSpec, is_vertebra, parse_preset_load, parse_vertebra,
)
from fembone.core.errors import InputError
from fembone.core.loads import traction_load
from fembone.core.mesh import Mesh
from fembone.core.model import ReferencePoint
from fembone.core.selectors import orient_faces
from fembone.spine import risk
from fembone.spine.bone import hill_mix
from fembone.spine.boundary import potting_foundation
from fembone.spine.regions import ellipsoid, fill_cement, fraction_inside, sample_elements, solve_radius
from fembone.spine.screws import embed, screw_postprocessor

VOLUME_GROUPS = ("cortical_shell", "trabecular", "posterior_elements")
SURFACE_GROUPS = ("endplate_superior", "endplate_inferior", "posterior_wall")
TOP = "superior"  # name of the reference point coupled to the superior endplate


def cache_dir() -> Path:
    """Where generated meshes are kept: $FEMBONE_CACHE or ~/.cache/fembone."""
    return Path(os.environ.get("FEMBONE_CACHE", Path.home() / ".cache" / "fembone"))


def _generator_version() -> str:
    """Changes whenever the generator's source changes, so stale cached meshes are not reused."""
    from fembone.spine.geometry import vertebra

    return hashlib.sha1(Path(vertebra.__file__).read_bytes()).hexdigest()[:12]


def _require_groups(mesh: Mesh, path: str) -> None:
    missing = [g for g in VOLUME_GROUPS if g not in mesh.cell_sets] + [g for g in SURFACE_GROUPS if g not in mesh.facet_sets]
    if missing:
        raise InputError(
            f"mesh {mesh.source} lacks the vertebra group(s) {', '.join(missing)} "
            "(generate one with 'fembone mesh vertebra' or 'fembone mesh surface')", path,
        )


def _body_elements(mesh: Mesh) -> np.ndarray:
    return np.concatenate([mesh.cell_sets["cortical_shell"], mesh.cell_sets["trabecular"]])


class VertebraExtension(Extension):
    name = "vertebra"
    keys = ("vertebra", "lesions", "cement", "screws", "boundary")
    mesh_keys = ("vertebra",)
    load_keys = ("preset",)
    load_types = (PresetLoad,)
    def owns_materials(self, raw: dict) -> bool:
        return is_vertebra(raw)

    def claims(self, raw: dict) -> bool:
        return is_vertebra(raw) or any(k in raw for k in self.keys)

    def parse(self, raw: dict, source: str, base: Path) -> VertebraSpec:
        return parse_vertebra(raw, source, base, screw_section.parse_screws)

    def parse_load(self, entry: dict, path: str, spec: VertebraSpec | None) -> PresetLoad:
        return parse_preset_load(entry, path, spec)

    # -- building ---------------------------------------------------------------------------
    def mesh(self, spec: VertebraSpec, ctx: BuildContext) -> Mesh | None:
        g = spec.geometry
        if g is None:
            return None
        from fembone.spine.geometry import generate_vertebra, vertebra_dims

        dims = vertebra_dims(g.level)
        key = hashlib.sha1(repr((g.level, g.mesh_size, g.order, g.shell_thickness, dims, _generator_version())).encode()).hexdigest()[:10]
        out = cache_dir() / f"{g.level}_s{g.mesh_size:g}_o{g.order}_t{g.shell_thickness:g}_{key}.msh"
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(f".{os.getpid()}.msh")
            generate_vertebra(tmp, level=g.level, size=g.mesh_size, order=g.order, shell_thickness=g.shell_thickness)
            os.replace(tmp, out)
        ctx.meta["landmarks"] = spec.landmarks
        ctx.meta["vertebra"] = {"level": g.level, "mesh_size": g.mesh_size, "order": g.order,
                                "shell_thickness": g.shell_thickness, "mesh_file": str(out)}
        return ctx.read_mesh(out)

    def materials(self, spec: VertebraSpec, ctx: BuildContext):
        if not spec.materials:
            return None
        mesh = ctx.mesh
        _require_groups(mesh, "mesh")
        ctx.meta["materials"] = spec.material_info
        names = list(spec.materials)
        mid = np.full(mesh.n_elements, -1)
        for g in VOLUME_GROUPS:
            mid[mesh.cell_sets[g]] = names.index(g)
        ctx.fractions = {}  # material name -> (ne,) volume fraction replacing the base material
        return dict(spec.materials), mid

    def build(self, spec: VertebraSpec, ctx: BuildContext) -> None:
        if spec.has_lesions_key:
            _lesions(spec, ctx)
        if spec.has_cement_key:
            _cement(spec, ctx)
        if spec.screws is not None:
            _screws(spec, ctx)
        if spec.materials:
            _finish(spec, ctx)

    def load(self, spec: VertebraSpec, entry: PresetLoad, ctx: BuildContext) -> np.ndarray:
        model = ctx.model
        if TOP not in model.points:
            raise InputError("load presets need a vertebra model with its superior-endplate reference point", entry.path)
        f = np.zeros(model.n_dofs)
        dofs = model.layout.extra_dofs(model.points[TOP].index)[0]
        d = np.asarray(entry.direction)
        if entry.kind == "force":
            f[dofs[:3]] += entry.magnitude * d
        else:
            f[dofs[3:]] += entry.magnitude * d
            f[dofs[2]] -= entry.follower  # follower preload along the (undeformed) cranio-caudal axis
        ctx.meta.setdefault("load_presets", {})[entry.loadcase] = {
            "preset": entry.preset, "kind": entry.kind, "magnitude": entry.magnitude,
            "follower": entry.follower, "direction": list(entry.direction),
        }
        return f


# -- lesions and cement (volume fractions) ---------------------------------------------------
def _lesions(spec: VertebraSpec, ctx: BuildContext) -> None:
    mesh = ctx.mesh
    body = _body_elements(mesh)
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
        name = LESION_MATERIAL[les.type]
        ctx.fractions[name] = np.maximum(ctx.fractions.get(name, 0.0), full)
        info.append({"type": les.type, "center": c.tolist(), "radii": radii.tolist(), "volume": lesion_volume})
    ctx.meta["lesions"] = info
    ctx.meta.setdefault("volumes", {})["body"] = body_volume


def _lesion_remaining(ctx: BuildContext) -> np.ndarray:
    """Per-element lesion fraction not yet filled with bulk cement."""
    lesion = sum((ctx.fractions.get(n, 0.0) for n in LESION_MATERIAL.values()), np.zeros(ctx.mesh.n_elements))
    return np.clip(np.minimum(lesion, 1.0) - ctx.fractions.get("pmma", 0.0), 0, 1)


def _add_fill(ctx: BuildContext, fill) -> None:
    ctx.fractions["pmma"] = np.minimum(ctx.fractions.get("pmma", 0.0) + fill.pmma_fraction, 1.0)
    ctx.fractions["cement_bone"] = np.minimum(ctx.fractions.get("cement_bone", 0.0) + fill.composite_fraction, 1.0)


def _cement(spec: VertebraSpec, ctx: BuildContext) -> None:
    mesh = ctx.mesh
    trab = mesh.cell_sets["trabecular"]
    phi = spec.material_info["porosity"]
    body_nodes = mesh.points[np.unique(mesh.cells[_body_elements(mesh)])]
    lo, hi = body_nodes.min(axis=0), body_nodes.max(axis=0)
    info = []
    for cem in spec.cement:
        p = cem.path
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


# -- screws ----------------------------------------------------------------------------------
def _screws(spec: VertebraSpec, ctx: BuildContext) -> None:
    """Embed the parsed screws (copies: a spec may be built more than once); augment with cement."""
    model = ctx.model
    sspec = spec.screws
    screws = [copy.deepcopy(s) for s in sspec.screws]
    for k, screw in enumerate(screws):
        embed(model, screw, interface_stiffness=sspec.interface.get(k), where=f"{sspec.path}[{k}]")
        if screw.augment_ml > 0:
            _augment(spec, ctx, screw, f"{sspec.path}[{k}].augment_ml")
    model.meta["_screws"] = screws
    model.meta["screws"] = [
        {"name": s.name, "entry": s.entry.tolist(), "tip": s.tip.tolist(), "length": s.length,
         "core_diameter": s.section.outer_diameter, "cannula_diameter": s.section.inner_diameter,
         "E": s.E, "yield_strength": s.yield_strength, "nodes": len(s.nodes), "augment_ml": s.augment_ml}
        for s in screws
    ]
    model.postprocessors.append(screw_postprocessor)


def _augment(spec: VertebraSpec, ctx: BuildContext, screw, path: str) -> None:
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


# -- mixing, supports, risk -------------------------------------------------------------------
def _finish(spec: VertebraSpec, ctx: BuildContext) -> None:
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
    if len(mixed):
        model.C[mixed] = hill_mix(Cs, F[mixed])
    pure = np.setdiff1d(np.arange(ne), mixed)
    model.C[pure] = Cs[F[pure].argmax(axis=1)]
    model.material_id = F.argmax(axis=1)
    vol = np.abs(mesh.volumes())
    lesion_share = F[:, [names.index(n) for n in LESION_MATERIAL.values()]].sum(axis=1)
    cement_share = F[:, names.index("pmma")] + F[:, names.index("cement_bone")]
    model.cell_data["lesion_fraction"] = lesion_share
    model.cell_data["cement_fraction"] = cement_share
    body = _body_elements(mesh)
    vols = ctx.meta.setdefault("volumes", {})
    vols["body"] = float(vol[body].sum())
    vols["lesion"] = float((lesion_share * vol).sum())
    vols["cement_filled"] = float((F[:, names.index("pmma")] * vol).sum() + spec.material_info["porosity"] * (F[:, names.index("cement_bone")] * vol).sum())
    bone_share = np.zeros(ne)
    bone_share[body] = F[body][:, [names.index("cortical_shell"), names.index("trabecular")]].sum(axis=1)
    model.meta["_bone_share"] = bone_share
    model.meta["_cement_share"] = F[:, names.index("pmma")]
    if not spec.own_constraints:
        _supports(spec, ctx)
    model.postprocessors.append(_risk)


def _supports(spec: VertebraSpec, ctx: BuildContext) -> None:
    """Inferior endplate fixed (or on a potting layer); superior endplate coupled to 'superior'."""
    model, mesh = ctx.model, ctx.mesh
    b = spec.boundary
    ctx.meta["boundary"] = {"inferior": b.inferior, "coupling": b.coupling, **({"potting": b.potting} if b.potting else {})}
    inf = np.unique(mesh.facet_sets["endplate_inferior"])
    inf_dofs = (3 * inf[:, None] + np.arange(3)).ravel()
    if b.inferior == "potting":
        p = b.potting
        Kf = potting_foundation(mesh, mesh.facet_sets["endplate_inferior"], p["E"], p["nu"], p["thickness"], model.n_dofs)
        model.meta.setdefault("_extra_stiffness", []).append(Kf)
        model.meta["_foundation"] = Kf
        model.meta["_grounded"] = inf_dofs
    else:
        model.constraints.fix(inf_dofs, label="inferior endplate (fixed)")
    faces, _ = orient_faces(mesh, mesh.facet_sets["endplate_superior"])
    w = traction_load(mesh.points, faces, np.array([1.0, 0.0, 0.0]), mesh.n_nodes)[:, 0]
    nodes = np.unique(faces)
    at = (w[nodes] @ mesh.points[nodes]) / w[nodes].sum()
    j = int(model.layout.add_extra(at)[0])
    if b.coupling == "rigid":
        model.constraints.rigid_coupling(nodes, j, mesh.points, label="superior endplate (rigid coupling)")
    else:
        wn = np.maximum(w[nodes], 1e-3 * w[nodes].max())
        model.constraints.distributing_coupling(nodes, wn, j, mesh.points, label="superior endplate (distributing coupling)")
    model.points[TOP] = ReferencePoint(TOP, j, at, b.coupling, nodes)


def _risk(model, geom, res) -> dict:
    mesh = model.mesh
    out: dict = {}
    pre = model.meta.get("load_presets", {}).get(res.name)
    top = res.points.get(TOP)
    if pre and top is not None:
        if pre["kind"] == "force":
            uz = abs(top[2])
            out["axial_stiffness"] = pre["magnitude"] / uz if uz > 0 else None
            out["applied_load"] = pre["magnitude"]
            out["load_unit"] = "N"
        else:
            d = np.asarray(pre["direction"])
            th = abs(float(np.asarray(top[3:]) @ d))
            out["rotational_stiffness"] = pre["magnitude"] / th if th > 0 else None
            out["applied_load"] = pre["magnitude"]
            out["load_unit"] = "N mm"
    wall = orient_faces(mesh, mesh.facet_sets["posterior_wall"])[0]
    out["posterior_wall_bulge"] = risk.bulge(res.fields.displacement, mesh.points, wall)
    bm = risk.bone_metrics(res.fields.strain_q, geom.wdet.T, model.meta["_bone_share"])
    out["failed_volume_fraction"] = bm["failed_volume_fraction"]
    lam = bm["strength_multiplier"]
    if "applied_load" in out and np.isfinite(lam):
        out["strength_estimate"] = lam * out["applied_load"]
        out["factor_of_risk"] = 1.0 / lam
    out.update(risk.cement_metrics(res.fields.stress, model.meta["_cement_share"]))
    return {"risk": out}


register(VertebraExtension())
