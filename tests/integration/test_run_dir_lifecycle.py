"""Run dirs (issue 32/33): a refused or failed-before-training run leaves no run dir; a new run never
deletes a finished result; a lock keeps two runs out of one dir; temp files of killed writes go at the
next start; the machine's failures (full disk, no memory, unwritable dir) are one line naming the cause
with a failed record where the run had started."""

import errno
import json
import os
import subprocess
import sys

import pytest
from filelock import FileLock
from hydra import compose, initialize_config_dir

from embfreq.cli import train as cli_mod
from embfreq.training import job as job_mod
from embfreq.training import train as train_mod
from embfreq.errors import RunDirInUse, RunFailed, UserError
from embfreq.training.train import run_job
from tests.conftest import CONF, ROOT, synthetic_seqs, write_seq


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("lifecycle")
    return write_seq(d / "tiny.txt", synthetic_seqs(num_users=60, num_items=40)), d / "cache"


def cfg(data, *overrides):
    path, cache = data
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[
            "data=custom", f"data.path={path}", "data.min_user_interactions=0", "data.min_item_interactions=0",
            f"cache_dir={cache}", "data.batch_size=32", "trainer=cpu", "threads=1", "~logger", "analysis=false",
            "trainer.max_epochs=1", *overrides])


def cli(tmp_path, *args):
    env = {**os.environ, "EMBFREQ_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "embfreq.train", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, msg", [  # each pays a Python and torch start-up: most run with -m slow
    # refused before Hydra: unknown keys with or without +, group options, ranges
    pytest.param(["lower_frq=3"], "lower_frq: no such key; did you mean lower_freq?", marks=pytest.mark.slow),
    pytest.param(["+lower_frq=3"], "lower_frq: no such key; did you mean lower_freq?", marks=pytest.mark.slow),
    (["model=sasrek"], "model=sasrek: no such model; the options are gru4rec, mf_bpr, sasrec; did you mean sasrec?"),
    pytest.param(["model.net.num_blokcs=2"], "model.net.num_blokcs: no such key in model.net; did you mean num_blocks?", marks=pytest.mark.slow),
    pytest.param(["+trainer.fast_dev_rn=true"], "trainer.fast_dev_rn: pl.Trainer takes no argument 'fast_dev_rn'; did you mean fast_dev_run?", marks=pytest.mark.slow),
    pytest.param(["model.net.num_blocks=-1"], "model.net.num_blocks must be an integer >= 1, got -1", marks=pytest.mark.slow),
    pytest.param(["deterministic=foo"], "deterministic must be one of ('true', 'false', 'warn'), got 'foo'", marks=pytest.mark.slow),
    pytest.param(["seed=4294967296"], "seed must be an integer <= 4294967295, got 4294967296", marks=pytest.mark.slow),
    # refused inside the run, after Hydra made the run dir: the dir goes again
    (["data.path=does/not/exist.txt"], "does/not/exist.txt"),
])
def test_cli_mistake_is_one_line_exit_2_and_leaves_no_run_dir(tmp_path, data, args, msg):
    out = cli(tmp_path, "data=custom", f"data.path={data[0]}", "trainer.max_epochs=1", *args)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("embfreq: error: "), out.stderr
    assert msg in lines[0], lines[0]
    assert not (tmp_path / "outputs").exists(), list((tmp_path / "outputs").rglob("*"))


@pytest.mark.slow
def test_data_columns_mapping_needs_no_plus(tmp_path, data):
    # the form of the data config's own comment; on a whitespace file the mapping is checked and refused
    out = cli(tmp_path, "data=custom", f"data.path={data[0]}", "trainer.max_epochs=1", "data.format=csv",
              "data.columns={user: u, item: i}")
    assert out.returncode == 2 and "no user column 'u'" in out.stderr, out.stderr
    assert "Could not override" not in out.stderr and not (tmp_path / "outputs").exists()


def test_new_run_never_deletes_a_finished_result(data, tmp_path):
    run = tmp_path / "run"
    run_job(cfg(data), run)
    before = {p: (run / p).read_bytes() for p in ("metrics.json", "test_users.npz", "config.yaml")}
    with pytest.raises(RunDirInUse, match=r"holds a finished run \(metrics.json: status ok\); a new run never "
                                          r"overwrites it: .* or continue that run with resume="):
        run_job(cfg(data, "seed=2", "data.path=missing.txt"), run)
    assert {p: (run / p).read_bytes() for p in before} == before
    # on the command line, before Hydra rewrites the run's .hydra/ record
    with pytest.raises(RunDirInUse, match=r"holds a finished run \(metrics.json: status ok\)"):
        cli_mod._check_writable_output(["seed=2", f"hydra.run.dir={run}"])
    cli_mod._check_writable_output([f"resume={run}", f"hydra.run.dir={run}"])  # resume= continues it
    assert {p: (run / p).read_bytes() for p in before} == before
    # an interrupted run (checkpoints, no result) is not overwritten either
    (run / "metrics.json").unlink()
    with pytest.raises(RunDirInUse, match="holds a run's checkpoints"):
        run_job(cfg(data, "seed=2"), run)


