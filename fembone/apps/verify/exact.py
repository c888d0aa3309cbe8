"""Closed-form solutions of the verification problems and their parameters. Units: mm, N, MPa.

Sources: shared/design/field.md, "Exact solutions for verification" (Timoshenko & Goodier,
Theory of Elasticity; Cowper 1966; Lame; Eshelby 1957).
"""

from __future__ import annotations

import numpy as np

from fembone.core.materials import Isotropic

# ---------------------------------------------------------------------------------------------
# 1. patch tests

PATCH_E, PATCH_NU = 10000.0, 0.3


def patch_field(kind: str, E: float = PATCH_E, nu: float = PATCH_NU):
    """(u(x) -> (n, 3), sigma(x) -> (n, 3, 3)) of a body-force-free field; units mm, MPa.

    ``linear``: u = u0 + A x with a general A (stretch, shear and rotation), uniform stress.
    ``quadratic``: linear part plus Saint-Venant pure bending about y (sigma_xx = E k1 z) and
    about z (sigma_xx = E k2 y) and a torsion (sigma_xz = -mu t y, sigma_yz = mu t x).  Each
    is an exact elasticity solution for any nu: div sigma = 0 with no body force.
    """
    u0 = np.array([1.0e-3, -2.0e-3, 0.5e-3])
    A = 1e-3 * np.array([[1.0, 0.4, -0.3], [-0.2, -0.5, 0.6], [0.7, 0.1, 0.8]])
    C = Isotropic(E=E, nu=nu).stiffness()
    eps = 0.5 * (A + A.T)
    ev = np.array([eps[0, 0], eps[1, 1], eps[2, 2], 2 * eps[0, 1], 2 * eps[1, 2], 2 * eps[0, 2]])
    sv = C @ ev
    sig0 = np.array([[sv[0], sv[3], sv[5]], [sv[3], sv[1], sv[4]], [sv[5], sv[4], sv[2]]])
    k1, k2, tw = 2e-4, -1.5e-4, 3e-4  # curvatures (1/mm) and twist rate (rad/mm)
    mu = E / (2 * (1 + nu))

    def u(x):
        out = u0 + x @ A.T
        if kind == "quadratic":
            X, Y, Z = x.T
            out = out + np.column_stack([
                k1 * X * Z + k2 * X * Y - tw * Y * Z,
                -nu * k1 * Y * Z - 0.5 * k2 * (X**2 + nu * (Y**2 - Z**2)) + tw * X * Z,
                -0.5 * k1 * (X**2 + nu * (Z**2 - Y**2)) - nu * k2 * Y * Z,
            ])
        return out

    def sigma(x):
        s = np.broadcast_to(sig0, (len(x), 3, 3)).copy()
        if kind == "quadratic":
            X, Y, Z = x.T
            s[:, 0, 0] += E * (k1 * Z + k2 * Y)
            s[:, 0, 2] += -mu * tw * Y
            s[:, 2, 0] += -mu * tw * Y
            s[:, 1, 2] += mu * tw * X
            s[:, 2, 1] += mu * tw * X
        return s

    if kind not in ("linear", "quadratic"):
        raise ValueError(f"patch field must be 'linear' or 'quadratic', got {kind!r}")
    return u, sigma

# ---------------------------------------------------------------------------------------------
# 2. cantilever


BEAM_L, BEAM_B, BEAM_H, BEAM_P = 100.0, 10.0, 10.0, 10.0  # mm, mm, mm, N (tip force along -z)
BEAM_E, BEAM_NU = 10000.0, 0.3


def cowper_k_rectangle(nu: float) -> float:
    """Cowper (1966) shear coefficient of a rectangle: 10 (1 + nu) / (12 + 11 nu)."""
    return 10.0 * (1.0 + nu) / (12.0 + 11.0 * nu)


def timoshenko_tip_deflection(P: float, L: float, b: float, h: float, E: float, nu: float) -> float:
    """Tip deflection (mm) of a rectangular cantilever: P L^3/(3 E I) + P L/(k G A), Cowper's k."""
    I = b * h**3 / 12.0
    G = E / (2.0 * (1.0 + nu))
    return P * L**3 / (3 * E * I) + P * L / (cowper_k_rectangle(nu) * G * b * h)


