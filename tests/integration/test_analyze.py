"""Per-item analysis end to end: a tiny training run, `python -m embfreq.analyze`, and the notebook."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from conftest import ROOT, synthetic_seqs, write_seq
from embfreq.analysis.per_run.run_analysis import FIGURES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"
TITLE = "sasrec · custom · band [0, 5] (neighbours=all)"  # the tiny run's model, data and band
NOTEBOOK = ROOT / "notebooks" / "frequency_analysis.ipynb"
ANALYSIS_KEYS = {"num_items", "spearman_freq_norm", "spearman_freq_norm_trained", "never_trained_items",
                 "norm_threshold", "threshold_balanced_accuracy", "items_below_threshold",
                 "never_trained_below_threshold", "trained_below_threshold", "norm", "figure_title"}
NEVER_TRAINED = ["901", "902", "903", "904", "905"]


def tiny_seqs() -> dict:
    seqs = synthetic_seqs()
    # Items seen only as a test target (last) or validation target (second to last) have training
    # frequency 0, so the never-trained count and the norm threshold are exercised too.
    for u, item in zip((1, 2, 3, 4), NEVER_TRAINED[:4]):
        seqs[u] = seqs[u] + [item]
    seqs[5] = seqs[5][:-1] + [NEVER_TRAINED[4]] + seqs[5][-1:]
    return seqs


def env_with(cache: Path) -> dict:
    env = dict(os.environ, EMBFREQ_CACHE=str(cache), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def run_cli(args, env, timeout=180):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny SASRec run (2 epochs) shared by every test here; the tests only read it."""
    base = tmp_path_factory.mktemp("analyze")
    data = write_seq(base / "tiny.txt", tiny_seqs())
    env = env_with(base / "cache")
    run_dir = base / "run"
    p = run_cli(["-m", "embfreq.train", "data=custom", f"data.path={data}", "data.min_user_interactions=0",
                 "data.min_item_interactions=0", "trainer.max_epochs=2", "eval_every=1", "data.batch_size=32",
                 "model.embedding_dim=16", "trainer=cpu", "threads=1", f"hydra.run.dir={run_dir}"], env)
    assert p.returncode == 0, p.stderr[-3000:]
    return {"dir": run_dir, "data": data, "env": env, "base": base}


