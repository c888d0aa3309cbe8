"""MKL PARDISO (pip wheel ``mkl``) through ctypes: symmetric positive definite factorisation.

Matrix type 2 (real SPD), upper triangle, zero-based indices, METIS ordering; single
precision by default, refined to double precision by CG with the factorisation as
preconditioner (all load cases together).  The runtime (``libmkl_rt.so*``,
``libmkl_rt*.dylib``, ``mkl_rt*.dll``) is found from ``$FEMBONE_MKL_RT`` (or
``$PYPARDISO_MKL_RT``), the ``mkl`` distribution's file list, then the system loader;
wheels exist for x86-64 Linux, 64-bit Windows and Intel macOS.  Intel oneMKL Developer
Reference, "pardiso" (iparm, phases, error codes).
"""

from __future__ import annotations

import ctypes
import fnmatch
import functools
import importlib.metadata
import os
import platform
import sys
import time
from ctypes.util import find_library
from pathlib import Path, PurePath

import numpy as np
import scipy.sparse as sp

from fembone.core.errors import SolverError
from fembone.core.solvers_base import Solver, _block_pcg, register

#: file names of MKL's single dynamic runtime in the ``mkl`` wheels: Linux, macOS, Windows
MKL_RT_PATTERNS = ("libmkl_rt.so*", "libmkl_rt*.dylib", "mkl_rt*.dll")
#: environment variables naming the runtime explicitly (pypardiso's name kept working)
MKL_ENV = ("FEMBONE_MKL_RT", "PYPARDISO_MKL_RT")


def _mkl_from_distribution() -> str | None:
    """MKL's runtime listed in the installed ``mkl`` distribution's RECORD (no directory walk).

    The wheels put it in ``<prefix>/lib`` (``libmkl_rt.so.2``, ``libmkl_rt.2.dylib``) or
    ``<prefix>/Library/bin`` (``mkl_rt.2.dll``); the file list says which, wherever the
    prefix is (virtual environment, ``--user``, system).
    """
    try:
        files = importlib.metadata.files("mkl")
    except importlib.metadata.PackageNotFoundError:
        return None
    hits = [f for f in files or () if any(fnmatch.fnmatch(PurePath(str(f)).name, pat) for pat in MKL_RT_PATTERNS)]
    for f in sorted(hits, key=lambda f: len(PurePath(str(f)).name)):
        path = Path(f.locate())
        if path.is_file():
            return str(path.resolve())
    return None


def _mkl_search() -> tuple[str | None, str]:
    """(path of libmkl_rt or None, how it was found or why not).

    Order: $FEMBONE_MKL_RT / $PYPARDISO_MKL_RT, the ``mkl`` distribution's file list, then
    the system loader's search path (``ctypes.util.find_library``).  Never walks directories.
    """
    for var in MKL_ENV:
        if os.environ.get(var):
            return os.environ[var], f"${var}"
    path = _mkl_from_distribution()
    if path:
        return path, "the mkl wheel"
    path = find_library("mkl_rt")
    if path:
        return path, "the system library path"
    if not _mkl_platform():
        return None, f"no MKL wheel exists for this platform ({sys.platform} {platform.machine()})"
    return None, "MKL runtime not found (pip install mkl, or set FEMBONE_MKL_RT to libmkl_rt)"


def _mkl_platform() -> bool:
    """True where PyPI has ``mkl`` wheels: x86-64 Linux, 64-bit Windows, Intel macOS."""
    return platform.machine().lower() in ("x86_64", "amd64")


@functools.lru_cache(maxsize=1)
def _find_mkl() -> str | None:
    """Path of MKL's runtime library, or None (see :func:`_mkl_search`)."""
    return _mkl_search()[0]


_PARDISO_ERRORS = {
    -1: "input inconsistent",
    -2: "not enough memory",
    -3: "reordering problem",
    -4: "zero pivot: the matrix is not positive definite (check for free rigid-body motions or a nu near 0.5)",
    -5: "unclassified internal error",
    -6: "reordering failed",
    -7: "diagonal matrix is singular",
    -8: "32-bit integer overflow",
    -9: "not enough memory for out-of-core",
}


