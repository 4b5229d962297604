"""Reliability of training runs: a SIGKILLed run resumed from its last checkpoint ends exactly like an
uninterrupted one, and runs are deterministic per seed (CPU)."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from embfreq.training.resume import resume_config
from embfreq.training.train import run_job
from tests.conftest import CONF, ROOT, synthetic_seqs, write_seq

# Small but with dropout (SASRec default 0.2), two batches per epoch and a validation only every
# second epoch, so a resume crosses both a validated and an unvalidated epoch boundary.
RUN_ARGS = ["data=custom", "data.min_user_interactions=0", "data.min_item_interactions=0", "data.batch_size=32",
            "model.embedding_dim=16", "model.net.num_blocks=1", "data.eval_batch_size=64", "eval_every=2",
            "trainer=cpu", "analysis=false", "threads=1"]
MAX_EPOCHS = 8
KILL_AT_EPOCH = 2  # SIGKILL once last.ckpt holds this (0-based) epoch or a later one
TIMEOUT = 300  # per subprocess; generous, the machine may be shared


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    # in-process runs set torch's thread count from `threads`; later tests get theirs back
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume_data")
    path = write_seq(d / "tiny.txt", synthetic_seqs(num_users=60, num_items=40))
    return path, d / "cache"


def _env(cache: Path) -> dict:
    return {**os.environ, "EMBFREQ_CACHE": str(cache), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _cli(path: Path, run_dir: Path, extra=()) -> list[str]:
    return [sys.executable, "-m", "embfreq.train", *RUN_ARGS, f"data.path={path}", f"trainer.max_epochs={MAX_EPOCHS}",
            f"hydra.run.dir={run_dir}", *extra]


def _ckpt_epoch(path: Path) -> int:
    """Epoch stored in a checkpoint, or -1 while it is absent or unreadable."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:
        return -1


def _kill_at_epoch(proc: subprocess.Popen, last: Path, epoch: int) -> None:
    """SIGKILL `proc` as soon as its last.ckpt holds `epoch` or later (gives up after TIMEOUT)."""
    deadline = time.monotonic() + TIMEOUT
    seen, got = None, -1
    while proc.poll() is None and time.monotonic() < deadline:
        stamp = last.stat().st_mtime_ns if last.exists() else None
        if stamp != seen:  # read the checkpoint only when it changed
            seen, got = stamp, _ckpt_epoch(last)
        if got >= epoch:
            proc.send_signal(signal.SIGKILL)
            return
        time.sleep(0.02)


def _metrics(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "ok", m
    return m


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


@pytest.mark.slow
def test_sigkilled_run_resumes_to_identical_metrics(data, tmp_path, caplog):
    path, cache = data
    killed_dir, full_dir = tmp_path / "killed", tmp_path / "full"
    log = tmp_path / "killed.log"
    with open(log, "w") as out:  # a file, not a pipe: an unread pipe fills with progress bars and stalls the run
        victim = subprocess.Popen(_cli(path, killed_dir), cwd=ROOT, env=_env(cache), stdout=out,
                                  stderr=subprocess.STDOUT)
    last = killed_dir / "checkpoints" / "last.ckpt"
    watcher = threading.Thread(target=_kill_at_epoch, args=(victim, last, KILL_AT_EPOCH), daemon=True)
    watcher.start()  # kills on time whatever this thread is doing
    try:
        # The uninterrupted reference runs in this process meanwhile (same config, threads=1 in both, so
        # the floats are comparable bit for bit).
        run_job(_cfg(path, cache, [f"trainer.max_epochs={MAX_EPOCHS}"]), full_dir)
        watcher.join(TIMEOUT)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL, f"not killed (rc {victim.returncode}):\n{_tail(log)}"
    killed_at = _ckpt_epoch(last)
    assert KILL_AT_EPOCH <= killed_at < MAX_EPOCHS - 1, killed_at  # really mid-training
    # Killed mid-training: no results at all, not a half-written or premature metrics.json.
    assert not (killed_dir / "metrics.json").exists()
    assert not list(killed_dir.glob(".metrics.json.*"))
    assert OmegaConf.load(killed_dir / "config.yaml").trainer.max_epochs == MAX_EPOCHS

    # Resume in this process: the CLI's `resume=` path (resume_config, then run_job) minus the interpreter
    # start-up; test_bad_inputs.py runs `resume=` through the real CLI.
    with caplog.at_level(logging.INFO, logger="pytorch_lightning"):
        _resume_in_process(killed_dir)
    assert "Restored all states from the checkpoint" in caplog.text
    a, b = _metrics(full_dir), _metrics(killed_dir)
    assert b["test"] == a["test"]  # exact: same floats, not approximately
    assert b["val"] == a["val"]
    assert (b["best_epoch"], b["epochs_trained"]) == (a["best_epoch"], a["epochs_trained"])
    assert b["run_dir"] == str(killed_dir)


@pytest.mark.slow
def test_sigterm_records_an_interrupted_run_that_exits_nonzero_and_resumes(data, tmp_path):
    """SIGTERM (SLURM time-out, preemption) mid-training: exit code 143, metrics.json says
    "interrupted" with the resume command, and resume= then finishes the run as ok."""
    path, cache = data
    run_dir, log = tmp_path / "termed", tmp_path / "termed.log"
    with open(log, "w") as out:
        victim = subprocess.Popen(_cli(path, run_dir), cwd=ROOT, env=_env(cache), stdout=out, stderr=subprocess.STDOUT)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + TIMEOUT
    while victim.poll() is None and _ckpt_epoch(last) < KILL_AT_EPOCH and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGTERM)
    try:
        victim.wait(timeout=TIMEOUT)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == 143, f"rc {victim.returncode}:\n{_tail(log)}"
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "interrupted" and "SIGTERM" in m["error"] and f"resume={run_dir}" in m["resume"]
    assert "continue with: python -m embfreq.train resume=" in _tail(log)
    # the printed command, through the CLI: it finishes the run in its own dir and makes no other
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    p = subprocess.run([sys.executable, "-m", "embfreq.train", f"resume={run_dir}"], cwd=elsewhere,
                       env=_env(cache), capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _metrics(run_dir)["epochs_trained"] == MAX_EPOCHS
    assert list(elsewhere.iterdir()) == []


# -- in-process runs: same code path as the CLI (run_job), without the interpreter start-up -----------------

def _cfg(path, cache, overrides=()):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[*RUN_ARGS, f"data.path={path}", f"cache_dir={cache}", *overrides])


