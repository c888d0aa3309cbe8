"""Registries through which case-file sections plug in (mesh sources, model sections, load kinds).

The generic case builder (:mod:`fembone.cases.generic`) reads these registries; extension
sections (:mod:`fembone.cases.vertebra`, screws, ...) add to them.  Neither imports the
other, so there is no import cycle.  Units: mm, N, MPa.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fembone.core.mesh import Mesh, MeshCache, read_mesh
from fembone.core.model import Model


class CaseContext:
    """What the section handlers share while a case is being built."""

    def __init__(self, data: dict, base: Path, source: str, mesh_cache: MeshCache | None = None):
        self.data = data
        self.mesh_cache = mesh_cache
        self.base = base
        self.source = source
        self.mesh: Mesh | None = None
        self.model: Model | None = None
        self.materials: dict = {}
        self.meta: dict = {}

    def read_mesh(self, path: Path, order: int | None = None) -> Mesh:
        """Read a mesh file, through the study's cache when one was given."""
        return self.mesh_cache.read(path, order=order) if self.mesh_cache else read_mesh(path, order=order)

    def path(self, value: str, key: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else (self.base / p)


# Section handlers run in this order; each validates its own keys.
SECTIONS: dict[str, Callable[[CaseContext, Any, str], None]] = {}
#: top-level keys every case may use; handlers for them are registered below
TOP_LEVEL = ["name", "description", "mesh", "materials", "assign", "constraints", "loadcases", "probes", "solver"]
#: hooks that build the mesh when no ``mesh`` key is given (e.g. generated vertebrae)
MESH_SOURCES: dict[str, Callable[[CaseContext, Any, str], Mesh]] = {}
#: extra sections run after materials are assigned and before constraints (lesions, cement, screws...)
MODEL_SECTIONS: dict[str, Callable[[CaseContext, Any, str], None]] = {}
#: extra load entry kinds: key -> handler(ctx, entry, path) -> (n_dofs,) vector
LOAD_KINDS: dict[str, Callable] = {}
#: alternative material sources: hook(ctx, spec, path) -> (name -> Material, element material ids) or None
MATERIAL_MODES: list[Callable] = []
#: hooks run after materials and model sections, before constraints: hook(ctx)
MODEL_HOOKS: list[Callable] = []


