"""fembone: finite-element biomechanics of vertebral stabilisation.

Units everywhere: millimetres (mm), newtons (N), megapascals (MPa = N/mm^2);
stiffness in N/mm, moments in N*mm, volumes in mm^3 (cement in mL = 1000 mm^3).

Python API (the same steps as ``fembone run``)::

    import fembone
    model = fembone.load_case("cases/L1_lytic.yaml")        # parse, validate, build
    result = fembone.solve(model)                            # all load cases
    result.loadcases["standing"].summary()["risk"]           # stiffness, strength, ...
    result.to_pyvista("standing").plot(scalars="von_mises")  # stress field

Layers: :mod:`fembone.core` (the FE engine) <- :mod:`fembone.spine` (bone, lesions,
cement, screws, risk) <- :mod:`fembone.cases` (case files) <- :mod:`fembone.apps`
(commands, studies, pictures, verification).
"""

from fembone.core.errors import FemboneError, InputError, ModelError, SolverError
from fembone.core.version import __version__

__all__ = [
    "FemboneError", "InputError", "ModelError", "SolverError", "__version__",
    "build_model", "load_case", "parse_case", "read_case", "solve", "write_results",
]

_API = {
    "load_case": ("fembone.cases", "load_case"),
    "read_case": ("fembone.cases", "read_case"),
    "parse_case": ("fembone.cases", "parse_case"),
    "build_model": ("fembone.cases", "build_model"),
    "build": ("fembone.cases", "build"),
    "solve": ("fembone.core.analysis", "solve"),
    "write_results": ("fembone.core.output", "write_results"),
}


def __getattr__(name: str):
    """The API functions, imported on first use so that ``import fembone`` stays light."""
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'fembone' has no attribute '{name}'")
