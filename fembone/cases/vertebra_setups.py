"""How a vertebra model is held and loaded (``boundary: {setup: ...}``). Units: mm, N, MPa.

* ``in_vitro`` - the set-up of in-vitro compression tests and of the Bonelab CT benchmark:
  both endplates embedded in meshed PMMA caps with flat outer faces; the inferior cap's face
  is fixed; the superior cap's face is a rigid platen (reference point ``superior``) guided
  along z (parallel plates: its x, y translations and rotations are held).  Loaded by a force
  on the platen or by a platen displacement.
* ``discs`` - physiological loading of one vertebra: half discs (annulus, nearly
  incompressible nucleus) above and below, loaded through rigid plates on their outer faces;
  the inferior plate is fixed, the superior plate (``superior``) is free in all six DOFs.
* ``endplates`` - the endplates held directly (fembone <= 0.1): inferior endplate fixed or
  on a thin potting layer, superior endplate coupled (distributing or rigid) to ``superior``.
"""

from __future__ import annotations

import numpy as np

from fembone.cases.registry import BuildContext
from fembone.cases.vertebra_spec import PresetLoad, VertebraSpec
from fembone.core.errors import InputError
from fembone.core.loads import traction_load
from fembone.core.model import ReferencePoint
from fembone.core.selectors import orient_faces
from fembone.spine.boundary import potting_foundation

TOP = "superior"  # the reference point that carries the loads
FACES = {"in_vitro": ("cap_superior_face", "cap_inferior_face"), "discs": ("disc_superior_face", "disc_inferior_face")}


def _couple(ctx: BuildContext, faces: np.ndarray, kind: str, label: str) -> ReferencePoint:
    model, mesh = ctx.model, ctx.mesh
    faces, _ = orient_faces(mesh, faces)
    w = traction_load(mesh.points, faces, np.array([1.0, 0.0, 0.0]), mesh.n_nodes)[:, 0]
    nodes = np.unique(faces)
    at = (w[nodes] @ mesh.points[nodes]) / w[nodes].sum()
    j = int(model.layout.add_extra(at)[0])
    if kind == "rigid":
        model.constraints.rigid_coupling(nodes, j, mesh.points, label=f"{label} (rigid coupling)")
    else:
        wn = np.maximum(w[nodes], 1e-3 * w[nodes].max())
        model.constraints.distributing_coupling(nodes, wn, j, mesh.points, label=f"{label} (distributing coupling)")
    point = ReferencePoint(TOP, j, at, kind, nodes)
    model.points[TOP] = point
    return point


def displacement_controlled(spec_loadcases: dict) -> list[PresetLoad]:
    return [e for entries in spec_loadcases.values() for e in entries if isinstance(e, PresetLoad) and e.displacement is not None]


def apply_setup(spec: VertebraSpec, ctx: BuildContext) -> None:
    """Supports and the loaded reference point of the set-up in ``spec.boundary``."""
    model, mesh = ctx.model, ctx.mesh
    b = spec.boundary
    setup = b.setup
    meta = {"setup": setup}
    loads = [e for entries in ctx.spec.loadcases.values() for e in entries if isinstance(e, PresetLoad)]
    disp = [e for e in loads if e.displacement is not None]
    if disp and len(disp) != len(loads):
        raise InputError("load cases mix platen displacement and force/moment presets; a test machine does one: "
                         "use displacement in every preset or in none", disp[0].path)
    if setup == "endplates":
        meta.update(inferior=b.inferior, coupling=b.coupling, **({"potting": b.potting} if b.potting else {}))
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
        point = _couple(ctx, mesh.facet_sets["endplate_superior"], b.coupling, "superior endplate")
    else:
        top, bottom = FACES[setup]
        missing = [g for g in (top, bottom) if g not in mesh.facet_sets]
        if missing:
            what = "PMMA caps" if setup == "in_vitro" else "disc geometry"
            raise InputError(f"setup: {setup} needs {what}: mesh {mesh.source} lacks {', '.join(missing)} "
                             "(use a generated vertebra, or setup: endplates)", "boundary.setup")
        inf = np.unique(mesh.facet_sets[bottom])
        model.constraints.fix((3 * inf[:, None] + np.arange(3)).ravel(), label=f"{bottom} (fixed)")
        point = _couple(ctx, mesh.facet_sets[top], "rigid", f"{top} (platen)")
        if setup == "in_vitro":
            if any(e.kind == "moment" for e in loads):
                bad = next(e for e in loads if e.kind == "moment")
                raise InputError("setup: in_vitro holds the platen parallel (a compression test); "
                                 "moment presets need setup: discs or endplates", bad.path)
            held = [0, 1, 3, 4, 5]
            dofs = model.layout.extra_dofs(point.index)[0]
            model.constraints.fix(dofs[held], label="platen guided along z (in_vitro)")
        meta.update(cap=b.cap) if setup == "in_vitro" else meta.update(disc=b.disc)
    if disp:
        dofs = model.layout.extra_dofs(point.index)[0]
        model.constraints.fix(dofs[2:3], label="platen displacement (displacement control)")
        for e in disp:
            model.prescribed[e.loadcase] = (dofs[2:3], np.array([e.displacement]))
    ctx.meta["boundary"] = meta
