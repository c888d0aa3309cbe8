"""Case-file sections for vertebra models: generated anatomy, bone presets, lesions, cement, spinal loads.

Registered into :mod:`fembone.cases` (so the keys below become valid in case files)::

    vertebra: {level: L1, mesh_size: 2.0, order: 2}      # generated with gmsh and cached
    materials: {preset: normal, trabecular: {density: 0.18, transverse_ratio: 0.5}}
    lesions:  [{type: lytic, volume_fraction: 0.30, location: central}]   # or center + radius/radii
    cement:   [{volume_ml: 4.0, access: bipedicular}]     # or unipedicular_left/right, tips: [[x,y,z]]
    boundary: {inferior: fixed, coupling: distributing}  # defaults; inferior: potting puts the
                                                         # endplate on a PMMA layer {E, nu, thickness}
    loadcases:
      standing: [{preset: compression, force: 800}]
      flexion:  [{preset: flexion, moment: 7500, follower: 400}]

Frame (generated vertebrae, and expected of imported ones): origin at the vertebral body
centroid, +x to the patient's right, +y anterior, +z cranial (RAS, as in 3D Slicer).
Moments follow the right-hand rule: flexion is a moment about -x (the superior endplate
tilts anteriorly), extension about +x, right lateral bending about +y, axial rotation
(counter-clockwise seen from above) about +z.  Mesh groups needed: ``cortical_shell``,
``trabecular``, ``posterior_elements`` (element sets), ``endplate_superior``,
``endplate_inferior``, ``posterior_wall`` (facet sets).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from fembone.core import schema as S
from fembone.spine.bone import hill_mix, vertebra_materials
from fembone.cases.registry import LOAD_KINDS, MATERIAL_MODES, MESH_SOURCES, MODEL_HOOKS, MODEL_SECTIONS, CaseContext
from fembone.core.errors import InputError
from fembone.core.mesh import Mesh
from fembone.core.model import ReferencePoint
from fembone.spine.regions import ellipsoid, fill_cement, fraction_inside, sample_elements, solve_radius
from fembone.spine import risk

VOLUME_GROUPS = ("cortical_shell", "trabecular", "posterior_elements")
SURFACE_GROUPS = ("endplate_superior", "endplate_inferior", "posterior_wall")
TOP = "superior"  # name of the reference point coupled to the superior endplate

# Load presets: (kind, default magnitude, direction) with sources.
#   compression: 500-800 N standing-like axial loads used in vertebral FE (field notes);
#   lifting: 2000 N, within the 1500-3600 N range reported for lifting (Wilke et al. 1999, Spine 24:755);
#   pure moments 7.5 N m (Rohlmann et al. 2001, J Biomech 34:1131) with an optional follower
#   preload (Patwardhan et al. 2003; 280-400 N).
LOAD_PRESETS = {
    "compression": ("force", 800.0, np.array([0.0, 0.0, -1.0])),
    "standing": ("force", 800.0, np.array([0.0, 0.0, -1.0])),
    "lifting": ("force", 2000.0, np.array([0.0, 0.0, -1.0])),
    "flexion": ("moment", 7500.0, np.array([-1.0, 0.0, 0.0])),
    "extension": ("moment", 7500.0, np.array([1.0, 0.0, 0.0])),
    "lateral_bending": ("moment", 7500.0, np.array([0.0, 1.0, 0.0])),
    "axial_rotation": ("moment", 7500.0, np.array([0.0, 0.0, 1.0])),
}

LESION_MATERIAL = {"lytic": "lesion_lytic", "blastic": "lesion_blastic", "mixed": "lesion_mixed"}


def cache_dir() -> Path:
    """Where generated meshes are kept: $FEMBONE_CACHE or ~/.cache/fembone."""
    return Path(os.environ.get("FEMBONE_CACHE", Path.home() / ".cache" / "fembone"))


# -- mesh ---------------------------------------------------------------------------------
def _vertebra_mesh(ctx: CaseContext, spec, path: str) -> Mesh:
    from fembone.spine.geometry import generate_vertebra, vertebra_dims, vertebra_landmarks

    S.mapping(spec, path, allowed=("level", "mesh_size", "order", "shell_thickness"))
    level = S.string(spec.get("level", "L1"), f"{path}.level")
    size = S.number(spec.get("mesh_size", 2.0), f"{path}.mesh_size", lo=0.5, hi=10.0)
    order = S.integer(spec.get("order", 2), f"{path}.order")
    if order not in (1, 2):
        raise InputError(f"order must be 1 or 2, got {order}", f"{path}.order")
    shell = S.number(spec.get("shell_thickness", 1.0), f"{path}.shell_thickness", lo=0.2, hi=3.0)
    try:
        dims = vertebra_dims(level)
    except InputError as exc:
        raise InputError(exc.message, f"{path}.level") from None
    key = hashlib.sha1(repr((level, size, order, shell, dims, _generator_version())).encode()).hexdigest()[:10]
    out = cache_dir() / f"{level}_s{size:g}_o{order}_t{shell:g}_{key}.msh"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.msh")
        generate_vertebra(tmp, level=level, size=size, order=order, shell_thickness=shell)
        os.replace(tmp, out)
    ctx.meta["landmarks"] = vertebra_landmarks(dims)
    ctx.meta["vertebra"] = {"level": level, "mesh_size": size, "order": order, "shell_thickness": shell, "mesh_file": str(out)}
    return ctx.read_mesh(out)


def _generator_version() -> str:
    """Changes whenever the generator's source changes, so stale cached meshes are not reused."""
    from fembone.spine.geometry import vertebra

    return hashlib.sha1(Path(vertebra.__file__).read_bytes()).hexdigest()[:12]


