"""Linear elastic materials as registered, swappable parts. Units: MPa.

Each law is a frozen dataclass registered under the ``type`` name used in case
files; it returns the 6x6 stiffness in Voigt notation with engineering shear
strains, component order ``xx, yy, zz, xy, yz, xz``.  Constitutive data that is
not positive definite (e.g. ``nu >= 0.5``) is rejected with an error naming the
material.

Sources: isotropic Hooke's law and the transversely isotropic compliance in
terms of engineering constants (Lekhnitskii, *Theory of Elasticity of an
Anisotropic Body*, 1981; Jones, *Mechanics of Composite Materials*, 2nd ed., §2.4).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from fembone.core.errors import InputError, show
from fembone.core.schema import is_number

#: Voigt index of the symmetric pair (a, b): xx yy zz xy yz xz
VOIGT = np.array([[0, 3, 5], [3, 1, 4], [5, 4, 2]])

MATERIALS: dict[str, type[Material]] = {}


def register(cls):
    """Class decorator: make a material law available under ``cls.type_name``."""
    MATERIALS[cls.type_name] = cls
    return cls


@dataclass(frozen=True)
class Material:
    """Base class; subclasses define ``stiffness()`` (6x6 Voigt, MPa)."""

    type_name: ClassVar[str] = ""
    name: str = "material"

    def stiffness(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def youngs_modulus(self) -> float:
        """A representative modulus (MPa), used for scaling and reports."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`InputError` unless the stiffness is symmetric positive definite."""
        C = self.stiffness()
        if not np.all(np.isfinite(C)):
            raise InputError("elastic constants give a non-finite stiffness", f"materials.{self.name}")
        ev = np.linalg.eigvalsh(_mandel(C))
        if ev.min() <= 1e-12 * abs(ev).max():
            raise InputError(
                f"elastic constants are not positive definite ({self._describe()})", f"materials.{self.name}"
            )

    def _describe(self) -> str:
        return ", ".join(
            f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self) if f.name != "name"
        )

    @classmethod
    def fields(cls) -> dict[str, Any]:
        return {f.name: f for f in dataclasses.fields(cls) if f.name != "name"}


def _mandel(C: np.ndarray) -> np.ndarray:
    """Voigt (engineering shear) -> Mandel form, whose eigenvalues are the tensor's."""
    s = np.array([1, 1, 1, np.sqrt(2), np.sqrt(2), np.sqrt(2)])
    return C * np.outer(s, s)


def isotropic_stiffness(E, nu) -> np.ndarray:
    """Voigt stiffness of an isotropic solid; E (MPa) and nu may be arrays -> (..., 6, 6)."""
    E = np.asarray(E, float)
    nu = np.asarray(nu, float)
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    mu = E / (2 * (1 + nu))
    C = np.zeros(E.shape + (6, 6))
    C[..., :3, :3] = lam[..., None, None]
    for i in range(3):
        C[..., i, i] += 2 * mu
        C[..., 3 + i, 3 + i] = mu
    return C


@register
@dataclass(frozen=True)
class Isotropic(Material):
    """Isotropic linear elasticity: Young's modulus ``E`` (MPa), Poisson's ratio ``nu``."""

    type_name: ClassVar[str] = "isotropic"
    E: float = 1.0
    nu: float = 0.3

    def check(self) -> None:
        where = f"materials.{self.name}"
        if not self.E > 0:
            raise InputError(f"E = {self.E} must be > 0 MPa", where)
        if not -1.0 < self.nu < 0.5:
            raise InputError(
                f"nu = {self.nu} must satisfy -1 < nu < 0.5 (nu >= 0.5 is incompressible, "
                "which displacement elements cannot represent; use e.g. 0.49)",
                where,
            )

    def stiffness(self) -> np.ndarray:
        return isotropic_stiffness(self.E, self.nu)

    @property
    def youngs_modulus(self) -> float:
        return self.E


