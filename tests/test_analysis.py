import csv
import math

import numpy as np
import pytest
import scipy.stats
import torch

from embfreq.analysis.items import (
    average_ranks,
    item_columns,
    item_table,
    norm_threshold,
    spearman,
    summary_numbers,
    write_items_csv,
)
from embfreq.analysis.plots import (
    frequency_buckets,
    plot_freq_vs_norm,
    plot_frequency_buckets,
    plot_frequency_panels,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1024


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
    p = plot_frequency_panels(freq, norm, recall, ndcg, tmp_path / "panels.png", title="t", counts=counts)
    assert_png(p)
    p, rows = plot_frequency_buckets(freq, {"recall@10": recall, "ndcg@10": ndcg}, counts, tmp_path / "b.png")
    assert_png(p) and rows
    assert_png(plot_freq_vs_norm(freq, norm, in_band, tmp_path / "s.png", rho=0.42))


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
