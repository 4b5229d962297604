"""Sweeps: a basic-launcher grid with a skipped and a failing cell and its report; the study and launcher
configs; (slow) joblib running jobs in parallel, submitit_local, and launching the whole study."""

import csv
import itertools
import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from embfreq.analysis.sweep.sweep_report import make_report
from embfreq.training.builders import torch_threads
from tests.conftest import CONF, ROOT, synthetic_seqs, write_seq

STUDY_BANDS = {"baseline": (None, None), "b0_0": (0, 0), "b0_5": (0, 5), "b5_20": (5, 20),
               "b20_100": (20, 100), "b100_inf": (100, None)}


def tiny_args(path, epochs=1):
    return ["data=custom", f"data.path={path}", "data.min_user_interactions=0", "data.min_item_interactions=0",
            f"trainer.max_epochs={epochs}", "eval_every=1", "data.batch_size=32", "data.eval_batch_size=64",
            "analysis=false", "trainer=cpu"]


def sweep(tmp_path, *overrides, timeout=600, rc=0, name="sweep"):
    """Run `python -m embfreq.train -m ...` into tmp_path/<name> with its own data cache."""
    env = {**os.environ, "EMBFREQ_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "embfreq.train", "-m", *overrides,
                          f"hydra.sweep.dir={tmp_path / name}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == rc, out.stdout[-3000:] + out.stderr[-3000:]
    return tmp_path / name, out


def summary_rows(stdout):
    """The end-of-sweep table: {job number: (status, run dir name)}."""
    lines = stdout[stdout.index("job  cell"):].splitlines()[1:]
    rows = {}
    for line in lines:
        if not line[:1].isdigit() or " jobs: " in line:
            break
        parts = line.split()
        rows[int(parts[0])] = (next(p for p in parts if p in ("ok", "failed", "skipped", "crashed", "partial")), parts[-1])
    return rows


def runs(sweep_dir):
    return {d.name: json.loads((d / "metrics.json").read_text())
            for d in sorted(sweep_dir.iterdir()) if (d / "metrics.json").is_file()}


@pytest.fixture
def data_file(tmp_path):
    return write_seq(tmp_path / "tiny.txt", synthetic_seqs(num_users=60, num_items=40))


@pytest.mark.slow  # a subprocess run: CI runs it with -m slow
def test_basic_sweep_records_skipped_and_failed_jobs_and_reports_them(tmp_path, data_file):
    # 8 jobs: (10, 5) is skipped for both head counts; num_heads=3 does not divide embedding_dim 64, so
    # those jobs fail; the sweep goes on and trains the baseline and two bands with one head.
    # exit 1: jobs failed; the end-of-sweep table lists every job with its status and run dir
    sweep_dir, out = sweep(tmp_path, *tiny_args(data_file), "lower_freq=null,10", "upper_freq=null,5",
                           "model.net.num_heads=1,3", rc=1)
    ms = runs(sweep_dir)
    assert len(ms) == 8 and all((sweep_dir / name / "config.yaml").is_file() for name in ms)
    table = summary_rows(out.stdout)
    assert {d: s for s, d in table.values()} == {name: m["status"] for name, m in ms.items()}
    assert "8 jobs: 3 ok, 3 failed, 2 skipped" in out.stdout and "not divisible by num_heads 3" in out.stdout
    assert (sweep_dir / "summary.txt").read_text().startswith("job  cell")
    status = {(m["lower_freq"], m["upper_freq"], _heads(sweep_dir / name)): m["status"] for name, m in ms.items()}
    assert status == {(None, None, 1): "ok", (None, 5, 1): "ok", (10, None, 1): "ok", (10, 5, 1): "skipped",
                      (None, None, 3): "failed", (None, 5, 3): "failed", (10, None, 3): "failed",
                      (10, 5, 3): "skipped"}
    for m in ms.values():
        if m["status"] == "skipped":
            assert m["reason"] == "lower_freq=10 > upper_freq=5: empty band"
        if m["status"] == "failed":
            assert "divisible" in m["error"] and m["model"] == "sasrec"

    # every job used the processed-data cache: one entry, built by the first job that trained
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    trained = [m for _, m in sorted(ms.items(), key=lambda kv: int(kv[0].split("_")[0])) if "data_cached" in m]
    assert trained[0]["data_cached"] is False and all(m["data_cached"] for m in trained[1:]) and len(trained) >= 3
    # all runs log under the sweep dir, so `tensorboard --logdir <sweep dir>` compares them
    ok = [name for name, m in ms.items() if m["status"] == "ok"]
    assert len(ok) == 3 and tensorboard_hparams_runs(sweep_dir) == set(ok)

    rep = make_report([sweep_dir])
    with open(sweep_dir / "runs.csv", newline="") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(ms)
    base = ms[next(n for n in ok if ms[n]["lower_freq"] is None and ms[n]["upper_freq"] is None)]
    for name, m in ms.items():
        r = rows[name]
        assert r["status"] == m["status"] and r["model"] == "sasrec" and r["data"] == "custom"
        if m["status"] != "ok":
            assert r["reason"] == m.get("reason", m.get("error")) and r["test_ndcg@10"] == ""
            continue
        assert float(r["test_ndcg@10"]) == m["test"]["test/ndcg@10"]
        assert float(r["test_hr@10"]) == m["test"]["test/hr@10"]
        assert int(r["items_in_band"]) == m["items_in_band"] and float(r["share_in_band"]) == m["share_in_band"]
        assert int(r["embedding_params"]) == m["embedding_params"]
        if m["lower_freq"] is None and m["upper_freq"] is None:
            assert r["band"] == "baseline" and r["delta_ndcg@10"] == ""
        else:
            assert float(r["delta_ndcg@10"]) == pytest.approx(m["test"]["test/ndcg@10"] - base["test"]["test/ndcg@10"])
    names = {p.name for p in rep.files}
    assert {"runs.csv", "summary.csv", "buckets.csv", "summary.md",
            "heatmap_ndcg10_sasrec_custom_model.net.num_heads=1.png"} <= names
    # the band runs of the ok variant have a same-seed baseline with per-user files: paired figures
    assert {"frontier_sasrec_custom_model.net.num_heads=1.png", "frontier_sasrec_custom_model.net.num_heads=1.pdf",
            "buckets_sasrec_custom_model.net.num_heads=1.png"} <= names, sorted(names)


@pytest.mark.slow  # a subprocess run: CI runs it with -m slow
def test_band_grid_gets_its_baseline_exits_0_and_reports_deltas(tmp_path, data_file):
    # the card's grid at a short budget (eval_every left at 5 > max_epochs): 6 cells, (10, 5) skipped,
    # plus the no-band job the sweeper adds; every band cell gets a delta against it
    args = [*tiny_args(data_file, epochs=2), "eval_every=5", "lower_freq=0,5,10", "upper_freq=5,20"]
    sweep_dir, out = sweep(tmp_path, *args)
    ms = runs(sweep_dir)
    status = {(m["lower_freq"], m["upper_freq"]): m["status"] for m in ms.values()}
    assert status == {(0, 5): "ok", (0, 20): "ok", (5, 5): "ok", (5, 20): "ok", (10, 5): "skipped", (10, 20): "ok",
                      (None, None): "ok"}, status
    assert all(m["best_epoch"] == 1 and "test/ndcg@10" in m["test"] for m in ms.values() if m["status"] == "ok")
    plan = json.loads((sweep_dir / "jobs.json").read_text())["jobs"]
    assert [j["added_baseline"] for j in plan] == [False] * 6 + [True]
    assert plan[6]["overrides"][-2:] == ["lower_freq=null", "upper_freq=null"]
    assert "1 no-band baseline job(s) added" in out.stdout and "7 jobs: 6 ok, 1 skipped" in out.stdout
    make_report([sweep_dir])
    with open(sweep_dir / "summary.csv", newline="") as f:
        summary = [r for r in csv.DictReader(f) if r["band"] != "baseline" and r["seeds"]]
    assert len(summary) == 5 and all(r["delta_ndcg10"] and r["delta_ci_low"] and r["delta_ci_high"] for r in summary)


@pytest.mark.slow
def test_grid_without_baseline_is_named_in_the_report_and_unstarted_jobs_count_as_missing(tmp_path, data_file):
    # baseline=false: the grid as typed; the report names the band runs without a baseline and how to add it
    args = [*tiny_args(data_file, epochs=2), "eval_every=5", "lower_freq=0,5,10", "upper_freq=5,20"]
    sweep_dir, out = sweep(tmp_path, *args, "baseline=false", name="nobase")
    assert len(runs(sweep_dir)) == 6 and "added" not in out.stdout
    rep = make_report([sweep_dir])
    assert "Note: no baseline for sasrec · custom · seed 1 (5 band run(s)" in rep.summary
    assert "lower_freq=null upper_freq=null" in rep.summary and "data=custom" in rep.summary.split("add it with:")[1]
    # a job the sweep planned but never started (SIGTERM) counts as missing, by jobs.json
    import shutil

    gone = next(d for d in sweep_dir.iterdir() if d.name.startswith("5_"))
    shutil.rmtree(gone)
    rep = make_report([sweep_dir], tmp_path / "rep")
    missing = [r for r in rep.rows if r.status == "missing"]
    assert len(missing) == 1 and missing[0].reason.startswith("never started") and "lower_freq=10" in missing[0].reason
    assert "1 planned job(s) never started" in rep.summary


@pytest.mark.parametrize("args, msg", [
    pytest.param(["deterministic=foo"], "deterministic must be one of ('true', 'false', 'warn'), got 'foo' (in every job of the sweep", marks=pytest.mark.slow),
    (["model=sasrec,sasrek"], "model=sasrek: no such model; the options are gru4rec, mf_bpr, sasrec; did you mean sasrec?"),
    pytest.param(["+lower_frq=3"], "lower_frq: no such key; did you mean lower_freq?", marks=pytest.mark.slow),
])
def test_sweep_mistake_is_refused_once_before_any_job(tmp_path, data_file, args, msg):
    sweep_dir, out = sweep(tmp_path, *tiny_args(data_file), "lower_freq=0,5", *args, rc=2)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"embfreq: error: {msg}"), out.stderr
    assert not sweep_dir.exists() and "job  cell" not in out.stdout


