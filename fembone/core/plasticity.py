"""Small-strain elastic-plastic law with different yield stresses in tension and compression.

Linear (Drucker-Prager) yield surface written with the von Mises equivalent stress
q = sqrt(3/2 s:s) and the mean stress p = tr(sigma)/3 (tension positive):

    f(sigma, alpha) = q + beta p - c sigma_c(alpha),     c = 1 - beta/3,

which yields in uniaxial compression at sigma_c and in uniaxial tension at sigma_t when
beta = 3 (sigma_c - sigma_t) / (sigma_c + sigma_t) (beta = 0 is von Mises).  Flow is
associative (Drucker & Prager, Q Appl Math 10:157, 1952), so the consistent tangent is
symmetric.  ``alpha`` is the hardening variable, scaled so that in uniaxial compression it
equals the axial plastic strain: alpha' = c gamma'.  ``sigma_c(alpha)`` is any piecewise-linear
curve (hardening, plateau, softening to a floor, then flat); tension follows the same curve
scaled by r = sigma_t0/sigma_c0 in stress and 1/r in plastic strain.

Integration: backward Euler with a return to the smooth cone, or to the apex when the cone
return overshoots it, and the consistent (algorithmic) tangent (Simo & Taylor, CMAME 48:101,
1985; de Souza Neto, Peric & Owen, *Computational Methods for Plasticity*, 2008, sec. 8.3).
Everything is vectorised over all quadrature points: the scalar consistency equation is
solved exactly, one linear segment of the yield curve at a time, for every point at once.  Small strains (infinitesimal
theory): strains of a few percent at most, no geometric nonlinearity.

Tensors are Mandel 6-vectors [xx, yy, zz, sqrt2 xy, sqrt2 yz, sqrt2 xz]: the double
contraction is the dot product and every tangent is a symmetric 6x6 matrix.
Units: MPa, mm/mm.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

SQ2 = np.sqrt(2.0)
#: Mandel 6-vector of the identity tensor
ONE = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
#: deviatoric projector in Mandel form
IDEV = np.eye(6) - np.outer(ONE, ONE) / 3.0
#: hardening slope (x G) the tangent keeps at apex returns that soften, and its shear stiffness there
APEX_FLOOR = 1e-3
#: (a, b) tensor indices of the six Mandel components
PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2))


def mandel_from_tensor(t: np.ndarray) -> np.ndarray:
    """(..., 3, 3) symmetric tensors -> (..., 6) Mandel vectors."""
    w = np.array([1.0, 1.0, 1.0, SQ2, SQ2, SQ2])
    return np.stack([t[..., a, b] for a, b in PAIRS], axis=-1) * w


def tensor_from_mandel(v: np.ndarray) -> np.ndarray:
    """(..., 6) Mandel vectors -> (..., 3, 3) symmetric tensors."""
    out = np.empty(v.shape[:-1] + (3, 3))
    for k, (a, b) in enumerate(PAIRS):
        val = v[..., k] if k < 3 else v[..., k] / SQ2
        out[..., a, b] = val
        out[..., b, a] = val
    return out


def elastic_tangent(K: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Isotropic stiffness (n, 6, 6) in Mandel form: 2G I_dev + K 1 (x) 1 (MPa)."""
    K, G = np.asarray(K, float), np.asarray(G, float)
    return 2.0 * G[:, None, None] * IDEV + K[:, None, None] * np.outer(ONE, ONE)


def beta_from_yield(sigma_c, sigma_t) -> np.ndarray:
    """Pressure sensitivity beta = 3 (sigma_c - sigma_t) / (sigma_c + sigma_t) of f = q + beta p - k.

    Uniaxial tension (q = s, p = s/3) yields at sigma_t and uniaxial compression (q = s,
    p = -s/3) at sigma_c when k = sigma_t (1 + beta/3) = sigma_c (1 - beta/3).
    """
    sc, st = np.asarray(sigma_c, float), np.asarray(sigma_t, float)
    return 3.0 * (sc - st) / (sc + st)