def is_vertebra(ctx: CaseContext) -> bool:
    return "vertebra" in ctx.data or (
        isinstance(ctx.data.get("materials"), dict) and "preset" in ctx.data["materials"]
    )


def _require_groups(mesh: Mesh, path: str) -> None:
    missing = [g for g in VOLUME_GROUPS if g not in mesh.cell_sets] + [g for g in SURFACE_GROUPS if g not in mesh.facet_sets]
    if missing:
        raise InputError(
            f"mesh {mesh.source} lacks the vertebra group(s) {', '.join(missing)} "
            "(generate one with 'fembone mesh vertebra' or 'fembone mesh surface')", path,
        )


# -- materials ----------------------------------------------------------------------------
def _materials_mode(ctx: CaseContext, spec, path: str):
    if not is_vertebra(ctx):
        return None
    _require_groups(ctx.mesh, "mesh")
    mats, info = vertebra_materials(spec, path)
    ctx.meta["materials"] = info
    names = list(mats)
    mid = np.full(ctx.mesh.n_elements, -1)
    for g in VOLUME_GROUPS:
        mid[ctx.mesh.cell_sets[g]] = names.index(g)
    ctx.fractions = {}  # material name -> (ne,) volume fraction replacing the base material
    return mats, mid


# -- lesions ------------------------------------------------------------------------------
def _body_elements(mesh: Mesh) -> np.ndarray:
    return np.concatenate([mesh.cell_sets["cortical_shell"], mesh.cell_sets["trabecular"]])


