"""Typed descriptions of a case file, produced by :mod:`fembone.cases.parse` in one pass.

The builder (:mod:`fembone.cases.build`) turns a :class:`CaseSpec` into a
:class:`fembone.core.model.Model` without looking at raw YAML again.  Every entry keeps the
key path it came from (``path``) so that errors found only against the mesh (an empty
selection, a lesion outside the bone) still name the key.  Units: mm, N, MPa, N mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fembone.core.materials import Material
from fembone.core.selectors import Selector


@dataclass(frozen=True)
class MeshFile:
    """``mesh:``: a volume mesh file (absolute path) and an optional element order (1 or 2)."""

    file: Path
    order: int | None
    path: str = "mesh"


@dataclass(frozen=True)
class Assign:
    """``assign[i]``: paint ``material`` on the elements selected by ``where`` (all when None)."""

    material: str
    where: Selector | None
    path: str


@dataclass(frozen=True)
class Coupling:
    """``constraints[i]`` with ``coupling:``: a reference point tied to a surface."""

    kind: str  # rigid | distributing
    where: Selector
    point: str
    at: tuple[float, float, float] | None
    path: str


@dataclass(frozen=True)
class Fix:
    """``constraints[i]`` with ``fix``/``value``: prescribed components (0-2 x,y,z; 3-5 rx,ry,rz)."""

    where: Selector | None
    point: str | None
    components: tuple[int, ...]
    values: tuple[float, ...]
    path: str


@dataclass(frozen=True)
class PointLoad:
    """A force (N) and/or moment (N mm) on a reference point."""

    point: str
    force: tuple[float, float, float] | None
    moment: tuple[float, float, float] | None
    path: str


@dataclass(frozen=True)
class SurfaceLoad:
    """A load on selected faces or nodes: ``force`` (total N, area-weighted), ``traction`` (MPa),
    ``pressure`` (MPa, inward), ``nodal_force`` (N per node)."""

    kind: str
    where: Selector
    value: Any  # tuple of 3 floats, or a float for pressure
    path: str


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    field: str
    reduce: str
    where: Selector | None
    path: str


@dataclass(frozen=True)
class SolverSpec:
    name: str = "auto"
    rtol: float | None = None
    precision: str | None = None


@dataclass
class CaseSpec:
    """A validated case: everything needed to build the model."""

    name: str
    source: str
    base: Path
    mesh: MeshFile | None
    materials: dict[str, Material]
    assign: list[Assign]
    constraints: list[Coupling | Fix]
    loadcases: dict[str, list[Any]]  # PointLoad | SurfaceLoad | an extension's load entry
    probes: list[ProbeSpec]
    solver: SolverSpec
    description: str = ""
    #: extension name -> its typed description (e.g. 'vertebra' -> VertebraSpec)
    extensions: dict[str, Any] = field(default_factory=dict)
    #: the resolved case as read (after overrides), kept for provenance only, never for building
    resolved: dict = field(default_factory=dict)
