"""The equal-memory figure of the item-table strategies (budget_figure): its points, lines and files,
on hand-made summary records and on the committed docs/results/item_tables runs."""

import csv
import io

import pytest

from embfreq.analysis.figures import budget_figure
from embfreq.analysis.sweep import bands

PNG = b"\x89PNG\r\n\x1a\n"


def rec(neighbours, params, ndcg, band="[0, 5]", model="mf_bpr", std=None, ci=(-0.02, 0.02), pct=-5.0, seed=None):
    """A summary record as bands.analyse writes it; the baseline's NDCG@10 is 0.2, `ci` is around
    the change (ndcg - 0.2) unless None (no per-user files); `seed` the seed-aware verdict (default:
    the user CI's)."""
    r = {"data": "beauty", "model": model, "variant": "", "neighbours": neighbours, "band": band, "seeds": "1;2",
         "embedding_params": params, "ndcg10_mean": ndcg, "ndcg10_std": std}
    if band != "baseline" and ci is not None:
        lo, hi = ndcg - 0.2 + ci[0], ndcg - 0.2 + ci[1]
        r.update(baseline_ndcg10=0.2, delta_ci_low=lo, delta_ci_high=hi, delta_pct=pct, significant=lo > 0 or hi < 0,
                 seed_significant=(lo > 0 or hi < 0) if seed is None else seed)
    return r


@pytest.fixture
def summary():
    return [
        rec(None, 1000, 0.2, band="baseline", std=0.01),
        rec("all", 1000, 0.19),
        rec("outside_band", 600, 0.18, ci=None, std=0.005),  # no per-user files: seed std bars
        rec("hashed buckets=256", 400, 0.17, ci=(-0.02, 0.02), pct=-15.0),
        rec("hashed buckets=16", 150, 0.11, seed=False),  # significant over users, not over seeds
        rec("hashed buckets=64", 200, 0.13, seed="1 seed"),
        rec("shared", 110, 0.16),
        rec(None, 1000, 0.2, band="baseline", model="sasrec"),
        rec("hashed buckets=16", 150, 0.12, band="[100, inf)"),
        rec("all", 1000, 0.21, band="[100, inf)"),
        rec(None, 2000, 0.3, band="baseline", model="gru"),  # only neighbour modes: no figure
        rec("all", 2000, 0.31, model="gru"),
    ]