def _lesions(ctx: CaseContext, spec, path: str) -> None:
    if not is_vertebra(ctx):
        raise InputError("lesions need a vertebra model (vertebra: ... or materials: {preset: ...})", path)
    mesh = ctx.mesh
    body = _body_elements(mesh)
    trab = mesh.cell_sets["trabecular"]
    vol = np.abs(mesh.volumes())
    body_volume = float(vol[body].sum())
    centroid = (vol[body] @ mesh.centroids()[body]) / body_volume
    lo = mesh.points[np.unique(mesh.cells[body])].min(axis=0)
    hi = mesh.points[np.unique(mesh.cells[body])].max(axis=0)
    ext = hi - lo
    info = []
    for i, entry in enumerate(S.seq(spec, path)):
        p = f"{path}[{i}]"
        S.mapping(entry, p, allowed=("type", "volume_fraction", "location", "center", "radius", "radii", "axes", "breach"), required=("type",))
        kind = S.string(entry["type"], f"{p}.type", choices=tuple(LESION_MATERIAL))
        breach = S.boolean(entry.get("breach", False), f"{p}.breach")
        host = body if breach else trab
        if "center" in entry:
            c = np.array(S.vector(entry["center"], f"{p}.center"))
        else:
            loc = S.string(entry.get("location", "central"), f"{p}.location", choices=("central", "posterior", "anterior", "lateral_right", "lateral_left", "lateral"))
            offs = {
                "central": (0, 0, 0), "posterior": (0, -0.22, 0), "anterior": (0, 0.22, 0),
                "lateral_right": (0.22, 0, 0), "lateral": (0.22, 0, 0), "lateral_left": (-0.22, 0, 0),
            }[loc]
            c = centroid + np.array(offs) * ext
        if np.any(c < lo) or np.any(c > hi):
            raise InputError(f"lesion centre {np.round(c, 2).tolist()} lies outside the vertebral body", f"{p}.center")
        samples = sample_elements(mesh, host)
        axes = None
        if "axes" in entry:
            axes = np.array([S.vector(v, f"{p}.axes[{k}]") for k, v in enumerate(S.seq(entry["axes"], f"{p}.axes"))])
            if axes.shape != (3, 3):
                raise InputError("expected 3 axis vectors", f"{p}.axes")
        if "volume_fraction" in entry:
            if "radius" in entry or "radii" in entry:
                raise InputError("give volume_fraction or radius/radii, not both", p)
            vf = S.number(entry["volume_fraction"], f"{p}.volume_fraction", lo=0, hi=0.95, lo_open=True)
            r = solve_radius(samples, c, vf * body_volume, where=f"{p}.volume_fraction")
            radii = np.array([r, r, r])
        elif "radii" in entry:
            radii = np.array(S.vector(entry["radii"], f"{p}.radii"))
            if np.any(radii <= 0):
                raise InputError("radii must be positive", f"{p}.radii")
        elif "radius" in entry:
            radii = np.full(3, S.number(entry["radius"], f"{p}.radius", lo=0, lo_open=True))
        else:
            raise InputError("give volume_fraction, radius or radii", p)
        frac_host = fraction_inside(samples, ellipsoid(c, radii, axes))
        lesion_volume = float((frac_host * vol[host]).sum())
        if lesion_volume <= 0:
            raise InputError(f"lesion at {np.round(c, 2).tolist()} lies outside the bone (no {'body' if breach else 'trabecular'} volume inside it)", p)
        full = np.zeros(mesh.n_elements)
        full[host] = frac_host
        name = LESION_MATERIAL[kind]
        ctx.fractions[name] = np.maximum(ctx.fractions.get(name, 0.0), full)
        info.append({"type": kind, "center": c.tolist(), "radii": radii.tolist(), "volume": lesion_volume})
    ctx.meta["lesions"] = info
    ctx.meta.setdefault("volumes", {})["body"] = body_volume


# -- cement -------------------------------------------------------------------------------
def needle_tips(landmarks: dict, access: str) -> np.ndarray:
    """Needle-tip positions (mm) for transpedicular access from the vertebra's landmarks.

    Bipedicular: each tip on its pedicle axis at 75 % of the way from the entry point to the
    anterior cortex (anterior half of the body).  Unipedicular: one oblique needle whose tip
    reaches the midline in the anterior half of the body.
    """
    if access == "bipedicular":
        return np.array([
            landmarks[s]["entry"] + 0.75 * landmarks[s]["length_to_anterior_cortex"] * landmarks[s]["direction"]
            for s in ("left", "right")
        ])
    side = "left" if access.endswith("left") else "right"
    e = landmarks[side]["entry"]
    y_tip = landmarks["body_anterior_y"] - 0.35 * landmarks["body_depth"]
    return np.array([[0.0, y_tip, float(landmarks[side]["isthmus"][2])]]) if e is not None else None


