"""The one registry through which case-file extensions plug into parsing and building.

An :class:`Extension` owns some top-level keys (e.g. ``vertebra``, ``lesions``, ``cement``,
``screws``, ``boundary``) and some load-entry keys (e.g. ``preset``).  The generic parser
(:mod:`fembone.cases.parse`) hands it its keys and stores the typed description it returns;
the generic builder (:mod:`fembone.cases.build`) calls its hooks in a fixed order.  Neither
generic module imports an extension, so there is no import cycle: extensions register
themselves when :mod:`fembone.cases` is imported.  Units: mm, N, MPa.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fembone.core.mesh import Mesh, MeshCache, read_mesh
from fembone.core.model import Model

if TYPE_CHECKING:
    from fembone.cases.spec import CaseSpec


class BuildContext:
    """What the builder and the extensions' hooks share while one model is built."""

    def __init__(self, spec: CaseSpec, mesh_cache: MeshCache | None = None):
        self.spec = spec
        self.mesh_cache = mesh_cache
        self.mesh: Mesh | None = None
        self.model: Model | None = None
        self.meta: dict = {}

    def read_mesh(self, path: Path, order: int | None = None) -> Mesh:
        """Read a mesh file, through the study's cache when one was given."""
        return self.mesh_cache.read(path, order=order) if self.mesh_cache else read_mesh(path, order=order)


class Extension:
    """Base class of a case-file extension; override what applies.

    Parsing (no mesh): :meth:`claims` and :meth:`parse` see the raw mapping of the case;
    :meth:`parse_load` one load entry.  Building, in this order: :meth:`mesh` (make the
    mesh when the case has no ``mesh`` key), :meth:`materials` (materials and per-element
    ids instead of ``materials``/``assign``), :meth:`build` (regions, supports, screws ...,
    before generic constraints), :meth:`load` (one parsed load entry -> force vector),
    :meth:`finish` (after all load cases).
    """

    name: str = ""
    keys: tuple[str, ...] = ()  # top-level keys this extension owns
    load_keys: tuple[str, ...] = ()  # keys that mark a load entry as this extension's
    load_types: tuple[type, ...] = ()  # the parsed load-entry classes parse_load returns
    mesh_keys: tuple[str, ...] = ()  # keys with which this extension makes the mesh (instead of 'mesh')

    def claims(self, raw: dict) -> bool:
        """Whether this extension describes the model of this case (then :meth:`parse` runs)."""
        return any(k in raw for k in self.keys)

    def owns_materials(self, raw: dict) -> bool:
        """Whether this extension, not the generic parser, reads the case's ``materials`` key."""
        return False

    def parse(self, raw: dict, source: str, base: Path) -> Any:
        raise NotImplementedError

    def parse_load(self, entry: dict, path: str, spec: Any) -> Any:
        raise NotImplementedError

    def mesh(self, spec: Any, ctx: BuildContext) -> Mesh | None:
        return None

    def materials(self, spec: Any, ctx: BuildContext):
        return None

    def build(self, spec: Any, ctx: BuildContext) -> None:
        return None

    def load(self, spec: Any, entry: Any, ctx: BuildContext) -> np.ndarray:
        raise NotImplementedError

    def finish(self, spec: Any, ctx: BuildContext) -> None:
        """Last step, after load cases and probes (e.g. add companion load cases)."""
        return None


#: registered extensions, in registration order
EXTENSIONS: dict[str, Extension] = {}

#: top-level keys every case may use
TOP_LEVEL = ("name", "description", "mesh", "materials", "assign", "constraints", "loadcases", "probes", "solver")


def register(ext: Extension) -> Extension:
    """Add an extension; its keys must not clash with the generic keys or another extension's."""
    taken = set(TOP_LEVEL).union(*(e.keys for e in EXTENSIONS.values()))
    clash = taken.intersection(ext.keys)
    if clash:
        raise ValueError(f"extension {ext.name}: keys already taken: {sorted(clash)}")
    EXTENSIONS[ext.name] = ext
    return ext


def extension_keys() -> tuple[str, ...]:
    return tuple(k for e in EXTENSIONS.values() for k in e.keys)


def load_keys() -> dict[str, Extension]:
    return {k: e for e in EXTENSIONS.values() for k in e.load_keys}
