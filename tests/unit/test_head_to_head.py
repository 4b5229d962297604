"""head_to_head: budget tiers, the tier leader, and the paired change of every other configuration
against it, checked by hand and against a naive bootstrap loop."""

import csv
import json

import numpy as np
import pytest
import yaml

from embfreq.analysis.sweep import bands, head_to_head, stats
from embfreq.analysis.per_run.per_user import per_user_metric
from embfreq.analysis.sweep.stats import BOOT_SEED, N_BOOT
from embfreq.analysis.sweep.sweep_report import make_report
from embfreq.analysis.sweep.sweep_runs import ReportError, load_rows
from tests.conftest import fake_run, with_users

TARGETS, FREQ = [1, 2, 3, 4, 5, 6], [0, 3, 3, 50, 50, 200]  # the first three targets lie in [0, 5]


def strategy_run(root, name, seed, ranks, item_table=None, params=None, lower=0, upper=5, val=None):
    """A run of `item_table` ({"name": ..., budget}) for band [lower, upper], with per-user ranks and
    validation NDCG@10 `val` (what picks a tier's leader)."""
    d = fake_run(root, name, seed=seed, lower=lower, upper=upper, items=6, in_band=0 if lower is None else 3)
    if item_table:
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg["item_table"] = item_table
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    with_users(d, ranks, TARGETS, FREQ)
    m = json.loads((d / "metrics.json").read_text())
    if params is not None:
        m["embedding_params"] = params
    if val is not None:
        m["val"] = {"val/ndcg@10": val}
    (d / "metrics.json").write_text(json.dumps(m))
    return d


VAL = {"base": 0.3, "shared": 0.25, "hashed": 0.2}  # validation NDCG@10, the same order as on test
RANKS = {  # seed -> configuration -> ranks of the six test users
    1: {"base": [1, 3, 20, 1, 2, 7], "shared": [2, 3, 1, 1, 2, 15], "hashed": [9, 30, 40, 2, 2, 15]},
    2: {"base": [2, 1, 11, 4, 1, 1], "shared": [1, 1, 30, 4, 3, 1], "hashed": [20, 1, 30, 5, 3, 2]},
}


@pytest.fixture
def sweep(tmp_path):
    s = tmp_path / "s"
    for seed, r in RANKS.items():
        strategy_run(s, f"base_s{seed}", seed, r["base"], lower=None, upper=None, params=448, val=VAL["base"])
        strategy_run(s, f"shared_s{seed}", seed, r["shared"], {"name": "shared"}, params=256, val=VAL["shared"])
        strategy_run(s, f"hashed_s{seed}", seed, r["hashed"], {"name": "hashed", "buckets": 2}, params=270,
                     val=VAL["hashed"])
    # one seed only, at about the same memory and better: not the leader, which needs the most seeds
    strategy_run(s, "qr_s1", 1, [1, 1, 1, 1, 1, 1], {"name": "qr", "buckets": 2}, params=262, val=0.9)
    # a larger budget: its own tier
    strategy_run(s, "mixed_s1", 1, [1, 2, 3, 1, 2, 7], {"name": "mixed_dim", "band_dim": 4}, params=400, val=0.1)
    return s


def test_tiers_start_above_ratio_times_the_smallest():
    assert head_to_head.tiers([0.28, 0.30, 0.325, 0.46, 0.2801, 0.37, 1.0, 0.995]) == [0, 0, 1, 3, 0, 2, 4, 4]
    assert head_to_head.tiers([0.5, 0.55, 0.551], ratio=1.1) == [0, 0, 1]
    assert head_to_head.tiers([]) == []


def test_leader_and_paired_change_by_hand(sweep):
    recs = head_to_head.compare(load_rows([sweep]))
    got = {(r["strategy"], r["budget"]): r for r in recs}
    assert [(r["tier"], r["strategy"]) for r in recs] == [(0, "shared"), (0, "qr"), (0, "hashed"), (1, "mixed_dim")]
    lead, hashed, qr = got[("shared", "")], got[("hashed", "buckets=2")], got[("qr", "buckets=2")]
    assert lead.get("against") is None and got[("mixed_dim", "band_dim=4")].get("against") is None
    assert hashed["against"] == "shared" and hashed["paired_seeds"] == "1;2" and qr["paired_seeds"] == "1"
    assert hashed["params_share"] == 270 / 448
    nd = {k: np.stack([per_user_metric(np.array(RANKS[s][k]), "ndcg") for s in (1, 2)]) for k in ("shared", "hashed")}
    diff = (nd["hashed"] - nd["shared"]).mean(0)
    assert hashed["delta_ndcg10"] == pytest.approx(diff.mean(), abs=1e-12)
    rng = np.random.default_rng(BOOT_SEED)
    lo, hi = np.quantile([diff[rng.integers(0, 6, 6)].mean() for _ in range(N_BOOT)], [0.025, 0.975])
    assert (hashed["ci_low"], hashed["ci_high"]) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert hashed["significant"] == (lo > 0 or hi < 0)
    means = np.array([diff[np.random.default_rng(BOOT_SEED).integers(0, 6, (N_BOOT, 6))].mean(1)]).ravel()
    k = min((means <= 0).sum(), (means >= 0).sum())
    assert hashed["p_value"] == pytest.approx(min(1.0, 2 * (k + 1) / (N_BOOT + 1)))
    assert hashed["inband_users"] == 3 and hashed["rest_users"] == 3
    assert hashed["delta_ndcg10_inband"] == pytest.approx(diff[:3].mean())
    assert hashed["delta_ndcg10_rest"] == pytest.approx(diff[3:].mean())
    # qr is paired with the leader's seed 1 only
    qr_diff = per_user_metric(np.ones(6), "ndcg") - nd["shared"][0]
    assert qr["delta_ndcg10"] == pytest.approx(qr_diff.mean())
    assert qr["ndcg10_mean"] == pytest.approx(1.0)
    # Holm over the leader's two rivals: the smaller p times 2, the larger at least that and times 1
    small, large = sorted([hashed, qr], key=lambda r: r["p_value"])
    assert small["p_holm"] == pytest.approx(min(1.0, 2 * small["p_value"]))
    assert large["p_holm"] == pytest.approx(max(small["p_holm"], large["p_value"]))
    assert all(r["significant_holm"] == (r["p_holm"] < 0.05) for r in (hashed, qr))
    assert "p_holm" not in lead and "p_holm" not in got[("mixed_dim", "band_dim=4")]  # a tier of one has no rival
    # the seed-aware interval of the same gap, and none for qr (one paired seed)
    from tests.unit.test_stats import naive_two_level

    two = naive_two_level(nd["hashed"] - nd["shared"])
    slo, shi = np.quantile(two, [0.025, 0.975])
    assert (hashed["seed_ci_low"], hashed["seed_ci_high"]) == (pytest.approx(slo, abs=1e-12), pytest.approx(shi, abs=1e-12))
    assert hashed["seed_p"] == pytest.approx(stats.bootstrap_p(two)) and hashed["seed_significant"] == (slo > 0 or shi < 0)
    assert qr["seed_ci_low"] is None and qr["seed_p"] is None and qr["seed_significant"] == "1 seed"
    assert hashed["seed_p_holm"] == hashed["seed_p"]  # the only rival with a seed-aware p
    assert (lead["val_ndcg10_mean"], hashed["val_ndcg10_mean"]) == (pytest.approx(0.25), pytest.approx(0.2))


