"""Elastic-plastic laws of vertebral bone for strength analyses, and force-displacement metrics.

Units: MPa, mm, N, g/cm^3.  Tags as in shared/design/field.md: [V] read in a paper or abstract
found by search, [S] secondary source, [M] from memory, not confirmed by search.

Yield (all bone laws) is strain based: a bone element yields in uniaxial compression at
eps_yc and in uniaxial tension at eps_yt whatever its modulus, so its yield stresses are
sigma_yc = eps_yc E and sigma_yt = eps_yt E with E the element's own modulus.  Apparent yield
strains of trabecular bone are nearly independent of density within a site (Morgan &
Keaveny, J Biomech 34:569, 2001 [M]; Morgan et al., J Biomech 37:1413, 2004 [V, abstract:
"uniform within an anatomic site"]), so the yield *stress* follows the density through the
density-modulus law: with Morgan et al. 2003 (E = 4730 rho^1.56 [S]) sigma_yc = 39.7 rho^1.56
(3.2 MPa at rho = 0.2 g/cm^3), against 37.4 rho^1.39 = 4.0 MPa reported for vertebral bone
(Kopperdahl & Keaveny [S, public code, not checked against the paper]).  The multiaxial
surface is a Drucker-Prager cone through both uniaxial yield points
(:mod:`fembone.core.plasticity`); Gupta et al. (Comput Mech 40:61, 2007 [V, abstract]) use a
principal-strain surface instead, the other common choice for trabecular bone.

* **trabecular** (``kopperdahl_keyak``): eps_yc = 0.84 %, eps_yt = 0.78 % (Kopperdahl &
  Keaveny, J Biomech 31:601, 1998 [V]).  Post-yield after Keyak (Med Eng Phys 23:165, 2001
  [M]; the law of the QCT-FE vertebral strength models of Imai et al., Spine 31:1789, 2006 [M]):
  a perfectly plastic plateau of eps_AB = -0.00315 + 0.0728 rho_ash, then linear softening of
  slope E_p = -2080 rho_ash^1.45 MPa (stress over total strain) down to sigma_min = 43.1
  rho_ash^1.81 MPa, then flat; rho_ash = 0.6 rho_app (field notes).  At rho_app = 0.20:
  plateau 0.56 %, E_p = -96 MPa (-25 % of E), sigma_min = 0.93 MPa (29 % of yield).
* **cortical** (``cortical_plastic``): eps_yc = 1.04 %, eps_yt = 0.73 % (Bayraktar et al.,
  J Biomech 37:27, 2004 [M]), then perfectly plastic: Keyak's plateau at cortical ash density
  (~1.1 g/cm^3) is ~7.7 % plastic strain, far beyond the strains of a vertebral test.
* **``bonelab_kopperdahl``** (CT models only, any bone region): the nonlinear bone law of the
  Bonelab spineFE benchmark (Walle, Matheson & Boyd 2025, bioRxiv 2025.04.19.649449; its
  public pipeline, OGO ``kopperdahl_trab_yc`` with ``vtkboneMohrCoulombIsotropicMaterial``
  [V, code read]): a *stress*-based yield sigma_y = 37.4 rho_QCT^1.39 MPa (rho_QCT the
  calibrated K2HPO4 density in g/cm^3, floored at 0.001) in compression *and* tension, for
  trabecular, cortical and posterior bone alike, perfectly plastic.  With equal yield stresses
  the Drucker-Prager cone here is von Mises; the benchmark's Mohr-Coulomb is then Tresca
  (identical in uniaxial stress, at most 15 % apart in shear).  Use it with the benchmark's
  modulus law (``ct: {law: bonelab_kopperdahl}``) to compare with the benchmark's solver on
  equal terms; use tet10 (linear tetrahedra lock under isochoric plastic flow: the force of a
  perfectly plastic tet4 model keeps rising, Nagtegaal, Parks & Rice 1974 [M]).
* **posterior elements, PMMA (caps, cement), lesions, cement-bone composite, discs**: elastic.
  The posterior elements carry no load from a platen or disc on the body (in_vitro and discs
  set-ups); PMMA yields near 70 MPa (ISO 5833 minimum), an order above the bone's stresses;
  lesion tissue carries next to nothing.  Any region can be given a law in the case file.

Mixed elements (a lesion or cement share below 1/2) take the law of their dominant bone
phase, with the whole curve scaled by E_element / E_bone (strains unchanged), so that the
strain-based yield holds for the mixed stiffness too.  Small strains throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fembone.core.errors import InputError
from fembone.spine.bone import (
    CORTICAL_YIELD_STRAIN_COMPRESSION,
    CORTICAL_YIELD_STRAIN_TENSION,
    YIELD_STRAIN_COMPRESSION,
    YIELD_STRAIN_TENSION,
)

#: rho_ash / rho_app of vertebral trabecular bone (field notes, ~0.6)
ASH_FRACTION = 0.6
#: post-yield forms a law can take
POST_YIELD = ("keyak2001", "perfectly_plastic", "hardening")
#: floor of the calibrated density (g/cm^3) in a density-based yield stress (voids yield at ~0)
MIN_QCT_DENSITY = 0.001
#: offset of the yield point on the force-displacement curve, as a share of the specimen height
#: (the 0.2 % offset convention of material testing applied to the bone's height)
OFFSET_STRAIN = 0.002
#: relative force drop that counts as a fall of the force-displacement curve (the Newton tolerance's
#: order: the analysis' default equilibrium tolerance is 1e-5 of the reactions)
PEAK_RTOL = 1e-5


@dataclass(frozen=True)
class BoneLaw:
    """Elastic-plastic law of one region: strain based, or stress based on CT density.

    ``post_yield``: ``keyak2001`` (plateau, softening, floor; needs the apparent density),
    ``perfectly_plastic`` or ``hardening`` (post-yield modulus ``hardening_ratio`` x E, as a
    slope of stress over total strain).  ``yield_stress`` = (a, b): the yield stress is
    a rho_QCT^b MPa in compression and tension alike (calibrated density, g/cm^3; CT models
    only) instead of the strain-based eps_y E; the yield strains are then unused.
    """

    name: str
    yield_strain_compression: float
    yield_strain_tension: float
    post_yield: str = "perfectly_plastic"
    hardening_ratio: float = 0.0
    source: str = ""
    yield_stress: tuple[float, float] | None = None

    @property
    def tension_ratio(self) -> float:
        """sigma_yt / sigma_yc (1 for the symmetric stress-based laws)."""
        if self.yield_stress is not None:
            return 1.0
        return self.yield_strain_tension / self.yield_strain_compression

    def check(self, where: str) -> None:
        if self.yield_stress is not None:
            a, b = self.yield_stress
            if not (a > 0 and b > 0) or self.post_yield != "perfectly_plastic":
                raise InputError(f"a density-based yield stress needs a > 0, b > 0 and post_yield: "
                                 f"perfectly_plastic (got a {a:g}, b {b:g}, {self.post_yield})", where)
            return
        ec, et = self.yield_strain_compression, self.yield_strain_tension
        if not (0 < ec < 0.1 and 0 < et < 0.1):
            raise InputError(f"yield strains must lie in (0, 0.1) (got compression {ec:g}, tension {et:g})", where)
        if not (1.0 / 3.0 < et / ec <= 1.0):
            raise InputError(f"tension yield strain {et:g} must be at most the compression one {ec:g} and above a "
                             "third of it (the Drucker-Prager cone)", where)
        if self.post_yield not in POST_YIELD:
            raise InputError(f"unknown post_yield '{self.post_yield}' (known: {', '.join(POST_YIELD)})", where)
        if self.post_yield == "hardening" and not 0 < self.hardening_ratio < 1:
            raise InputError(f"hardening_ratio must lie in (0, 1), got {self.hardening_ratio:g}", where)


TRABECULAR = BoneLaw("kopperdahl_keyak", YIELD_STRAIN_COMPRESSION, YIELD_STRAIN_TENSION, "keyak2001",
                     source="yield strains Kopperdahl & Keaveny 1998 [V]; post-yield Keyak 2001 [M]")
CORTICAL = BoneLaw("cortical_plastic", CORTICAL_YIELD_STRAIN_COMPRESSION, CORTICAL_YIELD_STRAIN_TENSION,
                   "perfectly_plastic", source="yield strains Bayraktar et al. 2004 [M]; perfectly plastic")
BONELAB = BoneLaw("bonelab_kopperdahl", float("nan"), float("nan"), "perfectly_plastic", yield_stress=(37.4, 1.39),
                  source="Bonelab spineFE benchmark (Walle, Matheson & Boyd 2025): sigma_y = 37.4 rho_QCT^1.39 MPa "
                         "in compression and tension, perfectly plastic [V, public OGO code]")
#: named laws a case file may ask for
LAWS = {TRABECULAR.name: TRABECULAR, CORTICAL.name: CORTICAL, BONELAB.name: BONELAB}
#: default law per region (None: elastic)
DEFAULT_LAWS: dict[str, BoneLaw | None] = {"trabecular": TRABECULAR, "cortical_shell": CORTICAL, "posterior_elements": None}


def keyak2001(rho_ash) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Post-yield parameters of Keyak (Med Eng Phys 23:165, 2001) [M] from ash density (g/cm^3).

    Returns the plateau eps_AB (plastic strain, >= 0), the softening slope E_p (MPa, stress
    over total strain, < 0) and the residual stress sigma_min (MPa).
    """
    r = np.asarray(rho_ash, float)
    return np.maximum(-0.00315 + 0.0728 * r, 0.0), -2080.0 * r**1.45, 43.1 * r**1.81


