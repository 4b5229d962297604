"""Committed results: the tables and numbers of README.md and docs/ against the files in docs/results
(summary.csv, run dirs, configs), and the commands that printed them."""

import csv
import json
import re
import shlex
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from embfreq.analysis.figures import budget_figure
from embfreq.analysis.sweep import bands
from embfreq.analysis.sweep.sweep_report import make_report
from embfreq.band import band_label
from embfreq.training.builders import build_datamodule, build_model
from tests.conftest import CONF, ROOT

pytestmark = pytest.mark.results
ITEM_TABLES = ROOT / "docs" / "results" / "item_tables"


def flat(pairs):
    return [x for pair in pairs for x in pair]


def test_results_page_findings_tables_equal_the_committed_summary():
    """Each <!-- findings-table...: python scripts/findings_table.py ARGS --> block of the results
    page (docs/results.md) is what its command prints from the committed summary.csv."""
    import re
    import shlex

    readme = (ROOT / "docs" / "results.md").read_text()
    blocks = re.findall(r"<!-- (findings-table[\w-]*): python (scripts/findings_table\.py.*?) -->\n(.*?)<!-- /\1 -->",
                        readme, flags=re.S)
    assert {m for m, _, _ in blocks} >= {"findings-table", "findings-table-yelp"}
    for marker, cmd, block in blocks:
        out = subprocess.run([sys.executable, *shlex.split(cmd)], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        assert block.strip() == out.strip(), marker


def test_results_page_frequency_norm_table_is_its_command_on_the_committed_runs():
    """The results page's norm table is `scripts/norm_table.py` on the committed runs, and its rows are
    the `analysis` record of those runs (the yelp row checked against the metrics.json by hand)."""
    import re

    page = (ROOT / "docs" / "results.md").read_text()
    cmd, block = re.search(r"<!-- norm-table: python (.*?) -->\n(.*?)<!-- /norm-table -->", page, re.S).groups()
    out = subprocess.run([sys.executable, *shlex.split(cmd)], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert block.strip() == out.strip()
    runs = ROOT / "docs/results/bands/runs/bands_yelp"
    (path,) = runs.glob("*/0_mf_bpr_yelp_lNone_uNone_all_s1/metrics.json")
    a = json.loads(path.read_text())["analysis"]
    assert (f"| yelp | MF-BPR | 0.0381 | +{a['spearman_freq_norm']:.2f} | {a['never_trained_items']} | "
            f"{a['norm_threshold']:.2f} | {a['items_below_threshold']} ({a['never_trained_below_threshold']}) |") in block
    assert "| yelp | MF-BPR | 0.0381 | +0.85 | 14 | 0.29 | 24 (14) | 1.000 |" in block  # as read off the record


def test_norm_table_refuses_roots_without_a_plain_no_band_run(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "scripts/norm_table.py"), str(tmp_path)], capture_output=True,
                       text=True)
    assert p.returncode != 0 and "no no-band run of seed 1" in p.stderr


