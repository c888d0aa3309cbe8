"""The analysis model: a mesh, per-element materials, constraints and load cases. Units: mm, N, MPa.

A :class:`Model` is what a case file describes once validated; :mod:`fembone.core.analysis`
solves it.  It holds plain arrays (per-element Voigt stiffness, nodal load vectors), so
it can equally be built from Python without a case file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.materials import Material
from fembone.core.mesh import Mesh


@dataclass
class Probe:
    """A named scalar read from a field: ``field`` like 'displacement.z', ``reduce`` mean/min/max."""

    name: str
    field: str
    reduce: str
    nodes: np.ndarray | None = None  # for displacement
    faces: np.ndarray | None = None  # area-weighted displacement mean
    elements: np.ndarray | None = None  # for strain/stress


@dataclass
class ReferencePoint:
    """A 6-DOF node coupled to a surface (mm)."""

    name: str
    index: int  # extra-node index in the DofLayout
    position: np.ndarray
    kind: str  # rigid | distributing
    nodes: np.ndarray


@dataclass
class Model:
    """Everything needed to solve: geometry, element stiffness, constraints, loads."""

    name: str
    mesh: Mesh
    materials: list[Material]
    material_id: np.ndarray  # (ne,) index into materials
    C: np.ndarray  # (ne, 6, 6) Voigt stiffness per element (MPa), after any mixing
    layout: DofLayout
    constraints: ConstraintSet
    loads: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n_dofs,) N, N mm
    #: per-load-case values of prescribed DOFs (displacement control): name -> (dofs, values mm/rad);
    #: the DOFs must be fixed in ``constraints``; other load cases keep the values given there
    prescribed: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: load cases solved alongside the others but not reported (e.g. a preload alone, which a
    #: postprocessor superposes with the load case it belongs to: ``LoadCaseResult.solutions``)
    companions: set[str] = field(default_factory=set)
    probes: list[Probe] = field(default_factory=list)
    points: dict[str, ReferencePoint] = field(default_factory=dict)
    solver: str | None = None
    solver_options: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    #: extra per-element fields written to VTU (e.g. lesion and cement volume fractions)
    cell_data: dict[str, np.ndarray] = field(default_factory=dict)
    #: functions (model, geometry, load-case result) -> dict of metrics merged into the summary
    postprocessors: list = field(default_factory=list)

    @property
    def n_dofs(self) -> int:
        return self.layout.n_dofs

    def node_dofs(self, nodes: np.ndarray, components=(0, 1, 2)) -> np.ndarray:
        return (3 * np.asarray(nodes)[:, None] + np.asarray(components)).ravel()

    def lame(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-element (lambda, mu) when every element is isotropic, else None (fast assembly path)."""
        C = self.C
        lam = C[:, 0, 1]
        mu = C[:, 3, 3]
        iso = np.zeros_like(C)
        iso[:, :3, :3] = lam[:, None, None]
        for i in range(3):
            iso[:, i, i] += 2 * mu
            iso[:, 3 + i, 3 + i] = mu
        if np.allclose(C, iso, rtol=1e-12, atol=1e-12 * np.abs(C).max()):
            return lam, mu
        return None
