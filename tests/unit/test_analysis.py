import csv
import inspect
import math
import types

import matplotlib.text
import numpy as np
import pytest
import scipy.stats
import torch

from tests.conftest import make_model

from embfreq.analysis.per_run.items import (
    average_ranks,
    item_columns,
    item_table,
    norm_threshold,
    spearman,
    summary_numbers,
    write_items_csv,
)
from embfreq.analysis.figures.plots import (
    band_extent,
    ci_bars,
    freq_vs_norm_figure,
    frequency_buckets,
    frequency_buckets_figure,
    frequency_panels_figure,
    plot_freq_vs_norm,
    plot_frequency_buckets,
    plot_frequency_panels,
)
from embfreq.analysis.per_run.run_analysis import FIGURES, analyze_model, default_title, run_title

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TITLE = "sasrec · beauty_1000 · band [0, 5] (neighbours=all)"
SHOWN = "SASRec · Beauty (users ≥ 10) · band [0, 5], neighbours (all)"  # TITLE with display names, as drawn


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1024
    # every figure is also written as PDF with the same stem
    pdf = path.with_suffix(".pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and b"%%EOF" in pdf[-32:]
    return True


def small_inputs():
    # Row 0 is padding.
    freq = np.array([0, 5, 0, 3, 12])
    in_band = np.array([False, True, False, False, True])
    own = np.array([np.nan, 1.5, np.nan, np.nan, 2.25])
    eff = np.array([0.0, 1.5, 0.1, 0.7, 2.25])
    per_item = {
        "count": torch.tensor([0, 2, 0, 1, 4]),
        "hr": torch.tensor([0.0, 0.5, 0.0, 1.0, 0.25], dtype=torch.float64),
        "recall": torch.tensor([0.0, 0.5, 0.0, 1.0, 0.25], dtype=torch.float64),
        "ndcg": torch.tensor([0.0, 0.25, 0.0, 0.5, 0.125], dtype=torch.float64),
    }
    return freq, in_band, own, eff, per_item


def test_items_csv(tmp_path):
    freq, in_band, own, eff, per_item = small_inputs()
    table = item_table(["a", "b", "c", "d"], freq, in_band, own, eff, per_item)
    # Same result with ids given for every row including padding.
    assert table == item_table(["<pad>", "a", "b", "c", "d"], freq, in_band, own, eff, per_item)
    path = tmp_path / "items.csv"
    write_items_csv(path, table)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == item_columns(10)
    assert len(rows) == 4
    assert [r["item"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["raw_id"] for r in rows] == ["a", "b", "c", "d"]
    assert [r["freq"] for r in rows] == ["5", "0", "3", "12"]
    assert [r["in_band"] for r in rows] == ["1", "0", "0", "1"]
    assert [r["own_norm"] for r in rows] == ["1.5", "", "", "2.25"]
    assert [float(r["effective_norm"]) for r in rows] == [1.5, 0.1, 0.7, 2.25]
    assert [r["test_cases"] for r in rows] == ["2", "0", "1", "4"]
    assert [r["hr@10"] for r in rows] == ["0.5", "", "1.0", "0.25"]
    assert [r["recall@10"] for r in rows] == ["0.5", "", "1.0", "0.25"]
    assert [r["ndcg@10"] for r in rows] == ["0.25", "", "0.5", "0.125"]
    assert [p.name for p in tmp_path.iterdir()] == ["items.csv"]  # no temp file left


def test_item_table_bad_lengths():
    freq, in_band, own, eff, per_item = small_inputs()
    with pytest.raises(ValueError):
        item_table(["a", "b"], freq, in_band, own, eff, per_item)
    with pytest.raises(ValueError):
        item_table(["a", "b", "c", "d"], freq, in_band[:-1], own, eff, per_item)
    with pytest.raises(ValueError):
        item_table(["a", "b", "c", "d"], freq, in_band, own, eff, {"count": per_item["count"]})


def test_spearman_matches_scipy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(0, 6, 300)  # many ties
        y = rng.integers(0, 4, 300) + 0.1 * x
        ours = spearman(x, y)
        ref = scipy.stats.spearmanr(x, y).statistic
        assert ours == pytest.approx(ref, abs=1e-12)
        assert np.array_equal(average_ranks(x), scipy.stats.rankdata(x))
    x, y = rng.normal(size=50), rng.normal(size=50)
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)
    assert math.isnan(spearman(np.ones(10), np.arange(10)))
    assert math.isnan(spearman(np.ones(1), np.ones(1)))


def test_summary_threshold():
    rng = np.random.default_rng(1)
    n_never, n_trained = 30, 200
    freq = np.r_[0, np.zeros(n_never), rng.integers(1, 100, n_trained)]
    norms = np.r_[0.0, rng.uniform(0.0, 0.6, n_never), rng.uniform(1.0, 3.0, n_trained)]
    s = summary_numbers(freq, norms)
    assert s["num_items"] == n_never + n_trained
    assert s["never_trained_items"] == n_never
    assert s["items_below_threshold"] == n_never
    assert s["never_trained_below_threshold"] == n_never and s["trained_below_threshold"] == 0
    # Midpoint of the gap between the largest never-trained and the smallest trained norm.
    gap = (norms[1:n_never + 1].max(), norms[n_never + 1:].min())
    assert s["norm_threshold"] == pytest.approx(sum(gap) / 2)
    assert s["threshold_balanced_accuracy"] == 1.0
    assert s["spearman_freq_norm"] == pytest.approx(scipy.stats.spearmanr(freq[1:], norms[1:]).statistic)
    trained = slice(n_never + 1, None)
    assert s["spearman_freq_norm_trained"] == pytest.approx(
        scipy.stats.spearmanr(freq[trained], norms[trained]).statistic)


def test_threshold_overlap_and_degenerate():
    # One trained item (0.4) sits among the never-trained ones; the best cut is still above them.
    norms = np.array([0.1, 0.2, 0.3, 0.5, 0.55, 0.4, 2.0, 3.0, 4.0])
    never = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    t, ba = norm_threshold(norms, never)
    assert t == pytest.approx((0.55 + 2.0) / 2) and ba == pytest.approx(0.875)
    # Equal balanced accuracy at cuts 0.3 and 0.5: the smaller cut wins.
    t, ba = norm_threshold(np.delete(norms, 4), np.delete(never, 4))
    assert t == pytest.approx(0.35) and ba == pytest.approx(0.875)

    s = summary_numbers(np.array([0, 1, 2, 3]), np.array([0.0, 1.0, 1.0, 1.0]))
    assert s["never_trained_items"] == 0
    assert s["norm_threshold"] is None and s["items_below_threshold"] is None
    assert s["spearman_freq_norm"] is None  # constant norms
    s = summary_numbers(np.zeros(5), np.arange(5.0))
    assert s["never_trained_items"] == 4 and s["norm_threshold"] is None
    assert s["spearman_freq_norm"] is None and s["spearman_freq_norm_trained"] is None


def naive_buckets(freq, vals, counts):
    out = {}
    for f, v, c in zip(freq, vals, counts):
        b = 0 if f == 0 else int(math.floor(math.log2(f))) + 1
        s = out.setdefault(b, [0.0, 0, 0])
        s[0] += v * c
        s[1] += c
        s[2] += 1
    return out


def test_bucket_means_match_naive():
    rng = np.random.default_rng(2)
    n = 400
    freq = np.r_[0, rng.integers(0, 3, 50), rng.integers(0, 300, n - 51)]
    counts = rng.integers(0, 5, n)
    hr = rng.integers(0, 2, n).astype(float)
    rows = frequency_buckets(freq, {"recall": hr}, counts)
    naive = naive_buckets(freq[1:], hr[1:], counts[1:])
    assert [r["bucket"] for r in rows] == list(range(max(naive) + 1))
    for r in rows:
        s = naive.get(r["bucket"], [0.0, 0, 0])
        assert r["items"] == s[2] and r["test_cases"] == s[1]
        if s[1]:
            assert r["recall"] == pytest.approx(s[0] / s[1])
        else:
            assert r["recall"] is None
        assert freq[1:][(freq[1:] >= r["freq_min"]) & (freq[1:] <= r["freq_max"])].size == s[2]
    assert rows[1]["label"] == "1" and rows[2]["label"] == "2-3" and rows[3]["label"] == "4-7"
    # One test case per item: the cluster CI reduces to 1.96 * sd / sqrt(n).
    x = np.array([1.0, 0.0, 1.0, 1.0])
    r = frequency_buckets(np.array([0, 1, 1, 1, 1]), {"hr": np.r_[0.0, x]}, np.array([0, 1, 1, 1, 1]))[1]
    assert r["hr_ci95"] == pytest.approx(1.96 * x.std(ddof=1) / 2)


def test_plots_write_png(tmp_path):
    rng = np.random.default_rng(3)
    n = 300
    freq = np.r_[0, rng.integers(0, 500, n - 1)]
    norm = rng.uniform(0, 3, n)
    recall = rng.uniform(0, 1, n)
    ndcg = recall / 2
    counts = rng.integers(0, 4, n)
    in_band = rng.uniform(size=n) < 0.2
    p = plot_frequency_panels(freq, norm, recall, ndcg, tmp_path / "panels.png", title="t", counts=counts,
                              in_band=in_band)
    assert_png(p)
    p, rows = plot_frequency_buckets(freq, {"recall@10": recall, "ndcg@10": ndcg}, counts, tmp_path / "b.png")
    assert_png(p) and rows
    assert_png(plot_freq_vs_norm(freq, norm, in_band, tmp_path / "s.png", rho=0.42))
    names = sorted(q.name for q in tmp_path.iterdir())
    assert names == sorted(f"{stem}.{ext}" for stem in ("panels", "b", "s") for ext in ("png", "pdf"))  # no temp files


def test_plots_edge_cases(tmp_path):
    n = 20
    zeros = np.zeros(n)
    norm = np.linspace(0, 1, n)
    assert_png(plot_frequency_panels(zeros, norm, zeros, zeros, tmp_path / "p0.png"))
    p, rows = plot_frequency_buckets(zeros, {"recall@10": zeros}, np.zeros(n, dtype=int), tmp_path / "b0.png")
    assert_png(p)
    assert len(rows) == 1 and rows[0]["items"] == n - 1 and rows[0]["recall@10"] is None
    assert_png(plot_freq_vs_norm(zeros, norm, np.zeros(n, dtype=bool), tmp_path / "s0.png", rho=None))
    # Only the padding row: no real items at all.
    p, rows = plot_frequency_buckets(np.zeros(1), {"recall@10": np.zeros(1)}, np.zeros(1), tmp_path / "e.png")
    assert_png(p) and rows == []
    with pytest.raises(ValueError):
        plot_freq_vs_norm(zeros, norm[:-1], zeros, tmp_path / "x.png", rho=None)


def test_ci_bars_clipped_to_metric_range():
    # Bucket 1 holds four items with one test case each. Hits [1, 0, 0, 0]: mean 0.25, sd 0.5,
    # SE 0.5 / 2 = 0.25, CI half-width 1.96 * 0.25 = 0.49, so the normal interval is [-0.24, 0.74].
    freq, counts = np.array([0, 1, 1, 1, 1]), np.array([0, 1, 1, 1, 1])
    rows = frequency_buckets(freq, {"hr": np.array([0.0, 1, 0, 0, 0])}, counts)
    assert rows[1]["hr"] == pytest.approx(0.25) and rows[1]["hr_ci95"] == pytest.approx(0.49)
    x, y, low, high = ci_bars(rows, "hr", value_range=None)
    assert x.tolist() == [1] and low == pytest.approx([-0.24]) and high == pytest.approx([0.74])
    x, y, low, high = ci_bars(rows, "hr")
    assert y == pytest.approx([0.25]) and low.tolist() == [0.0] and high == pytest.approx([0.74])
    # Hits [1, 1, 1, 0]: [0.26, 1.24] is cut at 1.
    rows = frequency_buckets(freq, {"hr": np.array([0.0, 1, 1, 1, 0])}, counts)
    _, _, low, high = ci_bars(rows, "hr")
    assert low == pytest.approx([0.26]) and high.tolist() == [1.0]
    # A bucket with one tested item has no CI: the bar has no length; no test cases: no point.
    rows = frequency_buckets(np.array([0, 1, 2, 4]), {"hr": np.array([0.0, 1, 0, 0])}, np.array([0, 1, 0, 0]))
    x, y, low, high = ci_bars(rows, "hr")
    assert x.tolist() == [1] and low.tolist() == high.tolist() == y.tolist() == [1.0]


def test_bucket_figure_draws_clipped_bars():
    rng = np.random.default_rng(5)
    n = 200
    freq = np.r_[0, rng.integers(0, 64, n - 1)]
    counts = rng.integers(0, 3, n)
    hits = (rng.uniform(size=n) < 0.06).astype(float)  # rare hits: the normal CIs reach below 0
    rows = frequency_buckets(freq, {"Recall@10": hits}, counts)
    assert any(r["Recall@10"] is not None and r["Recall@10_ci95"] is not None
               and r["Recall@10"] - r["Recall@10_ci95"] < 0 for r in rows)
    fig = frequency_buckets_figure(rows, ["Recall@10"], title=TITLE)
    ax = fig.axes[0]
    segs = [seg for coll in ax.collections for seg in coll.get_segments()]
    assert segs
    ys = np.concatenate([seg[:, 1] for seg in segs])
    assert ys.min() == 0.0 and ys.max() <= 1.0
    assert ax.get_ylim()[1] <= 1.05
    assert fig.get_suptitle().replace("\n", " · ") == SHOWN  # broken at a separator to fit one column


def test_band_extent():
    # Real items' frequencies [5, 0, 3, 12, 1]: sorted order is items 2, 5, 3, 1, 4.
    freq = np.array([0, 5, 0, 3, 12, 1])
    assert band_extent(freq, np.r_[False, freq[1:] <= 3]) == (0, 2)
    assert band_extent(freq, np.r_[False, freq[1:] >= 4]) == (3, 4)
    assert band_extent(freq, np.zeros(6, dtype=bool)) is None


def test_frequency_panels_labels_scale_and_band():
    freq = np.array([0, 5, 0, 3, 12, 1])
    in_band = np.r_[False, freq[1:] <= 3]
    vals = np.array([0.0, 0.5, 0.2, 0.1, 1.0, 0.3])
    fig = frequency_panels_figure(freq, vals * 2, vals, vals / 2, TITLE, counts=np.array([0, 1, 0, 2, 1, 1]),
                                  in_band=in_band)
    axes = fig.axes
    assert fig.get_suptitle() == SHOWN
    assert axes[0].get_yscale() == "symlog"  # frequencies span 0 to thousands
    labels = [" ".join(ax.get_ylabel().split()) for ax in axes]
    assert labels[0] == "training frequency (interactions)"
    assert labels[1] == "L2 norm of effective vector"
    assert labels[2] == "Recall@10 (mean over item's test cases)"
    assert labels[3] == "NDCG@10 (mean over item's test cases)"
    # The band (items at sorted positions 0..2) is shaded on every panel.
    for ax in axes:
        (span,) = ax.patches
        x0, x1 = span.get_x(), span.get_x() + span.get_width()
        assert (x0, x1) == (-0.5, 2.5)
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["in band (3 items)"]
    # A run without a band: nothing shaded.
    fig = frequency_panels_figure(freq, vals, vals, vals)
    assert all(not ax.patches for ax in fig.axes) and fig.get_suptitle() == ""


def _check_print_size(fig, width):
    """Printed at its own size: the given width, no text under 7 pt, no label cut off."""
    assert fig.get_size_inches()[0] == pytest.approx(width)
    fig.canvas.draw()
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    assert texts and min(t.get_fontsize() for t in texts) >= 7
    box = fig.bbox
    named = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        named += [ax.title, ax.xaxis.label, ax.yaxis.label]
        if ax.get_legend() is not None:
            named += ax.get_legend().get_texts()
    renderer = fig.canvas.get_renderer()
    for t in named:
        if not t.get_text():
            continue
        e = t.get_window_extent(renderer)
        assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1 and e.y0 >= box.y0 - 1 and e.y1 <= box.y1 + 1, t.get_text()


def test_figures_legible_at_print_size():
    rng = np.random.default_rng(6)
    n = 500
    freq = np.r_[0, rng.integers(0, 3000, n - 1)]
    norm = rng.uniform(0, 3, n)
    counts = rng.integers(0, 4, n)
    recall = rng.uniform(0, 1, n)
    in_band = np.r_[False, freq[1:] <= 5]
    long = "gru4rec · beauty_1000 · band [0, 5] (neighbours=outside_band)"  # wider than one column
    fig = frequency_panels_figure(freq, norm, recall, recall / 2, long, counts=counts, in_band=in_band)
    _check_print_size(fig, 7.0)
    rows = frequency_buckets(freq, {"Recall@10": recall, "NDCG@10": recall / 2}, counts)
    fig = frequency_buckets_figure(rows, ["Recall@10", "NDCG@10"], title=long)
    _check_print_size(fig, 3.4)
    shown = "GRU4Rec · Beauty (users ≥ 10) · band [0, 5], neighbours (outside band)"
    assert "\n" in fig.get_suptitle() and fig.get_suptitle().replace("\n", " · ") == shown  # broken at a separator
    fig = freq_vs_norm_figure(freq, norm, in_band, 0.5, title=long)
    _check_print_size(fig, 3.4)
    assert fig.axes[0].get_ylabel() == "L2 norm of effective vector"
    assert fig.axes[0].get_title().endswith("Spearman ρ(freq, norm) = 0.500")


def test_run_title():
    assert run_title("sasrec", "beauty_1000", 0, 5, "all") == TITLE
    assert run_title("gru4rec", "lastfm", None, None, "all") == "gru4rec · lastfm · baseline"
    assert run_title("mf_bpr", None, None, 5, "outside_band") == "mf_bpr · band (-inf, 5] (neighbours=outside_band)"
    assert run_title("sasrec", "yelp", 2.5, None, "all") == "sasrec · yelp · band [2.5, inf) (neighbours=all)"


def tiny_model(lower_freq=0, upper_freq=5, neighbours="all"):
    from embfreq.models.mf_bpr import MFBPR

    freq = torch.tensor([0.0, 5, 0, 3, 12, 1, 40])
    n = len(freq)
    operator = (torch.ones(n, n) / n).to_sparse_csr()
    model = make_model(MFBPR, num_users=3, num_items=n - 1, item_freq=freq, operator=operator, embedding_dim=4,
                  lower_freq=lower_freq, upper_freq=upper_freq, neighbours=neighbours)
    dm = types.SimpleNamespace(load_args={"path": "x.txt", "bundled": None}, item_freq=freq,
                               item_ids=np.array([f"i{i}" for i in range(1, n)]))
    return model, dm


def test_default_title(tmp_path):
    model, dm = tiny_model()
    # train.py pops the data name from load_args: without a config the title leaves it out
    assert default_title(model, dm, tmp_path) == "mf_bpr · band [0, 5] (neighbours=all)"
    (tmp_path / "config.yaml").write_text("model: {name: mf_bpr}\ndata: {name: beauty_1000}\n")
    assert default_title(model, dm, tmp_path) == "mf_bpr · beauty_1000 · band [0, 5] (neighbours=all)"
    dm.load_args["name"] = "lastfm"  # a datamodule that keeps the name wins
    assert default_title(model, dm, tmp_path) == "mf_bpr · lastfm · band [0, 5] (neighbours=all)"
    model, dm = tiny_model(None, None, "outside_band")
    assert default_title(model, dm, tmp_path) == "mf_bpr · beauty_1000 · baseline"


def test_analyze_model_names_every_figure(tmp_path, monkeypatch):
    import embfreq.analysis.per_run.run_analysis as run

    seen = {}
    for name in ("plot_frequency_panels", "plot_frequency_buckets", "plot_freq_vs_norm"):
        def spy(*args, _name=name, _orig=getattr(run, name), **kwargs):
            seen[_name] = inspect.signature(_orig).bind(*args, **kwargs).arguments
            return _orig(*args, **kwargs)
        monkeypatch.setattr(run, name, spy)
    model, dm = tiny_model()
    (tmp_path / "config.yaml").write_text("model: {name: mf_bpr}\ndata: {name: beauty_1000}\n")
    per_item = {"count": np.array([0, 1, 0, 2, 1, 1, 3]), "hr": np.array([0, 1, 0, 0.5, 0, 1, 1 / 3]),
                "recall": np.array([0, 1, 0, 0.5, 0, 1, 1 / 3]), "ndcg": np.array([0, 0.5, 0, 0.25, 0, 1, 0.2])}
    summary = analyze_model(model, dm, per_item, tmp_path)
    expected = "mf_bpr · beauty_1000 · band [0, 5] (neighbours=all)"
    assert summary["figure_title"] == expected
    assert {k: a["title"] for k, a in seen.items()} == dict.fromkeys(seen, expected) and len(seen) == 3
    assert seen["plot_frequency_panels"]["in_band"].tolist() == model.items.in_band.tolist()
    for name in FIGURES:
        assert_png(tmp_path / name)
    # An explicit title is used as given.
    assert analyze_model(model, dm, per_item, tmp_path, title="custom title")["figure_title"] == "custom title"
    assert {a["title"] for a in seen.values()} == {"custom title"}
