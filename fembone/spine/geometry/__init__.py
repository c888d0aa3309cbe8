"""Parametric anatomy: gmsh/OpenCASCADE models of lumbar vertebrae (mm, RAS frame)."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

from fembone.spine.geometry.vertebra import (
    LEVELS,
    SURFACE_GROUPS,
    VOLUME_GROUPS,
    VertebraDims,
    generate_vertebra,
    vertebra_dims,
    vertebra_landmarks,
)
from fembone.spine.geometry.vertebra_regions import (
    INCLUSION_CLIPS,
    Inclusion,
    inclusion_volumes,
    region_name,
    solve_inclusion_radius,
)
from fembone.spine.geometry.vertebra_setup import (
    SETUP_SURFACE_GROUPS,
    SETUP_VOLUME_GROUPS,
    SETUPS,
    endplate_dish_depth,
)

__all__ = [
    "INCLUSION_CLIPS",
    "LEVELS",
    "SETUPS",
    "SETUP_SURFACE_GROUPS",
    "SETUP_VOLUME_GROUPS",
    "SURFACE_GROUPS",
    "VOLUME_GROUPS",
    "Inclusion",
    "VertebraDims",
    "endplate_dish_depth",
    "generate_vertebra",
    "generator_fingerprint",
    "inclusion_volumes",
    "region_name",
    "solve_inclusion_radius",
    "vertebra_dims",
    "vertebra_landmarks",
]


def generator_fingerprint() -> str:
    """12 hex digits that change whenever any geometry module's source or the gmsh version changes.

    Hashes every ``*.py`` file of this package (sorted by name, name and bytes) and the installed
    gmsh version, so a mesh cache keyed on it never serves a mesh an older generator wrote.
    """
    h = hashlib.sha1()
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    try:
        h.update(metadata.version("gmsh").encode())
    except metadata.PackageNotFoundError:
        h.update(b"gmsh?")
    return h.hexdigest()[:12]
