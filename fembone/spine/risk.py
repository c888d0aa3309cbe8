"""Fracture-risk metrics of a vertebra under one load case. Units: N, N mm, mm, MPa.

Pure functions on numpy arrays (quadrature-point fields (ne, nq, 3, 3), point volumes
``wdet`` (ne, nq), per-element region shares (ne,)); no case files here.

* **Trabecular failure** (Pistoia et al., Bone 30:842, 2002): effective strain
  eps_eff = sqrt(2 U / E) with U = sigma:eps / 2 the strain-energy density at a point and E
  the local Young's modulus; the *failed volume* is the share of trabecular bone volume with
  eps_eff above the critical strain, and the *strength multiplier* is the load factor at which
  the critical share (2 %) of trabecular bone reaches it.  Critical strain 0.7 % with 2 %
  critical volume, the defaults of Numerics88 ``n88pistoia`` (an implementation of Pistoia
  et al. [S]).  In a linear model strains scale with the load, so the multiplier is the 2 %
  volume quantile of crit / eps_eff.  Alternative criterion: asymmetric principal strains
  against the vertebral trabecular yield strains 0.84 % compression / 0.78 % tension
  (Kopperdahl & Keaveny, J Biomech 31:601, 1998 [V]).
* **Cortex**, reported separately, with cortical yield strains (Bayraktar et al., J Biomech
  37:27, 2004 [M]).
* **Rim share**: in volume-fraction lesion models, the share of the 2 % tail that lies in
  mixed elements (trabecular share strictly between 0 and 1); ``rim_exclusion`` recomputes
  the criterion on pure elements.
* **Strength with a preload held fixed** (moment load cases): fields of the preload alone and
  of the load alone superpose, eps(lambda) = eps_pre + lambda eps_load; lambda is found by
  bisection on the vectorised 2 % criterion.  Strength = lambda x applied load (N or N mm).
* **Posterior-wall bulge** (Whyne et al., J Biomech 34:1317, 2001; Tschirhart et al. 2006):
  the wall's best rigid motion (area-weighted least squares) is removed, then the largest
  remaining displacement along the wall's outward normal (into the canal), mm.
* factor of risk = applied / strength (Keaveny & Bouxsein 2008; 1 is the threshold).
* Cement stresses: :mod:`fembone.spine.cement`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fembone.core.errors import InputError
from fembone.spine.bone import (
    CORTICAL_YIELD_STRAIN_COMPRESSION,
    CORTICAL_YIELD_STRAIN_TENSION,
    PMMA_STRENGTH,
    YIELD_STRAIN_COMPRESSION,
    YIELD_STRAIN_TENSION,
)

#: Pistoia criterion: failure when this share of (trabecular) bone volume exceeds the critical strain
CRITICAL_FRACTION = 0.02
#: Pistoia et al. 2002 critical effective strain (n88pistoia default 0.007)
PISTOIA_CRITICAL_STRAIN = 0.007
#: trabecular shares within this distance of 0 or 1 count as pure, not mixed
MIXED_TOL = 1e-9


# -- point measures --------------------------------------------------------------------------
def strain_energy_density(eps_q: np.ndarray, sig_q: np.ndarray) -> np.ndarray:
    """U = sigma:eps / 2 (MPa = mJ/mm^3) at each point; tensor (not engineering) shear components."""
    return 0.5 * np.einsum("...ij,...ij->...", sig_q, eps_q)


def _points(E, shape) -> np.ndarray:
    """Broadcast per-element (ne,) or per-point (ne, nq) values to the point array ``shape``."""
    E = np.asarray(E, float)
    return E[:, None] * np.ones(shape) if E.ndim == 1 and len(shape) == 2 else np.broadcast_to(E, shape)


def effective_strain(eps_q: np.ndarray, sig_q: np.ndarray, E) -> np.ndarray:
    """Pistoia's effective strain sqrt(2 U / E) (mm/mm); ``E`` per element (ne,) or per point (MPa).

    Under uniaxial stress it equals the axial strain: U = sigma^2 / (2 E), eps_eff = sigma / E.
    """
    U = np.maximum(strain_energy_density(eps_q, sig_q), 0.0)
    return np.sqrt(2.0 * U / _points(E, U.shape))


def young_modulus(C: np.ndarray) -> np.ndarray:
    """Local Young's modulus (ne,) of Voigt stiffnesses (ne, 6, 6): the largest of 1 / S_ii, i = x, y, z.

    Equals E for isotropic (and Hill-mixed isotropic) materials; the axial modulus of a
    transversely isotropic one (n88pistoia also takes the largest E of an orthotropic material).
    """
    S = np.linalg.inv(np.asarray(C, float))
    return 1.0 / np.min(np.diagonal(S, axis1=-2, axis2=-1)[..., :3], axis=-1)


def yield_multipliers(eps_q: np.ndarray, eyc: float = YIELD_STRAIN_COMPRESSION, eyt: float = YIELD_STRAIN_TENSION) -> np.ndarray:
    """Load factor at which each point reaches yield: min(eyc / |eps_min|, eyt / eps_max) (inf if unstrained)."""
    ev = np.linalg.eigvalsh(eps_q)
    with np.errstate(divide="ignore"):
        lc = np.where(ev[..., 0] < 0, eyc / np.abs(ev[..., 0]), np.inf)
        lt = np.where(ev[..., 2] > 0, eyt / ev[..., 2], np.inf)
    return np.minimum(lc, lt)


def effective_multipliers(eps_eff: np.ndarray, critical_strain: float = PISTOIA_CRITICAL_STRAIN) -> np.ndarray:
    """Load factor at which each point's effective strain reaches ``critical_strain`` (inf if unstrained)."""
    with np.errstate(divide="ignore"):
        return np.where(eps_eff > 0, critical_strain / np.where(eps_eff > 0, eps_eff, 1.0), np.inf)


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Smallest value v with (weight of values <= v) >= q x total weight (ties at the boundary count).

    With load multipliers as ``values`` this is the load factor at which the share q of the
    weighted volume has failed.  Returns inf when no weight is positive.
    """
    values, weights = np.ravel(values), np.ravel(weights)
    keep = weights > 0
    if not keep.any():
        return float("inf")
    values, weights = values[keep], weights[keep]
    order = np.argsort(values, kind="stable")
    cw = np.cumsum(weights[order])
    k = int(np.searchsorted(cw, q * cw[-1] * (1.0 - 1e-12)))
    return float(values[order][min(k, len(order) - 1)])


# -- volume criteria ---------------------------------------------------------------------------
def _mixed(share: np.ndarray) -> np.ndarray:
    return (share > MIXED_TOL) & (share < 1.0 - MIXED_TOL)


def failure_from_multipliers(lam: np.ndarray, wdet: np.ndarray, share: np.ndarray,
                             critical_fraction: float = CRITICAL_FRACTION, rim_exclusion: bool = False) -> dict:
    """Failed share at the applied load and the critical-share load factor from per-point multipliers.

    ``lam`` (ne, nq) load factor at which each point fails, ``wdet`` (ne, nq) point volumes,
    ``share`` (ne,) the volume share of each element that belongs to the judged tissue.
    Returns ``failed_volume_fraction`` (share with lam < 1), ``strength_multiplier``,
    ``tail_mixed_share`` (share of the critical tail, points with lam <= multiplier, lying in
    mixed elements 0 < share < 1), ``mixed_volume_share`` (share of the judged volume in mixed
    elements: the tail share to compare with).  With ``rim_exclusion`` the criterion is
    evaluated on pure elements only; the values with the rim are kept under ``*_with_rim``.
    """
    share = np.asarray(share, float)
    dv = wdet * share[:, None]
    mixed = np.broadcast_to(_mixed(share)[:, None], dv.shape)
    total = dv.sum()
    if not total > 0:
        raise InputError("no bone volume to judge (all weights are zero)", "risk")
    lam_all = weighted_quantile(lam, dv, critical_fraction)
    tail = (lam <= lam_all) & (dv > 0)
    out = {
        "failed_volume_fraction": float(dv[lam < 1.0].sum() / total),
        "strength_multiplier": lam_all,
        "tail_mixed_share": float(dv[tail & mixed].sum() / dv[tail].sum()) if np.isfinite(lam_all) else 0.0,
        "mixed_volume_share": float(dv[mixed].sum() / total),
        "rim_excluded": bool(rim_exclusion),
    }
    if rim_exclusion:
        dvp = np.where(mixed, 0.0, dv)
        if not dvp.sum() > 0:
            raise InputError("rim_exclusion leaves no pure bone element to judge", "risk")
        out["failed_volume_fraction_with_rim"] = out["failed_volume_fraction"]
        out["strength_multiplier_with_rim"] = lam_all
        out["failed_volume_fraction"] = float(dvp[lam < 1.0].sum() / dvp.sum())
        out["strength_multiplier"] = weighted_quantile(lam, dvp, critical_fraction)
    return out


def trabecular_failure(eps_q: np.ndarray, sig_q: np.ndarray | None, E, wdet: np.ndarray, trabecular_share: np.ndarray, *,
                       criterion: str = "effective", critical_strain: float = PISTOIA_CRITICAL_STRAIN,
                       yield_compression: float = YIELD_STRAIN_COMPRESSION, yield_tension: float = YIELD_STRAIN_TENSION,
                       critical_fraction: float = CRITICAL_FRACTION, rim_exclusion: bool = False) -> dict:
    """Pistoia failed volume and strength multiplier of the trabecular bone (see module docstring).

    ``eps_q``, ``sig_q`` (ne, nq, 3, 3) strain and stress at quadrature points; ``E`` local
    Young's modulus (ne,) or (ne, nq), MPa (:func:`young_modulus`); ``wdet`` (ne, nq) point
    volumes (mm^3); ``trabecular_share`` (ne,) volume share of each element that is trabecular
    bone (0 elsewhere: cortex, posterior elements, lesion, cement).  ``criterion``:
    ``effective`` (Pistoia) or ``principal`` (asymmetric yield strains; ``sig_q``, ``E`` unused).
    """
    lam = _multipliers(eps_q, sig_q, E, criterion, critical_strain, yield_compression, yield_tension)
    out = failure_from_multipliers(lam, wdet, trabecular_share, critical_fraction, rim_exclusion)
    out["criterion"] = criterion
    return out


def cortical_failure(eps_q: np.ndarray, wdet: np.ndarray, cortical_share: np.ndarray, *,
                     yield_compression: float = CORTICAL_YIELD_STRAIN_COMPRESSION,
                     yield_tension: float = CORTICAL_YIELD_STRAIN_TENSION,
                     critical_fraction: float = CRITICAL_FRACTION) -> dict:
    """The cortical shell judged on its own: principal strains against cortical yield strains.

    Returns ``cortex_failed_volume_fraction`` (share of cortical volume past yield at the
    applied load), ``cortex_strength_multiplier`` (load factor at which ``critical_fraction`` of
    the cortex has yielded) and ``cortex_first_yield_multiplier`` (first point to yield).
    """
    lam = yield_multipliers(eps_q, yield_compression, yield_tension)
    r = failure_from_multipliers(lam, wdet, cortical_share, critical_fraction)
    dv = wdet * np.asarray(cortical_share, float)[:, None]
    return {
        "cortex_failed_volume_fraction": r["failed_volume_fraction"],
        "cortex_strength_multiplier": r["strength_multiplier"],
        "cortex_first_yield_multiplier": float(lam[dv > 0].min()),
    }


def bone_metrics(eps_q: np.ndarray, wdet: np.ndarray, bone_share: np.ndarray) -> dict:
    """Legacy: principal-strain criterion on all body bone (cortex included) -- use :func:`trabecular_failure`."""
    r = failure_from_multipliers(yield_multipliers(eps_q), wdet, bone_share)
    return {"failed_volume_fraction": r["failed_volume_fraction"], "strength_multiplier": r["strength_multiplier"]}


def _multipliers(eps_q, sig_q, E, criterion, crit, eyc, eyt) -> np.ndarray:
    if criterion == "effective":
        if sig_q is None:
            raise InputError("the effective-strain criterion needs the stress field", "risk.criterion")
        return effective_multipliers(effective_strain(eps_q, sig_q, E), crit)
    if criterion == "principal":
        return yield_multipliers(eps_q, eyc, eyt)
    raise InputError(f"unknown failure criterion '{criterion}' (effective, principal)", "risk.criterion")


# -- strength with a preload held fixed -----------------------------------------------------
def strength_with_preload(eps_load: np.ndarray, sig_load: np.ndarray | None, E, wdet: np.ndarray, trabecular_share: np.ndarray,
                          applied: float, eps_pre: np.ndarray | None = None, sig_pre: np.ndarray | None = None, *,
                          criterion: str = "effective", critical_strain: float = PISTOIA_CRITICAL_STRAIN,
                          yield_compression: float = YIELD_STRAIN_COMPRESSION, yield_tension: float = YIELD_STRAIN_TENSION,
                          critical_fraction: float = CRITICAL_FRACTION, rtol: float = 1e-9) -> dict:
    """Load (N or N mm) at which ``critical_fraction`` of trabecular bone fails, the preload held fixed.

    Linear superposition: the fields of the preload alone (``eps_pre``, ``sig_pre``) and of the
    load alone (``eps_load``, ``sig_load``, for the ``applied`` magnitude) give
    eps(lambda) = eps_pre + lambda eps_load.  The failed share F(lambda) (points whose
    criterion value reaches 1) is evaluated vectorised; lambda is the smallest load factor with
    F(lambda) >= critical_fraction, found by doubling then bisection to relative ``rtol``.
    For the effective strain, U(lambda) = U_pp + lambda sigma_pre:eps_load + lambda^2 U_ll, so
    each step costs three multiply-adds per point.  Without a preload this is the plain force
    (or moment) case and equals the closed-form quantile of :func:`trabecular_failure`.
    If the preload alone already fails the critical share, lambda = 0.
    Returns ``strength_multiplier`` (lambda), ``strength`` (lambda x applied) and
    ``preload_failed_fraction`` (F(0)).
    """
    dv = wdet * np.asarray(trabecular_share, float)[:, None]
    total = dv.sum()
    if not total > 0:
        raise InputError("no bone volume to judge (all weights are zero)", "risk")
    if eps_pre is None:
        lam_pts = _multipliers(eps_load, sig_load, E, criterion, critical_strain, yield_compression, yield_tension)
        lam = weighted_quantile(lam_pts, dv, critical_fraction)
        return {"strength_multiplier": lam, "strength": lam * applied, "preload_failed_fraction": 0.0}
    ratio = _ratio_function(eps_load, sig_load, eps_pre, sig_pre, E, criterion, critical_strain, yield_compression, yield_tension)

    def share(lam: float) -> float:
        return float(dv[ratio(lam) >= 1.0].sum() / total)

    f0 = share(0.0)
    lam = 0.0 if f0 >= critical_fraction else _first_crossing(lambda x: share(x) >= critical_fraction, rtol)
    return {"strength_multiplier": lam, "strength": lam * applied, "preload_failed_fraction": f0}


def _ratio_function(eps_l, sig_l, eps_p, sig_p, E, criterion, crit, eyc, eyt) -> Callable[[float], np.ndarray]:
    """lambda -> criterion value / limit at every point (>= 1: failed) for eps_p + lambda eps_l."""
    if criterion == "effective":
        if sig_l is None or sig_p is None:
            raise InputError("the effective-strain criterion needs the stress fields", "risk.criterion")
        Upp = strain_energy_density(eps_p, sig_p)
        Ull = strain_energy_density(eps_l, sig_l)
        X = np.einsum("...ij,...ij->...", sig_p, eps_l)  # = sig_l : eps_p for a symmetric C
        Uc = 0.5 * _points(E, Upp.shape) * crit**2
        return lambda lam: (Upp + lam * X + lam * lam * Ull) / Uc
    if criterion == "principal":
        def ratio(lam: float) -> np.ndarray:
            ev = np.linalg.eigvalsh(eps_p + lam * eps_l)
            return np.maximum(-ev[..., 0] / eyc, ev[..., 2] / eyt)
        return ratio
    raise InputError(f"unknown failure criterion '{criterion}' (effective, principal)", "risk.criterion")


def _first_crossing(reached: Callable[[float], bool], rtol: float, max_doublings: int = 200) -> float:
    """Smallest lambda > 0 (to rtol) where ``reached`` turns true, assuming it is false at 0."""
    hi = 1.0
    for _ in range(max_doublings):
        if reached(hi):
            break
        hi *= 2.0
    else:
        return float("inf")
    lo = 0.0
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        if reached(mid):
            hi = mid
        else:
            lo = mid
    return hi


# -- posterior-wall bulge ---------------------------------------------------------------------
def _wall_geometry(points: np.ndarray, faces: np.ndarray):
    """Wall nodes, their area weights (face area shared equally by its nodes) and the mean outward normal."""
    from fembone.core.loads import face_quadrature

    _, nda, _ = face_quadrature(points, faces)
    n = nda.sum(axis=(0, 1))
    n /= np.linalg.norm(n)
    area = np.linalg.norm(nda, axis=2).sum(axis=1)  # (nf,)
    nodes, inv = np.unique(faces, return_inverse=True)
    w = np.bincount(inv.ravel(), weights=np.repeat(area / faces.shape[1], faces.shape[1]), minlength=len(nodes))
    return nodes, w, n


def rigid_fit(x: np.ndarray, u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Best rigid motion t + theta x (x - c) of displacements ``u`` at points ``x`` (weights ``w``).

    Small rotations; weighted least squares over all three components.  Returns the rigid
    displacement at each point (n, 3).
    """
    c = (w[:, None] * x).sum(axis=0) / w.sum()
    r = x - c
    # u = t + theta x r = t - [r]x theta
    A = np.zeros((len(x), 3, 6))
    A[:, :, :3] = np.eye(3)
    A[:, 0, 4], A[:, 0, 5] = r[:, 2], -r[:, 1]
    A[:, 1, 3], A[:, 1, 5] = -r[:, 2], r[:, 0]
    A[:, 2, 3], A[:, 2, 4] = r[:, 1], -r[:, 0]
    sw = np.sqrt(w)[:, None, None]
    p = np.linalg.lstsq((sw * A).reshape(-1, 6), (sw[:, :, 0] * u).reshape(-1), rcond=None)[0]
    return np.einsum("nij,j->ni", A, p)


