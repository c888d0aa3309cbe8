"""Build a :class:`~fembone.core.model.Model` from a parsed :class:`~fembone.cases.spec.CaseSpec`.

Order: mesh (file, or an extension that makes one) -> materials and assignment -> the
extensions' model hooks (regions, set-ups, screws) -> constraints -> load cases -> probes ->
solver.  Errors found against the mesh still name the key path kept in the spec.
Units: mm, N, MPa, N mm.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from fembone.cases.registry import EXTENSIONS, BuildContext
from fembone.cases.spec import CaseSpec, Coupling, Fix, PointLoad, ProbeSpec, SurfaceLoad
from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.errors import InputError
from fembone.core.loads import pressure_load, total_force_load, traction_load
from fembone.core.mesh import MeshCache
from fembone.core.model import Model, Probe, ReferencePoint
from fembone.core.selectors import select_elements, select_faces, select_nodes


def build(spec: CaseSpec, mesh_cache: MeshCache | None = None) -> Model:
    """The model of a parsed case; ``mesh_cache`` shares parsed meshes between the cases of a study."""
    try:
        return _build(spec, BuildContext(spec, mesh_cache))
    except InputError as exc:
        if exc.where and not exc.where.startswith(spec.source) and not exc.where.startswith("/"):
            raise InputError(exc.message, f"{spec.source}: {exc.where}") from None
        raise


def _build(spec: CaseSpec, ctx: BuildContext) -> Model:
    active = [(EXTENSIONS[n], s) for n, s in spec.extensions.items()]
    # -- mesh
    if spec.mesh is not None:
        mesh = ctx.read_mesh(spec.mesh.file, order=spec.mesh.order)
    else:
        mesh = next(m for m in (e.mesh(s, ctx) for e, s in active) if m is not None)
    ctx.mesh = mesh
    # -- materials and assignment
    found = next((f for f in (e.materials(s, ctx) for e, s in active) if f is not None), None)
    if found is not None:
        mats, material_id = found
    else:
        mats, material_id = spec.materials, np.full(mesh.n_elements, -1)
    materials = list(mats.values())
    index = {m.name: i for i, m in enumerate(materials)}
    for a in spec.assign:
        if a.material not in index:
            raise InputError(f"unknown material '{a.material}' (defined: {', '.join(index) or 'none'})", f"{a.path}.material")
        material_id[select_elements(mesh, a.where, f"{a.path}.where")] = index[a.material]
    layout = DofLayout(mesh.n_nodes)
    model = Model(
        name=spec.name, mesh=mesh, materials=materials, material_id=material_id,
        C=np.zeros((mesh.n_elements, 6, 6)), layout=layout, constraints=ConstraintSet(layout),
    )
    Cs = np.array([m.stiffness() for m in materials])
    ok = material_id >= 0
    model.C[ok] = Cs[material_id[ok]]
    ctx.model = model
    for e, s in active:
        e.build(s, ctx)
    missing = np.flatnonzero(model.material_id < 0)
    if len(missing):
        raise InputError(
            f"{len(missing)} element(s) have no material (first: element {missing[0]}); "
            "add an 'assign' entry without 'where' to paint every element",
            "assign",
        )
    # -- constraints, loads, probes, solver
    for c in spec.constraints:
        (_coupling if isinstance(c, Coupling) else _fix)(model, c)
    for lname, entries in spec.loadcases.items():
        model.loads[lname] = _loadcase(ctx, entries)
    model.probes = [_probe(model, p) for p in spec.probes]
    model.solver = spec.solver.name
    if spec.solver.rtol is not None:
        model.solver_options["rtol"] = spec.solver.rtol
    if spec.solver.precision is not None:
        model.solver_options["precision"] = spec.solver.precision
    for e, s in active:
        e.finish(s, ctx)
    model.meta.update(ctx.meta)
    model.meta["source"] = spec.source
    model.meta["resolved_case"] = spec.resolved
    model.meta["case_hash"] = case_hash(spec.resolved)
    return model


def case_hash(data: dict) -> str:
    """SHA-1 (first 16 hex digits) of the resolved case as canonical JSON: equal cases, equal hash."""
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _coupling(model: Model, c: Coupling) -> None:
    mesh = model.mesh
    if c.point in model.points:
        raise InputError(f"reference point '{c.point}' is defined twice", f"{c.path}.point")
    faces, _ = select_faces(mesh, c.where)
    nodes = np.unique(faces)
    w = traction_load(mesh.points, faces, np.array([1.0, 0.0, 0.0]), mesh.n_nodes)[:, 0]  # nodal area weights
    at = np.array(c.at) if c.at is not None else (w[nodes] @ mesh.points[nodes]) / w[nodes].sum()
    j = int(model.layout.add_extra(at)[0])
    if c.kind == "rigid":
        model.constraints.rigid_coupling(nodes, j, mesh.points, label=f"{c.path} (rigid coupling '{c.point}')")
    else:
        wn = w[nodes]
        if np.any(wn <= 0):  # tri6 corners carry no area weight: share it with neighbours
            wn = np.maximum(wn, 1e-3 * wn.max())
        model.constraints.distributing_coupling(nodes, wn, j, mesh.points, label=f"{c.path} (distributing coupling '{c.point}')")
    model.points[c.point] = ReferencePoint(c.point, j, at, c.kind, nodes)


def _point_dofs(model: Model, name: str, path: str) -> np.ndarray:
    if name not in model.points:
        raise InputError(f"unknown reference point '{name}' (defined: {', '.join(model.points) or 'none'})", path)
    return model.layout.extra_dofs(model.points[name].index)[0]


def _fix(model: Model, c: Fix) -> None:
    comps = np.asarray(c.components)
    if c.point is not None:
        dofs = _point_dofs(model, c.point, f"{c.path}.point")
        model.constraints.fix(dofs[comps], list(c.values), label=c.path)
    else:
        nodes = select_nodes(model.mesh, c.where)
        dofs = (3 * nodes[:, None] + comps).ravel()
        model.constraints.fix(dofs, np.tile(c.values, len(nodes)), label=c.path)


def _loadcase(ctx: BuildContext, entries: list) -> np.ndarray:
    model, mesh = ctx.model, ctx.mesh
    f = np.zeros(model.n_dofs)
    for entry in entries:
        if isinstance(entry, PointLoad):
            dofs = _point_dofs(model, entry.point, f"{entry.path}.point")
            if entry.force is not None:
                f[dofs[:3]] += entry.force
            if entry.moment is not None:
                f[dofs[3:]] += entry.moment
        elif isinstance(entry, SurfaceLoad):
            f[: 3 * mesh.n_nodes] += _surface_load(mesh, entry).ravel()
        else:
            owner = next(EXTENSIONS[n] for n in ctx.spec.extensions if isinstance(entry, EXTENSIONS[n].load_types))
            vec = owner.load(ctx.spec.extensions[owner.name], entry, ctx)
            f[: len(vec)] += vec
    return f


def _surface_load(mesh, e: SurfaceLoad) -> np.ndarray:
    if e.kind == "nodal_force":
        nodes = select_nodes(mesh, e.where)
        F = np.zeros((mesh.n_nodes, 3))
        F[nodes] = e.value
        return F
    faces, on_b = select_faces(mesh, e.where)
    if e.kind == "pressure":
        if not on_b.all():
            raise InputError("pressure needs faces on the mesh boundary (the inward normal is undefined inside)", e.where.path)
        return pressure_load(mesh.points, faces, e.value, mesh.n_nodes)
    if e.kind == "traction":
        return traction_load(mesh.points, faces, np.array(e.value), mesh.n_nodes)
    return total_force_load(mesh.points, faces, list(e.value), mesh.n_nodes)


def _probe(model: Model, p: ProbeSpec) -> Probe:
    mesh = model.mesh
    probe = Probe(p.name, p.field, p.reduce)
    if p.field.startswith("displacement"):
        if p.where is None:
            probe.nodes = np.arange(mesh.n_nodes)
        else:
            probe.nodes = select_nodes(mesh, p.where)
            if p.reduce == "mean":
                try:
                    probe.faces, _ = select_faces(mesh, p.where)
                except InputError:
                    probe.faces = None
    else:
        probe.elements = select_elements(mesh, p.where)
    return probe
