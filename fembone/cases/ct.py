"""The ``ct:`` section: a patient's vertebra from calibrated CT (keys in :mod:`fembone.spine.ct`).

The CT pipeline makes the mesh (vertebra groups, optional PMMA caps and lesion set) and an
element-integrated stiffness per element; the vertebra extension then adds what any vertebra
case has: cement, screws, the set-up (``in_vitro`` when the labels carry caps, else
``endplates``), load presets and risk metrics.  Mapped density and modulus go to the VTU.
Units: mm, N, MPa; density mg/cc K2HPO4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fembone.cases.registry import BuildContext, Extension, register
from fembone.core.mesh import Mesh


class CTExtension(Extension):
    name = "ct"
    keys = ("ct",)
    mesh_keys = ("ct",)

    def parse(self, raw: dict, source: str, base: Path):
        from fembone.spine.ct import parse_ct_spec

        return parse_ct_spec(raw["ct"], where="ct"), base

    def mesh(self, spec, ctx: BuildContext) -> Mesh:
        from fembone.spine.ct import build_ct_model_inputs

        ct, base = spec
        inputs = build_ct_model_inputs(ct, base)
        ctx.base_C = inputs.C  # per-element stiffness of the host bone (mixing keeps it)
        ctx.ct_inputs = inputs
        lesion = inputs.lesion
        ctx.meta["ct"] = {k: v for k, v in inputs.meta.items() if isinstance(v, (str, int, float, dict, list))}
        if lesion is not None:
            ctx.meta["ct"]["lesion"] = {"source": lesion.source, "volume_fraction": lesion.volume_fraction,
                                        "volume": lesion.volume_mm3}
        return inputs.mesh

    def build(self, spec, ctx: BuildContext) -> None:
        inputs = ctx.ct_inputs
        model = ctx.model
        model.cell_data.update(inputs.cell_data)
        if inputs.lesion is not None and "volumes" in ctx.meta:
            ctx.meta["volumes"]["lesion"] = float(inputs.lesion.volume_mm3)
        if not hasattr(ctx, "fractions"):  # no vertebra materials: the mapped stiffness is the model
            ok = np.ones(model.mesh.n_elements, bool)
            model.C[ok] = inputs.C[ok]


register(CTExtension())
