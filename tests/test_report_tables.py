"""Tables beside the paper's numbers: Kendall tau, missing cells, which result backs a row."""

from __future__ import annotations

import math

import pytest

from walt_bench.report.results import load_results, metric_record, result_path, write_result
from walt_bench.report.tables import MISSING, build_table, fmt_paper, kendall, select


def _result(root, table, variant, fvd=None, scale="smoke", created="2026-01-01T00:00:00Z", name=None, **kw):
    metrics = {"fvd": metric_record("FVD-synthetic", fvd, 64, "synthetic_fvd")} if fvd is not None else {}
    path = root / name if name else result_path(root, table, variant, scale)
    return write_result(
        path, table=table, variant=variant, scale=scale, metrics=metrics, created=created, git_commit="", **kw
    )


def _table(root, table):
    chosen, _ = select(load_results(root).results)
    return build_table(table, chosen)


# ------------------------------------------------------------------ Kendall tau, hand-computed orderings

PAPER = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}


def test_identical_ordering_gives_tau_1():
    tau, p, keys, _ = kendall({"a": 10.0, "b": 20.0, "c": 30.0, "d": 40.0}, PAPER)
    assert tau == pytest.approx(1.0) and keys == ["a", "b", "c", "d"]
    assert p == pytest.approx(2 / 24)  # exact: 2 of the 4! orderings are as extreme (identity, reversal)


