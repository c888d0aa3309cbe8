"""fembone: finite-element biomechanics of vertebral stabilisation.

Units everywhere: millimetres (mm), newtons (N), megapascals (MPa = N/mm^2);
stiffness in N/mm, moments in N*mm, volumes in mm^3 (cement in mL = 1000 mm^3).
"""

from fembone.core.errors import FemboneError, InputError, ModelError, SolverError

from fembone.core.version import __version__

__all__ = ["FemboneError", "InputError", "ModelError", "SolverError", "__version__"]
