"""Many unilateral elements (tension-only fibres, contact springs) by semismooth Newton.

The elements of a :class:`~fembone.core.unilateral.UnilateralSet` are rank one each: opening
s = G^T u, engaged when s < -h, force lambda = k (-s - h) >= 0 along G.  With thousands of them
(annulus fibres: two per element) the capacitance matrix of :func:`~fembone.core.unilateral.correct`
would need a column K0^-1 g per element; here the equilibrium is solved as the minimum of the
convex, piecewise quadratic potential

    Pi(q) = 1/2 q^T K q - f^T q + 1/2 sum_i k_i <-s_i - h_i>_+^2,   s = G_q^T q + s_g

(reduced space u = T q + g, G_q = T^T G, s_g = G^T g).  Its gradient is continuous and piecewise
linear, so Newton's method with the generalised Hessian K_A = K + G_A diag(k_A) G_A^T (A: the
engaged elements) is the primal-dual active-set method of Hintermueller, Ito & Kunisch 2002
(SIAM J Optim 13:865): when A is right, one step is exact.  Every step is followed by an exact
line search on Pi (the derivative along the step is monotone and piecewise linear; bisection),
which makes each iterate lower the potential, so the iterations cannot cycle between active sets
(Nocedal & Wright 2006, Numerical Optimization, sec. 3.1 [M]).  Stops when the residual, with the
elements' forces at the current iterate, is below ``rtol`` |f|.  Units: mm, N (fibre elements: k in N mm, s a strain).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from fembone.core.errors import SolverError

log = logging.getLogger("fembone.unilateral")

#: above this many elements :func:`fembone.core.analysis.solve` uses Newton instead of the exact LCP
LCP_LIMIT = 200
#: equilibrium tolerance: |f + G lambda - K q| <= RTOL |f| (the iterative linear solves' CG target too);
#: with a direct solver's factor as preconditioner :data:`RTOL_DIRECT` (as exact as its linear solves, nearly free)
RTOL = 1e-10
RTOL_DIRECT = 1e-12
#: iterations without halving the residual after which a residual below RTOL counts as round-off
STALL = 3
MAX_ITER = 60
#: relative residual to which an iterative solver takes Newton's start (the half-engaged solution)
NEWTON_START_RTOL = 1e-3
#: CG tolerance of a Newton step while the active set still changes (inexact Newton)
ETA_CHANGING = 0.3


def engaged_force(s: np.ndarray, k: np.ndarray, h: np.ndarray) -> np.ndarray:
    """lambda = k <-s - h>_+ (N; N mm for fibres) for openings ``s`` (columns: load cases)."""
    return k[:, None] * np.maximum(-s - h[:, None], 0.0) if s.ndim == 2 else k * np.maximum(-s - h, 0.0)


def exact_line_search(slope0: float, curv: float, c: np.ndarray, b: np.ndarray, k: np.ndarray) -> float:
    """t > 0 minimising phi(t) = Pi(q + t dq): root of the increasing, piecewise linear

        phi'(t) = slope0 + t curv - sum_i k_i b_i <c_i - t b_i>_+

    (``slope0`` = (K q - f) . dq, ``curv`` = dq^T K dq, c = -s - h, b = G_q^T dq).  t = 1 is the
    Newton step; the root is bracketed by doubling and found by bisection to 1e-12 of t."""
    def dphi(t: float) -> float:
        return slope0 + t * curv - float(np.sum(k * b * np.maximum(c - t * b, 0.0)))

    if dphi(0.0) >= 0.0:
        return 0.0
    lo, hi = 0.0, 1.0
    while dphi(hi) < 0.0:
        lo, hi = hi, 2.0 * hi
        if hi > 1e6:
            raise SolverError("unilateral Newton: the potential has no minimum along the step (is K singular?)")
    if dphi(hi) == 0.0:
        return hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if dphi(mid) < 0.0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    d_lo, d_hi = dphi(lo), dphi(hi)  # linear between breakpoints: interpolate the root
    return lo + (hi - lo) * (-d_lo) / (d_hi - d_lo) if d_hi > d_lo else hi


class EngagedBlock:
    """The Newton matrices of several load cases as one block operator: column j is multiplied by
    K + G diag(k * engaged[:, j]) G^T (no matrix is formed: K X once, the elements' rank-one terms
    as two sparse products)."""

    def __init__(self, Kq, Gq: sp.csc_matrix, k: np.ndarray, engaged: np.ndarray):
        self.Kq, self.Gq, self.kA = Kq, Gq, k[:, None] * engaged
        self.shape = Kq.shape

    def __matmul__(self, X: np.ndarray) -> np.ndarray:
        X2 = X.reshape(X.shape[0], -1)
        Y = self.Kq @ X2 + self.Gq @ (self.kA[:, : X2.shape[1]] * (self.Gq.T @ X2))
        return Y.reshape(X.shape)


def newton(Kq, Fq: np.ndarray, Gq: sp.csc_matrix, Sg: np.ndarray, k: np.ndarray, h: np.ndarray, Q0: np.ndarray,
           precondition, rtol: float = RTOL, max_iter: int = MAX_ITER, maxiter_cg: int = 1000) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Minimise Pi (module docstring) for every load case (columns of ``Fq``, openings offset ``Sg``
    (m, nc)) from ``Q0``; returns (Q, Lambda, info per load case).

    The Newton systems of all unconverged load cases are solved together by block CG
    (:func:`fembone.core.solvers_base._block_pcg`) with ``precondition(R)``, a fixed operator
    on a block (the factor or cycle of K with the elements half engaged), each column with its
    own matrix (:class:`EngagedBlock`): to :data:`ETA_CHANGING` while the active set changes
    (inexact Newton; Dembo, Eisenstat & Steihaug 1982, SIAM J Numer Anal 19:400), to 0.5 rtol / |r|
    once it repeats (the step is then exact but for CG)."""
    from fembone.core.solvers_base import _block_pcg
    from fembone.core.solvers_pmg import MKLSparse

    if sp.issparse(Kq):  # MKL's threaded sparse product where installed (0.92M DOFs: 2-3x SciPy's)
        Kq = MKLSparse(sp.csr_matrix(Kq, dtype=float), expected_calls=1000)
    Q = Q0.copy()
    nc = Q.shape[1]
    nf = np.maximum(np.linalg.norm(Fq, axis=0), 1e-300)
    prev = None
    info = [{"iterations": 0, "line_search": []} for _ in range(nc)]
    best = np.full(nc, np.inf)  # smallest residual so far, and the iterations since it last halved
    stalled = np.zeros(nc, int)
    for it in range(max_iter + 1):
        C = -(Gq.T @ Q + Sg) - h[:, None]
        engaged = C > 0
        Lam = k[:, None] * np.maximum(C, 0.0)
        R = Fq + Gq @ Lam - Kq @ Q
        rn = np.linalg.norm(R, axis=0) / nf
        same = np.zeros(nc, bool) if prev is None else _settled(engaged, prev, C, Gq, k, 0.1 * rtol * nf)
        # r holds the elements' forces at q itself, so |r| <= rtol |f| is equilibrium whatever the
        # active set did last (elements at zero strain may flip on round-off: a rigid motion)
        stalled = np.where(rn < 0.5 * best, 0, stalled + 1)
        best = np.minimum(best, rn)
        # below the iterative solvers' target (RTOL) a residual that stops falling has met round-off
        # (a direct factor aims at RTOL_DIRECT, which an ill-conditioned K may not let it reach)
        done = (rn <= rtol) | ((rn <= max(rtol, RTOL)) & (stalled >= STALL))
        todo = np.flatnonzero(~done)
        log.debug("  unilateral Newton %d: residuals %s, engaged %s", it, np.array2string(rn, precision=1),
                  engaged.sum(axis=0).tolist())
        for j in np.flatnonzero(done):
            if "residual" not in info[j]:
                info[j].update(iterations=it, residual=float(rn[j]), engaged=int(engaged[:, j].sum()))
        if len(todo) == 0:
            return Q, Lam, info
        if it == max_iter:
            break
        # while the active set changes a rough step does (the line search keeps descent); once it
        # repeats, the step is the exact one and is solved to the tolerance
        eta = float(np.min(np.where(same[todo], np.minimum(ETA_CHANGING, 0.5 * rtol / rn[todo]), ETA_CHANGING)))
        dQ, cg = _block_pcg(EngagedBlock(Kq, Gq, k, engaged[:, todo]), R[:, todo], precondition, eta, maxiter_cg)
        for c, j in enumerate(todo):
            info[j].setdefault("cg_iterations", []).append(int(cg[c]))
        B = Gq.T @ dQ
        KdQ = Kq @ dQ
        for c, j in enumerate(todo):
            t = exact_line_search(float(-(R[:, j] - Gq @ Lam[:, j]) @ dQ[:, c]), float(dQ[:, c] @ KdQ[:, c]),
                                  C[:, j], B[:, c], k)
            info[j]["line_search"].append(round(t, 6))
            Q[:, j] += t * dQ[:, c]
        prev = engaged
    bad = todo[np.argmax(rn[todo])]
    raise SolverError(f"unilateral Newton: no equilibrium after {max_iter} iterations (residual {rn[bad]:.1e}, "
                      f"{int(engaged[:, bad].sum())} of {len(k)} elements engaged)")