def _cement(ctx: CaseContext, spec, path: str) -> None:
    if not is_vertebra(ctx):
        raise InputError("cement needs a vertebra model (vertebra: ... or materials: {preset: ...})", path)
    mesh = ctx.mesh
    lesion = sum((ctx.fractions.get(n, 0.0) for n in LESION_MATERIAL.values()), np.zeros(mesh.n_elements))
    lesion = np.minimum(lesion, 1.0)
    trab = mesh.cell_sets["trabecular"]
    phi = ctx.meta["materials"]["porosity"]
    pmma = np.zeros(mesh.n_elements)
    comp = np.zeros(mesh.n_elements)
    info = []
    for i, entry in enumerate(S.seq(spec, path)):
        p = f"{path}[{i}]"
        S.mapping(entry, p, allowed=("volume_ml", "access", "tips"), required=("volume_ml",))
        vml = S.number(entry["volume_ml"], f"{p}.volume_ml", lo=0, lo_open=True, hi=50)
        if "tips" in entry:
            tips = np.array([S.vector(t, f"{p}.tips[{k}]") for k, t in enumerate(S.seq(entry["tips"], f"{p}.tips"))])
            if len(tips) == 0:
                raise InputError("give at least one needle tip", f"{p}.tips")
            access = "tips"
        else:
            access = S.string(entry.get("access", "bipedicular"), f"{p}.access", choices=("bipedicular", "unipedicular_left", "unipedicular_right"))
            if "landmarks" not in ctx.meta:
                raise InputError("access needs a generated vertebra's landmarks; give tips: [[x, y, z], ...] for an imported mesh", f"{p}.access")
            tips = needle_tips(ctx.meta["landmarks"], access)
        body_nodes = mesh.points[np.unique(mesh.cells[_body_elements(mesh)])]
        lo, hi = body_nodes.min(axis=0), body_nodes.max(axis=0)
        for k, t in enumerate(tips):
            if np.any(t < lo) or np.any(t > hi):
                raise InputError(f"needle tip {np.round(t, 2).tolist()} lies outside the vertebral body", f"{p}.tips[{k}]" if access == "tips" else f"{p}.access")
        # remaining capacity: lesion not yet filled, bone pores not yet filled
        fill = fill_cement(mesh, tips, vml * 1000.0, np.clip(lesion - pmma, 0, 1), trab, phi, where=f"{p}.volume_ml")
        pmma += fill.pmma_fraction
        comp += fill.composite_fraction
        info.append({"volume_ml": vml, "access": access, "tips": tips.tolist(), "filled_ml": fill.filled_volume / 1000.0,
                     "in_lesion_ml": fill.lesion_filled / 1000.0, "interdigitated_ml": fill.bone_filled / 1000.0})
    ctx.fractions["pmma"] = np.minimum(pmma, 1.0)
    ctx.fractions["cement_bone"] = np.minimum(comp, 1.0)
    ctx.meta["cement"] = info


# -- mixing, supports, risk -----------------------------------------------------------------
def _finish(ctx: CaseContext) -> None:
    if not is_vertebra(ctx):
        return
    model, mesh = ctx.model, ctx.mesh
    fr = getattr(ctx, "fractions", {})
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
    vols["cement_filled"] = float((F[:, names.index("pmma")] * vol).sum() + ctx.meta["materials"]["porosity"] * (F[:, names.index("cement_bone")] * vol).sum())
    bone_share = np.zeros(ne)
    bone_share[body] = F[body][:, [names.index("cortical_shell"), names.index("trabecular")]].sum(axis=1)
    model.meta["_bone_share"] = bone_share
    model.meta["_cement_share"] = F[:, names.index("pmma")]
    _supports(ctx)
    model.postprocessors.append(_risk)


