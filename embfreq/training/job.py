"""One Hydra job around one run: the run dir's lock and records, and the per-job failure policy.

`task_wrapper` (the shape of lightning-hydra-template's) wraps the run: a user error ends a single run
with one line; in a sweep the job records it in metrics.json and the sweep goes on; the machine's part
in a failure (full disk, no memory) is named in one line; SIGTERM/Ctrl-C record `interrupted`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from embfreq.errors import RunDirInUse, RunFailed, RunInterrupted, TrainingDiverged, UserError, first_line
from embfreq.io import write_json, write_text

log = logging.getLogger("embfreq.train")

RESERVE = ".failed_record.reserve"  # space for a failed record, taken while the disk had some
RESERVE_BYTES = 16384
FINISHED = ("ok", "partial")  # statuses whose results a new run never deletes
training_started = False  # set when trainer.fit begins: errors before it leave no run dir


def mark_training_started() -> None:
    global training_started
    training_started = True


def rank_zero() -> bool:
    # DDP children started by Lightning carry their rank in the environment
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:
        return False


@contextlib.contextmanager
def interruptible(trainer):
    """Lightning ends a fit on SIGTERM with SystemExit(None), i.e. exit code 0, and on Ctrl-C with
    SystemExit(1): both become RunInterrupted, which the run records before exiting non-zero."""
    try:
        yield
    except SystemExit:
        if trainer.received_sigterm:
            raise RunInterrupted("SIGTERM", int(trainer.current_epoch)) from None
        if trainer.interrupted:
            raise RunInterrupted("SIGINT", int(trainer.current_epoch)) from None
        raise


def refuse_finished(run_dir: Path) -> None:
    """A new run never goes into a dir with a finished result or a run's checkpoints."""
    from embfreq.training.run_dir import read_metrics

    try:
        status = read_metrics(run_dir).get("status") if run_dir.is_dir() else None
    except UserError as e:
        raise RunDirInUse(f"{e}; a new run does not overwrite it: choose another run dir") from None
    has_ckpt = any((run_dir / "checkpoints").glob("*.ckpt"))
    if status in FINISHED or has_ckpt:
        what = f"a finished run (metrics.json: status {status})" if status in FINISHED else "a run's checkpoints"
        raise RunDirInUse(f"{run_dir}: holds {what}; a new run never overwrites it: choose another run dir "
                          f"(hydra.run.dir=...) or continue that run with resume={run_dir}")


def claim_run_dir(run_dir: Path, resuming: bool):
    """Lock the run dir for this process (filelock; released when it ends, also by a kill) and make
    it ready: a new run never goes into a dir with a finished result or checkpoints, and the temp
    files of a killed write are removed. Returns the held lock."""
    from embfreq.training.run_dir import lock_run_dir

    lock = lock_run_dir(run_dir)
    try:
        if not resuming:
            refuse_finished(run_dir)
        try:
            (run_dir / RESERVE).write_bytes(b" " * RESERVE_BYTES)
        except OSError:  # a full disk already: the record may not be written either
            (run_dir / RESERVE).unlink(missing_ok=True)
    except BaseException:
        lock.release()
        raise
    return lock