def _resume_in_process(run_dir: Path):
    return run_job(*resume_config(OmegaConf.create({"resume": str(run_dir)})))


def test_same_seed_same_metrics_other_seed_differs(data, tmp_path):
    path, cache = data
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        run_job(_cfg(path, cache, [f"seed={seed}", "trainer.max_epochs=2", "eval_every=1"]), tmp_path / name)
        runs[name] = _metrics(tmp_path / name)
    assert runs["a"]["test"] == runs["b"]["test"] and runs["a"]["val"] == runs["b"]["val"]
    assert runs["a"]["test"] != runs["c"]["test"]


def test_resume_after_early_stop_trains_no_further(data, tmp_path):
    """A run that early stopping ended, then died before writing metrics.json (e.g. during the test pass),
    resumes to the same result: Lightning restores EarlyStopping's counters but not trainer.should_stop."""
    path, cache = data
    cfg = _cfg(path, cache, ["trainer.max_epochs=40", "eval_every=1", "patience=1", "model.optimizer.lr=0.05"])
    run = tmp_path / "run"
    run_job(cfg, run)
    done = _metrics(run)
    assert done["epochs_trained"] < 40, "did not stop early; the test needs an early-stopped run"
    (run / "metrics.json").unlink()
    _resume_in_process(run)
    again = _metrics(run)
    assert again["epochs_trained"] == done["epochs_trained"]
    assert again["test"] == done["test"] and again["best_epoch"] == done["best_epoch"]


def test_resume_of_finished_run_repeats_its_result(data, tmp_path):
    """Resuming a run that had finished (last.ckpt at max_epochs) trains nothing and rewrites the same result."""
    path, cache = data
    run = tmp_path / "run"
    run_job(_cfg(path, cache, ["trainer.max_epochs=2", "eval_every=1"]), run)
    first = _metrics(run)
    ck_before = (run / "checkpoints" / "last.ckpt").read_bytes()
    _resume_in_process(run)
    second = _metrics(run)
    assert second["test"] == first["test"] and second["epochs_trained"] == first["epochs_trained"] == 2
    assert _ckpt_epoch(run / "checkpoints" / "last.ckpt") == 1
    assert len((run / "checkpoints" / "last.ckpt").read_bytes()) == len(ck_before)
    assert second["seconds"] == first["seconds"] and "seconds_resume" in second  # wall times kept


@pytest.mark.parametrize("change", ["config", "data", "damaged record"])
def test_resume_refuses_a_changed_config_or_data(data, tmp_path, change):
    """After config.yaml was edited or the data file changed, resume= refuses in one line instead of
    continuing another experiment from the checkpoint; so it does when the run's record of both is
    damaged (valid JSON, but not an object)."""
    from embfreq.errors import UserError

    path, cache = data
    local = tmp_path / "data.txt"
    local.write_text(path.read_text())
    run_dir = tmp_path / "run"
    run_job(_cfg(local, cache, ["trainer.max_epochs=2"]), run_dir)
    if change == "config":
        cfg_file = run_dir / "config.yaml"
        cfg_file.write_text(cfg_file.read_text().replace("lr: 0.001", "lr: 0.01"))
    elif change == "data":
        lines = local.read_text().splitlines()
        local.write_text("\n".join(lines[1:]) + "\n")  # one user fewer
    else:
        (run_dir / "run_state.json").write_text("[1, 2]")
    expected = {"config": "config.yaml changed", "data": "the data changed",
                "damaged record": r"run_state.json: unreadable \(expected a JSON object, got list\)"}[change]
    with pytest.raises(UserError, match=expected):
        _resume_in_process(run_dir)
