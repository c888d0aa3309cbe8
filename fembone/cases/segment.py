"""The segment extension: spinal segments of generated vertebrae, discs, facets, screws and rods.

Keys::

    segment:
      levels: [T12, L1, L2]          # or "T12-L2"; cranial to caudal, adjacent
      mesh_size: 2.0
      order: 2
      facets: true                   # or {model: spring | contact, gap: 0.5 (contact), normal_stiffness: 600,
                                     #     shear_stiffness: 6, angle_deg: 30}
      disc: {height: 10, nucleus_fraction: 0.43, annulus: {E: 4.2, nu: 0.45}, nucleus: {E: 1.0, nu: 0.499},
             fibres: true}           # or false (isotropic annulus), or {angle_deg: 30, E: 450, volume_fraction: 0.16}:
                                     # tension-only collagen families (fembone.spine.annulus)
      ligaments: false               # or true, or {names: [ALL, PLL, LF, ISL, SSL], scale: 1.0}: tension-only springs
      index: L1                      # the level whose body load sharing is reported (default: the middle one)
      vertebrae: {L1: {ct: {...}}}   # levels from CT or {surface: {file: ..., units: m}} (fembone.cases.segment_spec)
    materials: {preset: normal}
    lesions: [{level: L1, type: lytic, volume_fraction: 0.3}]        # painted as volume fractions
    cement:  [{level: L1, volume_ml: 4.0, access: bipedicular}]
    screws:  [{placement: bilateral_transpedicular, levels: [T12, L2], diameter: 6.5, head_height: 10}]
    rods:    {diameter: 5.5, material: titanium, prebend: {radius: 300}}  # joins the screw heads on each side
    loadcases:
      flexion: [{preset: flexion, moment: 7500, follower: 400}]

Model (:mod:`fembone.spine.segment`, :mod:`fembone.spine.segment_mechanics`): the bottom
vertebra's inferior half disc is fixed on its flat face; the top vertebra's superior half
disc carries a rigid plate, reference point ``superior``, where the presets act (moments
about its centre; ``follower``/``preload``: an axial force through the plate centre, which
lies on the path through the disc centres: with the vertebrae stacked straight and small
displacements, a follower load along that path is exactly this force).  Screws: the pedicle
screws of each named level, their heads ``head_height`` mm behind the lamina (the tulip,
protruding), coupled to the bone over their surface.  Rods: titanium beams through the heads
of each side, the heads shared (rigid joints).  Outputs per load case: ``segment``
(rotations, ``range_of_motion_deg`` per level pair about the moment axis, facet forces,
``ligament_forces`` per pair and ligament when ``ligaments`` is on),
``load_sharing`` (axial force across the index body's mid-plane: body, posterior elements,
implants), ``screws`` and ``rods`` (peak von Mises against yield).  Units: mm, N, MPa, N mm.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from fembone.cases.registry import BuildContext, Extension, register
from fembone.cases.segment_spec import (  # noqa: F401  (re-exported: the spec types lived here)
    HEAD_HEIGHT,
    RodSpec,
    SegmentSpec,
    _parse_rods,
    _parse_screws,
    parse_segment,
)
from fembone.cases.vertebra_spec import PresetLoad, VertebraSpec, parse_preset_load
from fembone.core.beam import BeamSection
from fembone.core.errors import InputError
from fembone.core.materials import Isotropic
from fembone.core.mesh import Mesh
from fembone.core.model import ReferencePoint
from fembone.core.selectors import orient_faces
from fembone.core.unilateral import merge
from fembone.spine.annulus import annulus_fibre_set
from fembone.spine.geometry.vertebra_dims import vertebra_landmarks
from fembone.spine.ligaments import add_ligaments, ligament_forces
from fembone.spine.screw_coupling import reapply_core_softening
from fembone.spine.screws import Screw, embed, screw_results
from fembone.spine.segment import build_segment, tie_discs
from fembone.spine.segment_import import build_imported, facet_view
from fembone.spine.segment_mechanics import (
    Rod,
    add_facets,
    add_rod,
    add_rod_preloads,
    beam_plane_force,
    chain_results,
    facet_forces,
    prebend_curvature,
    range_of_motion,
    rod_preload,
    solid_plane_force,
)

TOP = "superior"
#: the load case added when a rod is prebent: its preload alone (the installed state)
PRELOAD_CASE = "rod_preload"
VOLUME_GROUPS = ("cortical_shell", "trabecular", "posterior_elements")
DISC_GROUPS = {"disc_superior_annulus": "annulus", "disc_inferior_annulus": "annulus",
               "disc_superior_nucleus": "nucleus", "disc_inferior_nucleus": "nucleus"}


# ------------------------------------------------------------------------------- building
#: DOFs up to which ``solver: auto`` factorises a segment whatever its load-case count: on a
#: 292k-DOF tet10 T12-L2 one load case took AMG-CG 248 iterations and 114 s against PARDISO's
#: 29 s (nearly incompressible nucleus, disc ties), and PARDISO solved all five load cases of a
#: 0.92M-DOF segment in 615 s and 11.8 GiB (benchmarks/README.md, issue 12); the factor's
#: memory (~n^1.3) reaches ~16 GiB near 1.2M DOFs.
SEGMENT_DIRECT_LIMIT = 1_200_000
#: DOFs from which ``solver: auto`` takes the two-level p-multigrid CG (``pmg``) for a tet10
#: segment instead: on par with PARDISO at 292k (30 against 35 s for five load cases), 1.9x
#: faster and 4 GiB leaner at 0.92M (327 s / 7.6 GiB against 615 s / 11.8 GiB; the coarse
#: tet4 space is factorised by PARDISO, so both need MKL).  Set between the two measurements.
SEGMENT_PMG_FROM = 500_000


def segment_solver(n_dofs: int, order: int, pardiso: bool) -> str | None:
    """What ``solver: auto`` becomes for a segment (None: the engine's own rule): ``pmg`` for
    tet10 from :data:`SEGMENT_PMG_FROM` DOFs, else ``pardiso`` up to :data:`SEGMENT_DIRECT_LIMIT`,
    both only where MKL PARDISO is installed."""
    if not pardiso:
        return None
    if order == 2 and n_dofs >= SEGMENT_PMG_FROM:
        return "pmg"
    return "pardiso" if n_dofs <= SEGMENT_DIRECT_LIMIT else None


class SegmentExtension(Extension):
    name = "segment"
    keys = ("segment", "rods")
    mesh_keys = ("segment",)
    load_keys = ("preset",)
    load_types = (PresetLoad,)

    def claims(self, raw: dict) -> bool:
        if "rods" in raw and "segment" not in raw:
            raise InputError("rods join screws across levels: they need a segment (segment: {levels: [...]})", "rods")
        return "segment" in raw

    def owns_materials(self, raw: dict) -> bool:
        return "segment" in raw

    def parse(self, raw: dict, source: str, base: Path) -> SegmentSpec:
        return parse_segment(raw, source, base)

    def parse_load(self, entry: dict, path: str, spec: SegmentSpec | None) -> PresetLoad:
        load = parse_preset_load(entry, path, spec)
        if load.displacement is not None:
            raise InputError("a segment is loaded by forces and moments on its top plate, not by a displacement", f"{path}.displacement")
        return load

    def mesh(self, spec: SegmentSpec, ctx: BuildContext) -> Mesh:
        imported = {lv: build_imported(imp, spec.geometry, spec.base, spec.disc["annulus"]) for lv, imp in spec.imported.items()}
        seg = build_segment(spec.geometry, ctx.read_mesh, imported=imported)
        mesh = seg.mesh
        for grp in VOLUME_GROUPS:  # unions over the levels (the vertebra machinery reads them)
            mesh.cell_sets[grp] = np.concatenate([seg.set(lv, grp) for lv in seg.levels])
        ctx.segment = seg
        ctx.segment_imported = imported
        g = spec.geometry
        ctx.meta["segment"] = {"levels": list(g.levels), "mesh_size": g.mesh_size, "order": g.order, "disc_height": g.disc_height,
                               "index": spec.index, "offsets": seg.offset}
        if imported:
            ctx.meta["segment"]["imported"] = {lv: _jsonable(imp.info) for lv, imp in imported.items()}
        return mesh

    def materials(self, spec: SegmentSpec, ctx: BuildContext):
        seg = ctx.segment
        mats = dict(spec.materials)
        mats["annulus"] = Isotropic(name="annulus", **spec.disc["annulus"])
        mats["nucleus"] = Isotropic(name="nucleus", **spec.disc["nucleus"])
        names = list(mats)
        mid = np.full(ctx.mesh.n_elements, -1)
        for lv in seg.levels:
            for grp in VOLUME_GROUPS + tuple(DISC_GROUPS):
                mid[seg.set(lv, grp)] = names.index(DISC_GROUPS.get(grp, grp))
        ctx.meta["materials"] = spec.material_info
        return mats, mid

    def build(self, spec: SegmentSpec, ctx: BuildContext) -> None:
        model, seg = ctx.model, ctx.segment
        _imported_stiffness(ctx)
        if spec.lesions or spec.cement:
            _paint(spec, ctx)
        screws = _screws(spec, ctx)
        rods = _rods(spec, ctx, screws)
        ctx.meta["segment"]["discs"] = tie_discs(model.constraints, seg)
        if spec.facets is not None:
            ctx.meta["segment"]["facets"] = add_facets(model, facet_view(seg, set(seg.imported)), spec.facets)
        if spec.fibres is not None:  # tension-only annulus collagen: unilateral elements with the facet contact
            fset, ctx.meta["segment"]["annulus_fibres"] = annulus_fibre_set(model, seg, spec.fibres)
            model.meta["_unilateral"] = merge(model.meta["_unilateral"], fset) if "_unilateral" in model.meta else fset
        if spec.ligaments is not None:  # tension-only ligament springs (fembone.spine.ligaments), opt-in
            lset, ctx.meta["segment"]["ligaments"] = add_ligaments(model, seg, spec.ligaments, spec.geometry.mesh_size)
            model.meta["_unilateral"] = merge(model.meta["_unilateral"], lset) if "_unilateral" in model.meta else lset
        bottom = np.unique(ctx.mesh.facet_sets[f"{seg.levels[-1]}.disc_inferior_face"])
        model.constraints.fix((3 * bottom[:, None] + np.arange(3)).ravel(), label=f"segment: {seg.levels[-1]} inferior disc face (fixed)")
        faces, _ = orient_faces(ctx.mesh, ctx.mesh.facet_sets[f"{seg.levels[0]}.disc_superior_face"])
        nodes = np.unique(faces)
        at = ctx.mesh.points[nodes].mean(axis=0)
        j = int(model.layout.add_extra(at)[0])
        model.constraints.rigid_coupling(nodes, j, ctx.mesh.points, label=f"segment: {seg.levels[0]} superior disc face (plate)")
        model.points[TOP] = ReferencePoint(TOP, j, at, "rigid", nodes)
        model.meta["_segment"] = seg
        model.meta["_segment_index"] = spec.index
        model.meta["_screws"] = screws
        model.meta["_rods"] = rods
        model.postprocessors.append(segment_postprocessor)

    def finish(self, spec: SegmentSpec, ctx: BuildContext) -> None:
        """``solver: auto`` on a segment: :func:`segment_solver`."""
        from fembone.core.solvers import Pardiso

        model = ctx.model
        _prebend_preload(model)
        choice = segment_solver(model.n_dofs, model.mesh.order, Pardiso.available()) if model.solver in (None, "auto") else None
        if choice == "pardiso":
            model.solver = "pardiso"
            ctx.meta["segment"]["solver_rule"] = (
                f"pardiso: segments are factorised up to {SEGMENT_DIRECT_LIMIT:,} DOFs (AMG-CG converges slowly "
                "with the nearly incompressible nucleus and the disc ties)")
        elif choice == "pmg":
            model.solver = "pmg"
            ctx.meta["segment"]["solver_rule"] = (
                f"pmg: tet10 segments from {SEGMENT_PMG_FROM:,} DOFs take p-multigrid CG (tet4 coarse space, "
                "PARDISO coarse factor): faster and leaner than factorising the whole segment")
        if model.solver == "pmg":  # p-multigrid needs the tet10 cells for its coarse space
            from fembone.core.solvers_pmg import coarse_options

            model.solver_options.update(coarse_options(model.mesh.cells, model.mesh.n_nodes, model.C))

    def load(self, spec: SegmentSpec, entry: PresetLoad, ctx: BuildContext) -> np.ndarray:
        model = ctx.model
        f = np.zeros(model.n_dofs)
        dofs = model.layout.extra_dofs(model.points[TOP].index)[0]
        d = np.asarray(entry.direction)
        if entry.kind == "force":
            f[dofs[:3]] += entry.magnitude * d
        else:
            f[dofs[3:]] += entry.magnitude * d
            f[dofs[2]] -= entry.follower
        ctx.meta.setdefault("load_presets", {})[entry.loadcase] = {
            "preset": entry.preset, "kind": entry.kind, "magnitude": entry.magnitude, "follower": entry.follower,
            "direction": list(entry.direction)}
        return f


def _imported_stiffness(ctx: BuildContext) -> None:
    """CT levels: their bone elements take the mapped stiffness (the CT case's), kept through any
    later mixing (``ctx.base_C``); CT fields go to the VTU (0 on other levels)."""
    imported = getattr(ctx, "segment_imported", {})
    cts = {lv: imp for lv, imp in imported.items() if imp.C is not None}
    if not cts:
        return
    model, seg = ctx.model, ctx.segment
    fields: dict[str, np.ndarray] = {}
    for lv, imp in cts.items():
        els = seg.elements[lv]
        model.C[els[imp.mapped]] = imp.C[imp.mapped]
        for k, v in imp.cell_data.items():
            fields.setdefault(k, np.zeros(ctx.mesh.n_elements))[els] = v
    model.cell_data.update(fields)
    ctx.base_C = model.C.copy()


def _jsonable(d):
    if isinstance(d, dict):
        return {str(k): _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, np.ndarray):
        return d.tolist()
    if isinstance(d, np.generic):
        return d.item()
    return d


def _paint(spec: SegmentSpec, ctx: BuildContext) -> None:
    """Lesions and cement painted as volume fractions on each level's own mesh (vertebra frame), then mixed."""
    from fembone.cases.vertebra_fractions import (
        mix_materials,
        paint_cement,
        paint_lesions,
    )

    seg = ctx.segment
    ctx.fractions = {}
    info: dict = {}
    for lv in seg.levels:
        les = [x for lv2, x in spec.lesions if lv2 == lv]
        cem = [x for lv2, x in spec.cement if lv2 == lv]
        if not les and not cem:
            continue
        els = seg.elements[lv]
        local = Mesh(seg.mesh.points[seg.nodes[lv]] - [0.0, 0.0, seg.offset[lv]], seg.mesh.cells[els] - seg.nodes[lv][0],
                     {g: seg.set(lv, g) - els[0] for g in VOLUME_GROUPS})
        sub = SimpleNamespace(mesh=local, fractions={}, meta={})
        vspec = VertebraSpec(None, spec.materials, spec.material_info, vertebra_landmarks(seg.dims[lv]), les, cem)
        if les:
            paint_lesions(vspec, sub)
        if cem:
            paint_cement(vspec, sub)
        for name, fr in sub.fractions.items():
            full = ctx.fractions.setdefault(name, np.zeros(ctx.mesh.n_elements))
            full[els] = np.maximum(full[els], fr)
        for key in ("lesions", "cement"):
            info.setdefault(key, []).extend({"level": lv, **x} for x in sub.meta.get(key, []))
    mix_materials(VertebraSpec(None, spec.materials, spec.material_info, None), ctx)
    reapply_core_softening(ctx.model)
    ctx.meta.update(info)
    vol = np.abs(ctx.mesh.volumes())
    ctx.meta["volumes"]["body"] = float(vol[seg.body(spec.index)].sum())  # the index vertebra's body (mix summed all)
    ctx.meta["volumes"]["body_level"] = spec.index


def _screws(spec: SegmentSpec, ctx: BuildContext) -> list[Screw]:
    model, seg = ctx.model, ctx.segment
    out = []
    for k, (s0, lv, side) in enumerate(spec.screws):
        s = copy.deepcopy(s0)
        if lv is not None and side is not None:  # placement: landmarks of the level, moved into the segment frame
            dz = np.array([0.0, 0.0, seg.offset[lv]])
            s.entry, s.tip = s.entry + dz, s.tip + dz
        s.level, s.side = lv, side
        embed(model, s, h=spec.geometry.mesh_size, interface_stiffness=spec.interface.get(k), where=f"screws[{k}] ({s.name})")
        out.append(s)
    if out:
        model.meta["screws"] = [{"name": s.name, "level": s.level, "entry": s.entry.tolist(), "tip": s.tip.tolist(), "length": s.length,
                                 "core_diameter": s.section.outer_diameter, "coupling": s.coupling} for s in out]
    return out


def _rods(spec: SegmentSpec, ctx: BuildContext, screws: list[Screw]) -> list[Rod]:
    r = spec.rods
    if r is None:
        return []
    model, seg = ctx.model, ctx.segment
    rods = []
    for side in r.sides:
        mine = [s for s in screws if s.side == side and (r.levels is None or s.level in r.levels)]
        mine.sort(key=lambda s: seg.levels.index(s.level))
        heads = [int(s.nodes[0]) for s in mine]
        rod = Rod(f"rod_{side}", heads, BeamSection(r.diameter), r.material["E"], r.material["nu"], r.material["yield"],
                  prebend=prebend_curvature(r.prebend, model.layout.extra_points[heads]))
        add_rod(model, rod, spec.geometry.mesh_size)
        rods.append(rod)
    model.meta["rods"] = [{"name": x.name, "levels": [s.level for s in screws if s.side == x.name[4:]], "diameter": r.diameter,
                           "material": r.material_name, "E": x.E, "yield_strength": x.yield_strength,
                           "prebend": {**r.prebend, "curvature_per_mm": x.prebend}} for x in rods]
    return rods


def _prebend_preload(model) -> None:
    """A prebent rod preloads the segment once it is fixed to the heads: its self-equilibrated
    loads join every load case (stresses, facet and load-sharing forces include the installed
    state) and form a load case of their own, :data:`PRELOAD_CASE`, from which ranges of motion
    are measured (an in-vitro test zeroes its rotations on the instrumented specimen)."""
    rods = model.meta.get("_rods", [])
    if not any(r.preload is not None for r in rods):
        return
    add_rod_preloads(model, rods)
    model.loads[PRELOAD_CASE] = rod_preload(rods, model.layout.n_dofs)


def segment_postprocessor(model, geom, res) -> dict:
    """Range of motion, facet forces, load sharing across the index body's mid-plane, screw and rod stresses."""
    seg = model.meta["_segment"]
    u = res.u
    preset = model.meta.get("load_presets", {}).get(res.name, {})
    axis = np.asarray(preset["direction"]) if preset.get("kind") == "moment" else None
    pre = res.solutions.get(PRELOAD_CASE) if res.name != PRELOAD_CASE else None
    rom = range_of_motion(model, seg, u if pre is None else u - pre, axis)  # from the installed state
    out = {"segment": {**rom, "facet_forces": facet_forces(model, u)}}
    if model.meta.get("_ligaments"):
        out["segment"]["ligament_forces"] = ligament_forces(model, u)
    ci = model.meta["_unilateral"].info if "_unilateral" in model.meta else {}
    if any(f["model"] == "contact" for f in model.meta.get("_facets", [])):  # this load case's own active set
        out["segment"]["facet_contact"] = {"closed": ci["closed"].get(res.name, []), "pivots": ci["pivots"].get(res.name, 0),
                                           "columns_solved": ci["columns"], "blocks": ci["blocks"]}
    if ci.get("method") == "newton" and res.name in ci["cases"]:  # annulus fibres (fembone.spine.annulus)
        c = ci["cases"][res.name]
        out["segment"]["annulus_fibres"] = {"engaged": c["engaged"], "newton_iterations": c["iterations"],
                                            "line_search": c["line_search"]}
    if pre is not None:
        out["segment"]["measured_from"] = f"the installed state (load case {PRELOAD_CASE}: the rods' prebend alone)"
    index = model.meta["_segment_index"]
    z0 = seg.offset[index]
    body = solid_plane_force(model, geom, res, seg.body(index), z0)
    post = solid_plane_force(model, geom, res, seg.set(index, "posterior_elements"), z0)
    implants = np.zeros(3)
    screws, rods = {}, {}
    for s in model.meta["_screws"]:
        r = chain_results(model, s.nodes, s.E, s.nu, s.section, s.yield_strength, u)
        implants += beam_plane_force(r.pop("_pts"), r.pop("_ue"), s.E, s.nu, s.section, z0)
        sr = screw_results(model, s, u)
        screws[s.name] = {k: v for k, v in sr.items() if not k.startswith("_")}
    for rod in model.meta["_rods"]:
        r = chain_results(model, rod.nodes, rod.E, rod.nu, rod.section, rod.yield_strength, u, kappa0=rod.kappa0)
        implants += beam_plane_force(r.pop("_pts"), r.pop("_ue"), rod.E, rod.nu, rod.section, z0)
        rods[rod.name] = r
    total = body + post + implants
    out["load_sharing"] = {"plane": {"z": z0, "level": index}, "body_force": body.tolist(), "posterior_force": post.tolist(),
                           "implant_force": implants.tolist(), "total_force": total.tolist()}
    if abs(res.applied_force[2]) > 1e-6 * max(1.0, float(np.linalg.norm(res.applied_force))):  # shares of an axial load only
        out["load_sharing"].update(body_share=float(body[2] / total[2]), posterior_share=float(post[2] / total[2]),
                                   implant_share=float(implants[2] / total[2]))
    if screws:
        out["screws"] = screws
    if rods:
        out["rods"] = rods
    out["risk"] = index_risk(model, geom, res, seg, index, preset)
    return out


def index_risk(model, geom, res, seg, index: str, preset: dict) -> dict:
    """Risk metrics of the index vertebra (as :mod:`fembone.cases.vertebra_risk`, restricted to its elements):
    trabecular failed volume and strength after Pistoia et al. 2002 (load scaled proportionally: for a moment
    with a follower the preload is scaled too), the cortex against its yield strains, the posterior-wall bulge,
    cement utilisation."""
    from fembone.spine import risk
    from fembone.spine.cement import cement_phase_stress, cement_utilisation

    mesh = model.mesh
    mask = np.zeros(mesh.n_elements)
    mask[seg.elements[index]] = 1.0
    ne = mesh.n_elements

    def share(key: str, group: str) -> np.ndarray:
        if key in model.meta:
            return model.meta[key] * mask
        out = np.zeros(ne)
        out[seg.set(index, group)] = 1.0
        return out

    trab, cort = share("_trabecular_share", "trabecular"), share("_cortical_share", "cortical_shell")
    wall = orient_faces(mesh, mesh.facet_sets[f"{index}.posterior_wall"])[0]
    u = res.fields.displacement
    out: dict = {"level": index, "posterior_wall_bulge": risk.bulge(u, mesh.points, wall)}
    eps, sig, wdet = res.fields.strain_q, res.fields.stress_q, geom.wdet.T
    E = risk.young_modulus(model.C)
    out["failed_volume_fraction"] = risk.trabecular_failure(eps, sig, E, wdet, trab)["failed_volume_fraction"]
    if preset:
        out.update(applied_load=preset["magnitude"], load_unit="N" if preset["kind"] == "force" else "N mm")
        st = risk.strength_with_preload(eps, sig, E, wdet, trab, preset["magnitude"])
        lam = st["strength_multiplier"]
        if np.isfinite(lam) and lam > 0:
            out.update(strength_estimate=st["strength"], factor_of_risk=1.0 / lam)
    out.update(risk.cortical_failure(eps, wdet, cort))
    if "_cement_share" in model.meta and model.meta["_cement_share"].any():
        C_pmma = model.materials[[m.name for m in model.materials].index("pmma")].stiffness()
        out.update(cement_utilisation(cement_phase_stress(eps, C_pmma), wdet,
                                      {"bulk": model.meta["_cement_share"] * mask, "interdigitated": model.meta["_interdigitated_share"] * mask}))
    return out


register(SegmentExtension())
