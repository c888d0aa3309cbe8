"""Case files: read YAML, validate it into typed descriptions, build models from them.

Importing this package registers every extension section (vertebra, lesions, cement,
screws, ...).  Units: mm, N, MPa.
"""

from fembone.cases import vertebra as _vertebra  # noqa: F401  (registers the vertebra sections)
from fembone.cases.generic import apply_overrides, build_model, load_case

__all__ = ["apply_overrides", "build_model", "load_case"]