def environment_cause(e: BaseException, run_dir: Path) -> str | None:
    """The machine's part in a failure, in one line: a full disk, an unwritable file, no memory."""
    import errno
    import shutil

    chain, x = [], e
    while x is not None and x not in chain and len(chain) < 10:
        chain.append(x)
        x = x.__cause__ or x.__context__
    for x in chain:
        if isinstance(x, OSError) and x.errno == errno.ENOSPC:
            return f"no space left on device writing {x.filename or run_dir}; free space or write the run elsewhere"
        if isinstance(x, OSError) and x.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return f"cannot write {x.filename or run_dir}: {x.strerror} (a read-only or foreign dir?)"
        text = str(x)
        if isinstance(x, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower():
            return (f"out of memory ({first_line(x)}): a setting asks for more than this machine has, e.g. an "
                    "item_table size far above the number of items in the band, or a large data.batch_size")
    try:
        free = shutil.disk_usage(run_dir).free
    except OSError:
        return None
    if free < 1 << 20:
        return f"the disk of {run_dir} is full ({free} bytes free) ({type(e).__name__}: {first_line(e)})"
    return None


def record_failure(run_dir: Path, record: dict) -> None:
    """metrics.json with status failed; on a full disk it goes into the space reserved at the start
    (JSON padded with spaces over the reserve file's own blocks, then renamed)."""
    import json

    try:
        write_json(run_dir / "metrics.json", record)
        return
    except OSError:
        pass
    reserve = run_dir / RESERVE
    text = json.dumps({k: v for k, v in record.items() if k != "traceback"}, default=str).encode()
    try:
        size = reserve.stat().st_size
        if len(text) > size:
            raise OSError("the failed record is larger than its reserve")
        with open(reserve, "r+b") as f:
            f.write(text.ljust(size))
        os.replace(reserve, run_dir / "metrics.json")
    except OSError:  # no reserve, a read-only dir: the one-line message is all there is
        log.error("could not write the failed record into %s", run_dir)


def task_wrapper(run: Callable[[DictConfig, Path], dict]) -> Callable[[DictConfig, Path], dict]:
    """`run(cfg, run_dir) -> result` as one Hydra job: the run dir locked and its config written, an
    empty band cell of a sweep skipped, and every failure handled by the policy above."""

    @functools.wraps(run)
    def job(cfg: DictConfig, run_dir: Path) -> dict:
        global training_started
        training_started = False
        from embfreq.training.builders import neighbours_mode

        run_dir = Path(run_dir)
        multirun = is_multirun()
        base = {"model": cfg.model.name, "data": cfg.data.name, "seed": cfg.seed, "lower_freq": cfg.lower_freq,
                "upper_freq": cfg.upper_freq, "neighbours": neighbours_mode(cfg), "run_dir": str(run_dir)}
        lock = None
        try:
            if rank_zero():  # DDP workers run inside the lock of their rank-0 process
                lock = claim_run_dir(run_dir, bool(cfg.get("resume")))
        except RunDirInUse as e:
            if not multirun:
                raise
            log.error("failed: %s", e)  # no record: the dir is another run's
            return {"status": "failed"}
        try:
            return _run_locked(run, cfg, run_dir, multirun, base)
        finally:
            if lock is not None:
                (run_dir / RESERVE).unlink(missing_ok=True)
                lock.release()

    return job


def _run_locked(run, cfg: DictConfig, run_dir: Path, multirun: bool, base: dict) -> dict:
    if not cfg.get("resume") and rank_zero():
        # a new run into a dir of a failed or skipped one: that record must not stand beside the new config
        for stale in ("metrics.json", "test_users.npz"):
            (run_dir / stale).unlink(missing_ok=True)
        try:
            write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        except OSError as e:
            raise RunFailed(environment_cause(e, run_dir) or f"{run_dir}: cannot write config.yaml ({e})") from None
    if multirun and cfg.lower_freq is not None and cfg.upper_freq is not None and cfg.lower_freq > cfg.upper_freq:
        reason = f"lower_freq={cfg.lower_freq} > upper_freq={cfg.upper_freq}: empty band"
        write_json(run_dir / "metrics.json", {"status": "skipped", "reason": reason, **base})
        log.info("skipped: %s", reason)
        return {"status": "skipped"}
    try:
        result = run(cfg, run_dir)
    except RunInterrupted as e:  # recorded, then a non-zero exit: a scheduler must not see success
        if rank_zero():
            write_json(run_dir / "metrics.json", {"status": "interrupted", "error": str(e), "epoch": e.epoch,
                                                  "resume": f"python -m embfreq.train resume={run_dir}", **base})
        print(f"embfreq: {e}; continue with: python -m embfreq.train resume={run_dir}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except UserError as e:
        # a refused input leaves no result in a single run; a run that trained and failed says so
        if (multirun or training_started or isinstance(e, (TrainingDiverged, RunFailed))) and rank_zero():
            record_failure(run_dir, {"status": "failed", "error": str(e), **base})
        if not multirun:
            raise
        log.error("failed: %s", e)
        return {"status": "failed"}
    except Exception as e:  # a sweep keeps going; the error is recorded with the job
        cause = environment_cause(e, run_dir)
        if cause is not None:  # the machine's fault, named in one line
            if rank_zero():
                record_failure(run_dir, {"status": "failed", "error": cause, **base})
            if not multirun:
                raise RunFailed(cause) from None
            log.error("failed: %s", cause)
            return {"status": "failed"}
        if not multirun:
            if training_started and rank_zero():
                record_failure(run_dir, {"status": "failed", "error": f"{type(e).__name__}: {first_line(e)}",
                                         "traceback": traceback.format_exc(), **base})
            raise
        record_failure(run_dir, {"status": "failed", "error": f"{type(e).__name__}: {e}",
                                 "traceback": traceback.format_exc(), **base})
        log.error("failed: %s: %s", type(e).__name__, e)
        return {"status": "failed"}
    if rank_zero():
        from embfreq.training.record import metrics_table

        t = result.get("test", {})
        print(metrics_table(result), flush=True)
        if result.get("status") == "partial":
            print(f"embfreq: {result['reason']}", flush=True)
        print(f"embfreq: test HR@10={t.get('test/hr@10', float('nan')):.4f} "
              f"NDCG@10={t.get('test/ndcg@10', float('nan')):.4f}  run dir: {run_dir}", flush=True)
    return result
