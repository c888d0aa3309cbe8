"""The installed fembone version, single-sourced from the package metadata (pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fembone")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