#: PMMA potting of vertebral specimens in experiments: E 2500 MPa, nu 0.3, >= 3 mm (field notes)
POTTING = {"E": 2500.0, "nu": 0.3, "thickness": 3.0}


def _boundary(ctx: CaseContext, spec, path: str) -> None:
    S.mapping(spec, path, allowed=("inferior", "coupling", "potting"))
    b = {
        "inferior": S.string(spec.get("inferior", "fixed"), f"{path}.inferior", choices=("fixed", "potting")),
        "coupling": S.string(spec.get("coupling", "distributing"), f"{path}.coupling", choices=("distributing", "rigid")),
    }
    if "potting" in spec and b["inferior"] != "potting":
        raise InputError("potting properties need inferior: potting", f"{path}.potting")
    if b["inferior"] == "potting":
        p = S.mapping(spec.get("potting", {}), f"{path}.potting", allowed=tuple(POTTING))
        b["potting"] = {
            "E": S.number(p.get("E", POTTING["E"]), f"{path}.potting.E", lo=0, lo_open=True),
            "nu": S.number(p.get("nu", POTTING["nu"]), f"{path}.potting.nu", lo=-0.99, hi=0.49),
            "thickness": S.number(p.get("thickness", POTTING["thickness"]), f"{path}.potting.thickness", lo=0, lo_open=True),
        }
    ctx.meta["boundary"] = b


def potting_foundation(mesh: Mesh, faces: np.ndarray, E: float, nu: float, t: float, n_dofs: int):
    """Stiffness (N/mm) of a thin PMMA potting layer under ``faces``, its far side fixed.

    A layer thin against the endplate acts as an elastic (Winkler) foundation: normal
    stiffness per area = constrained modulus / t = E (1 - nu) / ((1 + nu)(1 - 2 nu) t), shear
    stiffness per area = G / t (MPa/mm); consistent matrix k_a int N_i N_j dA per direction.
    """
    import scipy.sparse as sp

    from fembone.core.loads import face_quadrature

    N, nda, _ = face_quadrature(mesh.points, faces)
    dA = np.linalg.norm(nda, axis=2)  # (nf, nq)
    Mf = np.einsum("qi,qj,fq->fij", N, N, dA)  # (nf, nfn, nfn)
    k_n = E * (1 - nu) / ((1 + nu) * (1 - 2 * nu) * t)
    k_s = E / (2 * (1 + nu) * t)
    n = faces.shape[1]
    rows, cols, vals = [], [], []
    for a, k in enumerate((k_s, k_s, k_n)):  # the endplate's normal is the cranio-caudal axis z
        d = 3 * faces + a
        rows.append(np.repeat(d, n, axis=1).ravel())
        cols.append(np.tile(d, (1, n)).ravel())
        vals.append((k * Mf).ravel())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_dofs, n_dofs))


def _supports(ctx: CaseContext) -> None:
    """Inferior endplate fixed; superior endplate coupled to the reference point 'superior'."""
    if ctx.data.get("constraints"):
        return  # the case defines its own supports
    model, mesh = ctx.model, ctx.mesh
    b = ctx.meta.get("boundary", {"inferior": "fixed", "coupling": "distributing"})
    ctx.meta["boundary"] = b
    inf = np.unique(mesh.facet_sets["endplate_inferior"])
    inf_dofs = (3 * inf[:, None] + np.arange(3)).ravel()
    if b["inferior"] == "potting":
        p = b["potting"]
        Kf = potting_foundation(mesh, mesh.facet_sets["endplate_inferior"], p["E"], p["nu"], p["thickness"], model.n_dofs)
        model.meta.setdefault("_extra_stiffness", []).append(Kf)
        model.meta["_foundation"] = Kf
        model.meta["_grounded"] = inf_dofs
    else:
        model.constraints.fix(inf_dofs, label="inferior endplate (fixed)")
    faces = mesh.facet_sets["endplate_superior"]
    from fembone.core.loads import traction_load
    from fembone.core.selectors import orient_faces

    faces, _ = orient_faces(mesh, faces)
    w = traction_load(mesh.points, faces, np.array([1.0, 0.0, 0.0]), mesh.n_nodes)[:, 0]
    nodes = np.unique(faces)
    at = (w[nodes] @ mesh.points[nodes]) / w[nodes].sum()
    j = int(model.layout.add_extra(at)[0])
    if b["coupling"] == "rigid":
        model.constraints.rigid_coupling(nodes, j, mesh.points, label="superior endplate (rigid coupling)")
    else:
        wn = np.maximum(w[nodes], 1e-3 * w[nodes].max())
        model.constraints.distributing_coupling(nodes, wn, j, mesh.points, label="superior endplate (distributing coupling)")
    model.points[TOP] = ReferencePoint(TOP, j, at, b["coupling"], nodes)