def _settled(engaged: np.ndarray, prev: np.ndarray, C: np.ndarray, Gq: sp.csc_matrix, k: np.ndarray,
             floor: np.ndarray) -> np.ndarray:
    """Per load case: the active set repeats, up to elements whose flip moves the residual by less
    than ``floor`` (N): |G_flipped k |c|| (elements at round-off strain, e.g. under a rigid motion)."""
    out = np.empty(engaged.shape[1], bool)
    for j in range(engaged.shape[1]):
        fl = np.flatnonzero(engaged[:, j] != prev[:, j])
        out[j] = len(fl) == 0 or np.linalg.norm(Gq[:, fl] @ (k[fl] * np.abs(C[fl, j]))) <= floor[j]
    return out


def solve_cases(uset, Kq, Gq: sp.csc_matrix, Fq: np.ndarray, T: sp.spmatrix, offsets: np.ndarray | None,
                Q0: np.ndarray, precondition, names: list[str], rtol: float = RTOL) -> tuple[np.ndarray, np.ndarray]:
    """:func:`newton` for the load cases ``names`` (columns of ``Fq``, start ``Q0``; ``Gq`` = T^T G).  ``offsets``
    (n_dofs, n_cases): the g of u = T q + g per load case, or None.  Returns (Q, Lambda);
    ``uset.info`` gets iterations, line-search steps and engaged counts per load case."""
    from fembone.core.unilateral import _padded

    t0 = time.perf_counter()
    G = _padded(uset.G, T.shape[0])
    k, h = np.asarray(uset.k, float), np.asarray(uset.h, float)
    Sg = np.asarray(G.T @ offsets) if offsets is not None else np.zeros((G.shape[1], len(names)))
    Q, Lam, per = newton(Kq, Fq, Gq, Sg, k, h, Q0, precondition, rtol=rtol)
    uset.info = {"method": "newton", "cases": dict(zip(names, per)), "seconds": time.perf_counter() - t0,
                 "closed": {n: [uset.labels[i] for i in np.flatnonzero(Lam[:, j] > 0) if uset.labels and uset.labels[i]]
                            for j, n in enumerate(names)},
                 "pivots": {n: p["iterations"] for n, p in zip(names, per)}, "columns": [], "blocks": 0}
    return Q, Lam