def test_readme_answer_numbers_equal_the_committed_summary():
    """Every number of the README's answer is the committed summary.csv's, rounded as written."""
    import csv
    import re

    answer = re.search(r"<!-- the-answer -->(.*?)<!-- /the-answer -->", (ROOT / "README.md").read_text(), re.S)
    text = " ".join(answer.group(1).split())
    with open(ROOT / "docs/results/bands/summary.csv", newline="") as f:
        rows = {(r["data"], r["model"], r["band"], r["neighbours"]): r for r in csv.DictReader(f)}

    def row(model, band):
        return rows[("beauty_1000", model, band, "all")]

    def pct(v, nd=0):
        return f"{abs(float(v)):.{nd}f}%"

    def seed_ci(r):  # the interval over test users and seeds, in % of the baseline
        base = float(r["baseline_ndcg10"])
        lo, hi = (100 * float(r[k]) / base for k in ("delta_seed_ci_low", "delta_seed_ci_high"))
        return f"CI {'−' if lo < 0 else '+'}{abs(lo):.1f}% to {'−' if hi < 0 else '+'}{abs(hi):.1f}%"

    sas = row("sasrec", "[0, 5]")
    assert f"loses {pct(sas['delta_pct'])} of test NDCG@10" in text
    assert f"({float(sas['baseline_ndcg10']):.4f} → {float(sas['ndcg10_mean']):.4f}, {seed_ci(sas)})" in text
    assert sas["seed_significant"] == "yes"
    assert f"up to {pct(row('sasrec', '[0, 20]')['delta_pct'])} for `[0, 20]`" in text
    assert f"{round(100 * float(sas['share_in_band']))}% of items seen at most 5 times" in text
    mf = row("mf_bpr", "[0, 5]")
    assert f"`[0, 5]` +{float(mf['delta_pct']):.1f}%, {seed_ci(mf)}" in text
    assert "no significant cost for any cold band" in text
    assert all(row("mf_bpr", b)["seed_significant"] == "no" for b in ("[0, 0]", "[0, 5]", "[0, 20]", "[5, 5]", "[5, 20]"))
    with open(ROOT / "docs/results/fragile_cells_seeds_4_5/summary.csv", newline="") as f:
        five = {(r["model"], r["band"], r["neighbours"]): r for r in csv.DictReader(f)}
    hot = five[("sasrec", "[100, inf)", "all")]  # the fragile cell, with seeds 4 and 5
    assert hot["seeds"] == "1;2;3;4;5"
    assert (f"SASRec loses only {abs(float(hot['delta_pct'])):.1f}% (5 seeds: {seed_ci(hot)}, just significant, "
            "and one seed gains)") in text
    assert hot["seed_significant"] == "yes" and float(hot["seed_p"]) > 0.01
    with open(ROOT / "docs/results/epoch_cap_400_bands/summary.csv", newline="") as f:
        cap400 = {r["band"]: r for r in csv.DictReader(f)}
    assert f"the cold-band cost falls to {abs(float(cap400['[0, 5]']['delta_pct'])):.1f}%" in text
    assert cap400["[0, 5]"]["seed_significant"] == "yes" and cap400["[100, inf)"]["seed_significant"] == "no"
    for model, label in (("sasrec", "SASRec"), ("mf_bpr", "MF-BPR")):
        r = row(model, "[100, inf)")
        before = float(r["inband_baseline_ndcg10"])
        after = before + float(r["delta_ndcg10_inband"])
        assert f"from {before:.2f} to {after:.2f} ({label})" in text
COMMITTED_RUNS = ROOT / "docs" / "results" / "bands" / "runs"


@pytest.mark.parametrize("model, run", [
    ("sasrec", "bands_beauty_1000_outside/s1/0_sasrec_beauty_1000_l0_u5_outside_band_s1"),
    ("mf_bpr", "bands_beauty_1000_outside/s3_mf/0_mf_bpr_beauty_1000_l0_u5_outside_band_s3"),
])
def test_committed_run_configs_are_in_todays_layout(model, run):
    """A published run's config.yaml (migrated by scripts/migrate_run_configs.py) is the config the
    same command composes today: every key that changes results is equal, so old and new runs of one
    experiment are one experiment in the report."""
    from omegaconf import OmegaConf

    from embfreq.analysis.sweep.baselines import _ignored
    from embfreq.io import flatten

    old = OmegaConf.to_container(OmegaConf.load(COMMITTED_RUNS / run / "config.yaml"))
    with initialize_config_dir(str(CONF), version_base="1.3"):
        new = compose("train", overrides=["+sweep=bands_beauty_1000", f"model={model}", "band=b0_5",
                                          "item_table.neighbours=outside_band", "seed=1"])
    new = OmegaConf.to_container(new, resolve=False)
    new.pop("hydra", None)
    old_flat, new_flat = flatten(old), flatten(new)
    keys = {k for k in old_flat.keys() | new_flat.keys() if not _ignored(k) or k.startswith("item_table.")}
    differ = {k: (old_flat.get(k), new_flat.get(k)) for k in keys if old_flat.get(k) != new_flat.get(k)
              and "${" not in str(new_flat.get(k))}  # interpolations: resolved when a run writes its config
    assert differ == {}


