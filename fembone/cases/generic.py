"""Case files (YAML) -> validated :class:`fembone.core.model.Model`. Units: mm, N, MPa.

The contract (keys may be extended, these keep working)::

    name: cantilever-tet10
    mesh: ../meshes/cantilever.msh            # relative to the case file; or {file: .., order: 2}
    materials:
      steel: {E: 10000.0, nu: 0.3}
      bone: {type: transverse_isotropic, E_axial: 400, E_transverse: 140, nu_axial: 0.3,
             nu_transverse: 0.3, G_axial: 100, axis: [0, 0, 1]}
    assign:                                   # painted in order; later entries win
      - {material: steel}
      - {material: bone, where: {set: core}}
    constraints:
      - {where: {plane: {x: 0.0}}, fix: [x, y, z]}      # or value: [ux, uy, uz] (null = free)
      - {coupling: rigid, where: {set: top}, point: top, at: [0, 0, 30]}   # or distributing
    loadcases:
      tip:  [{where: {plane: {x: 100.0}}, force: [0, 0, -10.0]}]   # total force, area-weighted
      push: [{where: {set: top}, traction: [0, 0, -1.0]}]          # MPa; pressure: p (inward)
      bend: [{point: top, force: [0, 0, -400], moment: [7500, 0, 0]}]
    probes:
      tip_uz: {field: displacement.z, where: {plane: {x: 100.0}}, reduce: mean}
    solver: auto                              # auto | pardiso | amg | superlu | cholmod

Sections are registered parts (``SECTIONS``): a later feature adds its keys by adding
one function, and unknown keys are errors listing the known ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fembone.core import schema as S
from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.errors import InputError
from fembone.core.loads import pressure_load, total_force_load, traction_load
from fembone.core.materials import make_material
from fembone.core.mesh import Mesh, MeshCache
from fembone.core.model import Model, Probe, ReferencePoint
from fembone.core.selectors import select_elements, select_faces, select_nodes
from fembone.core.solvers import SOLVERS
from fembone.cases.registry import (
    LOAD_KINDS, MATERIAL_MODES, MESH_SOURCES, MODEL_HOOKS, MODEL_SECTIONS, TOP_LEVEL, CaseContext,
)

AXIS_NAMES = {"x": 0, "y": 1, "z": 2, "rx": 3, "ry": 4, "rz": 5}
PROBE_FIELDS = {
    "displacement": ("x", "y", "z", "magnitude"),
    "strain": ("xx", "yy", "zz", "xy", "yz", "xz", "min_principal", "max_principal", "equivalent"),
    "stress": ("xx", "yy", "zz", "xy", "yz", "xz", "min_principal", "max_principal", "von_mises"),
}


def load_case(path: str | Path, overrides: dict | None = None) -> Model:
    """Read, validate and build the model of a case file."""
    path = Path(path)
    data = S.load_yaml(path)
    if overrides:
        data = apply_overrides(data, overrides)
    return build_model(data, base=path.parent, source=str(path))


def apply_overrides(data: dict, overrides: dict) -> dict:
    """Set values by key path ('loadcases.tip[0].force', 'materials.bone.E')."""
    import copy

    from fembone.core.keypath import set_path

    data = copy.deepcopy(data)
    for k, v in overrides.items():
        set_path(data, k, v)
    return data


def build_model(data: Any, base: Path | str = ".", source: str = "<case>", mesh_cache: MeshCache | None = None) -> Model:
    """Validate a parsed case (a dict) and build its :class:`Model`; ``mesh_cache`` shares parsed meshes."""
    allowed = tuple(TOP_LEVEL) + tuple(MESH_SOURCES) + tuple(MODEL_SECTIONS)
    if not isinstance(data, dict):
        raise InputError(f"a case file is a mapping of keys (name, mesh, materials, ...), got {S._tname(data)}", source)
    for k in data:
        if k not in allowed:
            raise InputError(f"unknown key (expected one of: {', '.join(allowed)})", f"{source}: {k}")
    ctx = CaseContext(data, Path(base), source, mesh_cache)
    name = S.string(data.get("name", Path(source).stem), f"{source}: name")
    try:
        return _build(ctx, data, name)
    except InputError as exc:
        if exc.where and not exc.where.startswith(source) and not exc.where.startswith("/"):
            raise InputError(exc.message, f"{source}: {exc.where}") from None
        raise


def _build(ctx: CaseContext, data: dict, name: str) -> Model:
    # -- mesh
    sources = [k for k in MESH_SOURCES if k in data]
    if "mesh" in data and sources:
        raise InputError(f"give either 'mesh' or '{sources[0]}', not both", "mesh")
    if "mesh" in data:
        mesh = _mesh(ctx, data["mesh"], "mesh")
    elif sources:
        mesh = MESH_SOURCES[sources[0]](ctx, data[sources[0]], sources[0])
    else:
        raise InputError("missing required key 'mesh'", "")
    ctx.mesh = mesh
    # -- materials and assignment
    ctx.materials = {}
    material_id = np.full(mesh.n_elements, -1)
    for mode in MATERIAL_MODES:
        found = mode(ctx, data.get("materials"), "materials")
        if found is not None:
            ctx.materials, material_id = found
            break
    else:
        mats = S.mapping(data.get("materials", {}), "materials")
        for mname, spec in mats.items():
            ctx.materials[mname] = make_material(mname, spec, f"materials.{mname}")
    materials = list(ctx.materials.values())
    mat_index = {m.name: i for i, m in enumerate(materials)}
    assign = S.seq(data.get("assign", []), "assign")
    if not assign and len(materials) == 1:
        assign = [{"material": materials[0].name}]
    for i, entry in enumerate(assign):
        p = f"assign[{i}]"
        S.mapping(entry, p, allowed=("material", "where"), required=("material",))
        mname = S.string(entry["material"], f"{p}.material")
        if mname not in mat_index:
            raise InputError(f"unknown material '{mname}' (defined: {', '.join(mat_index) or 'none'})", f"{p}.material")
        ids = select_elements(mesh, entry.get("where"), f"{p}.where")
        material_id[ids] = mat_index[mname]
    if not materials:
        raise InputError("missing required key 'materials'", "")
    layout = DofLayout(mesh.n_nodes)
    model = Model(
        name=name, mesh=mesh, materials=materials, material_id=material_id,
        C=np.zeros((mesh.n_elements, 6, 6)), layout=layout, constraints=ConstraintSet(layout),
    )
    if materials:
        Cs = np.array([m.stiffness() for m in materials])
        ok = material_id >= 0
        model.C[ok] = Cs[material_id[ok]]
    ctx.model = model
    for key, handler in MODEL_SECTIONS.items():
        if key in data:
            handler(ctx, data[key], key)
    for hook in MODEL_HOOKS:
        hook(ctx)
    missing = np.flatnonzero(model.material_id < 0)
    if len(missing):
        raise InputError(
            f"{len(missing)} element(s) have no material (first: element {missing[0]}); "
            "add an 'assign' entry without 'where' to paint every element",
            "assign",
        )
    # -- constraints, loads, probes, solver
    for i, entry in enumerate(S.seq(data.get("constraints", []), "constraints")):
        _constraint(ctx, entry, f"constraints[{i}]")
    lcs = S.mapping(data.get("loadcases", {}), "loadcases")
    if not lcs:
        raise InputError("at least one load case is needed", "loadcases")
    for lname, entries in lcs.items():
        model.loads[lname] = _loadcase(ctx, entries, f"loadcases.{lname}")
    for pname, spec in S.mapping(data.get("probes", {}), "probes").items():
        model.probes.append(_probe(ctx, pname, spec, f"probes.{pname}"))
    _solver(model, data.get("solver", "auto"), "solver")
    model.meta.update(ctx.meta)
    model.meta["source"] = ctx.source
    return model


def _mesh(ctx: CaseContext, spec, path: str) -> Mesh:
    order = None
    if isinstance(spec, dict):
        S.mapping(spec, path, allowed=("file", "order"), required=("file",))
        file = S.string(spec["file"], f"{path}.file")
        if "order" in spec:
            order = S.integer(spec["order"], f"{path}.order")
            if order not in (1, 2):
                raise InputError(f"order must be 1 or 2, got {order}", f"{path}.order")
    else:
        file = S.string(spec, path)
    p = ctx.path(file, path)
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a mesh file", path)
    if not p.is_file():
        raise InputError(f"mesh file not found: {p}", path)
    return ctx.read_mesh(p, order=order)


def _components(value, path: str, allow_rot: bool) -> list[int]:
    if value == "all" or value is True:  # not 'in (...)': 1 == True would make 'fix: 1' mean all
        return [0, 1, 2, 3, 4, 5] if allow_rot else [0, 1, 2]
    names = S.seq(value, path)
    out = []
    allowed = ("x", "y", "z", "rx", "ry", "rz") if allow_rot else ("x", "y", "z")
    for i, n in enumerate(names):
        S.string(n, f"{path}[{i}]", choices=allowed)
        out.append(AXIS_NAMES[n])
    if len(set(out)) != len(out):
        raise InputError("a component is listed twice", path)
    return out


def _constraint(ctx: CaseContext, entry, path: str) -> None:
    model, mesh = ctx.model, ctx.mesh
    S.mapping(entry, path)
    if "coupling" in entry:
        S.mapping(entry, path, allowed=("coupling", "where", "point", "at"), required=("coupling", "where", "point"))
        kind = S.string(entry["coupling"], f"{path}.coupling", choices=("rigid", "distributing"))
        pname = S.string(entry["point"], f"{path}.point")
        if pname in model.points:
            raise InputError(f"reference point '{pname}' is defined twice", f"{path}.point")
        faces, _ = select_faces(mesh, entry["where"], f"{path}.where")
        nodes = np.unique(faces)
        w = traction_load(mesh.points, faces, np.array([1.0, 0.0, 0.0]), mesh.n_nodes)[:, 0]  # nodal area weights
        if "at" in entry:
            at = np.array(S.vector(entry["at"], f"{path}.at"))
        else:
            at = (w[nodes] @ mesh.points[nodes]) / w[nodes].sum()
        j = int(model.layout.add_extra(at)[0])
        if kind == "rigid":
            model.constraints.rigid_coupling(nodes, j, mesh.points, label=f"{path} (rigid coupling '{pname}')")
        else:
            wn = w[nodes]
            if np.any(wn <= 0):  # tri6 corners carry no area weight: share it with neighbours
                wn = np.maximum(wn, 1e-3 * wn.max())
            model.constraints.distributing_coupling(nodes, wn, j, mesh.points, label=f"{path} (distributing coupling '{pname}')")
        model.points[pname] = ReferencePoint(pname, j, at, kind, nodes)
        return
    S.mapping(entry, path, allowed=("where", "point", "fix", "value"))
    if ("where" in entry) == ("point" in entry):
        raise InputError("give exactly one of 'where' (mesh nodes) or 'point' (a reference point)", path)
    if "fix" not in entry and "value" not in entry:
        raise InputError("give 'fix: [x, y, z]' or 'value: [ux, uy, uz]'", path)
    if "point" in entry:
        pname = S.string(entry["point"], f"{path}.point")
        if pname not in model.points:
            raise InputError(f"unknown reference point '{pname}' (defined: {', '.join(model.points) or 'none'})", f"{path}.point")
        dofs_all = model.layout.extra_dofs(model.points[pname].index)[0]
        ncomp = 6
    else:
        nodes = select_nodes(mesh, entry["where"], f"{path}.where")
        ncomp = 3
    comps, vals = [], []
    if "fix" in entry:
        comps = _components(entry["fix"], f"{path}.fix", allow_rot=ncomp == 6)
        vals = [0.0] * len(comps)
    if "value" in entry:
        v = S.vector(entry["value"], f"{path}.value", n=ncomp, allow_none=True)
        for k, x in enumerate(v):
            if x is None:
                continue
            if k in comps:
                vals[comps.index(k)] = x
            else:
                comps.append(k)
                vals.append(x)
    if not comps:
        raise InputError("constrains no component", path)
    label = path
    if ncomp == 6:
        model.constraints.fix(dofs_all[comps], vals, label=label)
    else:
        dofs = (3 * nodes[:, None] + np.asarray(comps)).ravel()
        model.constraints.fix(dofs, np.tile(vals, len(nodes)), label=label)


LOAD_KEYS = ("force", "traction", "pressure", "nodal_force")


def _loadcase(ctx: CaseContext, entries, path: str) -> np.ndarray:
    model, mesh = ctx.model, ctx.mesh
    f = np.zeros(model.n_dofs)
    S.seq(entries, path)
    if not entries:
        raise InputError("a load case needs at least one load", path)
    for i, entry in enumerate(entries):
        p = f"{path}[{i}]"
        S.mapping(entry, p)
        custom = [k for k in entry if k in LOAD_KINDS]
        if custom:
            vec = LOAD_KINDS[custom[0]](ctx, entry, p)
            f[: len(vec)] += vec
            continue
        if "point" in entry:
            S.mapping(entry, p, allowed=("point", "force", "moment"), required=("point",))
            pname = S.string(entry["point"], f"{p}.point")
            if pname not in model.points:
                raise InputError(f"unknown reference point '{pname}' (defined: {', '.join(model.points) or 'none'})", f"{p}.point")
            if "force" not in entry and "moment" not in entry:
                raise InputError("give 'force' and/or 'moment'", p)
            dofs = model.layout.extra_dofs(model.points[pname].index)[0]
            if "force" in entry:
                f[dofs[:3]] += S.vector(entry["force"], f"{p}.force")
            if "moment" in entry:
                f[dofs[3:]] += S.vector(entry["moment"], f"{p}.moment")
            continue
        S.mapping(entry, p, allowed=("where",) + LOAD_KEYS + tuple(LOAD_KINDS), required=("where",))
        kinds = [k for k in LOAD_KEYS if k in entry]
        if len(kinds) != 1:
            raise InputError(f"give exactly one of: {', '.join(LOAD_KEYS)}", p)
        kind = kinds[0]
        if kind == "nodal_force":
            nodes = select_nodes(mesh, entry["where"], f"{p}.where")
            v = S.vector(entry[kind], f"{p}.{kind}")
            F = np.zeros((mesh.n_nodes, 3))
            F[nodes] = v
        else:
            faces, on_b = select_faces(mesh, entry["where"], f"{p}.where")
            if kind == "pressure":
                pr = S.number(entry[kind], f"{p}.pressure")
                if not on_b.all():
                    raise InputError("pressure needs faces on the mesh boundary (the inward normal is undefined inside)", f"{p}.where")
                F = pressure_load(mesh.points, faces, pr, mesh.n_nodes)
            elif kind == "traction":
                F = traction_load(mesh.points, faces, np.array(S.vector(entry[kind], f"{p}.traction")), mesh.n_nodes)
            else:
                F = total_force_load(mesh.points, faces, S.vector(entry[kind], f"{p}.force"), mesh.n_nodes)
        f[: 3 * mesh.n_nodes] += F.ravel()
    return f


def _probe(ctx: CaseContext, name: str, spec, path: str) -> Probe:
    mesh = ctx.mesh
    S.mapping(spec, path, allowed=("field", "where", "reduce"), required=("field",))
    fld = S.string(spec["field"], f"{path}.field")
    parts = fld.split(".")
    if len(parts) != 2 or parts[0] not in PROBE_FIELDS or parts[1] not in PROBE_FIELDS[parts[0]]:
        opts = ", ".join(f"{k}.{{{'|'.join(v)}}}" for k, v in PROBE_FIELDS.items())
        raise InputError(f"unknown field '{fld}' (expected {opts})", f"{path}.field")
    reduce = S.string(spec.get("reduce", "mean"), f"{path}.reduce", choices=("mean", "min", "max"))
    where = spec.get("where")
    probe = Probe(name, fld, reduce)
    if parts[0] == "displacement":
        if where is None:
            probe.nodes = np.arange(mesh.n_nodes)
        else:
            probe.nodes = select_nodes(mesh, where, f"{path}.where")
            if reduce == "mean":
                try:
                    faces, _ = select_faces(mesh, where, f"{path}.where")
                    probe.faces = faces
                except InputError:
                    probe.faces = None
    else:
        probe.elements = select_elements(mesh, where, f"{path}.where")
    return probe


def _solver(model: Model, spec, path: str) -> None:
    if isinstance(spec, dict):
        S.mapping(spec, path, allowed=("name", "rtol", "precision"))
        name = S.string(spec.get("name", "auto"), f"{path}.name", choices=("auto",) + tuple(SOLVERS))
        if "rtol" in spec:
            model.solver_options["rtol"] = S.number(spec["rtol"], f"{path}.rtol", lo=0, lo_open=True, hi=1e-3)
        if "precision" in spec:
            model.solver_options["precision"] = S.string(spec["precision"], f"{path}.precision", choices=("single", "double"))
    else:
        name = S.string(spec, path, choices=("auto",) + tuple(SOLVERS))
    model.solver = name