def _preset_load(ctx: CaseContext, entry, path: str) -> np.ndarray:
    model = ctx.model
    S.mapping(entry, path, allowed=("preset", "force", "moment", "follower"), required=("preset",))
    name = S.string(entry["preset"], f"{path}.preset", choices=tuple(LOAD_PRESETS))
    if TOP not in model.points:
        raise InputError("load presets need a vertebra model with its superior-endplate reference point", path)
    kind, default, direction = LOAD_PRESETS[name]
    if kind == "force" and "moment" in entry:
        raise InputError(f"preset '{name}' takes a force (N), not a moment", f"{path}.moment")
    if kind == "moment" and "force" in entry:
        raise InputError(f"preset '{name}' takes a moment (N mm) and an optional follower (N), not a force", f"{path}.force")
    mag = S.number(entry.get(kind, default), f"{path}.{kind}", lo=0)
    follower = S.number(entry.get("follower", 0.0), f"{path}.follower", lo=0)
    f = np.zeros(model.n_dofs)
    dofs = model.layout.extra_dofs(model.points[TOP].index)[0]
    if kind == "force":
        f[dofs[:3]] += mag * direction
    else:
        f[dofs[3:]] += mag * direction
        f[dofs[2]] -= follower  # follower preload along the (undeformed) cranio-caudal axis
    lc = path.split(".")[-1].split("[")[0]
    ctx.meta.setdefault("load_presets", {})[lc] = {"preset": name, "kind": kind, "magnitude": mag, "follower": follower, "direction": direction.tolist()}
    return f


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
    out["posterior_wall_bulge"] = risk.bulge(res.fields.displacement, mesh.points, _oriented(mesh, "posterior_wall"))
    bm = risk.bone_metrics(res.fields.strain_q, geom.wdet.T, model.meta["_bone_share"])
    out["failed_volume_fraction"] = bm["failed_volume_fraction"]
    lam = bm["strength_multiplier"]
    if "applied_load" in out and np.isfinite(lam):
        out["strength_estimate"] = lam * out["applied_load"]
        out["factor_of_risk"] = 1.0 / lam
    out.update(risk.cement_metrics(res.fields.stress, model.meta["_cement_share"]))
    return {"risk": out}


def _oriented(mesh: Mesh, name: str) -> np.ndarray:
    from fembone.core.selectors import orient_faces

    return orient_faces(mesh, mesh.facet_sets[name])[0]


def _screws_section(ctx, spec, path):
    from fembone.spine.screws import _section

    _section(ctx, spec, path)


# -- registration -------------------------------------------------------------------------
MESH_SOURCES["vertebra"] = _vertebra_mesh
MATERIAL_MODES.append(_materials_mode)
MODEL_SECTIONS["boundary"] = _boundary
MODEL_SECTIONS["lesions"] = _lesions
MODEL_SECTIONS["cement"] = _cement
MODEL_SECTIONS["screws"] = _screws_section
MODEL_HOOKS.append(_finish)
LOAD_KINDS["preset"] = _preset_load
