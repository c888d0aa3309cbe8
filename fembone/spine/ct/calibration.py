"""CT calibration: voxel values -> K2HPO4-equivalent density (mg/cm^3).

Three kinds, as in the case file (``ct.calibration``):

* ``{kind: density}`` -- the image already holds K2HPO4-equivalent density in mg/cc
  (e.g. the Bonelab spineFE-benchmark images, calibrated with an internal calibration).
* ``{kind: linear, slope: a, intercept: b}`` -- rho = a HU + b (mg/cc per HU, mg/cc).
* ``{kind: phantom, rods: [[HU, mg_cc], ...]}`` -- the line through the calibration rods of a
  QCT phantom by ordinary least squares (rho = a HU + b), with its coefficient of
  determination R^2 = 1 - SS_res / SS_tot reported.  Fewer than two rods (or rods that all
  read the same HU) cannot define a line and are an error; R^2 < 0.9 is a warning (a
  phantom fit is normally R^2 > 0.99; the Bonelab internal calibration of the example scan
  reports 0.999).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from fembone.core import schema as S
from fembone.core.errors import InputError

__all__ = ["Calibration", "fit_phantom", "calibration_from_spec", "R2_WARN", "KINDS"]

KINDS = ("density", "linear", "phantom")
#: a phantom line fitting worse than this is reported as a warning
R2_WARN = 0.9


@dataclass(frozen=True)
class Calibration:
    """rho (mg/cc K2HPO4) = ``slope`` x value + ``intercept``; ``r2`` for phantom fits."""

    kind: str = "density"
    slope: float = 1.0
    intercept: float = 0.0
    r2: float | None = None
    rods: tuple[tuple[float, float], ...] = field(default=())

    def apply(self, values: np.ndarray) -> np.ndarray:
        """K2HPO4-equivalent density (mg/cc) of voxel values (HU, or mg/cc for ``density``)."""
        v = np.asarray(values, float)
        if self.kind == "density":
            return v
        return self.slope * v + self.intercept

    def describe(self) -> dict:
        out = {"kind": self.kind, "slope_mgcc_per_HU": self.slope, "intercept_mgcc": self.intercept}
        if self.r2 is not None:
            out["r2"] = self.r2
            out["rods"] = [list(r) for r in self.rods]
        return out


def fit_phantom(rods, where: str = "calibration.rods") -> Calibration:
    """Least-squares line rho = a HU + b through ``rods`` [[HU, mg/cc], ...]; R^2 reported.

    Raises :class:`InputError` for fewer than two rods or rods of equal HU; warns below
    R^2 = 0.9.
    """
    pts = np.asarray(rods, float).reshape(-1, 2) if len(rods) else np.zeros((0, 2))
    if len(pts) < 2:
        raise InputError(f"a phantom calibration needs at least two rods [HU, mg/cc], got {len(pts)}", where)
    hu, rho = pts[:, 0], pts[:, 1]
    if np.ptp(hu) == 0:
        raise InputError(f"all {len(pts)} rods read the same HU ({hu[0]:g}); their line is undefined", where)
    a, b = np.polyfit(hu, rho, 1)
    res = rho - (a * hu + b)
    ss_tot = float(((rho - rho.mean()) ** 2).sum())
    r2 = 1.0 - float((res**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    if r2 < R2_WARN:
        warnings.warn(f"{where}: phantom fit R^2 = {r2:.3f} < {R2_WARN} (rho = {a:.4g} HU + {b:.4g}); "
                      "check the rod values", UserWarning, stacklevel=2)
    return Calibration("phantom", float(a), float(b), r2, tuple((float(h), float(r)) for h, r in pts))


def calibration_from_spec(spec, where: str = "ct.calibration") -> Calibration:
    """A :class:`Calibration` from its case-file mapping (``None`` means ``{kind: density}``)."""
    if spec is None:
        return Calibration()
    if isinstance(spec, str):
        spec = {"kind": spec}
    S.mapping(spec, where, allowed=("kind", "slope", "intercept", "rods"), required=("kind",))
    kind = S.string(spec["kind"], f"{where}.kind", choices=KINDS)
    extra = [k for k in spec if k != "kind" and k not in {"density": (), "linear": ("slope", "intercept"),
                                                          "phantom": ("rods",)}[kind]]
    if extra:
        raise InputError(f"'{extra[0]}' does not apply to kind '{kind}'", f"{where}.{extra[0]}")
    if kind == "density":
        return Calibration()
    if kind == "linear":
        S.mapping(spec, where, required=("slope", "intercept"))
        a = S.number(spec["slope"], f"{where}.slope")
        if a <= 0:
            raise InputError(f"slope must be > 0 mg/cc per HU (denser bone reads higher HU), got {a:g}", f"{where}.slope")
        return Calibration("linear", a, S.number(spec["intercept"], f"{where}.intercept"))
    rods = S.seq(spec.get("rods", []), f"{where}.rods")
    for i, r in enumerate(rods):
        S.vector(r, f"{where}.rods[{i}]", n=2)
    cal = fit_phantom(rods, f"{where}.rods")
    if cal.slope <= 0:
        raise InputError(f"the rods give a slope of {cal.slope:.4g} mg/cc per HU; it must be > 0", f"{where}.rods")
    return cal