def test_the_leader_is_picked_on_validation_not_on_test(sweep):
    """hashed is worse than shared on test but better on validation: it leads, and shared's gap to
    it is the test difference, now positive."""
    for seed in RANKS:
        d = sweep / f"hashed_s{seed}"
        m = json.loads((d / "metrics.json").read_text())
        m["val"]["val/ndcg@10"] = 0.3
        (d / "metrics.json").write_text(json.dumps(m))
    recs = head_to_head.compare(load_rows([sweep]))
    assert [(r["strategy"], r.get("against")) for r in recs if r["tier"] == 0] == [
        ("hashed", None), ("qr", "hashed buckets=2"), ("shared", "hashed buckets=2")]
    shared = recs[2]
    assert shared["ndcg10_mean"] > recs[0]["ndcg10_mean"] and shared["delta_ndcg10"] > 0
    # a configuration whose runs lack validation metrics never leads one that has them
    d = sweep / "hashed_s1"
    m = json.loads((d / "metrics.json").read_text())
    del m["val"]
    (d / "metrics.json").write_text(json.dumps(m))
    recs = head_to_head.compare(load_rows([sweep]))
    assert [(r["strategy"], r["val_ndcg10_mean"]) for r in recs if r["tier"] == 0][0] == ("shared", pytest.approx(0.25))
    assert [r["val_ndcg10_mean"] for r in recs if r["strategy"] == "hashed"] == [None]
    assert "| hashed | buckets=2 | 1;2 |  | 0." in head_to_head.markdown(recs)  # no validation cell, no error


def test_report_writes_the_table(sweep, tmp_path):
    rep = make_report([sweep], tmp_path / "r")
    with open(tmp_path / "r" / "head_to_head.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["strategy"] for r in rows] == ["shared", "qr", "hashed", "mixed_dim"]
    assert tmp_path / "r" / "head_to_head.csv" in rep.files
    md = (tmp_path / "r" / "summary.md").read_text()
    assert "### Head to head at equal memory" in md and "| leader |" in md


def test_neighbour_modes_only_give_no_table(tmp_path):
    s = tmp_path / "s"
    strategy_run(s, "base", 1, RANKS[1]["base"], lower=None, upper=None)
    strategy_run(s, "band", 1, RANKS[1]["shared"])
    assert head_to_head.compare(load_rows([s])) == []
    make_report([s], tmp_path / "r")
    assert not (tmp_path / "r" / "head_to_head.csv").exists()


def test_other_test_users_are_refused(sweep):
    d = sweep / "hashed_s2"
    with_users(d, RANKS[2]["hashed"], [6, 5, 4, 3, 2, 1], FREQ)
    with pytest.raises(bands.MismatchError, match="hashed_s2: its test users differ from .*shared_s2"):
        head_to_head.compare(load_rows([sweep]))
    with pytest.raises(ReportError, match="test users differ"):
        make_report([sweep], sweep.parent / "r")


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04); capped at 1
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]
    assert stats.holm([0.2]) == [0.2] and stats.holm([]) == []


def test_bootstrap_p_counts_the_resamples_on_the_far_side_of_zero():
    assert stats.bootstrap_p(np.array([1.0, 2.0, 3.0, -1.0])) == pytest.approx(2 * 2 / 5)
    assert stats.bootstrap_p(np.ones(1999)) == pytest.approx(2 / 2000)  # never 0
    assert stats.bootstrap_p(np.array([0.0, 0.0])) == 1.0  # ties sit on both sides
    # p < 0.05 where the 95% percentile interval excludes 0, on a clear and a null change
    for shift in (0.3, 0.0):
        ch = stats.paired_change(np.random.default_rng(1).normal(shift, 1, 400), np.zeros(400))
        assert (ch.p < 0.05) == ch.significant