def compressive_curve(law: BoneLaw, E_bone, scale=1.0, rho_app=None, rho_qct=None) -> tuple[np.ndarray, np.ndarray]:
    """Compressive yield curve of ``law`` per element: (alpha knots (ne, m), stresses (ne, m)), MPa.

    ``E_bone`` (ne,) modulus of the pure bone phase (MPa); ``scale`` (ne,) = E_element / E_bone
    scales the stresses of mixed elements; ``rho_app`` (ne,) apparent density (keyak2001);
    ``rho_qct`` (ne,) calibrated K2HPO4 density, g/cm^3 (density-based yield stress).
    alpha is the plastic strain of uniaxial compression.
    """
    E = np.atleast_1d(np.asarray(E_bone, float))
    s = np.broadcast_to(np.asarray(scale, float), E.shape)
    ne = len(E)
    if law.yield_stress is not None:
        if rho_qct is None:
            raise InputError(f"law {law.name}: its yield stress follows calibrated CT density; use it on a ct: model",
                             "analysis.laws")
        a, b = law.yield_stress
        rho = np.maximum(np.broadcast_to(np.asarray(rho_qct, float), E.shape), MIN_QCT_DENSITY)
        return np.zeros((ne, 1)), (s * a * rho**b)[:, None]
    sy = law.yield_strain_compression * E
    if law.post_yield == "perfectly_plastic":
        return np.zeros((ne, 1)), (s * sy)[:, None]
    if law.post_yield == "hardening":
        Ep = law.hardening_ratio * E
        H = E * Ep / (E - Ep)  # slope over plastic strain
        a1 = np.full(ne, 1.0)  # 100 % plastic strain: beyond any small-strain analysis
        return np.column_stack([np.zeros(ne), a1]), np.column_stack([s * sy, s * (sy + H * a1)])
    if rho_app is None:
        raise InputError(f"law {law.name}: keyak2001 post-yield needs the apparent density", "rho_app")
    eab, Ep, smin = keyak2001(ASH_FRACTION * np.broadcast_to(np.asarray(rho_app, float), E.shape))
    H = E * Ep / (E - Ep)  # stress over plastic strain (< 0)
    smin = np.minimum(smin, 0.999 * sy)  # a residual above yield would mean no softening at all
    a1 = np.maximum(eab, 1e-9)
    a2 = a1 + (sy - smin) / np.abs(H)
    return np.column_stack([np.zeros(ne), a1, a2]), s[:, None] * np.column_stack([sy, sy, smin])