def saint_venant_flexure(P: float, L: float, b: float, h: float, E: float):
    """Exact 3-D displacement (mm) of an end-loaded rectangular cantilever with nu = 0.

    For nu = 0 the elementary stresses sigma_xx = P (L - x) z / I, tau_xz = P (z^2 - h^2/4) / (2 I)
    satisfy equilibrium and Beltrami-Michell compatibility exactly (Timoshenko & Goodier,
    Theory of Elasticity, §122, whose correction term vanishes with nu).  The rigid rotation is
    chosen so that the root section has zero mean rotation (integral of z u_x over it is 0);
    the tip deflection is then P L^3/(3EI) + P L/(k G A) with k = 5/6 exactly (Cowper, nu = 0).
    Tip load: -P along z, applied as the parabolic shear traction t_z = P (z^2 - h^2/4)/(2 I).
    """
    I = b * h**3 / 12.0
    G = E / 2.0
    a = P * h * h / (10.0 * G * I)

    def u(x):
        X, Z = x[:, 0], x[:, 2]
        ux = P / (E * I) * (L * X - X**2 / 2) * Z + P / (G * I) * (Z**3 / 6 - h * h * Z / 8) + a * Z
        uz = -P / (E * I) * (L * X**2 / 2 - X**3 / 6) - a * X
        return np.column_stack([ux, np.zeros_like(X), uz])

    def tip_traction_z(x):
        return P * (x[..., 2] ** 2 - h * h / 4) / (2 * I)

    return u, tip_traction_z

# ---------------------------------------------------------------------------------------------
# 3. Lame hollow sphere


SPHERE_A, SPHERE_B, SPHERE_P = 10.0, 20.0, 10.0  # inner, outer radius (mm), pressure (MPa)
SPHERE_E, SPHERE_NU = 12000.0, 0.3  # cortical bone


def lame_sphere_displacement(r, a=SPHERE_A, b=SPHERE_B, p=SPHERE_P, E=SPHERE_E, nu=SPHERE_NU):
    """u(r) = p a^3 / (E (b^3 - a^3)) [(1 - 2nu) r + (1 + nu) b^3 / (2 r^2)] (mm)."""
    r = np.asarray(r, float)
    return p * a**3 / (E * (b**3 - a**3)) * ((1 - 2 * nu) * r + (1 + nu) * b**3 / (2 * r**2))


def lame_sphere_hoop(r, a=SPHERE_A, b=SPHERE_B, p=SPHERE_P):
    """sigma_t(r) = p a^3 / (b^3 - a^3) (1 + b^3 / (2 r^3)) (MPa)."""
    r = np.asarray(r, float)
    return p * a**3 / (b**3 - a**3) * (1 + b**3 / (2 * r**3))

# ---------------------------------------------------------------------------------------------
# 4. Eshelby inclusion


INCLUSION_A = 5.0  # sphere radius (mm)
BLOCK = 10.0  # block edge / radius (octant: the full block is 20 radii wide)
MATRIX = {"E": 300.0, "nu": 0.3}  # trabecular bone
INCLUSIONS = {
    "soft": {"E": 15.0, "nu": 0.45},  # lytic tumour, E_i/E_m = 0.05
    "stiff": {"E": 3000.0, "nu": 0.4},  # PMMA cement, E_i/E_m = 10
}
REMOTE_STRESS = 1.0  # MPa, uniaxial along z


def eshelby_interior_strain(eps_inf: np.ndarray, E_m: float, nu_m: float, E_i: float, nu_i: float) -> np.ndarray:
    """Uniform strain (3x3) inside a spherical inclusion under remote strain ``eps_inf`` (Eshelby 1957).

    e_v = e_v_inf / [1 + alpha (K_i/K_m - 1)], alpha = (1 + nu_m) / (3 (1 - nu_m));
    e_dev = e_dev_inf / [1 + beta (mu_i/mu_m - 1)], beta = 2 (4 - 5 nu_m) / (15 (1 - nu_m)).
    """
    K = lambda E, nu: E / (3 * (1 - 2 * nu))  # noqa: E731
    mu = lambda E, nu: E / (2 * (1 + nu))  # noqa: E731
    alpha = (1 + nu_m) / (3 * (1 - nu_m))
    beta = 2 * (4 - 5 * nu_m) / (15 * (1 - nu_m))
    eps_inf = np.asarray(eps_inf, float)
    ev = np.trace(eps_inf) / (1 + alpha * (K(E_i, nu_i) / K(E_m, nu_m) - 1))
    dev = (eps_inf - np.trace(eps_inf) / 3 * np.eye(3)) / (1 + beta * (mu(E_i, nu_i) / mu(E_m, nu_m) - 1))
    return dev + ev / 3 * np.eye(3)


def eshelby_exact(inclusion: dict) -> np.ndarray:
    Em, num = MATRIX["E"], MATRIX["nu"]
    eps_inf = REMOTE_STRESS / Em * np.diag([-num, -num, 1.0])
    return eshelby_interior_strain(eps_inf, Em, num, inclusion["E"], inclusion["nu"])
