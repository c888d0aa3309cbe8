"""The ``analysis`` case key: nonlinear strength to failure of a vertebra under a platen.

    analysis:
      type: strength
      max_displacement: 1.0     # mm of platen travel (compression), > 0
      steps: 40                 # nominal equal increments, >= 1 (halved automatically when needed)
      laws:                     # optional, per region: elastic | a named law | a full law
        trabecular: kopperdahl_keyak
        cortical_shell: {yield_strain_compression: 0.0104, yield_strain_tension: 0.0073,
                         post_yield: perfectly_plastic}
        posterior_elements: elastic
      linear: reuse             # reuse (kept factorisation / AMG hierarchy as preconditioner) | refactor
      tolerance: 1.0e-5         # Newton: ||residual|| <= tolerance x ||reactions||
      stop_after_peak: 0.25     # stop once the force fell this share below its peak (false: never)

Needs a platen: a vertebra (generated or from CT) with ``boundary: {setup: in_vitro}`` or
``discs``, or a segment (its top plate; the bottom face stays fixed, every level's bone gets
its law, and the failed share at the peak is reported per level).  The platen (reference
point ``superior``) is pushed down by up to ``max_displacement`` (its other DOFs as the
set-up leaves them) while Newton iterations follow the force-displacement curve
(:mod:`fembone.core.nonlinear`, laws in :mod:`fembone.spine.strength`).  The load cases are
solved linearly as always; the strength analysis runs once, from the first load case's
post-processing, and adds to each axial load case's ``risk`` block ``strength`` (N, the peak)
and ``factor_of_risk_nonlinear`` = applied load / strength beside the linear
``strength_estimate`` and ``factor_of_risk``.  The whole result is ``summary.json``'s
``meta.strength``; ``strength_curve.csv`` (the curve) and ``strength.pvd`` (one VTU per
step: displacement, plastic strain, yielded and failed shares) are written next to it, and
``strength_curve.png`` by ``fembone run``/``view`` (:mod:`fembone.apps.viz.curves`).
Units: mm, N, MPa.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fembone.cases.registry import BuildContext, Extension, register
from fembone.cases.vertebra_spec import DEFAULT_SETUP, is_vertebra
from fembone.core import schema as S
from fembone.core.errors import InputError
from fembone.spine.strength import DEFAULT_LAWS, LAWS, POST_YIELD, BoneLaw

ANALYSIS_TYPES = ("strength",)
PLATEN_SETUPS = ("in_vitro", "discs")
LAW_REGIONS = tuple(DEFAULT_LAWS)
LAW_KEYS = ("yield_strain_compression", "yield_strain_tension", "post_yield", "hardening_ratio")


@dataclass(frozen=True)
class AnalysisSpec:
    """A parsed ``analysis`` section (strength to failure)."""

    type: str
    max_displacement: float  # mm
    steps: int
    laws: dict = field(default_factory=dict)  # region -> BoneLaw | None (elastic)
    linear: str = "reuse"
    tolerance: float = 1e-5
    stop_after_peak: float | None = 0.25
    path: str = "analysis"


def _setup_of(raw: dict) -> str:
    """The set-up a vertebra case will get (the rule of fembone.cases.vertebra_spec, read without building)."""
    b = raw.get("boundary")
    if isinstance(b, dict):
        legacy = any(k in b for k in ("inferior", "coupling", "potting"))
        return str(b.get("setup", "endplates" if legacy else DEFAULT_SETUP))
    if "vertebra" in raw:
        return DEFAULT_SETUP
    ct = raw.get("ct")  # CT with labelled caps is a compression test
    caps = isinstance(ct, dict) and isinstance(ct.get("labels"), dict) and ct["labels"].get("caps")
    return "in_vitro" if caps else "endplates"


def _law(value, path: str) -> BoneLaw | None:
    if value == "elastic":
        return None
    if isinstance(value, str):
        if value not in LAWS:
            raise InputError(f"unknown law '{value}' (known: elastic, {', '.join(LAWS)})", path)
        return LAWS[value]
    spec = S.mapping(value, path, allowed=LAW_KEYS)
    missing = [k for k in ("yield_strain_compression", "yield_strain_tension") if k not in spec]
    if missing:
        raise InputError(f"a law needs its yield parameters: missing {', '.join(missing)} "
                         "(or name a law: elastic, " + ", ".join(LAWS) + ")", path)
    post = S.string(spec.get("post_yield", "perfectly_plastic"), f"{path}.post_yield", choices=POST_YIELD)
    law = BoneLaw(
        name=path.rsplit(".", 1)[-1],
        yield_strain_compression=S.number(spec["yield_strain_compression"], f"{path}.yield_strain_compression", lo=0, lo_open=True),
        yield_strain_tension=S.number(spec["yield_strain_tension"], f"{path}.yield_strain_tension", lo=0, lo_open=True),
        post_yield=post,
        hardening_ratio=S.number(spec.get("hardening_ratio", 0.0), f"{path}.hardening_ratio", lo=0),
        source="case file",
    )
    if post == "hardening" and "hardening_ratio" not in spec:
        raise InputError("post_yield: hardening needs hardening_ratio (post-yield modulus / E)", f"{path}.hardening_ratio")
    law.check(path)
    return law


def _no_unilateral(seg) -> None:
    """The strength path (fembone.core.nonlinear) has no unilateral elements: a segment's annulus
    fibres, facet contact or ligaments would be dropped silently, so they are refused by key."""
    if not isinstance(seg, dict):
        return
    disc, facets = seg.get("disc") or {}, seg.get("facets")
    if isinstance(disc, dict) and disc.get("fibres", True) is not False:
        raise InputError("the strength path has no tension-only elements yet: set segment.disc.fibres: false "
                         "(an isotropic annulus) for analysis: strength", "segment.disc.fibres")
    if isinstance(facets, dict) and facets.get("model") == "contact":
        raise InputError("the strength path has no contact elements yet: use the facet springs (model: spring)",
                         "segment.facets.model")
    if seg.get("ligaments") not in (None, False):
        raise InputError("the strength path has no tension-only elements yet: leave the ligaments out", "segment.ligaments")


def parse_analysis(raw: dict) -> AnalysisSpec:
    p = "analysis"
    a = S.mapping(raw["analysis"], p, allowed=("type", "max_displacement", "steps", "laws", "linear", "tolerance",
                                                "stop_after_peak"), required=("type",))
    kind = S.string(a["type"], f"{p}.type", choices=ANALYSIS_TYPES)
    if "segment" in raw:  # the top plate (reference point 'superior') is the platen; the bottom face is fixed
        if raw.get("constraints"):
            raise InputError("a strength analysis needs the segment's own set-up (top plate, fixed bottom face); "
                             "this case defines its own constraints", f"{p}.type")
        _no_unilateral(raw["segment"])
    elif not is_vertebra(raw):
        raise InputError("a strength analysis needs a vertebra model (vertebra: ... or materials: {preset: ...})", f"{p}.type")
    setup = "segment" if "segment" in raw else _setup_of(raw)
    if setup not in PLATEN_SETUPS + ("segment",) or raw.get("constraints"):
        why = "the case defines its own constraints" if raw.get("constraints") else f"this case has setup: {setup}"
        raise InputError(f"a strength analysis needs a platen set-up: boundary: {{setup: in_vitro}} or "
                         f"{{setup: discs}} ({why})", f"{p}.type")
    dmax = S.number(a.get("max_displacement", 1.0), f"{p}.max_displacement")
    if not dmax > 0:
        raise InputError(f"max_displacement must be a positive platen travel in mm, got {dmax:g}", f"{p}.max_displacement")
    steps = S.integer(a.get("steps", 40), f"{p}.steps")
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}", f"{p}.steps")
    laws = dict(DEFAULT_LAWS)
    for region, value in S.mapping(a.get("laws", {}), f"{p}.laws", allowed=LAW_REGIONS).items():
        laws[region] = _law(value, f"{p}.laws.{region}")
    linear = S.string(a.get("linear", "reuse"), f"{p}.linear", choices=("reuse", "refactor"))
    tol = S.number(a.get("tolerance", 1e-5), f"{p}.tolerance", lo=0, lo_open=True, hi=1e-2)
    stop = a.get("stop_after_peak", 0.25)
    if stop is False or stop is None:
        stop = None
    else:
        stop = S.number(stop, f"{p}.stop_after_peak", lo=0, lo_open=True, hi=1)
    return AnalysisSpec(kind, float(dmax), int(steps), laws, linear, float(tol), stop, p)


class AnalysisExtension(Extension):
    name = "analysis"
    keys = ("analysis",)

    def parse(self, raw: dict, source: str, base: Path) -> AnalysisSpec:
        return parse_analysis(raw)

    def finish(self, spec: AnalysisSpec, ctx: BuildContext) -> None:
        from fembone.cases.strength_run import strength_postprocessor, write_strength_files

        model = ctx.model
        if "superior" not in model.points:
            raise InputError("a strength analysis needs the platen reference point 'superior' of a platen set-up",
                             f"{spec.path}.type")
        model.meta["_strength_spec"] = spec
        model.postprocessors.append(strength_postprocessor)
        model.meta.setdefault("_writers", []).append(write_strength_files)


register(AnalysisExtension())
