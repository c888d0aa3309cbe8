"""Case files: read YAML, validate it into typed descriptions, build models from them.

``read_case``/``parse_case`` give a :class:`~fembone.cases.spec.CaseSpec`; ``build`` makes
the model; ``load_case`` does both.  Importing this package registers every extension
(vertebra, lesions, cement, screws, ...).  Units: mm, N, MPa.
"""

from fembone.cases import vertebra as _vertebra  # noqa: F401  (registers the vertebra extension)
from fembone.cases import analysis as _analysis  # noqa: F401  (registers 'analysis', after vertebra)
from fembone.cases import ct as _ct  # noqa: F401  (registers the CT extension; after vertebra: it adds to it)
from fembone.cases import segment as _segment  # noqa: F401  (registers the segment extension)
from fembone.cases.build import build
from fembone.cases.generic import apply_overrides, build_model, load_case, read_case
from fembone.cases.parse import parse_case
from fembone.cases.spec import CaseSpec

__all__ = ["CaseSpec", "apply_overrides", "build", "build_model", "load_case", "parse_case", "read_case"]