def test_reversed_ordering_gives_tau_minus_1():
    tau, _, _, _ = kendall({"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}, PAPER)
    assert tau == pytest.approx(-1.0)


def test_one_swap_among_four_gives_tau_two_thirds():
    # a < c < b < d: pairs (b, c) discordant, the other 5 concordant -> (5 - 1) / 6
    tau, p, _, _ = kendall({"a": 1.0, "b": 3.0, "c": 2.0, "d": 4.0}, PAPER)
    assert tau == pytest.approx(2 / 3)
    assert p == pytest.approx(8 / 24)  # orderings with <= 1 or >= 5 discordant pairs: 1 + 3 + 3 + 1


def test_only_shared_variants_count_and_fewer_than_two_is_na():
    tau, _, keys, _ = kendall({"a": 5.0, "c": 1.0, "z": 0.0}, PAPER)
    assert keys == ["a", "c"] and tau == pytest.approx(-1.0)
    tau, p, keys, reason = kendall({"a": 5.0}, PAPER)
    assert tau is None and p is None and "need 2" in reason


def test_constant_side_is_na_not_nan():
    tau, _, _, reason = kendall({"a": 1.0, "b": 1.0, "c": 1.0}, PAPER)
    assert tau is None and "same value" in reason


# ------------------------------------------------------------------ tables


def test_missing_cell_is_shown_as_missing_never_zero(tmp_path):
    _result(tmp_path, "3c", "p_sc=0.0", 30.0)
    _result(tmp_path, "3c", "p_sc=0.9", 18.0)
    report = _table(tmp_path, "3c")
    row = report.display.set_index("variant").loc["p_sc=0.3"]
    assert row["FVD↓ ours"] == MISSING and row["N"] == MISSING and row["scale"] == MISSING
    assert row["FVD↓ paper"] == "76.0"
    data = report.data.set_index("variant")
    assert math.isnan(data.loc["p_sc=0.3", "fvd_ours"]) and data.loc["p_sc=0.3", "status"] == "missing"
    assert data.loc["p_sc=0.0", "fvd_ours"] == pytest.approx(30.0)


def test_ablation_ordering_is_computed_over_rows_present_on_both_sides(tmp_path):
    # paper 3c FVD: 0.0 -> 109.9, 0.3 -> 76.0, 0.9 -> 61.4; ours agrees in order
    for variant, fvd in [("p_sc=0.0", 30.0), ("p_sc=0.3", 20.0), ("p_sc=0.9", 18.0)]:
        _result(tmp_path, "3c", variant, fvd)
    [ordering] = _table(tmp_path, "3c").orderings
    assert ordering.variants == ["p_sc=0.0", "p_sc=0.3", "p_sc=0.9"]
    assert ordering.tau == pytest.approx(1.0) and ordering.p_value == pytest.approx(1 / 3)


def test_failed_run_is_shown_as_failed_and_left_out_of_the_ordering(tmp_path):
    _result(tmp_path, "3c", "p_sc=0.0", 30.0)
    # a failed run may still carry numbers (e.g. from an earlier repeat): they are not ours to compare
    _result(tmp_path, "3c", "p_sc=0.3", 20.0, status="failed", error="out of memory", name="f.json")
    report = _table(tmp_path, "3c")
    row = report.display.set_index("variant").loc["p_sc=0.3"]
    assert row["scale"] == "smoke (failed)" and row["FVD↓ ours"] == MISSING
    assert any("out of memory" in n for n in report.notes)
    assert report.orderings[0].tau is None


def test_larger_scale_then_newer_result_backs_a_row(tmp_path):
    _result(tmp_path, "3c", "p_sc=0.0", 1.0, scale="smoke", created="2026-03-01T00:00:00Z", name="a.json")
    _result(tmp_path, "3c", "p_sc=0.0", 2.0, scale="small", created="2026-01-01T00:00:00Z", name="b.json")
    _result(
        tmp_path, "3c", "p_sc=0.0", 3.0, scale="small", created="2026-02-01T01:00:00+02:00", name="c.json"
    )
    _result(tmp_path, "3c", "p_sc=0.0", 4.0, scale="small", created="2026-01-31T23:30:00Z", name="d.json")
    chosen, notes = select(load_results(tmp_path).results)
    # c.json's 01:00+02:00 is 23:00 UTC, half an hour before d.json: times compare as times, not strings
    assert chosen[("3c", "p_sc=0.0")].result.value("fvd") == 4.0
    assert len(notes) == 3 and all("used " + str(tmp_path / "d.json") in n for n in notes)
    chosen, _ = select(load_results(tmp_path).results, scale="smoke")
    assert chosen[("3c", "p_sc=0.0")].result.value("fvd") == 1.0


def test_unknown_variant_is_kept_and_flagged(tmp_path):
    with pytest.warns(UserWarning, match="not a row"):
        _result(tmp_path, "3c", "p_sc=0.5", 25.0)
    report = _table(tmp_path, "3c")
    assert "p_sc=0.5" in list(report.display["variant"])
    assert any("'p_sc=0.5'" in n and "not a row" in n for n in report.notes)


def test_table5_says_text_to_video_not_run_until_a_result_exists(tmp_path):
    assert "text-to-video not run" in _table(tmp_path, "5").notes
    _result(tmp_path, "5", "t2v-3B/video+image", 300.0)
    assert "text-to-video not run" not in _table(tmp_path, "5").notes


def test_smoke_rows_carry_the_not_comparable_note(tmp_path):
    _result(tmp_path, "3a", "patch=1", 10.0)
    assert any("not comparable with the paper in absolute terms" in n for n in _table(tmp_path, "3a").notes)
    assert not any("not comparable" in n for n in _table(tmp_path, "3b").notes)


def test_paper_numbers_are_printed_as_in_the_paper():
    assert (
        fmt_paper(3.3, 0.0) == "3.3 ± 0.0" and fmt_paper(46.0, 2.0) == "46 ± 2" and fmt_paper(2.56) == "2.56"
    )
    assert fmt_paper(2.0, printed="2.00") == "2.00"
    assert (  # trailing zeros kept where the paper prints them (Table 3b sps, 3c FVD)
        build_table("3b", {}).display.set_index("variant").loc["st_window=full", "steps/s↑ paper"] == "1.20"
        and build_table("3c", {}).display.set_index("variant").loc["p_sc=0.3", "FVD↓ paper"] == "76.0"
    )
