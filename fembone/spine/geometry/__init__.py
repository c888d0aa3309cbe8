"""Parametric anatomy: gmsh/OpenCASCADE models of lumbar vertebrae (mm, RAS frame)."""

from fembone.spine.geometry.vertebra import (
    LEVELS,
    SURFACE_GROUPS,
    VOLUME_GROUPS,
    VertebraDims,
    generate_vertebra,
    vertebra_dims,
    vertebra_landmarks,
)

__all__ = [
    "LEVELS",
    "SURFACE_GROUPS",
    "VOLUME_GROUPS",
    "VertebraDims",
    "generate_vertebra",
    "vertebra_dims",
    "vertebra_landmarks",
]