def failure_strain(law: BoneLaw, alpha_knots: np.ndarray) -> np.ndarray:
    """Per element, the compressive plastic strain from which a point counts as *failed*: the
    start of softening (keyak2001), else first yield (0)."""
    if law.post_yield == "keyak2001":
        return alpha_knots[:, 1]
    return np.zeros(len(alpha_knots))


def first_peak(force: np.ndarray, rtol: float = PEAK_RTOL) -> int | None:
    """Index of the first local maximum of a force curve (the ultimate load of a test), or None
    while the force only rises.  After it, the force of a softened vertebra can rise again where
    elastic parts (caps, cement, lesion) and a flat cortical plateau carry on; the path's largest
    force would then sit at its end and grow with the platen travel.

    A fall counts once the force drops by more than ``rtol`` x max |F| from one point to the next
    (the equilibrium tolerance's noise on a flat plastic plateau is no fall); the peak is the
    point before that fall, or the largest force before it where that is higher by more than the
    same margin."""
    F = np.asarray(force, float)
    if len(F) < 3:
        return None
    thr = rtol * np.abs(F).max()
    i = np.flatnonzero(F[1:] < F[:-1] - thr)
    if not len(i):
        return None
    j = int(i[0])
    k = int(np.argmax(F[: j + 1]))
    return j if F[j] >= F[k] - thr else k


def strength_metrics(displacement: np.ndarray, force: np.ndarray, offset: float) -> dict:
    """Ultimate load and offset-yield point of a force-displacement curve (mm, N; compression positive).

    strength = the first local maximum of the force (the ultimate load as a compression test
    reads it), or the last force when the curve never falls (``peak_reached`` False: a lower
    bound); ``path_maximum`` = the largest force of the whole path.  Yield point = where the
    curve crosses the line of the initial stiffness k0 (secant of the first step) shifted by
    ``offset`` (mm): F = k0 (d - offset) (the offset method of ASTM E8 / Keaveny's bone tests).
    """
    d, F = np.asarray(displacement, float), np.asarray(force, float)
    peak = first_peak(F)
    k = peak if peak is not None else len(F) - 1
    out = {"strength": float(F[k]), "displacement_at_peak": float(d[k]), "peak_index": int(k),
           "peak_reached": peak is not None, "path_maximum": float(F.max()), "initial_stiffness": None,
           "yield_force": None, "yield_displacement": None, "offset": float(offset)}
    if len(d) < 2 or d[1] <= 0:
        return out
    k0 = F[1] / d[1]
    out["initial_stiffness"] = float(k0)
    g = F - k0 * (d - offset)  # > 0 above the offset line
    cross = np.flatnonzero((g[:-1] > 0) & (g[1:] <= 0))
    if len(cross):
        i = cross[0]
        t = g[i] / (g[i] - g[i + 1])
        out["yield_displacement"] = float(d[i] + t * (d[i + 1] - d[i]))
        out["yield_force"] = float(F[i] + t * (F[i + 1] - F[i]))
    return out
