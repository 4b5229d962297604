"""`embfreq.report` on hand-made run dirs (no training): rows, baselines, grids, figures, errors."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from embfreq.analysis.figures.ndcg_heatmap import grids
from embfreq.analysis.sweep.sweep_report import default_out_dir, make_report
from embfreq.analysis.sweep.sweep_runs import ReportError, load_rows
from embfreq.band import band_label
from tests.conftest import ROOT, fake_run, with_users

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def sweep(tmp_path):
    """Two seeds of sasrec with baselines, one skipped and one failed cell, and an mf_bpr run without a
    same-seed baseline (so its baseline is the mean of the two)."""
    s = tmp_path / "sweep"
    fake_run(s, "0_base_s1", lower=None, upper=None, seed=1, ndcg=0.20, hr=0.40, in_band=0)
    fake_run(s, "1_base_s2", lower=None, upper=None, seed=2, ndcg=0.30, hr=0.50, in_band=0)
    fake_run(s, "2_l0_u5_s1", lower=0, upper=5, seed=1, ndcg=0.22, hr=0.41, in_band=30)
    fake_run(s, "3_l0_u5_s2", lower=0, upper=5, seed=2, ndcg=0.27, hr=0.45, in_band=30)
    fake_run(s, "4_l5_u20_s1", lower=5, upper=20, seed=1, ndcg=0.18, hr=0.39, in_band=50, neighbours="all")
    fake_run(s, "5_l20_u5_s1", status="skipped", lower=20, upper=5, seed=1)
    fake_run(s, "6_l20_unull_s1", status="failed", lower=20, upper=None, seed=1, reason="RuntimeError: out | of memory")
    fake_run(s, "7_mf_base_s1", model="mf_bpr", lower=None, upper=None, seed=1, ndcg=0.10, hr=0.2, in_band=0)
    fake_run(s, "8_mf_base_s2", model="mf_bpr", lower=None, upper=None, seed=2, ndcg=0.12, hr=0.3, in_band=0)
    fake_run(s, "9_mf_l0_u5_s3", model="mf_bpr", lower=0, upper=5, seed=3, ndcg=0.13, hr=0.3, in_band=30)
    return s


def read_csv(path):
    with open(path, newline="") as f:
        return {r["run"]: r for r in csv.DictReader(f)}


def test_rows_match_metrics_and_baselines(sweep):
    rep = make_report([sweep])
    assert rep.out_dir == sweep.resolve()
    rows = read_csv(sweep / "runs.csv")
    assert len(rows) == 10  # .hydra/config.yaml copies are not runs
    r = rows["2_l0_u5_s1"]
    assert (r["status"], r["model"], r["data"], r["band"], r["seed"]) == ("ok", "sasrec", "beauty", "[0, 5]", "1")
    assert (r["items"], r["items_in_band"], float(r["share_in_band"])) == ("100", "30", 0.3)
    assert (r["embedding_params"], r["embedding_params_saved"]) == (str(101 * 64), "0")
    assert float(r["test_ndcg@10"]) == 0.22 and float(r["test_hr@10"]) == 0.41
    # same-seed baseline
    assert float(r["baseline_ndcg@10"]) == 0.20 and r["baseline_runs"] == "1"
    assert float(r["delta_ndcg@10"]) == pytest.approx(0.02)
    assert float(r["delta_ndcg@10_pct"]) == pytest.approx(10.0)
    assert float(r["delta_hr@10"]) == pytest.approx(0.01)
    assert float(rows["3_l0_u5_s2"]["delta_ndcg@10"]) == pytest.approx(-0.03)
    # no same-seed baseline: the mean of the model's baselines, never another model's
    mf = rows["9_mf_l0_u5_s3"]
    assert float(mf["baseline_ndcg@10"]) == pytest.approx(0.11) and mf["baseline_runs"] == "2"
    assert float(mf["delta_ndcg@10"]) == pytest.approx(0.02)
    # baselines and non-ok runs carry no change
    assert rows["0_base_s1"]["band"] == "baseline" and rows["0_base_s1"]["delta_ndcg@10"] == ""
    sk = rows["5_l20_u5_s1"]
    assert sk["status"] == "skipped" and "empty band" in sk["reason"] and sk["test_ndcg@10"] == ""
    fa = rows["6_l20_unull_s1"]
    assert (fa["status"], fa["band"], fa["reason"]) == ("failed", "[20, inf)", "RuntimeError: out | of memory")
    # sorted by model, data, then baselines first, then bands
    assert list(rows)[:5] == ["7_mf_base_s1", "8_mf_base_s2", "9_mf_l0_u5_s3", "0_base_s1", "1_base_s2"]


def test_markdown_and_printed_table(sweep):
    rep = make_report([sweep])
    md = (sweep / "summary.md").read_text()
    assert rep.table in md
    lines = [ln for ln in rep.table.splitlines() if ln.startswith("| 2_l0_u5_s1 ")]
    assert len(lines) == 1
    line = lines[0]
    assert "0.2200" in line and "+0.0200 (+10.0%)" in line and "30 / 100 (30.0%)" in line and "| ok |" in line
    assert "failed: RuntimeError: out \\| of memory" in rep.table  # a pipe in a reason keeps the table intact
    assert "skipped: lower_freq=20 > upper_freq=5: empty band" in rep.table
    n_cols = rep.table.splitlines()[0].count(" | ")
    assert all(ln.replace("\\|", "").count(" | ") == n_cols for ln in rep.table.splitlines()[2:])
    assert "tensorboard --logdir" in md


def test_grid_mean_std_and_figures(sweep):
    rows = load_rows([sweep])
    gs = {g.panel[0]: g for g in grids(rows)}
    g = gs["sasrec"]
    assert g.lowers == [0, 5, 20] and g.uppers == [5, 20, None]
    c = g.cells[(0, 5)]
    assert c.mean == pytest.approx(0.245) and c.std == pytest.approx(0.0353553, rel=1e-4)
    assert c.text() == "0.2450\n±0.0354\nn=2"  # three short lines: the cell fits one column
    assert g.cells[(20, 5)].text() == "skipped" and g.cells[(20, None)].text() == "failed"
    assert g.baseline.mean == pytest.approx(0.25) and len(g.baseline.values) == 2
    assert gs["mf_bpr"].baseline.mean == pytest.approx(0.11)
    rep = make_report([sweep])
    pngs = sorted(p.name for p in rep.files if p.suffix == ".png")
    # mf_bpr's band run has no same-seed baseline: no paired change, so no change figures
    assert pngs == ["frontier_sasrec_beauty.png", "heatmap_delta_sasrec_beauty.png", "heatmap_ndcg10_mf_bpr_beauty.png",
                    "heatmap_ndcg10_sasrec_beauty.png"]
    for p in rep.files:
        assert p.is_file()
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG
            assert p.with_suffix(".pdf") in rep.files and p.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    assert not [p for p in sweep.iterdir() if p.name.startswith(".")]  # no temp files left


def test_variants_split_panels_and_baselines(tmp_path):
    s = tmp_path / "s"
    fake_run(s, "a", lower=None, upper=None, net={"num_heads": 1}, ndcg=0.2)
    fake_run(s, "b", lower=None, upper=None, net={"num_heads": 2}, ndcg=0.4)
    fake_run(s, "c", lower=0, upper=5, net={"num_heads": 1}, ndcg=0.3)
    fake_run(s, "d", lower=0, upper=5, net={"num_heads": 2}, ndcg=0.3, neighbours="outside_band")
    rows = {r.run_dir.name: r for r in load_rows([s])}
    assert rows["c"].variant == "model.net.num_heads=1" and rows["d"].variant == "model.net.num_heads=2"
    assert rows["c"].baseline["ndcg"] == pytest.approx(0.2) and rows["d"].baseline["ndcg"] == pytest.approx(0.4)
    assert len(grids(list(rows.values()))) == 2
    rep = make_report([s])
    assert "| variant |" in rep.table.splitlines()[0]
    assert "[0, 5] (outside_band)" in rep.table
    d = read_csv(s / "runs.csv")["d"]
    assert d["embedding_params_saved"] == str(10 * 64)


def test_run_dirs_and_out_dir(sweep, tmp_path):
    a, b = sweep / "2_l0_u5_s1", sweep / "0_base_s1"
    assert default_out_dir([a, b]) == sweep.resolve()
    rep = make_report([a, b], tmp_path / "out")
    assert {r.run_dir.name for r in rep.rows} == {a.name, b.name}
    assert read_csv(tmp_path / "out" / "runs.csv")["2_l0_u5_s1"]["baseline_runs"] == "1"
    other = fake_run(tmp_path / "elsewhere", "x", seed=9)  # another seed: the same one would be a duplicate
    with pytest.raises(ReportError, match="--out"):
        make_report([a, other])
    # a run without metrics.json (killed or still running) is listed, not an error
    fake_run(sweep, "10_running", status=None)
    rows = read_csv(make_report([sweep]).files[0])
    assert rows["10_running"]["status"] == "missing"


def test_band_label():
    assert band_label(None, None) == "baseline"
    assert band_label(0, 0) == "[0, 0]"
    assert band_label(100, None) == "[100, inf)"
    assert band_label(None, 5) == "(-inf, 5]"
    assert band_label(2.5, 7.0) == "[2.5, 7]"


def cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "embfreq.report", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _one_error_line(out, msg):
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.startswith("embfreq: error: ") and msg in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_cli_prints_table_and_errors_in_one_line(sweep, tmp_path):
    out = cli(sweep, f"out={tmp_path / 'rep'}")
    assert out.returncode == 0, out.stderr
    assert "| beauty | sasrec | [0, 5] |" in out.stdout and (tmp_path / "rep" / "runs.csv").is_file()
    last = out.stdout.rstrip().splitlines()[-1]
    assert last.startswith("wrote ") and f" files to {tmp_path / 'rep'}: runs.csv, " in last
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".hydra").mkdir()
    (empty / ".hydra" / "config.yaml").write_text("a: 1\n")
    bad = fake_run(tmp_path / "bad", "r")
    (bad / "metrics.json").write_text('{"status": "ok", "test": ')
    for args, msg in [((empty,), "no runs under"), ((tmp_path / "nope",), "no such file"),
                      ((tmp_path / "bad",), "unreadable metrics.json"), ((), "no paths: give sweep dirs"),
                      ((sweep, "--out"), "argument --out: expected one argument"),
                      (("-m", sweep), "unrecognized arguments: -m"), ((sweep, "ot=x"), "ot=x: no such file")]:
        _one_error_line(cli(*args), msg)


@pytest.mark.slow
def test_cli_forms_and_odd_paths_leave_the_cwd_empty(sweep, tmp_path):
    """Positional paths, out= and --out, a path with = (only out= is a key), and paths with a
    comma, a space, a quote and ${; from an empty cwd, which stays empty (no run dir, .hydra/,
    outputs/ or multirun/)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    odd = tmp_path / "a,b c" / "it's ${x}"
    shutil.copytree(sweep, odd)
    out = cli(sweep, cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert f"files to {sweep}: " in out.stdout and (sweep / "summary.md").is_file()
    out = cli(odd / "2_l0_u5_s1", odd / "0_base_s1", "--out", tmp_path / "x, y", cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert set(read_csv(tmp_path / "x, y" / "runs.csv")) == {"2_l0_u5_s1", "0_base_s1"}
    eq = tmp_path / "lr=0.1"
    shutil.copytree(sweep, eq)
    out = cli(eq, f"out={tmp_path / 'eq_report'}", cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "eq_report" / "summary.csv").is_file()
    _one_error_line(cli(tmp_path / "a,b c" / "missing, too", cwd=cwd), f"{tmp_path / 'a,b c' / 'missing, too'}:")
    assert list(cwd.iterdir()) == []


def test_paired_change_ci_and_bucket_split_from_per_user_files(tmp_path):
    """Hand-checked change, bootstrap CI equal to a naive resampling loop, seed mean ± std, the split
    into in-band targets and the rest, and the frequency buckets."""
    from embfreq.analysis.per_run.per_user import per_user_metric
    from embfreq.analysis.sweep.stats import N_BOOT, BOOT_SEED

    s = tmp_path / "s"
    targets, freq = [1, 2, 3, 4, 5, 6], [0, 3, 3, 50, 50, 200]
    runs = {  # seed -> (baseline ranks, band [0, 5] ranks)
        1: ([1, 3, 20, 1, 2, 7], [2, 3, 1, 1, 2, 15]),
        2: ([2, 1, 11, 4, 1, 1], [1, 1, 30, 4, 3, 1]),
    }
    for seed, (base, band) in runs.items():
        with_users(fake_run(s, f"base_s{seed}", lower=None, upper=None, seed=seed, in_band=0), base, targets, freq)
        with_users(fake_run(s, f"band_s{seed}", lower=0, upper=5, seed=seed, in_band=3, items=6), band, targets, freq)
    rep = make_report([s])
    with open(s / "summary.csv", newline="") as f:
        summ = {(r["band"], r["neighbours"]): r for r in csv.DictReader(f)}
    row = summ[("[0, 5]", "all")]
    nd = {k: np.stack([per_user_metric(np.array(runs[sd][i]), "ndcg") for sd in (1, 2)]) for i, k in enumerate(("base", "band"))}
    diff = (nd["band"] - nd["base"]).mean(0)
    assert float(row["delta_ndcg10"]) == pytest.approx(diff.mean(), abs=1e-12)
    rng = np.random.default_rng(BOOT_SEED)
    naive = [diff[rng.integers(0, 6, 6)].mean() for _ in range(N_BOOT)]
    lo, hi = np.quantile(naive, [0.025, 0.975])
    assert float(row["delta_ci_low"]) == pytest.approx(lo, abs=1e-12)
    assert float(row["delta_ci_high"]) == pytest.approx(hi, abs=1e-12)
    assert row["significant"] == ("yes" if lo > 0 or hi < 0 else "no")
    # the seed-aware interval: seeds, then users, resampled over the (seeds, users) differences
    from tests.unit.test_stats import naive_two_level

    two = naive_two_level(nd["band"] - nd["base"])
    slo, shi = np.quantile(two, [0.025, 0.975])
    assert (float(row["delta_seed_ci_low"]), float(row["delta_seed_ci_high"])) == (
        pytest.approx(slo, abs=1e-12), pytest.approx(shi, abs=1e-12))
    assert row["seed_significant"] == ("yes" if slo > 0 or shi < 0 else "no")
    k = min((two <= 0).sum(), (two >= 0).sum())
    assert float(row["seed_p"]) == pytest.approx(min(1.0, 2 * (k + 1) / (N_BOOT + 1)))
    inb = np.quantile(naive_two_level((nd["band"] - nd["base"])[:, :3]), [0.025, 0.975])
    assert float(row["inband_seed_ci_low"]) == pytest.approx(inb[0], abs=1e-12)
    assert float(row["inband_seed_ci_high"]) == pytest.approx(inb[1], abs=1e-12)
    rest = np.quantile(naive_two_level((nd["band"] - nd["base"])[:, 3:]), [0.025, 0.975])
    assert float(row["rest_seed_ci_low"]) == pytest.approx(rest[0], abs=1e-12)
    assert float(row["rest_seed_ci_high"]) == pytest.approx(rest[1], abs=1e-12)
    per_seed = nd["band"].mean(1)
    assert float(row["ndcg10_mean"]) == pytest.approx(per_seed.mean())
    assert float(row["ndcg10_std"]) == pytest.approx(per_seed.std(ddof=1))
    assert row["seeds"] == "1;2" and row["paired_seeds"] == "1;2"
    # in-band targets: frequency 0..5, the first three users
    assert row["inband_users"] == "3" and row["rest_users"] == "3"
    assert float(row["delta_ndcg10_inband"]) == pytest.approx(diff[:3].mean())
    assert float(row["delta_ndcg10_rest"]) == pytest.approx(diff[3:].mean())
    assert float(row["inband_baseline_ndcg10"]) == pytest.approx(nd["base"][:, :3].mean())
    with open(s / "buckets.csv", newline="") as f:
        bk = {r["bucket"]: r for r in csv.DictReader(f)}
    assert {k: v["users"] for k, v in bk.items()} == {"0": "1", "1-5": "2", "21-100": "2", ">100": "1"}
    assert float(bk["21-100"]["delta_ndcg10"]) == pytest.approx(diff[3:5].mean())
    names = {p.name for p in rep.files}
    assert {"buckets_sasrec_beauty.png", "buckets_sasrec_beauty.pdf", "frontier_sasrec_beauty.pdf"} <= names
    assert "[0, 5]" in rep.summary and "±" in rep.summary
    star = "*" if slo > 0 or shi < 0 else ""
    assert f"[{lo:+.4f}, {hi:+.4f}] {{{slo:+.4f}, {shi:+.4f}}}{star} |" in rep.summary


def test_one_paired_seed_says_so(tmp_path):
    """One seed: no seed-aware interval in summary.csv (empty cells, "1 seed") or in the table."""
    s = tmp_path / "s"
    with_users(fake_run(s, "base", lower=None, upper=None, in_band=0), [1, 3, 20], [1, 2, 3], [0, 3, 50])
    with_users(fake_run(s, "band", lower=0, upper=5, in_band=2, items=6), [2, 1, 20], [1, 2, 3], [0, 3, 50])
    rep = make_report([s])
    with open(s / "summary.csv", newline="") as f:
        row = [r for r in csv.DictReader(f) if r["band"] == "[0, 5]"][0]
    assert row["delta_ci_low"] and row["seed_significant"] == "1 seed"
    assert row["delta_seed_ci_low"] == row["delta_seed_ci_high"] == row["seed_p"] == ""
    assert row["inband_seed_ci_low"] == row["rest_seed_ci_high"] == ""
    assert rep.summary.count("{1 seed}") == 3  # overall, in-band targets, the rest


def test_per_user_file_that_disagrees_with_metrics_is_refused(tmp_path):
    s = tmp_path / "s"
    with_users(fake_run(s, "base", lower=None, upper=None, in_band=0), [1, 2], [1, 2], [0, 1])
    d = fake_run(s, "band", lower=0, upper=5, in_band=1)
    with_users(d, [1, 2], [1, 2], [0, 1])
    m = json.loads((d / "metrics.json").read_text())
    m["test"]["test/ndcg@10"] += 0.01
    (d / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(ReportError, match="test_users.npz gives ndcg@10"):
        make_report([s])


def migrate(path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "migrate_run_configs.py"), str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_runs_of_one_experiment_from_two_config_layouts_share_a_variant(tmp_path):
    """An older run config (model.max_epochs, model.net.lr, no drop_duplicates / item_table), migrated
    by scripts/migrate_run_configs.py, and today's (trainer.max_epochs, model.optimizer, defaults
    written out) are the same experiment: no variant split, and the band run finds its baseline. A
    real difference still splits."""
    s = tmp_path / "s"
    old = fake_run(s, "old_base", lower=None, upper=None, ndcg=0.2, net={"lr": 0.001, "optimizer": "adam"})
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    cfg["model"]["max_epochs"] = 200
    (old / "config.yaml").write_text(yaml.safe_dump(cfg))
    new = fake_run(s, "new_band", lower=0, upper=5, ndcg=0.3)
    cfg = yaml.safe_load((new / "config.yaml").read_text())
    cfg["model"]["optimizer"] = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.001}
    cfg["model"]["scheduler"] = None
    cfg["trainer"]["max_epochs"] = 200
    cfg["data"]["drop_duplicates"] = False
    cfg["item_table"] = {"name": "neighbours"}
    cfg["eval"] = {"repeat_target": "rank"}
    cfg["monitor"] = {"metric": "val/ndcg@10", "mode": "max"}
    cfg["callbacks"] = {"early_stopping": {"patience": 10}}
    (new / "config.yaml").write_text(yaml.safe_dump(cfg))
    migrate(s)
    rows = {r.run_dir.name: r for r in load_rows([s])}
    assert rows["old_base"].variant == rows["new_band"].variant == ""
    assert rows["new_band"].baseline["ndcg"] == pytest.approx(0.2)
    other = fake_run(s, "hashed_band", lower=0, upper=5, ndcg=0.25)
    cfg["item_table"] = {"name": "hashed", "buckets": 256}
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    migrate(s)
    rows = {r.run_dir.name: r for r in load_rows([s])}
    # another item-table strategy is a mode of the band, like outside_band: same variant and baseline
    assert rows["hashed_band"].neighbours == "hashed buckets=256" and rows["hashed_band"].variant == ""
    assert rows["hashed_band"].baseline["ndcg"] == pytest.approx(0.2)
    assert "[0, 5] (hashed buckets=256)" in make_report([s]).table


def test_a_run_without_config_yaml_makes_no_variant(tmp_path):
    """A run dir that lost its config.yaml (metrics.json alone) cannot say how it differs: it is paired
    by metrics.json's model, data and seed, and the others keep their variant ("" here)."""
    s = tmp_path / "s"
    fake_run(s, "base", lower=None, upper=None, ndcg=0.2, net={"lr": 0.001, "optimizer": "adam"})
    lost = fake_run(s, "band", lower=0, upper=5, ndcg=0.3)
    (lost / "config.yaml").unlink()
    rows = {r.run_dir.name: r for r in load_rows([s])}
    assert rows["band"].config == {} and rows["base"].variant == rows["band"].variant == ""
    assert rows["band"].baseline["ndcg"] == pytest.approx(0.2)


