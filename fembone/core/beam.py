"""Two-node 3D shear-deformable (Timoshenko) beam with the exact static stiffness.

Six DOFs per node, ordered ``ux, uy, uz, rx, ry, rz`` (mm, rad); an element vector
is ``[node 0 (6), node 1 (6)]``.  The 12x12 stiffness is the classical one with the
shear parameter ``Phi = 12 E I / (k G A L^2)`` (Przemieniecki, *Theory of Matrix
Structural Analysis*, 1968, §5.6), which is exact for prismatic beams loaded at
their ends: one element reproduces the Timoshenko cantilever deflection
``P L^3/(3 E I) + P L/(k G A)`` to round-off.  Passing ``k = inf`` (or
``shear_rigid=True``) gives the Euler–Bernoulli beam (``Phi = 0``).

Sections are solid or annular circles (screws, cannulated screws, rods), so
``Iy = Iz = I`` and the local y/z directions only matter for reporting bending
moments; the global stiffness does not depend on them.

Everything is vectorised over ``n`` beams: arrays have a leading axis of length
``n`` and scalars broadcast.  Units: mm, N, MPa; moments N·mm.

Initial (stress-free) curvature ``kappa0`` (rad/mm, a global vector normal to the axis:
the rate of change of the stress-free rotation along the beam, so a beam along x with
``kappa0 = c e_z`` is stress-free on the arc u_y = c x^2 / 2) is an eigenstrain, like a
through-thickness thermal gradient kappa0 = alpha dT/h.  Its equivalent nodal loads are the
end moments ``-E I kappa0`` at node 0 and ``+E I kappa0`` at node 1, and the section moment
is M = E I (kappa - kappa0) (Przemieniecki 1968, equivalent thermal loads of the beam
element; Cook et al., *Concepts and Applications of FEA*, initial-strain loads) [M].
They are exact for the Timoshenko element too: the stress-free arc has no shear strain,
and k u of that arc's nodal values equals the load vector for every Phi.

Examples
--------
>>> import numpy as np
>>> from fembone.core.beam import BeamSection, beam_global_stiffness
>>> screw = BeamSection(outer_diameter=6.5)
>>> K = beam_global_stiffness([0, 0, 0], [0, 0, 45.0], 110000.0, 0.3, screw)
>>> K.shape
(1, 12, 12)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fembone.core.errors import InputError

__all__ = [
    "BeamSection",
    "beam_local_stiffness",
    "beam_frames",
    "beam_transformation",
    "beam_global_stiffness",
    "beam_end_forces",
    "beam_results",
    "beam_curvature_load",
]

Array = NDArray[np.float64]


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class BeamSection:
    """Solid (``inner_diameter = 0``) or annular circular cross-section, diameters in mm.

    Raises :class:`~fembone.core.errors.InputError` for ``outer_diameter <= 0``,
    ``inner_diameter < 0`` or ``inner_diameter >= outer_diameter``.
    """

    outer_diameter: float  # mm
    inner_diameter: float = 0.0  # mm; > 0 for cannulated screws and tubes

    def __post_init__(self) -> None:
        do, di = self.outer_diameter, self.inner_diameter
        for name, value in (("outer_diameter", do), ("inner_diameter", di)):
            if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
                raise InputError(f"{name} must be a finite number of mm, got {value!r}", where="BeamSection")
        if do <= 0:
            raise InputError(f"outer_diameter must be > 0 mm, got {do!r}", where="BeamSection")
        if di < 0:
            raise InputError(
                f"inner_diameter must be >= 0 mm (0 for a solid section), got {di!r}", where="BeamSection"
            )
        if di >= do:
            raise InputError(
                f"inner_diameter {di!r} mm must be smaller than outer_diameter {do!r} mm",
                where="BeamSection",
            )

    @property
    def outer_radius(self) -> float:
        """Outer-fibre radius r = D/2 (mm)."""
        return 0.5 * self.outer_diameter

    @property
    def inner_radius(self) -> float:
        """Inner radius d/2 (mm); 0 for a solid section."""
        return 0.5 * self.inner_diameter

    def area(self) -> float:
        """Area A = pi (D^2 - d^2) / 4 (mm^2)."""
        return math.pi * (self.outer_diameter**2 - self.inner_diameter**2) / 4.0

    def second_moment(self) -> float:
        """Second moment of area Iy = Iz = pi (D^4 - d^4) / 64 (mm^4)."""
        return math.pi * (self.outer_diameter**4 - self.inner_diameter**4) / 64.0

    def polar_moment(self) -> float:
        """Torsion constant J = Ip = pi (D^4 - d^4) / 32 (mm^4); exact for circles and annuli."""
        return math.pi * (self.outer_diameter**4 - self.inner_diameter**4) / 32.0

    def shear_coefficient(self, nu: float) -> float:
        """Timoshenko shear coefficient k (-) of Cowper (1966, J Appl Mech 33:335, Table 1).

        Annulus with m = d/D: k = 6(1+nu)(1+m^2)^2 / ((7+6nu)(1+m^2)^2 + (20+12nu) m^2);
        m = 0 gives the solid circle 6(1+nu)/(7+6nu).
        """
        if not (-1.0 < nu <= 0.5):
            raise InputError(f"Poisson's ratio must be in (-1, 0.5], got {nu!r}", where="BeamSection")
        return float(_cowper_annulus(np.asarray(nu, dtype=float), self.inner_diameter / self.outer_diameter))

    def transverse_shear_factor(self) -> float:
        """Peak / mean transverse shear stress at the neutral axis (Jourawski), tau = f V / A.

        f = 4/3 (r_o^2 + r_o r_i + r_i^2) / (r_o^2 + r_i^2): 4/3 for a solid circle, -> 2 for a
        thin tube (Gere & Goodno, Mechanics of Materials, §5.9).
        """
        ro, ri = self.outer_radius, self.inner_radius
        return 4.0 / 3.0 * (ro * ro + ro * ri + ri * ri) / (ro * ro + ri * ri)


# --------------------------------------------------------------------------- helpers
def _cowper_annulus(nu: Array, m: float) -> Array:
    """Cowper (1966) shear coefficient of a circular annulus, m = inner / outer diameter."""
    m2 = m * m
    return 6.0 * (1 + nu) * (1 + m2) ** 2 / ((7 + 6 * nu) * (1 + m2) ** 2 + (20 + 12 * nu) * m2)


def _vector(value: ArrayLike, name: str) -> Array:
    """Return ``value`` as a 1D float array (scalars become length 1)."""
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1:
        raise InputError(f"{name} must be a scalar or a 1D array over beams, got shape {arr.shape}")
    return arr


def _points(x0: ArrayLike, x1: ArrayLike) -> tuple[Array, Array]:
    """Node coordinates as two (n, 3) float arrays; a single (3,) point broadcasts."""
    a = np.asarray(x0, dtype=float)
    b = np.asarray(x1, dtype=float)
    a = a[None, :] if a.ndim == 1 else a
    b = b[None, :] if b.ndim == 1 else b
    if a.ndim != 2 or a.shape[1] != 3 or b.ndim != 2 or b.shape[1] != 3:
        raise InputError(f"beam end points must have shape (n, 3), got {np.shape(x0)} and {np.shape(x1)}")
    a, b = np.broadcast_arrays(a, b)
    return a, b


def _check_positive(name: str, values: Array) -> None:
    bad = np.flatnonzero(~(values > 0))  # also catches NaN
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{name} must be > 0, got {values[i]!r} ({bad.size} beam(s) affected)", where=f"beam {i}"
        )


def _block_diag4(R: Array) -> Array:
    """(n,3,3) rotation -> (n,12,12) block-diagonal transformation diag(R, R, R, R)."""
    n = R.shape[0]
    T = np.zeros((n, 12, 12))
    for b in range(4):  # four fixed 3x3 blocks, not a loop over elements
        T[:, 3 * b : 3 * b + 3, 3 * b : 3 * b + 3] = R
    return T


# --------------------------------------------------------------------------- stiffness
def beam_local_stiffness(
    L: ArrayLike, E: ArrayLike, G: ArrayLike, A: ArrayLike, I: ArrayLike, J: ArrayLike, k: ArrayLike
) -> Array:
    """Exact 12x12 Timoshenko beam stiffness in local axes, shape (n, 12, 12), N/mm and N·mm/rad.

    Parameters (each scalar or shape (n,), broadcast): length ``L`` (mm), Young's modulus
    ``E`` and shear modulus ``G`` (MPa), area ``A`` (mm^2), second moment ``I = Iy = Iz``
    (mm^4), torsion constant ``J`` (mm^4), shear coefficient ``k`` (-; ``inf`` = shear-rigid).

    Przemieniecki (1968) §5.6: with Phi = 12 E I / (k G A L^2),
    k_vv = 12 EI / (L^3 (1+Phi)), k_v.theta = 6 EI / (L^2 (1+Phi)),
    k_theta.theta = (4+Phi) EI / (L (1+Phi)) and (2-Phi) EI / (L (1+Phi)) across the element.
    Bending about local z couples (uy, rz); about local y couples (uz, ry) with the sign of
    the coupling terms flipped because ry = -duz/dx.
    """
    names = "L E G A I J k".split()
    arrays = [_vector(v, name) for v, name in zip((L, E, G, A, I, J, k), names)]
    try:
        L, E, G, A, I, J, k = np.broadcast_arrays(*arrays)
    except ValueError:
        shapes = ", ".join(f"{nm} {a.shape}" for nm, a in zip(names, arrays))
        raise InputError(f"beam properties must be scalars or share one length n, got {shapes}") from None
    for name, v in (("length L", L), ("E", E), ("G", G), ("A", A), ("I", I), ("J", J), ("k", k)):
        _check_positive(name, v)
    n = L.shape[0]
    K = np.zeros((n, 12, 12))

    ea = E * A / L
    gj = G * J / L
    K[:, 0, 0] = K[:, 6, 6] = ea
    K[:, 0, 6] = K[:, 6, 0] = -ea
    K[:, 3, 3] = K[:, 9, 9] = gj
    K[:, 3, 9] = K[:, 9, 3] = -gj

    with np.errstate(divide="ignore"):
        phi = 12.0 * E * I / (k * G * A * L * L)  # k = inf -> 0 (Euler-Bernoulli)
    c = E * I / (L**3 * (1.0 + phi))
    a = 12.0 * c
    b = 6.0 * c * L
    d = (4.0 + phi) * c * L * L
    e = (2.0 - phi) * c * L * L
    for (iv, it), s in (((1, 5), 1.0), ((2, 4), -1.0)):
        idx = np.array([iv, it, iv + 6, it + 6])
        sb = s * b
        block = np.stack(
            [
                np.stack([a, sb, -a, sb], axis=-1),
                np.stack([sb, d, -sb, e], axis=-1),
                np.stack([-a, -sb, a, -sb], axis=-1),
                np.stack([sb, e, -sb, d], axis=-1),
            ],
            axis=-2,
        )
        K[:, idx[:, None], idx[None, :]] = block
    return K


def beam_frames(x0: ArrayLike, x1: ArrayLike, up: ArrayLike | None = None) -> Array:
    """Local frames, shape (n, 3, 3); rows are the local x (axis, x0 -> x1), y and z unit vectors.

    Local z is the part of ``up`` (default global +z; shape (3,) or (n, 3)) normal to the
    axis, and y = z × x, so (x, y, z) is right-handed.  Where the axis is (nearly) parallel
    to ``up`` (angle < ~0.06°), the global axis least aligned with the beam is used instead.
    Zero-length beams raise :class:`~fembone.core.errors.InputError`.
    """
    a, b = _points(x0, x1)
    n = a.shape[0]
    d = b - a
    length = np.linalg.norm(d, axis=1)
    _check_positive("length |x1 - x0| (mm)", length)
    ex = d / length[:, None]

    ref = np.broadcast_to(np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=float), (n, 3))
    ref_norm = np.linalg.norm(ref, axis=1)
    _check_positive("up vector length", ref_norm)
    ref = ref / ref_norm[:, None]
    # fallback reference: the global axis with the smallest component along the beam
    fallback = np.eye(3)[np.argmin(np.abs(ex), axis=1)]
    parallel = np.linalg.norm(np.cross(ex, ref), axis=1) < 1e-3
    ref = np.where(parallel[:, None], fallback, ref)

    ez = ref - np.einsum("ni,ni->n", ref, ex)[:, None] * ex
    ez /= np.linalg.norm(ez, axis=1)[:, None]
    ey = np.cross(ez, ex)
    return np.stack([ex, ey, ez], axis=1)


def beam_transformation(x0: ArrayLike, x1: ArrayLike, up: ArrayLike | None = None) -> Array:
    """12x12 transformation T = diag(R, R, R, R), shape (n, 12, 12), with u_local = T u_global."""
    return _block_diag4(beam_frames(x0, x1, up))


def _section_stiffness(
    x0: ArrayLike, x1: ArrayLike, E: ArrayLike, nu: ArrayLike, section: BeamSection, shear_rigid: bool, up
) -> tuple[Array, Array]:
    """Local stiffness and transformation for beams of one section."""
    a, b = _points(x0, x1)
    L = np.linalg.norm(b - a, axis=1)
    T = beam_transformation(a, b, up)
    E_, nu_ = np.broadcast_arrays(_vector(E, "E"), _vector(nu, "nu"))
    bad = np.flatnonzero(~((nu_ > -1.0) & (nu_ <= 0.5)))
    if bad.size:
        raise InputError(f"Poisson's ratio must be in (-1, 0.5], got {nu_[bad[0]]!r}", where=f"beam {bad[0]}")
    G = E_ / (2.0 * (1.0 + nu_))
    if shear_rigid:
        k = np.array([np.inf])
    else:
        k = _cowper_annulus(nu_, section.inner_diameter / section.outer_diameter)
    K = beam_local_stiffness(
        L, E_, G, section.area(), section.second_moment(), section.polar_moment(), k
    )
    return K, T


def beam_global_stiffness(
    x0: ArrayLike,
    x1: ArrayLike,
    E: ArrayLike,
    nu: ArrayLike,
    section: BeamSection,
    *,
    shear_rigid: bool = False,
    up: ArrayLike | None = None,
) -> Array:
    """Element stiffness in global axes, K = T^T k T, shape (n, 12, 12).

    ``x0``, ``x1``: end points (n, 3) in mm; ``E`` (MPa) and ``nu`` scalars or (n,);
    G = E / (2 (1 + nu)), k from :meth:`BeamSection.shear_coefficient` (Cowper 1966), or
    Euler–Bernoulli with ``shear_rigid=True``.  ``up`` only orients the local y/z axes,
    which does not change K for circular sections.
    """
    K, T = _section_stiffness(x0, x1, E, nu, section, shear_rigid, up)
    return np.matmul(T.transpose(0, 2, 1), np.matmul(K, T))


def beam_end_forces(
    x0: ArrayLike,
    x1: ArrayLike,
    E: ArrayLike,
    nu: ArrayLike,
    section: BeamSection,
    u_elem: ArrayLike,
    *,
    shear_rigid: bool = False,
    up: ArrayLike | None = None,
    kappa0: ArrayLike | None = None,
) -> Array:
    """Local end forces f = k T u_elem - T f0, shape (n, 12): forces (N) and moments (N·mm)
    that the nodes exert on the element, in the element frame of :func:`beam_frames`.

    ``u_elem`` (n, 12): global element displacements (mm) and rotations (rad).
    ``kappa0``: initial curvature (rad/mm), (3,) or (n, 3) global vectors normal to the axis;
    f0 is its load vector (:func:`beam_curvature_load`).  ``None`` leaves f = k T u untouched.
    """
    K, T = _section_stiffness(x0, x1, E, nu, section, shear_rigid, up)
    u = np.asarray(u_elem, dtype=float)
    u = u[None, :] if u.ndim == 1 else u
    if u.shape != (K.shape[0], 12):
        raise InputError(f"u_elem must have shape ({K.shape[0]}, 12), got {np.shape(u_elem)}")
    u_local = np.einsum("nij,nj->ni", T, u)
    f = np.einsum("nij,nj->ni", K, u_local)
    if kappa0 is not None:
        f0 = np.einsum("nij,nj->ni", T, beam_curvature_load(x0, x1, E, section, kappa0))
        f0[:, [3, 9]] = 0.0  # local torsion: zero by construction (kappa0 normal to the axis), not round-off
        f = f - f0
    return f


def beam_results(
    x0: ArrayLike,
    x1: ArrayLike,
    E: ArrayLike,
    nu: ArrayLike,
    section: BeamSection,
    u_elem: ArrayLike,
    *,
    shear_rigid: bool = False,
    up: ArrayLike | None = None,
    transverse_shear: bool = True,
    kappa0: ArrayLike | None = None,
) -> dict[str, Array]:
    """Stress resultants and peak von Mises stress per beam.

    Resultants act on the cross-section whose outward normal is local +x: at end 0 they
    are minus the end forces, at end 1 the end forces themselves (no span loads, so N, V and
    T are constant and M is linear along the element; its ends bound it).  With an initial
    curvature ``kappa0`` (see :func:`beam_end_forces`) the moments are M = E I (kappa - kappa0).

    Returns a dict of arrays:

    - ``axial_force`` (n,) N, tension positive;
    - ``shear_y``, ``shear_z`` (n,) N; ``torsion`` (n,) N·mm;
    - ``bending_y``, ``bending_z`` (n, 2) N·mm at [end 0, end 1]; ``bending`` (n, 2) = hypot;
    - ``outer_fibre_stress`` (n, 2) MPa: |N|/A + M r / I, the peak normal stress magnitude;
    - ``von_mises`` (n,) MPa: max over both ends of the outer fibre,
      sqrt(sigma^2 + 3 tau^2) with tau = |T| r / J, and (if ``transverse_shear``) of the
      neutral-axis point, sigma = |N|/A and tau = |T| r / J + f |V| / A
      (:meth:`BeamSection.transverse_shear_factor`, Jourawski; conservative sum);
    - ``end_forces`` (n, 12): the local end forces of :func:`beam_end_forces`.
    """
    f = beam_end_forces(x0, x1, E, nu, section, u_elem, shear_rigid=shear_rigid, up=up, kappa0=kappa0)
    A, I, J, r = section.area(), section.second_moment(), section.polar_moment(), section.outer_radius
    N = f[:, 6]
    Vy, Vz = f[:, 7], f[:, 8]
    T = f[:, 9]
    My = np.stack([-f[:, 4], f[:, 10]], axis=1)
    Mz = np.stack([-f[:, 5], f[:, 11]], axis=1)
    M = np.hypot(My, Mz)
    sigma_outer = np.abs(N)[:, None] / A + M * r / I
    tau_t = np.abs(T) * r / J
    vm = np.sqrt(sigma_outer**2 + 3.0 * tau_t[:, None] ** 2).max(axis=1)
    if transverse_shear:
        tau_na = tau_t + section.transverse_shear_factor() * np.hypot(Vy, Vz) / A
        vm = np.maximum(vm, np.sqrt((N / A) ** 2 + 3.0 * tau_na**2))
    return {
        "axial_force": N,
        "shear_y": Vy,
        "shear_z": Vz,
        "torsion": T,
        "bending_y": My,
        "bending_z": Mz,
        "bending": M,
        "outer_fibre_stress": sigma_outer,
        "von_mises": vm,
        "end_forces": f,
    }


# --------------------------------------------------------------------------- eigenstrain
def beam_curvature_load(
    x0: ArrayLike, x1: ArrayLike, E: ArrayLike, section: BeamSection, kappa0: ArrayLike
) -> Array:
    """Equivalent nodal loads of a uniform initial curvature, global axes, shape (n, 12).

    ``kappa0`` (rad/mm): (3,) or (n, 3) global vectors normal to each beam axis (the
    stress-free rotation rate d theta0 / ds).  Returns the moments -E I kappa0 on node 0 and
    +E I kappa0 on node 1 (N·mm), zero forces: f0 = int B^T E I kappa0 dx with
    int d(theta)/dx dx = theta1 - theta0 (Przemieniecki 1968, thermal loads) [M].  The pair is
    self-equilibrated, and does not depend on G, k or the local y/z choice.  An axial
    component (an initial twist) raises :class:`~fembone.core.errors.InputError`.
    """
    a, b = _points(x0, x1)
    n = a.shape[0]
    d = b - a
    length = np.linalg.norm(d, axis=1)
    _check_positive("length |x1 - x0| (mm)", length)
    k = np.asarray(kappa0, dtype=float)
    if k.shape not in ((3,), (n, 3)):
        raise InputError(f"kappa0 must have shape (3,) or ({n}, 3) in rad/mm, got {k.shape}")
    k = np.broadcast_to(k, (n, 3))
    bad = np.flatnonzero(~np.isfinite(k).all(axis=1))
    if bad.size:
        raise InputError(f"kappa0 must be finite rad/mm, got {k[bad[0]]!r}", where=f"beam {bad[0]}")
    twist = np.abs(np.einsum("ni,ni->n", k, d)) / length
    bad = np.flatnonzero(twist > 1e-9 * np.linalg.norm(k, axis=1))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"kappa0 must be normal to the beam axis (bending only, no initial twist), got {k[i]!r} "
            f"with an axial component {twist[i]:.3g} rad/mm", where=f"beam {i}",
        )
    E_ = _vector(E, "E")
    if E_.size not in (1, n):
        raise InputError(f"E must be a scalar or have length {n}, got {E_.size}")
    _check_positive("E", E_)
    m = (E_ * section.second_moment())[:, None] * k
    f = np.zeros((n, 12))
    f[:, 3:6] = -m
    f[:, 9:12] = m
    return f