@dataclass
class YieldCurve:
    """Piecewise-linear compressive yield stress sigma_c(alpha) per point (MPa).

    ``alpha`` (n, m) knots of the uniaxial compressive plastic strain, increasing, first 0;
    ``stress`` (n, m) yield stress at the knots; linear between knots, constant after the last.
    """

    alpha: np.ndarray
    stress: np.ndarray

    def __post_init__(self):
        self.alpha = np.atleast_2d(np.asarray(self.alpha, float))
        self.stress = np.atleast_2d(np.asarray(self.stress, float))
        if self.alpha.shape != self.stress.shape:
            raise ValueError("yield curve: alpha and stress knots differ in shape")
        if np.any(np.diff(self.alpha, axis=1) <= 0):
            raise ValueError("yield curve: alpha knots must increase")
        if np.any(self.alpha[:, 0] != 0):
            raise ValueError("yield curve: the first alpha knot must be 0")
        if np.any(self.stress <= 0):
            raise ValueError("yield curve: yield stresses must be positive (use a floor for softening)")

    @property
    def n(self) -> int:
        return self.alpha.shape[0]

    def __call__(self, a: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """sigma_c and its slope d sigma_c / d alpha at ``a`` for points ``rows`` (all when None)."""
        A = self.alpha if rows is None else self.alpha[rows]
        S = self.stress if rows is None else self.stress[rows]
        m = A.shape[1]
        val = S[:, -1].copy()
        slope = np.zeros(len(a))
        for j in range(m - 2, -1, -1):  # loop over segments (a handful), never over points
            inside = a < A[:, j + 1]
            h = (S[:, j + 1] - S[:, j]) / (A[:, j + 1] - A[:, j])
            val = np.where(inside, S[:, j] + h * (a - A[:, j]), val)
            slope = np.where(inside, h, slope)
        return val, slope

    def take(self, rows: np.ndarray) -> YieldCurve:
        return YieldCurve(self.alpha[rows], self.stress[rows])


@dataclass
class TangentCoefficients:
    """D = a1 I_dev + a2 n(x)n + a3 (n(x)1 + 1(x)n) + a4 1(x)1 per point (MPa), n a unit deviatoric
    Mandel vector.  Elastic points: a1 = 2G, a4 = K, a2 = a3 = 0.  The form lets element blocks be
    built from outer products of shape-function gradients (:mod:`fembone.core.nonlinear`)."""

    a1: np.ndarray
    a2: np.ndarray
    a3: np.ndarray
    a4: np.ndarray
    n: np.ndarray  # (n, 6)

    def matrix(self) -> np.ndarray:
        """The tangents as (n, 6, 6) Mandel matrices."""
        nn = self.n[:, :, None] * self.n[:, None, :]
        n1 = self.n[:, :, None] * ONE[None, None, :]
        return (self.a1[:, None, None] * IDEV + self.a2[:, None, None] * nn
                + self.a3[:, None, None] * (n1 + n1.transpose(0, 2, 1)) + self.a4[:, None, None] * np.outer(ONE, ONE))


@dataclass
class StressUpdate:
    """Result of :meth:`DruckerPrager.update` for every point."""

    stress: np.ndarray  # (n, 6) Mandel, MPa
    plastic_strain: np.ndarray  # (n, 6) Mandel
    alpha: np.ndarray  # (n,) hardening variable (compressive plastic strain equivalent)
    yielded: np.ndarray  # (n,) bool: plastic in this update
    tangent: TangentCoefficients | None  # consistent tangent (all points), or None
    ratio: np.ndarray  # (n,) trial yield ratio (q + beta p) / (c sigma_c(alpha_n)); > 1 means yield


class DruckerPrager:
    """Associative linear Drucker-Prager plasticity with a piecewise-linear curve, per point.

    ``K``, ``G`` (n,) bulk and shear moduli (MPa); ``beta`` (n,) pressure sensitivity
    (:func:`beta_from_yield`); ``curve`` the compressive yield curve.  ``tangent_floor``:
    in the *tangent only*, the hardening slope is raised to at least ``tangent_floor x G``
    (None: exact consistent tangent).  With softening (negative slope) the exact tangent is
    indefinite; the floored one stays positive definite so that Cholesky and CG solvers
    apply, while stresses and residuals keep the true softening law (Newton then converges
    linearly at those points; the path solver adds a line search).  A negative floor keeps the
    softening in the tangent down to that slope.  Apex returns that soften keep the slope
    ``APEX_FLOOR x G`` in the tangent whatever the floor.
    """

    def __init__(self, K, G, beta, curve: YieldCurve, tangent_floor: float | None = 1e-3):
        self.K = np.asarray(K, float)
        self.G = np.asarray(G, float)
        self.beta = np.broadcast_to(np.asarray(beta, float), self.K.shape).copy()
        self.curve = curve
        self.tangent_floor = tangent_floor
        if not (len(self.G) == len(self.K) == curve.n):
            raise ValueError("DruckerPrager: K, G and the yield curve must have one row per point")
        if np.any(self.beta < 0) or np.any(self.beta >= 1.5):
            raise ValueError("DruckerPrager: beta must lie in [0, 1.5) (sigma_t / sigma_c in (1/3, 1])")

    @property
    def n(self) -> int:
        return len(self.K)

    def elastic(self) -> np.ndarray:
        return elastic_tangent(self.K, self.G)

    def update(self, eps: np.ndarray, eps_p_n: np.ndarray, alpha_n: np.ndarray, tangent: bool = True,
               tol: float = 1e-12) -> StressUpdate:
        """Backward-Euler stress update from the converged state (eps_p_n, alpha_n) to total strain eps.

        ``eps``, ``eps_p_n`` (n, 6) Mandel; ``alpha_n`` (n,).  Returns the stress, the new
        internal variables, which points yielded and (``tangent``) the consistent tangent.
        """
        K, G, beta = self.K, self.G, self.beta
        c = 1.0 - beta / 3.0
        ee = eps - eps_p_n
        tr = ee[:, :3].sum(axis=1)
        dev = ee - np.outer(tr / 3.0, ONE)
        s_tr = 2.0 * G[:, None] * dev
        p_tr = K * tr
        norm_s = np.linalg.norm(s_tr, axis=1)
        q_tr = np.sqrt(1.5) * norm_s
        k_n, _ = self.curve(alpha_n)
        f_tr = q_tr + beta * p_tr - c * k_n
        ratio = (q_tr + beta * p_tr) / (c * k_n)
        yielded = f_tr > tol * c * k_n
        stress = s_tr + np.outer(p_tr, ONE)
        eps_p = eps_p_n.copy()
        alpha = alpha_n.copy()
        D = TangentCoefficients(2.0 * G, np.zeros(len(K)), np.zeros(len(K)), K.copy(), np.zeros((len(K), 6))) if tangent else None
        idx = np.flatnonzero(yielded)
        if len(idx) == 0:
            return StressUpdate(stress, eps_p, alpha, yielded, D, ratio)
        # -- return to the smooth cone: r(dg) = q_tr + beta p_tr - (3G + K beta^2) dg - c sigma_c(alpha_n + c dg) = 0
        Ki, Gi, bi, ci = K[idx], G[idx], beta[idx], c[idx]
        qt, pt, an = q_tr[idx], p_tr[idx], alpha_n[idx]
        dg, H = self._consistency(qt + bi * pt, 3.0 * Gi + Ki * bi * bi, ci, ci, an, idx)
        cone = qt - 3.0 * Gi * dg >= 0.0
        n_hat = s_tr[idx] / np.where(norm_s[idx] > 0, norm_s[idx], 1.0)[:, None]  # unit deviatoric direction
        q = qt - 3.0 * Gi * dg
        p = pt - Ki * bi * dg
        # -- apex (only with beta > 0): s = 0, r(dv) = beta (p_tr - K dv) - c sigma_c(alpha_n + c dv / beta) = 0
        apex = ~cone
        if apex.any():
            if np.any(bi[apex] <= 0):
                raise FloatingPointError("return to the apex of a von Mises surface")
            a_idx = np.flatnonzero(apex)
            ba, ca, Ka = bi[a_idx], ci[a_idx], Ki[a_idx]
            dv, Ha = self._consistency(ba * pt[a_idx], ba * Ka, ca, ca / ba, an[a_idx], idx[a_idx])
            q[a_idx] = 0.0
            p[a_idx] = pt[a_idx] - Ka * dv
            dg[a_idx] = dv / ba
            H[a_idx] = Ha
        s_new = (np.sqrt(2.0 / 3.0) * q)[:, None] * n_hat
        stress[idx] = s_new + np.outer(p, ONE)
        # plastic strain: the elastic strain is what the new stress needs
        ee_new = s_new / (2.0 * Gi[:, None]) + np.outer(p / (3.0 * Ki), ONE)
        eps_p[idx] = eps[idx] - ee_new
        alpha[idx] = an + ci * dg
        if tangent:
            D.a1[idx], D.a2[idx], D.a3[idx], D.a4[idx] = self._tangent(Ki, Gi, bi, ci, H, dg, qt, cone)
            D.n[idx] = n_hat
        return StressUpdate(stress, eps_p, alpha, yielded, D, ratio)

    def _consistency(self, R0, L, c, cx, an, rows) -> tuple[np.ndarray, np.ndarray]:
        """Solve R0 - L x - c sigma_c(an + cx x) = 0 for x >= 0, exactly, segment by segment.

        The residual is continuous and piecewise linear, positive at x = 0 (the trial state
        yields); on segment j (knots A_j, stresses S_j, slope h_j) it is zero at
        x = (R0 - c (S_j + h_j (an - A_j))) / (L + c cx h_j), accepted when the residual falls
        there (L + c cx h_j > 0) and an + cx x lies in the segment.  The first such root is the
        return (the smallest plastic multiplier; on a segment where the residual rises no root
        can be first, and the flat tail always has one).  Returns x and the slope h there.
        """
        A, S = self.curve.alpha[rows], self.curve.stress[rows]
        m = A.shape[1]
        x = np.full(len(R0), np.nan)
        H = np.zeros(len(R0))
        tol = 1e-12 * (1.0 + A[:, -1])
        for j in range(m):
            last = j == m - 1
            h = np.zeros(len(R0)) if last else (S[:, j + 1] - S[:, j]) / (A[:, j + 1] - A[:, j])
            den = L + c * cx * h
            with np.errstate(divide="ignore", invalid="ignore"):
                xj = (R0 - c * (S[:, j] + h * (an - A[:, j]))) / den
            a = an + cx * xj
            ok = (np.isnan(x) & (den > 0) & (xj >= -tol) & (a >= A[:, j] - tol)
                  & (last | (a <= A[:, min(j + 1, m - 1)] + tol)))
            x = np.where(ok, np.maximum(xj, 0.0), x)
            H = np.where(ok, h, H)
        if np.isnan(x).any():
            raise FloatingPointError("return mapping found no consistent segment of the yield curve")
        return x, H

    def _tangent(self, K, G, beta, c, H, dg, q_tr, cone):
        """Coefficients of the consistent tangent of the cone return (apex where ``cone`` is False).

        Cone: D = 2G (1 - 3G dg/q_tr) I_dev + 6G^2 (dg/q_tr - 1/A) n(x)n
                  - sqrt6 G K beta / A (n(x)1 + 1(x)n) + K (1 - K beta^2 / A) 1(x)1,
        A = 3G + K beta^2 + c^2 H (linearise r(dg) = 0 and the cone return; symmetric because
        the flow is associative).  Apex: D = K c^2 H / (beta^2 K + c^2 H) 1(x)1.
        """
        floor = self.tangent_floor
        Hc = H if floor is None else np.maximum(H, floor * G)
        A = 3.0 * G + K * beta * beta + c * c * Hc
        qs = np.where(q_tr > 0, q_tr, 1.0)
        a1 = 2.0 * G * (1.0 - 3.0 * G * dg / qs)
        a2 = 6.0 * G * G * (dg / qs - 1.0 / A)
        a3 = -np.sqrt(6.0) * G * K * beta / A
        a4 = K * (1.0 - K * beta * beta / A)
        apex = ~cone
        if apex.any():
            # softening at the apex has no finite tangent (beta^2 K + c^2 H may vanish): floor it there
            Ha = Hc[apex]
            Ha = np.where(Ha >= 0, Ha, APEX_FLOOR * G[apex])
            a4[apex] = K[apex] * c[apex] ** 2 * Ha / (beta[apex] ** 2 * K[apex] + c[apex] ** 2 * Ha)
            a2[apex] = a3[apex] = 0.0
            # the apex has no shear stiffness; the floored tangent keeps a little
            a1[apex] = 2.0 * max(floor, APEX_FLOOR) * G[apex] if floor is not None else 0.0
        return a1, a2, a3, a4

    def yield_ratio(self, stress: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """(q + beta p) / (c sigma_c(alpha)) of given stresses (n, 6): 1 on the yield surface."""
        tr = stress[:, :3].sum(axis=1)
        s = stress - np.outer(tr / 3.0, ONE)
        q = np.sqrt(1.5) * np.linalg.norm(s, axis=1)
        k, _ = self.curve(alpha)
        return (q + self.beta * tr / 3.0) / ((1.0 - self.beta / 3.0) * k)

    def with_tangent_floor(self, tangent_floor: float | None) -> DruckerPrager:
        """The same law (arrays shared) with another floor of the tangent's hardening slope."""
        out = copy.copy(self)
        out.tangent_floor = tangent_floor
        return out

    def take(self, rows: np.ndarray) -> DruckerPrager:
        """The law of a subset of points."""
        return DruckerPrager(self.K[rows], self.G[rows], self.beta[rows], self.curve.take(rows), self.tangent_floor)