def test_every_committed_run_config_is_migrated():
    """scripts/migrate_run_configs.py --check finds nothing left to migrate under docs/results."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "migrate_run_configs.py"), "--check",
                          str(ROOT / "docs" / "results")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("0 of "), out.stdout + out.stderr


@pytest.mark.parametrize("run", [
    "bands_beauty_1000_outside/s1/0_sasrec_beauty_1000_l0_u5_outside_band_s1",
    "bands_beauty_1000_outside/s3_mf/0_mf_bpr_beauty_1000_l0_u5_outside_band_s3",
])
def test_committed_run_configs_rebuild_their_model(run, tmp_path):
    """A committed config.yaml builds the model it trained: the same parameter counts as its metrics.json."""
    from omegaconf import OmegaConf

    c = OmegaConf.load(COMMITTED_RUNS / run / "config.yaml")
    c.data.cache_dir = str(tmp_path)
    m = json.loads((COMMITTED_RUNS / run / "metrics.json").read_text())
    dm = build_datamodule(c)
    dm.setup("fit")
    model = build_model(c, dm)
    assert sum(p.numel() for p in model.parameters()) == m["total_params"]
    assert sum(p.numel() for p in model.items.parameters()) == m["embedding_params"]


@pytest.mark.slow
def test_committed_item_tables_report(tmp_path):
    """budgets.csv of the committed runs: each point is the mean over its seeds of the runs'
    metrics.json test NDCG@10, at their embedding params, as a share of the baseline's."""
    import numpy as np

    rep = make_report([ITEM_TABLES / "runs"], tmp_path)
    runs = [json.loads(p.read_text()) for p in sorted((ITEM_TABLES / "runs").rglob("metrics.json"))]
    with open(tmp_path / "budgets.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple, list[dict]] = {}
    for m in runs:
        mode = m.get("item_table", "neighbours")  # runs from before the key: the neighbour average
        mode = m["neighbours"] if mode == "neighbours" else mode
        band = None if m["lower_freq"] is None else band_label(m["lower_freq"], m["upper_freq"])
        groups.setdefault((m["data"], m["model"], band, mode, m["embedding_params"]), []).append(m)
    full = {(data, model): ms[0]["embedding_params"]
            for (data, model, band, _, _), ms in groups.items() if band is None}
    seen = set()
    for r in rows:
        data, model, params = r["data"], r["model"], int(r["embedding_params"])
        mode = {"no band": None, "neighbours (all)": "all", "neighbours (outside_band)": "outside_band"}.get(
            r["strategy"], r["strategy"])
        key = (data, model, None, "all", params) if mode is None else (data, model, r["band"], mode, params)
        ms = groups[key]
        assert float(r["ndcg10_mean"]) == pytest.approx(np.mean([m["test"]["test/ndcg@10"] for m in ms]), abs=1e-15)
        assert r["seeds"] == ";".join(str(m["seed"]) for m in sorted(ms, key=lambda m: m["seed"]))
        assert float(r["params_share"]) == params / full[(data, model)]
        seen.add((data, model, r["band"], mode, params))
    strategies = {k for k in groups if k[3] not in ("all", "outside_band")}
    assert strategies <= seen  # every strategy run is plotted
    assert {r["band"] for r in rows} == {"[0, 5]", "[100, inf)"}
    names = {p.name for p in rep.files}
    assert {"budgets.csv", "budget_mf_bpr_beauty_1000_0_5.png", "budget_mf_bpr_beauty_1000_0_5.pdf",
            "budget_mf_bpr_beauty_1000_100_inf.png"} <= names
    assert "## NDCG@10 at equal memory" in (tmp_path / "summary.md").read_text()
    # head to head: one leader per tier; a configuration with the leader's seeds is not better on
    # validation (what picks the leader), and its paired change on test is the difference of the two
    # means of metrics.json test values, whichever sign it has
    with open(tmp_path / "head_to_head.csv", newline="") as f:
        duels = list(csv.DictReader(f))
    tier = lambda r: (r["data"], r["model"], r["band"], r["tier"])  # noqa: E731
    leaders = [r for r in duels if not r["against"]]
    assert len(leaders) == len({tier(r) for r in duels})
    lead = {tier(r): r for r in leaders}
    for r in duels:
        ld = lead[tier(r)]
        assert max(float(r["params_share"]), float(ld["params_share"])) <= 1.1 * min(float(r["params_share"]), float(ld["params_share"]))
        if r["against"] and r["seeds"] == ld["seeds"]:
            assert float(r["val_ndcg10_mean"]) <= float(ld["val_ndcg10_mean"])
            assert float(r["delta_ndcg10"]) == pytest.approx(float(r["ndcg10_mean"]) - float(ld["ndcg10_mean"]), abs=2e-6)
        if r["p_value"]:  # Holm never lowers a p-value, and a Holm-significant gap is nominally significant too
            assert float(r["p_value"]) <= float(r["p_holm"]) <= 1
            assert r["significant_holm"] == ("yes" if float(r["p_holm"]) < 0.05 else "no")
            assert r["significant_holm"] == "no" or r["significant"] == "yes"
        if r["seed_p"]:  # the same for the seed-aware p, which exists with 2 or more paired seeds
            assert float(r["seed_p"]) <= float(r["seed_p_holm"]) <= 1 and len(r["paired_seeds"].split(";")) >= 2
            assert r["seed_significant_holm"] == ("yes" if float(r["seed_p_holm"]) < 0.05 else "no")
            assert r["seed_significant_holm"] == "no" or r["seed_significant"] == "yes"
        elif r["against"]:
            assert r["seed_significant"] == "1 seed" and r["seed_ci_low"] == "" and r["paired_seeds"].count(";") == 0
    assert {(r["data"], r["model"], r["band"]) for r in duels} == {(r["data"], r["model"], r["band"]) for r in rows}


@pytest.mark.slow
def test_committed_figure_labels_overlap_nothing_and_every_point_is_shown():
    from embfreq.analysis.sweep.sweep_report import load_rows

    rep_pts = budget_figure.points(bands.analyse(load_rows([ITEM_TABLES / "runs"]))[0])
    for key, pts in budget_figure.groups(rep_pts).items():
        fig = budget_figure.draw(pts, " ".join(key))
        axes = fig.axes
        ranges = budget_figure.x_panels([p["params_share"] for p in pts])
        assert flat(ax.get_xlim() for ax in axes) == pytest.approx(flat(ranges))
        for p in pts:
            assert any(lo <= 100 * p["params_share"] <= hi for lo, hi in ranges)
            lo, hi = axes[0].get_ylim()
            assert all(lo <= v <= hi for v in (p["ndcg10_mean"], p["ci_low"], p["ci_high"]) if v is not None)
        r = fig.canvas.get_renderer()
        for ax in axes:  # every marker whole inside the axes and clear of the frame (1 pt), the no-band star too
            for line in ax.get_lines():
                if line.get_marker() in ("o", "*"):
                    half = (line.get_markersize() / 2 + 1) * fig.dpi / 72
                    ys = line.get_transform().transform(line.get_xydata())[:, 1]
                    assert ax.bbox.y0 <= min(ys) - half and max(ys) + half <= ax.bbox.y1, (key, line.get_label())
        for ax, (lo, hi) in zip(axes, ranges):  # every panel labelled, its tick labels apart
            assert any(lo <= v <= hi for v in ax.get_xticks()), (key, lo, hi)
            ticks = [t.get_window_extent(r) for t in ax.get_xticklabels() if t.get_text()]
            assert not any(a.overlaps(b) for a, b in zip(ticks, ticks[1:]))
            boxes = [t.get_window_extent(r) for t in ax.texts]
            marks = [line.get_transform().transform(line.get_xydata()) for line in ax.get_lines()
                     if line.get_marker() == "o"]
            for i, b in enumerate(boxes):
                assert ax.bbox.x0 <= b.x0 and b.x1 <= ax.bbox.x1
                assert not any(b.overlaps(o) for o in boxes[i + 1:])
                assert not any(b.x0 < x < b.x1 and b.y0 < y < b.y1 for m in marks for x, y in m)
        if key == ("mf_bpr", "beauty_1000", "", "[0, 5]"):  # hashed, qr and mixed_dim at 3 budgets each: one label per point
            assert sorted(t.get_text() for ax in axes for t in ax.texts) == sorted(
                "256 525 2098 64 508 2094 4 8 16".split())


@pytest.mark.slow
@pytest.mark.parametrize("page", ["epoch_cap_sasrec_beauty_1000", "epoch_cap_400_bands"])
def test_the_committed_page_block_is_what_its_command_prints(page):
    page = (ROOT / "docs/results" / page / "README.md").read_text()
    cmd, block = re.search(r"<!-- epoch-cap-table: python (.*?) -->\n(.*?)<!-- /epoch-cap-table -->", page, re.S).groups()
    out = subprocess.run([sys.executable, *shlex.split(cmd)], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert block.strip() == out.strip()


