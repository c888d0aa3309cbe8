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
import warnings
from pathlib import Path

import numpy as np

from fembone.cases import screws as screw_section
from fembone.cases.registry import BuildContext, Extension, register
from fembone.cases.vertebra_conforming import RegionPlan, plan_regions
from fembone.cases.vertebra_fractions import augment_screw, body_elements, mix_materials, paint_cement, paint_lesions
from fembone.cases.vertebra_risk import vertebra_risk
from fembone.cases.vertebra_setups import TOP, apply_setup
from fembone.cases.vertebra_spec import PresetLoad, VertebraSpec, is_vertebra, parse_preset_load, parse_vertebra
from fembone.core.errors import FemboneError, InputError
from fembone.core.materials import Isotropic
from fembone.core.mesh import Mesh, remove_elements
from fembone.spine.bone import DENSITY_LAWS, compacted_rim
from fembone.spine.screw_coupling import reapply_core_softening
from fembone.spine.screws import embed, screw_postprocessor

VOLUME_GROUPS = ("cortical_shell", "trabecular", "posterior_elements")
SURFACE_GROUPS = ("endplate_superior", "endplate_inferior", "posterior_wall")
SETUP_GROUPS = {"cap_superior": "pmma_cap", "cap_inferior": "pmma_cap",
                "disc_superior_annulus": "annulus", "disc_inferior_annulus": "annulus",
                "disc_superior_nucleus": "nucleus", "disc_inferior_nucleus": "nucleus"}


def cache_dir() -> Path:
    """Where generated meshes are kept: $FEMBONE_CACHE or ~/.cache/fembone."""
    return Path(os.environ.get("FEMBONE_CACHE", Path.home() / ".cache" / "fembone"))


def _require_groups(mesh: Mesh, path: str, posterior: bool = True) -> None:
    need = [g for g in VOLUME_GROUPS if posterior or g != "posterior_elements"]
    missing = [g for g in need if g not in mesh.cell_sets] + [g for g in SURFACE_GROUPS if g not in mesh.facet_sets]
    if missing:
        raise InputError(
            f"mesh {mesh.source} lacks the vertebra group(s) {', '.join(missing)} "
            "(generate one with 'fembone mesh vertebra' or 'fembone mesh surface')", path,
        )


def _generate(g, **options) -> Path:
    """The generated mesh for geometry ``g`` and generator ``options`` (cached by content)."""
    from fembone.spine.geometry import generate_vertebra, generator_fingerprint, vertebra_dims

    dims = vertebra_dims(g.level)
    key = hashlib.sha1(repr((g.level, g.mesh_size, g.order, g.shell_thickness, dims, sorted(options.items()),
                             generator_fingerprint())).encode()).hexdigest()[:10]
    out = cache_dir() / f"{g.level}_s{g.mesh_size:g}_o{g.order}_t{g.shell_thickness:g}_{key}.msh"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.msh")
        generate_vertebra(tmp, level=g.level, size=g.mesh_size, order=g.order, shell_thickness=g.shell_thickness, **options)
        os.replace(tmp, out)
    return out


