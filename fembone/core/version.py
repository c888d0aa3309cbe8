"""The installed fembone version, single-sourced from the package metadata (pyproject.toml),
and the software environment a result was computed in (for ``summary.json`` provenance)."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fembone")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

#: distributions whose versions change numbers or speed: recorded with every result
LIBRARIES = ("numpy", "scipy", "pyamg", "meshio", "mkl")


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    """Installed version of each distribution (None when not installed), from package metadata."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict:
    """fembone and library versions, Python, operating system and machine."""
    return {
        "fembone": __version__,
        "libraries": library_versions(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def peak_memory_mib() -> float | None:
    """Peak resident memory of this process so far (MiB), or None where it cannot be read.

    ``resource.getrusage`` on POSIX (``ru_maxrss``: KiB on Linux, bytes on macOS); on
    Windows psutil's peak working set when psutil is installed.
    """
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)
    except (ImportError, OSError, ValueError):
        pass
    try:
        import psutil

        info = psutil.Process().memory_info()
        peak = getattr(info, "peak_wset", None)
        return round(peak / 2**20, 1) if peak else None
    except Exception:  # psutil missing or unsupported here
        return None