def test_a_locked_run_dir_is_refused_and_nothing_written(data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    held = FileLock(str(run / ".embfreq.lock"))
    held.acquire()
    try:
        with pytest.raises(RunDirInUse, match="in use by another embfreq process"):
            run_job(cfg(data), run)
    finally:
        held.release()
    assert sorted(p.name for p in run.iterdir()) == [".embfreq.lock"]
    m = run_job(cfg(data), run)  # free again
    assert m["status"] == "ok"


def test_stale_temp_files_are_removed_at_the_next_start(data, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stale = [run / "checkpoints" / ".best.ckpt.k3j2.tmp", run / ".items.csv.x9.tmp", run / ".metrics.json.a1.tmp"]
    for p in stale:
        p.write_bytes(b"")
    json.dump({"status": "failed", "error": "x"}, open(run / "metrics.json", "w"))
    assert run_job(cfg(data), run)["status"] == "ok"
    assert not [p for p in stale if p.exists()] and not list(run.rglob("*.tmp"))


@pytest.mark.parametrize("exc, cause", [
    (OSError(errno.ENOSPC, "No space left on device", "run/checkpoints/best.ckpt"),
     "no space left on device writing run/checkpoints/best.ckpt"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: you tried to "
                  "allocate 274877906944 bytes"), "out of memory ([enforce fail at alloc_cpu.cpp:121]"),
    (PermissionError(errno.EACCES, "Permission denied", "run/items.csv"), "cannot write run/items.csv: Permission denied"),
])
@pytest.mark.parametrize("started", [True, False])
def test_machine_failures_are_one_line_with_a_failed_record_once_started(data, tmp_path, monkeypatch, exc, cause,
                                                                         started):
    def failing(c, run_dir):
        job_mod.training_started = started
        raise exc

    monkeypatch.setattr(train_mod, "train", failing)
    run = tmp_path / "run"
    with pytest.raises(RunFailed) as e:
        run_job(cfg(data), run)
    assert str(e.value).startswith(cause) and "\n" not in str(e.value) and e.value.exit_code == 1
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "failed" and m["error"].startswith(cause)


def test_unwritable_output_dir_is_refused_before_hydra(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    with pytest.raises(UserError, match=f"cannot create the run dir {tmp_path}/outputs: {tmp_path} is not a writable"):
        cli_mod._check_writable_output(["data=lastfm"])
    with pytest.raises(UserError, match="cannot create the run dir /x/y"):
        cli_mod._check_writable_output(["-m", "hydra.sweep.dir=/x/y"])


def test_full_disk_record_goes_into_the_reserved_space(data, tmp_path, monkeypatch):
    # the disk filled up during the run: writing metrics.json fails, the reserve taken at the start holds it
    def failing(c, run_dir):
        job_mod.training_started = True
        assert (run_dir / job_mod.RESERVE).stat().st_size == job_mod.RESERVE_BYTES
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "tb" / "events"))

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(train_mod, "train", failing)
    monkeypatch.setattr(job_mod, "write_json", full)
    run = tmp_path / "run"
    with pytest.raises(RunFailed, match="no space left on device writing .*tb/events"):
        run_job(cfg(data), run)
    m = json.loads((run / "metrics.json").read_text())  # padded with spaces: still one JSON object
    assert m["status"] == "failed" and m["error"].startswith("no space left on device") and m["model"] == "sasrec"
    assert not (run / job_mod.RESERVE).exists()


def test_a_finished_run_leaves_no_reserve(data, tmp_path):
    run = tmp_path / "run"
    assert run_job(cfg(data), run)["status"] == "ok"
    assert not (run / ".failed_record.reserve").exists() and (run / "metrics.json").is_file()


def test_analyze_holds_the_lock_and_removes_a_killed_analyze_temp_files(data, tmp_path):
    from embfreq.cli.analyze import analyze

    run = tmp_path / "run"
    run_job(cfg(data), run)
    stale = run / ".frequency_panels.png.q1w2.tmp"
    stale.write_bytes(b"\x89PNG")
    held = FileLock(str(run / ".embfreq.lock"))
    held.acquire()
    try:
        with pytest.raises(RunDirInUse, match="in use by another embfreq process"):
            analyze(run)
    finally:
        held.release()
    assert stale.exists()  # untouched while another process held the dir
    assert analyze(run)["checkpoint"] == "best" and not stale.exists()
    free = FileLock(str(run / ".embfreq.lock"))
    free.acquire(timeout=0)  # analyze released the dir when it returned
    free.release()
