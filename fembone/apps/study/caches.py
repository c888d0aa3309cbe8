"""Per-worker caches of a study: parsed meshes, assemblers and linear solvers.

Each worker process (or the parent, with one worker) keeps the last few meshes (an explicit
:class:`~fembone.core.mesh.MeshCache` passed to :func:`fembone.cases.build_model`), the
:class:`~fembone.core.assembly.Assembler` of each mesh file and order, and the last linear
solver per mesh, so a case that changes only material values or loads reuses them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from fembone.core.mesh import MeshCache

_LOCK = threading.RLock()
_MESHES = MeshCache(4)  # per-worker parsed meshes, passed explicitly to the case builder
_ASSEMBLERS: OrderedDict = OrderedDict()
_SOLVERS: dict = {}  # per-worker: the last linear solver per mesh key (PARDISO analysis reuse)
CACHE_SIZE = 4


def _assembler_for(model):
    """A cached Assembler of the model's mesh (key: mesh file + order + DOF count), or None."""
    import numpy as np

    mesh = model.mesh
    key = (str(mesh.source), mesh.order, model.n_dofs)
    with _LOCK:
        asm = _ASSEMBLERS.get(key)
        if asm is not None:
            same = asm.mesh is mesh or (
                asm.mesh.cells.shape == mesh.cells.shape and np.array_equal(asm.mesh.cells, mesh.cells)
                and np.array_equal(asm.mesh.points, mesh.points)
            )
            if same:
                _ASSEMBLERS.move_to_end(key)
                return key, asm
            del _ASSEMBLERS[key]
    return key, None


def _keep_assembler(key, asm) -> None:
    with _LOCK:
        _ASSEMBLERS[key] = asm
        while len(_ASSEMBLERS) > CACHE_SIZE:
            _ASSEMBLERS.popitem(last=False)


def clear_caches() -> None:
    with _LOCK:
        _MESHES.clear()
        _ASSEMBLERS.clear()
        _SOLVERS.clear()