def bulge(u: np.ndarray, points: np.ndarray, faces: np.ndarray) -> float:
    """Posterior-wall bulge (mm) relative to the wall's own rigid motion.

    The best rigid motion of the wall nodes (translation + small rotation, least squares with
    area weights, :func:`rigid_fit`) is subtracted; the bulge is the largest remaining
    displacement along the wall's mean outward normal (positive: into the canal).  Tilt and
    translation of the whole wall, as under a bending moment, do not count.
    """
    nodes, w, n = _wall_geometry(points, faces)
    d = u[nodes] - rigid_fit(points[nodes], u[nodes], w)
    return float((d @ n).max())


def bulge_absolute(u: np.ndarray, points: np.ndarray, faces: np.ndarray) -> float:
    """Largest displacement of the wall nodes along the wall's mean outward normal (mm), rigid motion included."""
    from fembone.core.loads import face_quadrature

    _, nda, _ = face_quadrature(points, faces)
    n = nda.sum(axis=(0, 1))
    n /= np.linalg.norm(n)
    nodes = np.unique(faces)
    return float((u[nodes] @ n).max())


def cement_metrics(stress: np.ndarray, cement_share: np.ndarray, threshold: float = 0.5) -> dict:
    """Legacy: peak von Mises and most compressive principal stress in elements mostly bulk cement (MPa).

    Use :func:`fembone.spine.cement.cement_utilisation` (bulk and interdigitated cement,
    compression and tension).
    """
    from fembone.core.results import principal, von_mises

    sel = cement_share >= threshold
    if not sel.any():
        return {}
    vm = float(von_mises(stress[sel]).max())
    smin = float(principal(stress[sel])[:, 0].min())
    return {"cement_peak_von_mises": vm, "cement_min_principal": smin, "cement_stress_ratio": vm / PMMA_STRENGTH}
