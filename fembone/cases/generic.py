"""Case files (YAML) -> typed description -> :class:`fembone.core.model.Model`. Units: mm, N, MPa.

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

Extensions (vertebra, lesions, cement, screws, ...) register in :mod:`fembone.cases.registry`;
unknown keys are errors listing the known ones.  Reading is two steps: :func:`parse_case`
(validated, typed :class:`~fembone.cases.spec.CaseSpec`) then :func:`build` (the model).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from fembone.cases.build import build
from fembone.cases.parse import parse_case
from fembone.cases.spec import CaseSpec
from fembone.core import schema as S
from fembone.core.keypath import set_path
from fembone.core.mesh import MeshCache
from fembone.core.model import Model


def read_case(path: str | Path, overrides: dict | None = None) -> CaseSpec:
    """Read and validate a case file (optionally with key-path overrides) into a :class:`CaseSpec`."""
    path = Path(path)
    data = S.load_yaml(path)
    if overrides:
        data = apply_overrides(data, overrides)
    return parse_case(data, base=path.parent, source=str(path))


def load_case(path: str | Path, overrides: dict | None = None, mesh_cache: MeshCache | None = None) -> Model:
    """Read, validate and build the model of a case file."""
    return build(read_case(path, overrides), mesh_cache)


def apply_overrides(data: dict, overrides: dict) -> dict:
    """Set values by key path ('loadcases.tip[0].force', 'materials.bone.E')."""
    data = copy.deepcopy(data)
    for k, v in overrides.items():
        set_path(data, k, v)
    return data


def build_model(data: Any, base: Path | str = ".", source: str = "<case>", mesh_cache: MeshCache | None = None) -> Model:
    """Validate a parsed case (a dict) and build its :class:`Model`; ``mesh_cache`` shares parsed meshes."""
    return build(parse_case(data, base=base, source=source), mesh_cache)
