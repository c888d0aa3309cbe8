"""fembone: finite-element biomechanics of vertebral stabilisation.

Units everywhere: millimetres (mm), newtons (N), megapascals (MPa = N/mm^2);
stiffness in N/mm, moments in N*mm, volumes in mm^3 (cement in mL = 1000 mm^3).
"""

from fembone.errors import FemboneError, InputError, ModelError, SolverError

__version__ = "0.1.0"

__all__ = ["FemboneError", "InputError", "ModelError", "SolverError", "__version__"]