def tensorboard_hparams_runs(logdir):
    """Runs that `tensorboard --logdir <logdir>` lists in its HPARAMS tab."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    out = set()
    for run in mux.Runs():
        try:
            if "_hparams_/session_start_info" in mux.GetAccumulator(run).PluginTagToContent("hparams"):
                out.add(run.split("/")[0])
        except KeyError:  # a run without hparams
            pass
    return out


def _heads(run_dir):
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["net"]["num_heads"]


def compose_with_hydra(overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_beauty_sweep_config_lists_the_36_jobs():
    cfg = compose_with_hydra(["+sweep=bands_beauty"])
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.data.name == "beauty"
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    assert params == {"seed": ["1", "2", "3"], "model": ["sasrec", "mf_bpr"], "band": list(STUDY_BANDS)}
    jobs = set()
    with initialize_config_dir(str(CONF), version_base="1.3"):  # seeds need no check: composing is slow
        for model, band in itertools.product(params["model"], params["band"]):
            job = compose("train", overrides=["+sweep=bands_beauty", f"model={model}", f"band={band}", "seed=2"])
            jobs.add((job.model.name, job.data.name, job.lower_freq, job.upper_freq, job.seed))
    assert jobs == {(m, "beauty", *STUDY_BANDS[b], 2) for m, b in itertools.product(params["model"], params["band"])}
    # the outside-band sweep is reported with bands_beauty_1000's baselines: its sweeper adds none
    assert compose_with_hydra(["+sweep=bands_beauty_1000_outside"]).hydra.sweeper.baseline is False
    assert cfg.hydra.sweeper.baseline is True  # the default sweeper: embfreq's, baselines on
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.embfreq_sweeper.embfreq_sweeper.EmbfreqSweeper"
    # the bands also work on their own, without `+` (band is a default group, null unless chosen)
    hot = compose_with_hydra(["band=b100_inf"])
    assert (hot.lower_freq, hot.upper_freq) == (100, None)


def test_joblib_jobs_divide_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})  # a 3-core CPU set on a bigger node
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    try:
        cfg = compose_with_hydra(["hydra/launcher=joblib", "hydra.launcher.n_jobs=1"])
        HydraConfig.instance().set_config(cfg)
        assert torch_threads(cfg) == 3
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.slow
def test_cli_spins_briefly_unless_the_user_chose():
    code = ("import os, sys; import embfreq.train; "
            "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))")
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["10000", "None"]
    for mine, expected in (({"OMP_WAIT_POLICY": "ACTIVE"}, ["None", "ACTIVE"]), ({"GOMP_SPINCOUNT": "5"}, ["5", "None"])):
        out = subprocess.run([sys.executable, "-c", code], env={**clean, **mine}, capture_output=True, text=True,
                             check=True)
        assert out.stdout.split() == expected
    # it runs before torch is imported, or libgomp would never read it
    # (embfreq/train.py imports only embfreq.cli.train, which loads torch through embfreq.training.train)
    src = (ROOT / "embfreq" / "cli" / "train.py").read_text()
    assert src.index("configure_openmp()") < src.index("import hydra") < src.index("from embfreq.training.train import")


def test_joblib_jobs_divide_the_cores_among_them():
    cpus = len(os.sched_getaffinity(0))
    try:
        for n_jobs, expected in [(2, max(1, cpus // 2)), (-1, 1), (1, cpus)]:
            cfg = compose_with_hydra(["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"])
            HydraConfig.instance().set_config(cfg)
            assert torch_threads(cfg) == expected
        cfg = compose_with_hydra(["hydra/launcher=joblib", "threads=3"])
        HydraConfig.instance().set_config(cfg)
        assert torch_threads(cfg) == 3  # an explicit count wins
        HydraConfig.instance().set_config(compose_with_hydra([]))
        assert torch_threads(cfg.copy()) == 3 and torch_threads(compose_with_hydra([])) is None  # basic launcher
    finally:
        HydraConfig.instance().cfg = None


def test_slurm_launcher_builds_on_submitit_slurm():
    cfg = compose_with_hydra(["hydra/launcher=slurm", "trainer=gpu", "hydra.launcher.partition=gpu",
                              "hydra.launcher.timeout_min=30"])
    lc = cfg.hydra.launcher
    assert lc._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (lc.partition, lc.gpus_per_node, lc.timeout_min, lc.tasks_per_node) == ("gpu", 1, 30, 1)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.devices == 1
    assert compose_with_hydra(["hydra/launcher=slurm"]).hydra.launcher.partition is None  # the cluster default


@pytest.mark.parametrize("overrides, name", [
    ([], "0_sasrec_beauty_b0-5_all_s2"),
    (["item_table.neighbours=outside_band"], "0_sasrec_beauty_b0-5_outside_band_s2"),
    (["item_table=shared"], "0_sasrec_beauty_b0-5_shared_s2"),
    (["item_table=hashed", "item_table.buckets=1195"], "0_sasrec_beauty_b0-5_hashed-buckets1195_s2"),
    (["item_table=mixed_dim", "item_table.band_dim=16"], "0_sasrec_beauty_b0-5_mixed_dim-band_dim16_s2"),
    (["item_table=qr"], "0_sasrec_beauty_b0-5_qr-buckets64_s2"),
    (["band=baseline"], "0_sasrec_beauty_baseline_all_s2"),
    (["band=b100_inf"], "0_sasrec_beauty_b100-inf_all_s2"),
])
def test_sweep_run_dirs_name_what_band_items_use(overrides, name):
    # a mixed_dim run was once named "..._all_s2", as if it used the neighbour average
    from omegaconf import open_dict

    import embfreq.conf  # noqa: F401  (the resolver, as `python -m embfreq.train` registers it)

    cfg = compose_with_hydra(["+sweep=bands_beauty", "band=b0_5", "seed=2", *overrides])
    with open_dict(cfg):
        cfg.hydra.job.num = 0  # set by the launcher
    assert cfg.hydra.sweep.subdir == name


@pytest.mark.slow
def test_joblib_sweep_runs_jobs_in_parallel(tmp_path, data_file):
    sweep_dir, out = sweep(tmp_path, *tiny_args(data_file, epochs=3), "lower_freq=0,5", "upper_freq=10",
                           "item_table=neighbours,shared", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                           "baseline=false")
    ms = runs(sweep_dir)
    assert len(ms) == 4 and all(m["status"] == "ok" for m in ms.values())
    # the workers resolve the run dir names too
    assert {n.split("_", 1)[1] for n in ms} == {f"sasrec_custom_b{lo}-10_{t}_s1" for lo in (0, 5) for t in ("all", "shared")}
    spans = [(m["started_at"], m["finished_at"]) for m in ms.values()]
    overlaps = [(a, b) for a, b in itertools.combinations(spans, 2) if a[0] < b[1] and b[0] < a[1]]
    assert overlaps, spans
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    assert sum(not m["data_cached"] for m in ms.values()) == 1  # parallel jobs wait for one to build the cache


@pytest.mark.slow
def test_submitit_local_sweep_completes(tmp_path, data_file):
    sweep_dir, out = sweep(tmp_path, *tiny_args(data_file), "lower_freq=0,10", "upper_freq=5",
                           "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")
    ms = runs(sweep_dir)  # the band cell, the skipped cell and the baseline the sweeper adds
    assert sorted((m["status"], m["lower_freq"]) for m in ms.values() if m["lower_freq"] is not None) == [
        ("ok", 0), ("skipped", 10)]
    assert [m["status"] for m in ms.values() if m["lower_freq"] is None and m["upper_freq"] is None] == ["ok"]
    assert "3 jobs: 2 ok, 1 skipped" in out.stdout
    assert (sweep_dir / ".submitit").is_dir()
    assert make_report([sweep_dir]).rows


@pytest.mark.slow
def test_beauty_sweep_launches_every_job(tmp_path):
    # a data file that does not exist fails each job as it reads its data: only the launch is tested
    # (a value invalid in every job, such as trainer.max_epochs=0, is refused before any job starts)
    sweep_dir, out = sweep(tmp_path, "+sweep=bands_beauty", f"data.path={tmp_path / 'none.txt'}", "seed=1", rc=1)
    ms = runs(sweep_dir)
    assert len(ms) == 12 and all(m["status"] == "failed" for m in ms.values())
    assert "12 jobs: 12 failed" in out.stdout and "no-band baseline" not in out.stdout  # the grid has its baselines
    assert {(m["model"], m["lower_freq"], m["upper_freq"]) for m in ms.values()} == {
        (mod, *b) for mod in ("mf_bpr", "sasrec") for b in STUDY_BANDS.values()}


@pytest.mark.slow
def test_sigtermed_sweep_records_the_interrupted_job_and_the_jobs_that_never_started(tmp_path, data_file):
    import signal
    import time

    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "EMBFREQ_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = [*tiny_args(data_file, epochs=500), "lower_freq=0,5,10", "upper_freq=20", "baseline=false",
            "callbacks.early_stopping=null", "threads=1"]
    with open(tmp_path / "log", "w") as log:
        p = subprocess.Popen([sys.executable, "-m", "embfreq.train", "-m", *args, f"hydra.sweep.dir={sweep_dir}"],
                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while p.poll() is None and not list(sweep_dir.glob("0_*/checkpoints/last.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
    out = (tmp_path / "log").read_text()
    assert p.returncode == 143, out[-3000:]
    lines = out[out.index("job  cell"):].splitlines()
    assert "interrupted" in lines[1].split() and all(line.split()[2:4] == ["not", "started"] for line in lines[2:4]), lines
    assert "3 jobs: 1 interrupted, 2 not started" in out
    assert json.loads(next(sweep_dir.glob("0_*/metrics.json")).read_text())["status"] == "interrupted"
    assert len(json.loads((sweep_dir / "jobs.json").read_text())["jobs"]) == 3
    rep = make_report([sweep_dir])
    assert sorted(r.status for r in rep.rows) == ["interrupted", "missing", "missing"]
    assert all(r.reason.startswith("never started") for r in rep.rows if r.status == "missing")
