"""Published experiments reproduced on coarse meshes (``fembone validate``): every computed value
lies in its stated band around the published value (bands and reasons: fembone.apps.validate).

The one known miss -- the absolute posterior-wall bulge against Tschirhart et al. 2006 -- is
pinned below its band, with the reasons in the README; if it moves into the band, revisit.
"""

from __future__ import annotations

import pytest

from fembone.apps.validate import run_all

pytestmark = pytest.mark.slow

KNOWN_MISSES = {"bulge, tumour 30 %, 800 N axial"}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FEMBONE_CACHE", str(tmp_path_factory.mktemp("validate-cache")))
    out = run_all(full=False)
    mp.undo()
    return {r.quantity: r for r in out}


@pytest.mark.parametrize("experiment", ["costa2020", "kinzl2012", "belkoff2001", "salvatore2018", "tschirhart2006", "verse", "eswaran2007", "bonelab"])
def test_computed_within_published_band(rows, experiment):
    mine = [r for r in rows.values() if r.experiment == experiment and r.quantity not in KNOWN_MISSES]
    if experiment == "bonelab" and not mine:
        pytest.skip("the VerSe L2 scan is read from ../shared/data, which this checkout does not have")
    assert mine, f"no rows for {experiment}"
    bad = [f"{r.quantity}: computed {r.computed:.4g} {r.unit}, published {r.published}, band [{r.low:.4g}, {r.high:.4g}]"
           for r in mine if not r.ok]
    assert not bad, "outside the published band:\n" + "\n".join(bad)


def test_costa_loss_grows_linearly_with_lesion_size(rows):
    """Costa 2020 found a linear relation: the loss per % of body volume is about constant."""
    loss = [rows[f"stiffness loss, hole {v}% of body"].computed for v in (4, 15, 25, 35)]
    slopes = [(loss[i + 1] - loss[i]) / d for i, d in enumerate((11, 10, 10))]
    assert max(slopes) / min(slopes) < 2.0, f"losses {loss} %: slopes {slopes} % per % are not near-linear"


def test_known_bulge_miss_is_still_below_band(rows):
    r = rows["bulge, tumour 30 %, 800 N axial"]
    assert r.computed < r.low, f"bulge {r.computed:.4f} mm is now inside [{r.low}, {r.high}]: update KNOWN_MISSES and the README"