class VertebraExtension(Extension):
    name = "vertebra"
    keys = ("vertebra", "lesions", "cement", "screws", "boundary")
    mesh_keys = ("vertebra",)
    load_keys = ("preset",)
    load_types = (PresetLoad,)

    def owns_materials(self, raw: dict) -> bool:
        return is_vertebra(raw)

    def claims(self, raw: dict) -> bool:
        if "segment" in raw:  # a segment case: fembone.cases.segment reads these keys
            return False
        return is_vertebra(raw) or any(k in raw for k in self.keys)

    def parse(self, raw: dict, source: str, base: Path) -> VertebraSpec:
        return parse_vertebra(raw, source, base, screw_section.parse_screws)

    def parse_load(self, entry: dict, path: str, spec: VertebraSpec | None) -> PresetLoad:
        return parse_preset_load(entry, path, spec)

    # -- building ---------------------------------------------------------------------------
    def mesh(self, spec: VertebraSpec, ctx: BuildContext) -> Mesh | None:
        g = spec.geometry
        if g is None:
            if any(c.technique == "kyphoplasty" for c in spec.cement):
                bad = next(c for c in spec.cement if c.technique == "kyphoplasty")
                raise InputError("kyphoplasty needs a generated vertebra (its cavity and rim are meshed)", f"{bad.path}.technique")
            return None
        ctx.meta["landmarks"] = spec.landmarks
        ctx.meta["vertebra"] = {"level": g.level, "mesh_size": g.mesh_size, "order": g.order,
                                "shell_thickness": g.shell_thickness, "posterior": g.posterior, "regions": g.regions}
        b = spec.boundary
        options: dict = {}
        if not g.posterior:
            options["posterior"] = False
        if b.setup == "in_vitro":
            options.update(setup="caps", cap_thickness=b.cap["thickness"])
        elif b.setup == "discs":
            options.update(setup="discs", disc_height=b.disc["height"], nucleus_area_fraction=b.disc["nucleus_fraction"])
        conforming = g.regions == "conforming" and (spec.lesions or spec.cement)
        if not conforming and any(c.technique == "kyphoplasty" for c in spec.cement):
            bad = next(c for c in spec.cement if c.technique == "kyphoplasty")
            raise InputError("kyphoplasty needs conforming regions (vertebra: {regions: conforming})", f"{bad.path}.technique")
        if not conforming:
            out = _generate(g, **options)
            ctx.meta["vertebra"]["mesh_file"] = str(out)
            return ctx.read_mesh(out)
        plain = ctx.read_mesh(_generate(g, **({"posterior": False} if not g.posterior else {})))
        plan = plan_regions(spec, plain, spec.material_info["porosity"])
        out = None
        try:
            out = _generate(g, inclusions=tuple(plan.inclusions), **options)
            mesh = ctx.read_mesh(out)
        except FemboneError as exc:
            # the plan placed every region inside the bone, so an inclusion the generator calls
            # misplaced (an OpenCASCADE boolean that failed) or a mesh with zero-volume slivers
            # (check_mesh, on reading it) is the generator's failure at a tangency, not bad input;
            # other input errors (e.g. a cap thinner than the endplate dishing) are the case's
            own = (isinstance(exc, InputError) and not (exc.where or "").startswith("inclusions.")
                   and (out is None or exc.where != str(out)))
            if own or any(c.technique == "kyphoplasty" for c in spec.cement):
                raise
            # a tangency gmsh cannot mesh: the same regions painted as volume fractions still answer
            warnings.warn(f"conforming regions could not be meshed ({exc}); lesions and cement are painted as "
                          "volume fractions on the plain mesh instead", stacklevel=2)
            ctx.meta["vertebra"]["regions"] = "fraction (conforming meshing failed)"
            out = _generate(g, **options)
            ctx.meta["vertebra"]["mesh_file"] = str(out)
            return ctx.read_mesh(out)
        ctx.meta["vertebra"]["mesh_file"] = str(out)
        ctx.plan = plan
        return _apply_plan(mesh, plan)

    def materials(self, spec: VertebraSpec, ctx: BuildContext):
        if not spec.materials:
            return None
        mesh = ctx.mesh
        _require_groups(mesh, "mesh", spec.geometry is None or spec.geometry.posterior)
        ctx.meta["materials"] = spec.material_info
        mats = dict(spec.materials)
        b = spec.boundary
        if b.setup == "in_vitro":
            mats["pmma_cap"] = Isotropic(name="pmma_cap", E=b.cap["E"], nu=b.cap["nu"])
        if b.setup == "discs":
            mats["annulus"] = Isotropic(name="annulus", **b.disc["annulus"])
            mats["nucleus"] = Isotropic(name="nucleus", **b.disc["nucleus"])
        plan: RegionPlan | None = getattr(ctx, "plan", None)
        rims = [c for c in spec.cement if c.technique == "kyphoplasty" and c.rim_thickness > 0]
        if rims:
            info = spec.material_info
            ci = plan.info["cement"][spec.cement.index(rims[0])]
            rho = compacted_rim(info["trabecular_density"], max(ci["cavity_radius"], ci["bolus_radius"]), rims[0].rim_thickness)
            law = info.get("density_law") or "morgan2003"
            mats["compacted_bone"] = Isotropic(name="compacted_bone", E=float(DENSITY_LAWS[law](rho)), nu=mats["trabecular"].nu
                                               if hasattr(mats["trabecular"], "nu") else 0.2)
            info["compacted_rim_density"] = float(rho)
        names = list(mats)
        mid = np.full(mesh.n_elements, -1)
        for grp in VOLUME_GROUPS + tuple(SETUP_GROUPS):
            if grp in mesh.cell_sets:
                mid[mesh.cell_sets[grp]] = names.index(SETUP_GROUPS.get(grp, grp))
        ctx.fractions = {}  # material name -> (ne,) volume fraction replacing the base material
        if plan is not None:
            for mat, ids in plan.element_materials.items():
                ctx.fractions[mat] = np.zeros(mesh.n_elements)
                ctx.fractions[mat][ids] = 1.0
        return mats, mid

    def build(self, spec: VertebraSpec, ctx: BuildContext) -> None:
        plan = getattr(ctx, "plan", None)
        if plan is None:
            if spec.has_lesions_key:
                paint_lesions(spec, ctx)
            if spec.has_cement_key:
                paint_cement(spec, ctx)
        else:
            ctx.meta["lesions"] = [{k: v for k, v in x.items() if k != "label"} for x in plan.info["lesions"]]
            ctx.meta["cement"] = plan.info["cement"]
            ctx.meta.setdefault("volumes", {})["body"] = plan.info["body_volume"]
        if spec.screws is not None:
            _screws(spec, ctx)
        if spec.materials:
            mix_materials(spec, ctx)
            reapply_core_softening(ctx.model)  # bone removed from screw cores (surface coupling)
            if plan is not None:  # the body (lesions and voids included) as meshed before the regions
                ctx.meta["volumes"]["body"] = plan.info["body_volume"]
                ctx.meta["volumes"]["lesion"] = float(sum(x["volume"] for x in plan.info["lesions"]))
            if not spec.own_constraints:
                apply_setup(spec, ctx)
            ctx.model.postprocessors.append(vertebra_risk)

    def load(self, spec: VertebraSpec, entry: PresetLoad, ctx: BuildContext) -> np.ndarray:
        model = ctx.model
        if TOP not in model.points:
            raise InputError("load presets need a vertebra model with its superior reference point", entry.path)
        f = np.zeros(model.n_dofs)
        dofs = model.layout.extra_dofs(model.points[TOP].index)[0]
        d = np.asarray(entry.direction)
        if entry.kind == "force" and entry.displacement is None:
            f[dofs[:3]] += entry.magnitude * d
        elif entry.kind == "moment":
            f[dofs[3:]] += entry.magnitude * d
            f[dofs[2]] -= entry.follower  # axial preload through the reference point
            if entry.follower > 0:
                ctx.meta.setdefault("_preload", {})[entry.loadcase] = entry.follower
        ctx.meta.setdefault("load_presets", {})[entry.loadcase] = {
            "preset": entry.preset, "kind": entry.kind, "magnitude": entry.magnitude,
            "follower": entry.follower, "direction": list(entry.direction), "displacement": entry.displacement,
        }
        return f

    def finish(self, spec: VertebraSpec, ctx: BuildContext) -> None:
        """A companion load case with each moment case's preload alone (for strength, preload held fixed)."""
        model = ctx.model
        companions = {}
        for lc, preload in ctx.meta.pop("_preload", {}).items():
            name = f"_{lc}_preload"
            f = np.zeros(model.n_dofs)
            f[model.layout.extra_dofs(model.points[TOP].index)[0][2]] = -preload
            model.loads[name] = f
            model.companions.add(name)
            companions[lc] = name
        model.meta["_preload_companions"] = companions


