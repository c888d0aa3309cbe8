"""One gmsh model at a time: lock, initialise, clean up (gmsh is a process-wide singleton)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from fembone.core.errors import InputError

_GMSH_LOCK = threading.Lock()  # gmsh is not thread-safe
log = logging.getLogger("fembone.geometry")


@contextlib.contextmanager
def gmsh_model(prefix: str, verbose: bool = False) -> Iterator:
    """Yield the ``gmsh`` module with a fresh current model named after ``prefix``.

    gmsh is initialised here (``interruptible=False``, so this works from worker threads)
    and finalised on exit, even after errors; if the caller had gmsh running already, only
    the model added here is removed.
    """
    with _GMSH_LOCK:
        gmsh = import_gmsh()
        log.info("meshing %s with gmsh %s", prefix.replace("_", " "), getattr(gmsh, "__version__", ""))
        started = time.perf_counter()
        owns = not gmsh.isInitialized()
        if owns:
            gmsh.initialize(interruptible=False)
        model = f"{prefix}_{time.monotonic_ns()}"
        try:
            gmsh.option.setNumber("General.Terminal", 1 if verbose else 0)
            gmsh.option.setNumber("General.Verbosity", 5 if verbose else 2)
            gmsh.model.add(model)
            yield gmsh
        finally:
            log.debug("gmsh %s done in %.1f s", prefix, time.perf_counter() - started)
            if owns:
                gmsh.finalize()
            else:
                with contextlib.suppress(Exception):
                    gmsh.model.setCurrent(model)
                    gmsh.model.remove()


def import_gmsh():
    """The ``gmsh`` module, or one line naming the extra to install (no wheel on Linux ARM)."""
    try:
        import gmsh
    except (ImportError, OSError) as exc:  # OSError: the wheel's libgmsh or its GL libraries
        raise InputError(
            f'meshing needs gmsh, which cannot be imported here ({type(exc).__name__}: {exc}); '
            'install it with: pip install "fembone[mesh]" (or give a ready mesh file)'
        ) from None
    return gmsh