@register
class Pardiso(Solver):
    """MKL PARDISO, symmetric positive definite (mtype 2), upper triangle, zero-based indices.

    ``precision='single'`` factorises in float32 (half the memory, ~2x faster) and refines
    with CG in double precision, the factorisation serving as preconditioner.
    """

    name = "pardiso"
    precision: str = "single"

    _lib = None
    _why_not: str | None = None

    @classmethod
    def _load(cls):
        if cls._lib is None:
            path, how = _mkl_search()
            if path is None:
                raise SolverError(f"{how}; use solver: amg")
            if sys.platform == "win32" and os.path.isdir(os.path.dirname(path)):
                os.add_dll_directory(os.path.dirname(path))  # mkl_rt loads mkl_core etc. beside it
            try:
                lib = ctypes.CDLL(path)
                lib.pardiso.restype = None
            except (OSError, AttributeError) as exc:
                raise SolverError(f"MKL runtime {path} (from {how}) could not be loaded: {exc}") from None
            cls._lib = lib
        return cls._lib

    @classmethod
    def available(cls) -> bool:
        return cls.unavailable_reason() is None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when PARDISO can be used, else one line saying why not (remembered)."""
        if cls._lib is not None:
            return None
        if cls._why_not is None:
            try:
                cls._load()
                return None
            except SolverError as exc:
                cls._why_not = str(exc)
        return cls._why_not

    def _call(self, phase: int, b: np.ndarray | None = None) -> np.ndarray | None:
        lib = self._load()
        i32 = ctypes.POINTER(ctypes.c_int32)
        n = self.n
        nrhs = 1 if b is None or b.ndim == 1 else b.shape[1]
        if b is None:
            bb = np.zeros(n, self.dtype)
        else:
            bb = np.asfortranarray(b, dtype=self.dtype)
        x = np.zeros_like(bb)
        err = ctypes.c_int32(0)
        lib.pardiso(
            self.pt.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(ctypes.c_int32(1)),
            ctypes.byref(ctypes.c_int32(1)),
            ctypes.byref(ctypes.c_int32(2)),
            ctypes.byref(ctypes.c_int32(phase)),
            ctypes.byref(ctypes.c_int32(n)),
            self.a.ctypes.data_as(ctypes.c_void_p),
            self.ia.ctypes.data_as(i32),
            self.ja.ctypes.data_as(i32),
            ctypes.c_void_p(),
            ctypes.byref(ctypes.c_int32(nrhs)),
            self.iparm.ctypes.data_as(i32),
            ctypes.byref(ctypes.c_int32(0)),
            bb.ctypes.data_as(ctypes.c_void_p),
            x.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(err),
        )
        if err.value != 0:
            raise SolverError(f"PARDISO error {err.value}: {_PARDISO_ERRORS.get(err.value, 'unknown')}")
        return x if b is not None else None

    def setup(self, K, near_nullspace=None):
        """Factorise K.  A solver set up before on a matrix with the same sparsity pattern (the
        parametric-study case: only material values change) keeps PARDISO's fill-reducing
        ordering and symbolic analysis and redoes only the numerical factorisation (phase 22)."""
        t = time.perf_counter()
        self.K = K.tocsr()
        U = sp.triu(self.K, format="csr")
        U.sort_indices()
        dtype = np.float32 if self.precision == "single" else np.float64
        ia = U.indptr.astype(np.int32)
        ja = U.indices.astype(np.int32)
        reuse = (
            getattr(self, "pt", None) is not None and self.pt.any() and self.dtype == dtype
            and self.n == K.shape[0] and np.array_equal(self.ia, ia) and np.array_equal(self.ja, ja)
        )
        if not reuse and getattr(self, "pt", None) is not None and self.pt.any():
            self._call(-1)  # release the previous factorisation
        self.dtype = dtype
        self.n = K.shape[0]
        self.a = U.data.astype(self.dtype)
        self.ia, self.ja = ia, ja
        if reuse:
            self._call(22)
        else:
            self.pt = np.zeros(64, np.int64)
            self.iparm = np.zeros(64, np.int32)
            ip = self.iparm
            ip[0] = 1  # user-supplied parameters
            ip[1] = 2  # METIS nested dissection
            ip[7] = 0  # no iterative refinement inside PARDISO (we refine with CG)
            ip[9] = 8
            ip[17] = -1  # report nnz of the factor
            ip[23] = 1  # parallel two-level factorisation
            ip[27] = 1 if self.dtype == np.float32 else 0
            ip[34] = 1  # zero-based indexing
            self._call(12)
        self.info.update(
            factor_s=time.perf_counter() - t, factor_nnz=int(self.iparm[17]), precision=self.precision,
            reused_analysis=bool(reuse),
        )

    def _apply(self, b):
        x = self._call(33, np.asarray(b))
        return x.astype(float)

    def solve(self, b):
        b = np.asarray(b, float)
        cols = b.reshape(self.n, -1)
        out = np.empty_like(cols)
        iters = []
        if self.dtype == np.float64:
            out[:] = self._apply(cols).reshape(cols.shape)
            iters = [0] * cols.shape[1]
        else:
            # all load cases refine together: one PARDISO call per CG step serves every column
            out[:], iters = _block_pcg(self.K, cols, lambda r: self._apply(r).reshape(r.shape), self.rtol, self.maxiter)
        self.info["iterations"] = iters
        self.info["residual"] = self._residual(self.K, out, cols)
        return out.reshape(b.shape)

    def __del__(self):
        try:
            if getattr(self, "pt", None) is not None and self.pt.any():
                self._call(-1)
        except Exception:
            pass