def _apply_plan(mesh: Mesh, plan: RegionPlan) -> Mesh:
    """Region groups -> element materials; void regions removed; regions join their host set."""
    region_groups = {n: frozenset(n.split("+")) for n in mesh.cell_sets if n not in VOLUME_GROUPS
                     and n not in SETUP_GROUPS}
    mats = {n: plan.material(labels) for n, labels in region_groups.items()}
    void = [mesh.cell_sets[n] for n, m in mats.items() if m == "void"]
    host = np.zeros(mesh.n_elements, bool)
    for n in region_groups:
        host[mesh.cell_sets[n]] = True
    mesh.cell_sets["trabecular"] = np.union1d(mesh.cell_sets["trabecular"], np.flatnonzero(host))
    if void:
        mesh = remove_elements(mesh, np.concatenate(void), hole="void_surface")
    plan.element_materials = {}
    for n, m in mats.items():
        if m in (None, "void") or n not in mesh.cell_sets:
            continue
        plan.element_materials.setdefault(m, []).append(mesh.cell_sets[n])
    plan.element_materials = {m: np.concatenate(v) for m, v in plan.element_materials.items()}
    return mesh


# -- screws ----------------------------------------------------------------------------------
def _screws(spec: VertebraSpec, ctx: BuildContext) -> None:
    """Embed the parsed screws (copies: a spec may be built more than once); augment with cement."""
    model = ctx.model
    sspec = spec.screws
    screws = [copy.deepcopy(s) for s in sspec.screws]
    for k, screw in enumerate(screws):
        embed(model, screw, interface_stiffness=sspec.interface.get(k), where=f"{sspec.path}[{k}]")
        if screw.augment_ml > 0:
            augment_screw(spec, ctx, screw, f"{sspec.path}[{k}].augment_ml")
    model.meta["_screws"] = screws
    model.meta["screws"] = [
        {"name": s.name, "entry": s.entry.tolist(), "tip": s.tip.tolist(), "length": s.length,
         "core_diameter": s.section.outer_diameter, "cannula_diameter": s.section.inner_diameter,
         "E": s.E, "yield_strength": s.yield_strength, "nodes": len(s.nodes), "augment_ml": s.augment_ml}
        for s in screws
    ]
    model.postprocessors.append(screw_postprocessor)


register(VertebraExtension())
