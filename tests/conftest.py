"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh mesh cache (``FEMBONE_CACHE``) for one test module; yields its folder."""
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("fembone-cache")
    mp.setenv("FEMBONE_CACHE", str(d))
    yield d
    mp.undo()