def test_points_equal_the_summary(summary):
    pts = budget_figure.points(summary)
    text = bands.csv_text(pts, budget_figure.COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(pts) == 7 + 3  # mf_bpr [0, 5]: baseline + 6; [100, inf): baseline + 2; gru none
    by = {(r["band"], r["strategy"], r["budget"]): r for r in rows}
    for s in summary[:10]:
        if s["band"] == "baseline":
            continue
        strategy, budget = budget_figure.strategy_budget(s["neighbours"])
        r = by[(s["band"], strategy, budget)]
        assert (r["model"], r["data"], r["seeds"]) == (s["model"], s["data"], s["seeds"])
        assert int(r["embedding_params"]) == s["embedding_params"]
        assert float(r["params_share"]) == s["embedding_params"] / 1000
        assert float(r["ndcg10_mean"]) == s["ndcg10_mean"]
        if "delta_ci_low" in s:
            assert float(r["ci_low"]) == 0.2 + s["delta_ci_low"] and float(r["ci_high"]) == 0.2 + s["delta_ci_high"]
            assert r["bars"] == budget_figure.BOOTSTRAP
            assert float(r["delta_pct"]) == s["delta_pct"] and r["significant"] == ("yes" if s["significant"] else "no")
            assert r["seed_significant"] == {True: "yes", False: "no"}.get(s["seed_significant"], s["seed_significant"])
    assert by[("[0, 5]", "hashed", "buckets=256")]["significant"] == "yes"
    assert by[("[0, 5]", "neighbours (all)", "")]["significant"] == "no"
    sb = by[("[0, 5]", "neighbours (outside_band)", "")]
    assert (float(sb["ci_low"]), float(sb["ci_high"])) == (0.18 - 0.005, 0.18 + 0.005)
    assert sb["bars"] == budget_figure.SEED_STD
    base = by[("[0, 5]", "no band", "")]
    assert (base["params_share"], base["ndcg10_mean"], base["ci_low"], base["bars"]) == ("1.0", "0.2", "", "")
    assert by[("[100, inf)", "hashed", "buckets=16")]["ndcg10_mean"] == "0.12"
    assert not [p for p in pts if p["model"] == "gru"]


def test_lines_per_model_data_band_strategy_in_order_of_params(summary):
    gs = budget_figure.groups(budget_figure.points(summary))
    assert list(gs) == [("mf_bpr", "beauty", "", "[0, 5]"), ("mf_bpr", "beauty", "", "[100, inf)")]
    lines = budget_figure.lines(gs[("mf_bpr", "beauty", "", "[0, 5]")])
    assert list(lines) == ["neighbours (all)", "neighbours (outside_band)", "shared", "hashed"]
    assert [p["embedding_params"] for p in lines["hashed"]] == [150, 200, 400]
    assert [p["budget"] for p in lines["hashed"]] == ["buckets=16", "buckets=64", "buckets=256"]
    other = budget_figure.lines(gs[("mf_bpr", "beauty", "", "[100, inf)")])
    assert [p["ndcg10_mean"] for p in other["hashed"]] == [0.12]  # the other band's hashed: its own line


def test_figure_files(summary, tmp_path):
    pts = budget_figure.groups(budget_figure.points(summary))[("mf_bpr", "beauty", "", "[0, 5]")]
    png, pdf = budget_figure.plot(pts, "mf_bpr · beauty · band [0, 5]", tmp_path / "budget_x")
    assert (png.name, pdf.name) == ("budget_x.png", "budget_x.pdf")
    assert png.read_bytes()[:8] == PNG and pdf.read_bytes()[:4] == b"%PDF"
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000
    md = budget_figure.markdown(pts)
    assert ("| mf_bpr | beauty | [0, 5] | hashed | buckets=256 | 1;2 | 400 (40.0%) | 0.1700 [0.1500, 0.1900] | "
            "95% paired bootstrap CI | -15.0%* |") in md
    # the star is the seed-aware verdict: none where only the user CI excludes 0, and "1 seed" said
    assert "| hashed | buckets=16 | 1;2 | 150 (15.0%) | 0.1100 [0.0900, 0.1300] | 95% paired bootstrap CI | -5.0% |" in md
    assert "| hashed | buckets=64 | 1;2 | 200 (20.0%) | 0.1300 [0.1100, 0.1500] | 95% paired bootstrap CI | -5.0% (1 seed) |" in md


def flat(pairs):
    return [v for pair in pairs for v in pair]


def test_x_panels_break_the_axis_only_across_a_wide_gap():
    # budgets at 28-46% and the full tables at 100%: two panels, each padded by max(2.5, 8% of its span)
    assert flat(budget_figure.x_panels([0.28, 0.325, 0.46, 1.0, 1.0])) == pytest.approx([25.5, 48.5, 97.5, 102.5])
    # no gap over 30 points: one panel
    assert flat(budget_figure.x_panels([0.6, 0.8, 1.0])) == pytest.approx([56.8, 103.2])
    assert flat(budget_figure.x_panels([0.01, 0.3, 0.55, 0.8, 1.0])) == pytest.approx([0.0, 100 + 99 * 0.08])
    assert flat(budget_figure.x_panels([1.0])) == [97.5, 102.5]
    # a hot band of a few items: budgets 0.25 points apart keep their own scale (pad 0.25 x span)
    assert flat(budget_figure.x_panels([0.9975, 0.9985, 1.0])) == pytest.approx([99.6875, 100.0625])


def test_budget_ticks_of_a_narrow_panel_stay_inside_it():
    # two budgets 0.008 points apart in a panel padded by 0.002: 60 would fall outside, 60.5 does not
    assert budget_figure.budget_ticks([60.494, 60.502], 60.492, 60.504) == [60.5]
    assert budget_figure.budget_ticks([28.0, 32.46, 99.0], 25.5, 48.5) == [28.0, 32.0]
    assert budget_figure.budget_ticks([99.3284, 100.0], 99.31, 99.35) == [99.33]


def test_dodge_moves_only_lines_with_a_close_point():
    by = {"a": [{"params_share": 0.28}], "b": [{"params_share": 0.281}, {"params_share": 0.5}],
          "c": [{"params_share": 0.4}]}
    assert budget_figure.dodge(by, span=80.0, step=2.0) == {"a": -1.0, "b": 1.0, "c": 0.0}


def test_pdf_bytes_do_not_depend_on_the_time(summary, tmp_path):
    pts = budget_figure.groups(budget_figure.points(summary))[("mf_bpr", "beauty", "", "[0, 5]")]
    a = budget_figure.plot(pts, "t", tmp_path / "a")[1].read_bytes()
    b = budget_figure.plot(pts, "t", tmp_path / "b")[1].read_bytes()
    assert a == b and b"CreationDate" not in a