def read_items(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(v):
    return math.nan if v == "" else float(v)


def read_metrics(run_dir):
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def test_items_csv_has_every_item(run):
    rows = read_items(run["dir"] / "items.csv")
    metrics = read_metrics(run["dir"])
    raw_in_file = {tok for line in run["data"].read_text().splitlines() for tok in line.split()[1:]}
    assert len(rows) == metrics["items"] == len(raw_in_file)
    assert [int(r["item"]) for r in rows] == list(range(1, len(rows) + 1))
    assert {r["raw_id"] for r in rows} == raw_in_file
    freq = {r["raw_id"]: int(r["freq"]) for r in rows}
    assert [freq[i] for i in NEVER_TRAINED] == [0] * len(NEVER_TRAINED)
    # One test case per user, each counted for its target.
    assert sum(int(r["test_cases"]) for r in rows) == len(run["data"].read_text().splitlines())


def test_figures_are_real_pngs_and_pdfs(run):
    for name in FIGURES:
        data = (run["dir"] / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        assert len(data) > 1024, name
        assert (run["dir"] / name).with_suffix(".pdf").read_bytes()[:5] == PDF_MAGIC, name
    assert not [p.name for p in run["dir"].iterdir() if p.name.endswith(".tmp")]  # no temp file left
    # train.py passes no title: analyze_model names the data from the run's config.yaml
    assert read_metrics(run["dir"])["analysis"]["figure_title"] == TITLE


def test_metrics_analysis(run):
    a = read_metrics(run["dir"])["analysis"]
    assert ANALYSIS_KEYS <= set(a)
    assert a["num_items"] == read_metrics(run["dir"])["items"]
    assert a["never_trained_items"] == len(NEVER_TRAINED)
    assert a["norm"] == "effective_norm"
    assert a["norm_threshold"] is not None and a["items_below_threshold"] >= 0


def test_spearman_matches_scipy(run):
    a = read_metrics(run["dir"])["analysis"]
    rows = read_items(run["dir"] / "items.csv")
    freq = np.array([num(r["freq"]) for r in rows])
    norm = np.array([num(r[a["norm"]]) for r in rows])
    assert np.isfinite(norm).all()
    assert a["spearman_freq_norm"] == pytest.approx(scipy.stats.spearmanr(freq, norm).statistic, abs=1e-9)
    trained = freq >= 1
    assert a["spearman_freq_norm_trained"] == pytest.approx(
        scipy.stats.spearmanr(freq[trained], norm[trained]).statistic, abs=1e-9)


def test_per_item_metrics_match_naive_loop(run, monkeypatch):
    from embfreq.training.run_dir import restore

    monkeypatch.setenv("EMBFREQ_CACHE", run["env"]["EMBFREQ_CACHE"])
    _, dm, model = restore(run["dir"])
    split = dm.data.split
    ds = dm.eval_dataset("test")
    n = dm.num_items + 1
    hits, ndcg, count = np.zeros(n), np.zeros(n), np.zeros(n, dtype=int)
    with torch.no_grad():
        table = model.items.weight
        for u in range(dm.num_users):
            batch = ds[(0, 0, np.array([u]))]
            v = model.user_vectors(batch, table)[0]
            scores = (table @ v).tolist()
            target = int(split.test[u])
            seen = set(split.train_items[split.train_ptr[u]:split.train_ptr[u + 1]].tolist()) | {int(split.valid[u])}
            others = [i for i in range(1, n) if i != target and i not in seen]
            rank = 1 + sum(scores[i] >= scores[target] for i in others)
            count[target] += 1
            hits[target] += rank <= 10
            ndcg[target] += 1.0 / math.log2(rank + 1) if rank <= 10 else 0.0
    rows = read_items(run["dir"] / "items.csv")
    assert [int(r["test_cases"]) for r in rows] == count[1:].tolist()
    for r in rows:
        i, c = int(r["item"]), count[int(r["item"])]
        if c == 0:
            assert r["hr@10"] == r["recall@10"] == r["ndcg@10"] == ""
            continue
        assert num(r["hr@10"]) == pytest.approx(hits[i] / c, abs=1e-12)
        assert num(r["recall@10"]) == pytest.approx(hits[i] / c, abs=1e-12)
        assert num(r["ndcg@10"]) == pytest.approx(ndcg[i] / c, abs=1e-9)


def test_analyze_cli_reproduces_training_run(run, monkeypatch, capsys):
    from embfreq.cli.analyze import main

    copy = run["base"] / "reanalysed"
    shutil.copytree(run["dir"], copy)
    for name in ("items.csv", *FIGURES, *(Path(f).with_suffix(".pdf").name for f in FIGURES)):
        (copy / name).unlink()
    before = read_metrics(run["dir"])
    stripped = {k: v for k, v in before.items() if k != "analysis"}
    (copy / "metrics.json").write_text(json.dumps(stripped))
    # In-process: the same code as `python -m embfreq.analyze` (whose exit path the error tests run),
    # without paying for a second Lightning import.
    monkeypatch.setenv("EMBFREQ_CACHE", run["env"]["EMBFREQ_CACHE"])
    assert main([str(copy)]) == 0
    out = capsys.readouterr().out
    assert "spearman" in out and "never-trained items=5/" in out
    old, new = read_items(run["dir"] / "items.csv"), read_items(copy / "items.csv")
    assert [r.keys() for r in new] == [r.keys() for r in old]
    for a, b in zip(old, new):
        for key in a:
            if key == "raw_id":
                assert a[key] == b[key]
            else:
                assert num(b[key]) == pytest.approx(num(a[key]), rel=1e-6, abs=1e-9, nan_ok=True), key
    for name in FIGURES:
        assert (copy / name).read_bytes()[:8] == PNG_MAGIC
        assert (copy / name).with_suffix(".pdf").read_bytes()[:5] == PDF_MAGIC
    after = read_metrics(copy)
    assert {k: v for k, v in after.items() if k != "analysis"} == stripped  # the rest is kept
    assert after["analysis"].pop("checkpoint") == "best"
    assert after["analysis"]["figure_title"] == TITLE  # embfreq.analyze passes it from the run's config
    assert after["analysis"] == pytest.approx(before["analysis"])


def test_analyze_of_a_killed_run_is_not_reported_as_ok(run, monkeypatch, tmp_path):
    """A run killed before its result (no metrics.json): analyze writes its analysis with status
    "unfinished", and the report lists the run as unfinished, not ok."""
    from embfreq.analysis.sweep.sweep_runs import load_rows
    from embfreq.cli.analyze import main

    copy = tmp_path / "killed"
    shutil.copytree(run["dir"], copy)
    (copy / "metrics.json").unlink()
    monkeypatch.setenv("EMBFREQ_CACHE", run["env"]["EMBFREQ_CACHE"])
    assert main([str(copy)]) == 0
    m = read_metrics(copy)
    assert m["status"] == "unfinished" and "analysis" in m and "test" not in m
    (row,) = load_rows([copy])
    assert row.status == "unfinished" and not row.ok


def _one_error_line(p):
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("embfreq: error: "), p.stderr
    assert "Traceback" not in p.stderr


def test_analyze_not_a_run_dir(run, tmp_path):
    _one_error_line(run_cli(["-m", "embfreq.analyze", str(tmp_path)], run["env"]))
    _one_error_line(run_cli(["-m", "embfreq.analyze", str(tmp_path / "missing")], run["env"]))


def test_analyze_truncated_checkpoint(run, tmp_path):
    bad = tmp_path / "bad"
    (bad / "checkpoints").mkdir(parents=True)
    shutil.copy(run["dir"] / "config.yaml", bad / "config.yaml")
    ckpt = (run["dir"] / "checkpoints" / "best.ckpt").read_bytes()
    (bad / "checkpoints" / "best.ckpt").write_bytes(ckpt[: len(ckpt) // 2])
    p = run_cli(["-m", "embfreq.analyze", str(bad)], run["env"])
    _one_error_line(p)
    assert "checkpoint" in p.stderr
    assert not (bad / "items.csv").exists() and not (bad / "metrics.json").exists()
    # No last checkpoint at all is the same kind of error.
    _one_error_line(run_cli(["-m", "embfreq.analyze", str(bad), "which=last"], run["env"]))


def test_analyze_cli_forms_and_errors_leave_the_cwd_empty(tmp_path):
    """One error line for each bad argument, --which/--accelerator and which=/accelerator= alike,
    a path with a comma and a space kept whole; the cwd stays empty (no run dir, .hydra/ or outputs/)."""
    cwd, env = tmp_path / "cwd", env_with(tmp_path / "cache")
    cwd.mkdir()
    odd = tmp_path / "a,b c" / "it's"
    odd.mkdir(parents=True)

    def analyze(*args):
        p = subprocess.run([sys.executable, "-m", "embfreq.analyze", *args], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=180)
        _one_error_line(p)
        return p.stderr

    assert "no run dir" in analyze()
    assert "one run dir only, got 2: r1 r2" in analyze("r1", "r2")
    assert "which=foo: expected one of best, last" in analyze(str(odd), "which=foo")
    assert "which=foo: expected one of best, last" in analyze(str(odd), "--which", "foo")
    assert "accelerator=tpu: expected one of auto, cpu, gpu" in analyze(str(odd), "--accelerator=tpu")
    assert f"{odd}: not a run directory (no config.yaml)" in analyze(str(odd), "--which", "last")
    assert "unrecognized arguments: --multirun" in analyze("--multirun", str(odd))
    assert list(cwd.iterdir()) == []


def test_notebook_committed_clean():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    src = "\n".join(c.source for c in code)
    assert "RUN_DIR" in src and "EMBFREQ_RUN_DIR" in src
    assert "import embfreq" not in src and "from embfreq" not in src  # reads outputs only


def _python3_kernel():
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" in KernelSpecManager().find_kernel_specs():
        return
    p = subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], capture_output=True, text=True)
    if p.returncode != 0 or "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip(f"no python3 Jupyter kernel and ipykernel install failed: {p.stderr.strip()[-300:]}")


def test_notebook_runs_on_the_tiny_run(run, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    _python3_kernel()
    monkeypatch.setenv("EMBFREQ_RUN_DIR", str(run["dir"]))
    monkeypatch.setenv("EMBFREQ_COMPARE_DIR", str(run["dir"]))  # exercises the comparison cell
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"run: {run['dir']}" in text
    rho = read_metrics(run["dir"])["analysis"]["spearman_freq_norm"]
    assert f"recomputed from items.csv {rho:.4f}" in text
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) >= len(FIGURES) + 1  # the three figures and the comparison plot
