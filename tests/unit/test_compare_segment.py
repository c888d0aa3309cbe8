"""``fembone compare`` on segment results (fembone.apps.compare_segment, viz.segment_panel).

Synthetic summary.json files in the layout a segment case writes (loadcases.<lc>.segment.
range_of_motion_deg, load_sharing, rods, screws, risk): the table must read back exactly the
values put in, the ratios must be the hand-computed quotients to the first case, the largest
rod/screw value must be taken, and the panel figure must be written.  A single-vertebra
summary beside them keeps its own rows and gets none of the segment rows.
"""

from __future__ import annotations

import csv
import json

import pytest

from fembone.apps.cli import main
from fembone.apps.compare import comparison
from fembone.apps.compare_segment import is_segment, segment_rows

PAIRS = ("T12-L1", "L1-L2")


def _segment(case: str, rom: dict, shares: tuple[float, float, float], rods: tuple | None, screws: tuple | None,
             risk: float) -> dict:
    """A segment summary: standing (800 N, shares) and flexion (7.5 N m, ROM per pair)."""
    def implants(prefix, vals):
        return {f"{prefix}_{i}": {"peak_von_mises": 830.0 * v, "yield_ratio": v} for i, v in enumerate(vals)} if vals else None

    body, post, impl = shares
    lcs = {}
    for lc, moment in (("standing", False), ("flexion", True)):
        d = {"max_von_mises": 10.0, "risk": {"level": "L1", "factor_of_risk": risk * (2 if moment else 1),
                                            "failed_volume_fraction": 0.01}}
        d["segment"] = {"rotation_deg": {}, **({"range_of_motion_deg": dict(zip(PAIRS, rom[lc]))} if moment else {})}
        d["load_sharing"] = {"plane": {"z": 34.0, "level": "L1"}, "body_share": body, "posterior_share": post,
                             "implant_share": impl}
        if rods:
            d["rods"] = implants("rod", rods)
        if screws:
            d["screws"] = implants("screw", screws)
        lcs[lc] = d
    return {"case": case, "meta": {"segment": {"levels": ["T12", "L1", "L2"], "index": "L1"}}, "loadcases": lcs}


CASES = [
    _segment("none", {"flexion": (6.0, 5.0)}, (0.90, 0.10, 0.0), None, None, 0.8),
    _segment("cement", {"flexion": (5.5, 4.5)}, (0.92, 0.08, 0.0), None, None, 0.5),
    _segment("fixation", {"flexion": (0.6, 4.0)}, (0.60, 0.05, 0.35), (0.05, 0.07), (0.10, 0.08, 0.02, 0.04), 0.4),
]


def _write(tmp_path, summaries):
    dirs = []
    for s in summaries:
        d = tmp_path / s["case"]
        d.mkdir()
        (d / "summary.json").write_text(json.dumps(s))
        dirs.append(str(d))
    return dirs


def test_segment_rows_read_back_with_ratios():
    rows = {(r["loadcase"], r["metric"]): r for r in comparison(CASES)}
    rom = rows[("flexion", "range_of_motion_deg.T12-L1")]
    assert rom["values"] == {"none": 6.0, "cement": 5.5, "fixation": 0.6}
    assert rom["ratio"]["fixation"] == pytest.approx(0.1, rel=1e-12)  # 90 % of T12-L1's flexion removed
    assert rows[("flexion", "range_of_motion_deg.L1-L2")]["ratio"]["fixation"] == pytest.approx(0.8, rel=1e-12)
    assert ("standing", "range_of_motion_deg.T12-L1") not in rows  # no moment, no range of motion
    impl = rows[("standing", "load_sharing.implant_share")]
    assert impl["values"] == {"none": 0.0, "cement": 0.0, "fixation": 0.35} and impl["ratio"]["fixation"] is None  # first is 0
    assert rows[("standing", "load_sharing.body_share")]["ratio"]["fixation"] == pytest.approx(0.60 / 0.90, rel=1e-12)
    assert rows[("flexion", "rods.yield_ratio")]["values"] == {"none": None, "cement": None, "fixation": 0.07}  # max of two rods
    assert rows[("flexion", "screws.peak_von_mises")]["values"]["fixation"] == pytest.approx(830.0 * 0.10, rel=1e-12)
    # the index vertebra's risk comes through compare's own metrics
    assert rows[("flexion", "factor_of_risk")]["values"] == {"none": 1.6, "cement": 1.0, "fixation": 0.8}


def test_vertebra_summary_gets_no_segment_rows():
    vert = {"case": "L1-intact", "meta": {}, "loadcases": {"standing": {"axial_stiffness": 12000.0, "risk": {"factor_of_risk": 0.5}}}}
    assert not is_segment(vert) and all(is_segment(s) for s in CASES)
    assert segment_rows([vert], "standing") == []
    rows = comparison([vert, {**vert, "case": "L1-lytic", "loadcases": {"standing": {"axial_stiffness": 9000.0}}}])
    assert {r["metric"] for r in rows} == {"axial_stiffness", "factor_of_risk"}
    assert rows[0]["ratio"]["L1-lytic"] == pytest.approx(0.75, rel=1e-12)


def test_compare_command_on_segment_folders_writes_table_and_panel(tmp_path, capsys):
    dirs = _write(tmp_path, CASES)
    out = tmp_path / "cmp"
    png = tmp_path / "panel.png"
    assert main(["compare", *dirs, "--out", str(out), "--figure", str(png), "-q"]) == 0
    text = capsys.readouterr().out
    assert "range of motion T12-L1 [deg]" in text and "axial force share: implants (rods) [-]" in text
    with (out / "compare.csv").open() as fh:
        got = {(r["loadcase"], r["metric"], r["case"]): r for r in csv.DictReader(fh)}
    assert float(got[("flexion", "range_of_motion_deg.L1-L2", "fixation")]["value"]) == 4.0
    assert float(got[("flexion", "range_of_motion_deg.L1-L2", "fixation")]["ratio_to_first"]) == pytest.approx(0.8)
    assert float(got[("standing", "load_sharing.body_share", "cement")]["value"]) == 0.92
    assert float(got[("standing", "screws.yield_ratio", "fixation")]["value"]) == 0.10
    js = json.loads((out / "compare.json").read_text())
    assert js["cases"] == ["none", "cement", "fixation"]
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (1200, 850)  # 12 x 8.5 in at 100 dpi
        assert len(im.convert("RGB").getcolors(1 << 20)) > 20  # bars drawn, not a blank canvas
