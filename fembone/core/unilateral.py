"""Unilateral springs with an initial gap (gap elements), solved exactly by a low-rank correction.

A set of m unilateral springs acts on a linear model K0 u = F (K0 without them).  Spring i
has a direction vector g_i (n_dofs,), its opening s_i = g_i . u (mm), an initial gap h_i >= 0
(mm) and a stiffness k_i (N/mm); it is closed when s_i < -h_i and then pushes the two sides
apart with the compressive force lambda_i = k_i (-s_i - h_i) >= 0 (N).  Equilibrium is

    K0 u = F + G lambda,   u = u0 + X lambda,   X = K0^-1 G,   s = s0 + C lambda,  C = G^T X

(u0 = K0^-1 F the open solution; Woodbury / capacitance-matrix form: the springs are rank 1
each).  With w_i = s_i + h_i + lambda_i / k_i the conditions are the linear complementarity
problem (LCP)

    w = q + M lambda,  q = s0 + h,  M = C + diag(1/k),  w >= 0, lambda >= 0, w . lambda = 0,

whose M is symmetric positive definite (C is G^T K0^-1 G, K0 positive definite), hence a
P-matrix: the LCP has exactly one solution and Murty's least-index principal pivoting reaches
it in finitely many pivots (Murty 1974, Math Program 6:326 [M]; Cottle, Pang & Stone 1992,
The Linear Complementarity Problem, ch. 4 [M]).  Each pivot flips the state of the smallest
index that violates the conditions: an open spring that penetrates (w_i < 0) closes, a closed
one in tension (lambda_i < 0) opens.  Each load case gets its own active set (no
superposition).  The columns X are solved with the load cases' own solver: with a direct
solver afterwards, only for springs that close in some load case, in as few blocks as the
pivoting needs (usually one; an open spring needs no column, since lambda_i = 0 there); with
an iterative one (AMG, p-multigrid CG) all m of them inside the load cases' block, where they
cost little next to a second block that repeats every iteration (benchmarks/README.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from fembone.core.errors import FemboneError


@dataclass
class UnilateralSet:
    """m unilateral springs: directions ``G`` (n_dofs, m), stiffness ``k`` (N/mm), gap ``h`` (mm)."""

    G: sp.csc_matrix
    k: np.ndarray
    h: np.ndarray
    labels: list[str] = field(default_factory=list)
    #: filled by :func:`correct`: columns solved, blocks, pivots and closed springs per load case
    info: dict = field(default_factory=dict)
    #: solve all m columns in the load cases' block for these solvers (None: :data:`IN_BLOCK`)
    block_solvers: tuple[str, ...] | None = None

    @property
    def n(self) -> int:
        """Number of elements m."""
        return self.G.shape[1]

    def in_block(self, solver_name: str) -> bool:
        """Whether the columns K0^-1 g join the load cases' block (iterative solvers: there they
        ride along nearly free, a second block would repeat every iteration) or are solved
        afterwards, only for the springs that close (direct solvers: a few more substitutions)."""
        return solver_name in (IN_BLOCK if self.block_solvers is None else self.block_solvers)

    def reduced(self, T: sp.spmatrix) -> np.ndarray:
        """The directions in the reduced space u = T q: T^T G, dense (n_q, m)."""
        return np.asarray((T.T @ _padded(self.G, T.shape[0])).todense())


#: solvers whose load-case block takes the m contact columns up front (see UnilateralSet.in_block)
IN_BLOCK = ("amg", "pmg")


def _padded(G: sp.spmatrix, n: int) -> sp.csc_matrix:
    """G with zero rows for DOFs of extra nodes added after the springs."""
    G = sp.csc_matrix(G)
    if G.shape[0] < n:
        G = sp.vstack([G, sp.csc_matrix((n - G.shape[0], G.shape[1]))]).tocsc()
    return G


def merge(*sets: UnilateralSet) -> UnilateralSet:
    """One set of all elements (directions padded to the longest); labels '' where a set has none.
    Solved per load case by one method, so its info covers all of them."""
    n = max(s.G.shape[0] for s in sets)
    G = sp.hstack([_padded(s.G, n) for s in sets]).tocsc()
    labels = [lab for s in sets for lab in (s.labels or [""] * s.n)]
    blocks = [s.block_solvers for s in sets]
    return UnilateralSet(G, np.concatenate([s.k for s in sets]), np.concatenate([s.h for s in sets]), labels,
                         block_solvers=() if any(b == () for b in blocks) else None)


class MissingColumn(Exception):
    """The pivoting wants to close spring ``i`` whose column K0^-1 g_i is not solved yet."""

    def __init__(self, i: int):
        super().__init__(i)
        self.i = i


def lcp_murty(q: np.ndarray, C: np.ndarray, k: np.ndarray, known: np.ndarray, tol: float) -> tuple[np.ndarray, int]:
    """Solve w = q + (C + diag(1/k)) lambda, w, lambda >= 0, w . lambda = 0 by Murty's least-index
    principal pivoting.  Only the columns of C with ``known`` are read (an open spring's column is
    never needed); wanting an unknown one raises :class:`MissingColumn`.  ``tol`` (mm) is the
    violation below which a condition counts as met.  Returns (lambda N, pivots)."""
    m = len(q)
    closed = np.zeros(m, bool)
    lam = np.zeros(m)
    for pivots in range(2**m + m + 1):  # finite for a P-matrix; the bound only guards bad input
        A = np.flatnonzero(closed)
        lam = np.zeros(m)
        if len(A):
            MA = C[np.ix_(A, A)] + np.diag(1.0 / k[A])
            lam[A] = np.linalg.solve(0.5 * (MA + MA.T), -q[A])
        w = q + C[:, A] @ lam[A] + lam / k
        bad = np.flatnonzero((closed & (lam / k < -tol)) | (~closed & (w < -tol)))
        if len(bad) == 0:
            return lam, pivots
        i = int(bad[0])
        if not closed[i] and not known[i]:
            raise MissingColumn(i)
        closed[i] = not closed[i]
    raise FemboneError(f"unilateral springs: the active set did not settle after {2**m + m + 1} pivots (is K0 singular?)")


def correct(uset: UnilateralSet, solve_q, T: sp.spmatrix, U: np.ndarray, F: np.ndarray,
            names: list[str], X_all: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact solutions with the unilateral springs of every load case (columns of ``U``, the open
    solutions K0^-1 F): returns (U + X lambda, F + G lambda), lambda per load case from
    :func:`lcp_murty`.  ``solve_q`` solves K0_q Q = B for a block B in the reduced space of
    u = T q (+ offsets: X is the homogeneous part T Q).  The corrected F holds the contact
    forces as loads on K0 (equal and opposite at a joint: no net force).  ``X_all`` (n_dofs, m):
    all columns K0^-1 G already solved (in the load cases' block); then no solve is made."""
    t0 = time.perf_counter()
    G = _padded(uset.G, U.shape[0])
    m = G.shape[1]
    k, h = np.asarray(uset.k, float), np.asarray(uset.h, float)
    S0 = np.asarray(G.T @ U)  # (m, n_cases) openings of the open solutions
    Q = S0 + h[:, None]
    scale = max(float(np.abs(Q).max(initial=0.0)), float(h.max(initial=0.0)), 1e-9)
    tol = 1e-9 * scale
    X = np.zeros((U.shape[0], m))
    C = np.zeros((m, m))
    known = np.zeros(m, bool)
    need = sorted(set(np.flatnonzero((Q < -tol).any(axis=1)).tolist()))
    blocks = 0
    if X_all is not None:
        X[:] = X_all
        C[:] = np.asarray(G.T @ X)
        known[:] = True
        need = []
    lam = np.zeros((m, U.shape[1]))
    pivots: dict[str, int] = {}
    while True:
        if need:
            B = np.asarray((T.T @ G[:, need]).todense())
            X[:, need] = T @ np.asarray(solve_q(B)).reshape(B.shape)
            C[:, need] = np.asarray(G.T @ X[:, need])
            known[need] = True
            blocks += 1
        need = []
        for j, name in enumerate(names):
            try:
                lam[:, j], pivots[name] = lcp_murty(Q[:, j], C, k, known, tol)
            except MissingColumn as e:
                need.append(e.i)
        need = sorted(set(need))
        if not need:
            break
    cols = np.flatnonzero(known)
    uset.info = {"columns": [uset.labels[i] if uset.labels else int(i) for i in cols], "blocks": blocks,
                 "in_block": X_all is not None, "pivots": pivots,
                 "closed": {n: [uset.labels[i] if uset.labels else int(i) for i in np.flatnonzero(lam[:, j] > 0)]
                            for j, n in enumerate(names)},
                 "seconds": time.perf_counter() - t0}
    return U + X[:, cols] @ lam[cols], F + np.asarray(G @ lam)
