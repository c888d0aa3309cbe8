"""Lesion materials for the volume-fraction (smeared) path. Units: MPa.

Void lesions (``type: void``): Costa et al. (Bone Reports 12:100257, 2020) modelled lytic
lesions as holes.  In a conforming mesh a hole is simply absent elements.  On a mesh that
cannot be remeshed (imported, CT) a void is painted as a per-element void fraction f.

Hill's average cannot take a void: the Reuss bound of a mixture that contains a phase with
zero stiffness is zero (its compliance is infinite), so Hill = Voigt / 2 for any f > 0 and an
element that is 1 % void would lose half its stiffness.  The Voigt estimate with a void,

    C(f) = (1 - f) C_host,

is used instead: the upper bound, exact for a void layer parallel to the load, and linear in f,
so a lesion of volume V removes stiffness in proportion to V (as Costa et al. found: a linear
stiffness loss with lesion volume).  Fully void elements keep ``floor`` x C_host so the global
stiffness stays non-singular; remove them from the mesh when they disconnect a region.
"""

from __future__ import annotations

import numpy as np

from fembone.core.errors import InputError

#: relative stiffness kept by an element that is entirely void (keeps K non-singular)
VOID_FLOOR = 1e-6


def void_stiffness(C: np.ndarray, void_fraction, floor: float = VOID_FLOOR) -> np.ndarray:
    """Stiffness (ne, 6, 6) of elements of host stiffness ``C`` ((6, 6) or (ne, 6, 6)) that are ``f`` void.

    C_eff = max(1 - f, floor) * C (Voigt estimate with a void phase; see the module docstring).
    """
    f = np.asarray(void_fraction, float)
    if np.any(f < 0) or np.any(f > 1):
        raise InputError(f"void fraction must lie in [0, 1] (got {f.min():.3g} .. {f.max():.3g})", "lesions")
    C = np.asarray(C, float)
    scale = np.maximum(1.0 - f, floor)
    return scale[..., None, None] * C