@register
@dataclass(frozen=True)
class TransverseIsotropic(Material):
    """Transversely isotropic about ``axis`` (e.g. the cranio-caudal axis of trabecular bone).

    ``E_axial``: modulus along the axis; ``E_transverse``: in the plane normal to it (MPa);
    ``nu_axial``: transverse contraction under axial load (eps_t = -nu_axial sigma_a / E_axial);
    ``nu_transverse``: in-plane Poisson ratio; ``G_axial``: shear modulus in planes containing
    the axis (MPa).  In-plane shear modulus G_t = E_transverse / (2 (1 + nu_transverse)).
    """

    type_name: ClassVar[str] = "transverse_isotropic"
    E_axial: float = 1.0
    E_transverse: float = 1.0
    nu_axial: float = 0.3
    nu_transverse: float = 0.3
    G_axial: float = 0.4
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)

    def check(self) -> None:
        where = f"materials.{self.name}"
        for key in ("E_axial", "E_transverse", "G_axial"):
            if not getattr(self, key) > 0:
                raise InputError(f"{key} = {getattr(self, key)} must be > 0 MPa", where)
        if not -1.0 < self.nu_transverse < 1.0:  # G_t = E_t / (2 (1 + nu_t)) must be positive and finite
            raise InputError(
                f"nu_transverse = {self.nu_transverse} must satisfy -1 < nu_transverse < 1 "
                "(elastic constants would not be positive definite)",
                where,
            )
        a = np.asarray(self.axis, float)
        if a.shape != (3,) or not np.linalg.norm(a) > 0:
            raise InputError(f"axis = {list(self.axis)} must be a non-zero 3-vector", where)
        super().check()

    def local_compliance(self) -> np.ndarray:
        """Compliance with the axis along local z (Voigt, engineering shear)."""
        Ea, Et, nua, nut, Ga = self.E_axial, self.E_transverse, self.nu_axial, self.nu_transverse, self.G_axial
        Gt = Et / (2 * (1 + nut))
        S = np.zeros((6, 6))
        S[0, 0] = S[1, 1] = 1 / Et
        S[2, 2] = 1 / Ea
        S[0, 1] = S[1, 0] = -nut / Et
        S[0, 2] = S[2, 0] = S[1, 2] = S[2, 1] = -nua / Ea
        S[3, 3] = 1 / Gt  # xy: in the transverse plane
        S[4, 4] = S[5, 5] = 1 / Ga  # yz, xz: planes containing the axis
        return S

    def stiffness(self) -> np.ndarray:
        S = self.local_compliance()
        try:
            C_local = np.linalg.inv(S)
        except np.linalg.LinAlgError:
            raise InputError(
                f"elastic constants are not positive definite ({self._describe()})", f"materials.{self.name}"
            ) from None
        return rotate_voigt(C_local, _frame_from_axis(np.asarray(self.axis, float)))

    @property
    def youngs_modulus(self) -> float:
        return self.E_axial


def _frame_from_axis(axis: np.ndarray) -> np.ndarray:
    """Rotation R whose third column is ``axis``: x_global = R x_local."""
    z = axis / np.linalg.norm(axis)
    ref = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(ref, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.column_stack([x, y, z])


def voigt_to_tensor(C: np.ndarray) -> np.ndarray:
    """(..., 6, 6) Voigt stiffness -> (..., 3, 3, 3, 3) tensor C_ijkl."""
    return C[..., VOIGT[:, :, None, None], VOIGT[None, None, :, :]]


def tensor_to_voigt(C4: np.ndarray) -> np.ndarray:
    idx = [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]
    out = np.empty(C4.shape[:-4] + (6, 6))
    for I, (i, j) in enumerate(idx):
        for J, (k, l) in enumerate(idx):
            out[..., I, J] = C4[..., i, j, k, l]
    return out


def rotate_voigt(C: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Stiffness in the global frame, given local stiffness C and rotation R (x_g = R x_l)."""
    C4 = voigt_to_tensor(C)
    C4g = np.einsum("ia,jb,kc,ld,abcd->ijkl", R, R, R, R, C4)
    return tensor_to_voigt(C4g)


def make_material(name: str, spec: dict, where: str | None = None) -> Material:
    """Build a material from its case-file entry, e.g. ``{E: 12000, nu: 0.3}``.

    Unknown ``type`` or keys are errors naming the key path.
    """
    where = where or f"materials.{name}"
    if not isinstance(spec, dict):
        raise InputError(f"expected a mapping of elastic constants, got {type(spec).__name__}", where)
    spec = dict(spec)
    tname = spec.pop("type", "isotropic")
    if not isinstance(tname, str) or tname not in MATERIALS:
        raise InputError(f"unknown material type {show(tname)} (known: {', '.join(sorted(MATERIALS))})", f"{where}.type")
    cls = MATERIALS[tname]
    known = cls.fields()
    kwargs: dict[str, Any] = {}
    for key, value in spec.items():
        if key not in known:
            raise InputError(f"unknown key (expected one of: {', '.join(known)})", f"{where}.{key}")
        if key == "axis":
            if not (isinstance(value, list | tuple) and len(value) == 3 and all(is_number(v) for v in value)):
                raise InputError(f"expected a list of 3 numbers, got {show(value)}", f"{where}.{key}")
            value = tuple(float(v) for v in value)
        elif not is_number(value):
            raise InputError(f"expected a number, got {show(value)}", f"{where}.{key}")
        else:
            value = float(value)
        kwargs[key] = value
    missing = [k for k, f in known.items() if k not in kwargs and k != "axis"]
    if missing:
        raise InputError(f"missing required key(s): {', '.join(missing)}", where)
    mat = cls(name=name, **kwargs)
    mat.check()
    return mat
