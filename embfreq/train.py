"""`python -m embfreq.train`: train one model on one dataset, test the best checkpoint, write results."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from pathlib import Path

from embfreq.threads import configure_openmp

configure_openmp()  # before torch loads libgomp: a short spin-wait, so a busy machine is not slowed

import hydra  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf

import embfreq.conf  # noqa: E402,F401  (registers the resolver of the run dir names)
from embfreq import compile_step
from embfreq.band import Band
from embfreq.builders import neighbours_mode, build_callbacks, build_datamodule, build_loggers, build_model, run_threads
from embfreq.config_checks import check_config
from embfreq.device import machine_record
from embfreq.errors import (DataError, RunDirInUse, RunFailed, RunInterrupted, TrainingDiverged, UserError,
                            first_line)
from embfreq.io import flatten, write_json, write_text
from embfreq.run_dir import LOCK

log = logging.getLogger("embfreq.train")


RUN_STATE = "run_state.json"
RESERVE = ".failed_record.reserve"  # space for a failed record, taken while the disk had some
RESERVE_BYTES = 16384
FINISHED = ("ok", "partial")  # statuses whose results a new run never deletes
_training_started = False  # set when trainer.fit begins: errors before it leave no run dir


def check_or_record_run_state(run_dir: Path, cfg: DictConfig, data_fingerprint: str) -> None:
    """A fresh run records what it trains on (its resolved config and its data); a resume must find
    both unchanged, else the checkpoint's optimiser and batches would belong to another experiment."""
    import hashlib

    resuming = bool(cfg.get("resume"))
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("resume", None)  # the one key a resume sets
    config_sha = hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(plain)).encode()).hexdigest()
    state = {"config_sha256": config_sha, "data_fingerprint": data_fingerprint}
    path = run_dir / RUN_STATE
    if not resuming or not path.is_file():  # runs from before this record resume unchecked
        write_json(path, state)
        return
    import json

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable ({type(e).__name__}); cannot check the resume") from None
    changed = [name for key, name in (("config_sha256", "config.yaml"), ("data_fingerprint", "the data"))
               if old.get(key) != state[key]]
    if changed:
        raise UserError(f"{run_dir}: cannot resume: {' and '.join(changed)} changed since the run started "
                        "(start a new run for a new experiment)")


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


def param_counts(model) -> dict:
    items = model.items
    return {
        "embedding_params": int(sum(p.numel() for p in items.parameters())),  # allocated, whatever the strategy
        "embedding_params_saved": int(items.parameters_saved),
        "total_params": int(sum(p.numel() for p in model.parameters())),
    }


def band_info(model, dm) -> dict:
    items = model.items
    n = dm.num_items
    return {
        "items": n,
        "items_in_band": int(items.num_in_band),
        "share_in_band": float(items.num_in_band) / max(n, 1),
    }


def _scalars(metrics: dict, prefix: str) -> dict:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def train(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Fit, test the best checkpoint, and write metrics.json (and the per-item analysis) into run_dir."""
    import pytorch_lightning as pl

    run_dir = Path(run_dir)
    recorded = cfg  # what check_or_record_run_state compares: the config as the run wrote it
    check_config(cfg)
    threads = run_threads(cfg)  # per phase: training and evaluation each at their own count
    torch.set_num_threads(threads["train"])
    t0 = time.time()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg)
    dm.setup("fit")
    ptr = dm.data.split.train_ptr
    if cfg.data.sampling == "seq" and not (ptr[1:] - ptr[:-1] >= 2).any():
        # no next-item pair to learn from: Lightning would skip fit and the untrained model be reported "ok"
        raise DataError(f"{dm.data.source}: no training sequences: every user has 3 interactions (one left after "
                        f"the validation and test items); {cfg.model.name} needs users with at least 4")
    t_data = time.time() - t0
    log.info("data: %s in %.2fs", "loaded from cache" if dm.data.cached else "parsed", t_data)
    if _rank_zero():
        check_or_record_run_state(run_dir, recorded, dm.data.fingerprint())
    model = build_model(cfg, dm)
    compile_step.configure(model, cfg)  # the `compile` setting: torch.compile of the training step or eager
    if _rank_zero():
        print(dataset_summary(cfg, dm, model), flush=True)
    ckpt_dir = run_dir / "checkpoints"
    callbacks, best_cb, stop_cb = build_callbacks(cfg, ckpt_dir)
    loggers = build_loggers(cfg, run_dir)
    from embfreq.callbacks import EpochLines, EpochSeed, KeepStopped, RunProgressBar, ValidateLastEpoch
    from embfreq.checkpoint_io import AtomicCheckpointIO

    from embfreq.thread_phases import PhaseThreads

    callbacks += [EpochSeed(int(cfg.seed)), ValidateLastEpoch(int(cfg.eval_every)),
                  PhaseThreads(threads["train"], threads["eval"])]
    callbacks += [KeepStopped(stop_cb)] if stop_cb is not None else []
    bar = cfg.trainer.get("enable_progress_bar")  # unset: a bar on a terminal, one line per epoch elsewhere
    if bar or (bar is None and sys.stdout.isatty()):
        callbacks.append(RunProgressBar(cfg.monitor.metric))
    elif bar is None:
        callbacks.append(EpochLines(cfg.monitor.metric))
    trainer_args = {
        "plugins": [AtomicCheckpointIO()],  # a failed save never damages the previous checkpoint
        "check_val_every_n_epoch": int(cfg.eval_every),  # and the last epoch always (ValidateLastEpoch)
        "callbacks": callbacks,
        "enable_progress_bar": bool(bar) or (bar is None and sys.stdout.isatty()),
        "logger": loggers or False,
        "deterministic": cfg.get("deterministic", "warn"),
        "use_distributed_sampler": False,
        "num_sanity_val_steps": 0,
        "enable_model_summary": False,
        "log_every_n_steps": 10,
        # trainer.* from the config last: any Trainer argument, +trainer.X=... included, is the user's
        **OmegaConf.to_container(cfg.trainer, resolve=True),
    }
    trainer = pl.Trainer(**trainer_args)
    t1 = time.time()
    resume_from = ckpt_dir / "last.ckpt" if cfg.get("resume") else None
    if resume_from is not None and not resume_from.is_file():
        raise UserError(f"{run_dir}: cannot resume, no checkpoint at {resume_from}")
    if resume_from is not None:
        from embfreq.run_dir import load_checkpoint

        state = load_checkpoint(resume_from)  # a truncated or foreign file: one clear error, not Lightning's traceback
        # Lightning drops ModelCheckpoint's best score when its dir changed, and keeps a path into the old dir
        saved = {str(v.get("dirpath")) for k, v in state.get("callbacks", {}).items() if k.startswith("ModelCheckpoint")}
        if saved - {os.path.realpath(ckpt_dir)}:
            raise UserError(f"{run_dir}: the run was moved (its checkpoints name {sorted(saved)[0]}); "
                            "resume it at its original path")
    # weights_only: our checkpoints hold tensors and plain values only; never unpickle arbitrary objects
    global _training_started
    _training_started = True
    with interruptible(trainer):
        trainer.fit(model, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
    t_fit = time.time() - t1
    best_path = best_cb.best_model_path or None
    # every validation metric of the best epoch comes from its checkpoint below; this is the fallback
    val = {} if best_cb.best_model_score is None else {best_cb.monitor: float(best_cb.best_model_score)}
    t2 = time.time()
    tester = trainer
    spawned = type(getattr(trainer.strategy, "launcher", None)).__name__ == "_MultiProcessingLauncher"
    if spawned:
        # ddp_spawn trains in worker processes and hands back only the weights: the per-user ranks and
        # per-item metrics come from a test pass in this process
        tester = pl.Trainer(accelerator=trainer_args.get("accelerator", "auto"), devices=1, logger=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            deterministic=trainer_args["deterministic"])
    with interruptible(tester):
        test_out = tester.test(model, datamodule=dm, ckpt_path=best_path or None, verbose=False,
                               weights_only=True)
    t_test = time.time() - t2
    test = dict(getattr(model, "last_test", {})) or _scalars(test_out[0] if test_out else {}, "test/")
    partial = partial_evaluation(trainer, tester, dm)
    best_epoch = None
    if best_path:
        from embfreq.run_dir import load_checkpoint

        ck = load_checkpoint(best_path)
        best_epoch = int(ck["epoch"])
        val = {k: float(v) for k, v in ck.get("embfreq_val_metrics", {}).items()} or val
    result = {
        "status": "partial" if partial else "ok",
        **({"partial": partial, "reason": "partial evaluation (" + "; ".join(f"{k}: {v}" for k, v in partial.items())
            + "): its metrics are not comparable with full runs"} if partial else {}),
        "model": cfg.model.name,
        "data": cfg.data.name,
        "seed": int(cfg.seed),
        "lower_freq": cfg.lower_freq,
        "upper_freq": cfg.upper_freq,
        "neighbours": neighbours_mode(cfg),
        "item_table": str(cfg.item_table.name) if cfg.get("item_table") else "neighbours",
        **band_info(model, dm),
        **param_counts(model),
        "epochs_trained": _epochs_trained(trainer, ckpt_dir, spawned),
        "best_epoch": best_epoch,
        "best_checkpoint": best_path,
        "val": val,
        "test": test,
        "seconds": {"data": t_data, "fit": t_fit, "test": t_test, "total": time.time() - t0},
        "run_dir": str(run_dir),
        "threads": threads["train"],  # with the wall times: what the cost was measured on
        "thread_policy": threads,  # training and evaluation thread counts, and what set them
        "compile": compile_step.record(model, cfg),  # compiled or eager, and the seconds compiling took
        "machine": machine_record(),  # what exact repetition needs: same CPU kind, same libraries
        "host": {"cpus": os.cpu_count(), "device": str(model.device), "torch": torch.__version__},
        "data_cached": bool(dm.data.cached),  # sweeps: only the first job per dataset should parse
        "started_at": t0,  # epoch seconds; shows whether parallel sweep jobs overlapped
    }
    previous = _previous_ok_result(run_dir) if cfg.get("resume") else None
    if previous is not None and isinstance(previous.get("seconds"), dict):
        # resuming a finished run repeats its test: the wall times stay those of the training
        result["seconds_resume"] = result["seconds"]
        result["seconds"] = previous["seconds"]
    if trainer.is_global_zero:
        from embfreq.analysis.per_user import write_test_users

        if "test" not in partial:  # per-user ranks of some users only: no paired comparison from them
            ranks = model.test_user_ranks.numpy()
            test_targets = dm.data.split.test
            freq = dm.data.item_freq
            write_test_users(run_dir, ranks, test_targets, freq[test_targets])
        # HPARAMS-tab metrics under hp/: under their own names they would add a false step-0 point
        # to the val/* and test/* curves
        from pytorch_lightning.loggers import TensorBoardLogger

        for logger in loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(hparams(cfg, result), {f"hp/{k.replace('/', '_')}": v for k, v in {**test, **val}.items()})
            else:
                logger.log_hyperparams(hparams(cfg, result))
        if cfg.analysis and not partial:
            from embfreq.analysis.run_analysis import analyze_model

            board = next((lg for lg in loggers if hasattr(getattr(lg, "experiment", None), "add_figure")), None)
            result["analysis"] = analyze_model(model, dm, getattr(model, "test_per_item", None), run_dir, board)
        result["finished_at"] = time.time()
        write_json(run_dir / "metrics.json", result)
    return result


def dataset_summary(cfg: DictConfig, dm, model) -> str:
    """What the run trains on, printed at its start."""
    st = dm.data.stats()
    n, in_band = st["items"], int(model.items.num_in_band)
    if cfg.lower_freq is None and cfg.upper_freq is None:
        band = "no band (every item has its own vector)"
    else:
        lo = 0 if cfg.lower_freq is None else cfg.lower_freq
        hi = "inf)" if cfg.upper_freq is None else f"{cfg.upper_freq}]"
        band = f"band [{lo}, {hi}: {in_band:,} items in band ({in_band / max(n, 1):.1%})"
    return (f"embfreq: data {cfg.data.name}: {st['users']:,} users, {n:,} items, {st['interactions']:,} interactions "
            f"({st['train_interactions']:,} for training); {band}; model {cfg.model.name}, seed {cfg.seed}")


def _full_batches(loaders) -> int | None:
    try:
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        return sum(len(dl) for dl in loaders)
    except TypeError:  # no length: cannot tell
        return None


def partial_evaluation(trainer, tester, dm) -> dict:
    """{"val": ..., "test": ...} for each evaluation that saw only some of its batches
    (fast_dev_run, limit_val_batches, limit_test_batches); {} when both were complete."""
    out = {}
    if trainer.fast_dev_run:
        return {"fit": f"fast_dev_run={trainer.fast_dev_run}", "val": "fast_dev_run", "test": "fast_dev_run"}
    # the limits as set, not the batch counts: a resumed finished run validates nothing and is complete
    checks = (("val", trainer.limit_val_batches, dm.val_dataloader), ("test", tester.limit_test_batches, dm.test_dataloader))
    for name, limit, loaders in checks:
        full = _full_batches(loaders())
        if isinstance(limit, float) and limit < 1.0:
            out[name] = f"limit_{name}_batches={limit:g}" + (f" of {full} batches" if full else "")
        elif isinstance(limit, int) and full is not None and limit < full:
            out[name] = f"{limit} of {full} batches"
    return out


def metrics_table(result: dict) -> str:
    """The test metrics at 5, 10 and 20 as a small table, with the best epoch."""
    test = result.get("test", {})
    ks = [k for k in (5, 10, 20) if f"test/ndcg@{k}" in test]
    lines = ["         " + "".join(f"{f'@{k}':>9}" for k in ks)]
    for name in ("hr", "ndcg", "mrr"):
        lines.append(f"test {name.upper():<4}" + "".join(f"{test.get(f'test/{name}@{k}', float('nan')):9.4f}" for k in ks))
    best = result.get("best_epoch")
    val = result.get("val", {}).get("val/ndcg@10")
    lines.append(f"best epoch {best + 1 if best is not None else 'none'} of {result.get('epochs_trained')}"
                 + (f" (val NDCG@10 {val:.4f})" if val is not None else ""))
    return "\n".join(lines)


def _epochs_trained(trainer, ckpt_dir: Path, spawned: bool) -> int:
    if not spawned:
        return int(trainer.current_epoch)
    from embfreq.run_dir import load_checkpoint

    last = ckpt_dir / "last.ckpt"  # the main process of ddp_spawn never ran the loop
    return int(load_checkpoint(last)["epoch"]) + 1 if last.is_file() else 0


def _previous_ok_result(run_dir: Path) -> dict | None:
    from embfreq.run_dir import read_metrics

    try:
        m = read_metrics(run_dir)
    except UserError:  # a damaged record has no wall times worth keeping
        return None
    return m if m.get("status") == "ok" else None


def hparams(cfg: DictConfig, result: dict) -> dict:
    model = {f"model.{k}": v for k, v in flatten(OmegaConf.to_container(cfg.model, resolve=True)).items()
             if not k.startswith(("optimizer.", "scheduler")) and not k.endswith(("_target_", "_partial_"))
             and k != "name" and isinstance(v, (int, float, str, bool))}
    return {
        "model": cfg.model.name, "data": cfg.data.name, "seed": int(cfg.seed),
        "band": Band(cfg.lower_freq, cfg.upper_freq).label,  # TensorBoard hparams take no None
        "neighbours": neighbours_mode(cfg), "items_in_band": result["items_in_band"],
        "batch_size": int(cfg.data.batch_size), **model,
    }


def _is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:
        return False


def _rank_zero() -> bool:
    # DDP children started by Lightning carry their rank in the environment
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def _refuse_finished(run_dir: Path) -> None:
    """A new run never goes into a dir with a finished result or a run's checkpoints."""
    from embfreq.run_dir import read_metrics

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
    from embfreq.run_dir import lock_run_dir

    lock = lock_run_dir(run_dir)
    try:
        if not resuming:
            _refuse_finished(run_dir)
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


def run_job(cfg: DictConfig, run_dir: Path) -> dict:
    """One Hydra job: a user error ends a single run with one line; in a sweep the job records it and goes on."""
    global _training_started
    _training_started = False
    run_dir = Path(run_dir)
    multirun = _is_multirun()
    base = {"model": cfg.model.name, "data": cfg.data.name, "seed": cfg.seed, "lower_freq": cfg.lower_freq,
            "upper_freq": cfg.upper_freq, "neighbours": neighbours_mode(cfg), "run_dir": str(run_dir)}
    lock = None
    try:
        if _rank_zero():  # DDP workers run inside the lock of their rank-0 process
            lock = claim_run_dir(run_dir, bool(cfg.get("resume")))
    except RunDirInUse as e:
        if not multirun:
            raise
        log.error("failed: %s", e)  # no record: the dir is another run's
        return {"status": "failed"}
    try:
        return _run_locked(cfg, run_dir, multirun, base)
    finally:
        if lock is not None:
            (run_dir / RESERVE).unlink(missing_ok=True)
            lock.release()


def _run_locked(cfg: DictConfig, run_dir: Path, multirun: bool, base: dict) -> dict:
    if not cfg.get("resume") and _rank_zero():
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
        result = train(cfg, run_dir)
    except RunInterrupted as e:  # recorded, then a non-zero exit: a scheduler must not see success
        if _rank_zero():
            write_json(run_dir / "metrics.json", {"status": "interrupted", "error": str(e), "epoch": e.epoch,
                                                  "resume": f"python -m embfreq.train resume={run_dir}", **base})
        print(f"embfreq: {e}; continue with: python -m embfreq.train resume={run_dir}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except UserError as e:
        # a refused input leaves no result in a single run; a run that trained and failed says so
        if (multirun or _training_started or isinstance(e, (TrainingDiverged, RunFailed))) and _rank_zero():
            _record_failure(run_dir, {"status": "failed", "error": str(e), **base})
        if not multirun:
            raise
        log.error("failed: %s", e)
        return {"status": "failed"}
    except Exception as e:  # a sweep keeps going; the error is recorded with the job
        cause = environment_cause(e, run_dir)
        if cause is not None:  # the machine's fault, named in one line
            if _rank_zero():
                _record_failure(run_dir, {"status": "failed", "error": cause, **base})
            if not multirun:
                raise RunFailed(cause) from None
            log.error("failed: %s", cause)
            return {"status": "failed"}
        if not multirun:
            if _training_started and _rank_zero():
                _record_failure(run_dir, {"status": "failed", "error": f"{type(e).__name__}: {first_line(e)}",
                                          "traceback": traceback.format_exc(), **base})
            raise
        _record_failure(run_dir, {"status": "failed", "error": f"{type(e).__name__}: {e}",
                                  "traceback": traceback.format_exc(), **base})
        log.error("failed: %s: %s", type(e).__name__, e)
        return {"status": "failed"}
    t = result.get("test", {})
    if _rank_zero():
        print(metrics_table(result), flush=True)
        if result.get("status") == "partial":
            print(f"embfreq: {result['reason']}", flush=True)
        print(f"embfreq: test HR@10={t.get('test/hr@10', float('nan')):.4f} "
              f"NDCG@10={t.get('test/ndcg@10', float('nan')):.4f}  run dir: {run_dir}", flush=True)
    return result


def _record_failure(run_dir: Path, record: dict) -> None:
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


def _fresh(run_dir: Path) -> bool:
    """Only what Hydra put there at the start of this call (.hydra/, the log): a dir this run made."""
    try:
        return {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log", LOCK, RESERVE}
    except OSError:
        return False


def _remove_run_dir(run_dir: Path) -> None:
    """A refused or failed-before-training run leaves no dir: its own and the empty ones above it
    that Hydra made (outputs/<date>/), up to the working dir."""
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)
    cwd, parent = Path.cwd().resolve(), run_dir.resolve().parent
    while parent != cwd and cwd in parent.parents:
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break
        parent = parent.parent


def resume_config(cfg: DictConfig) -> tuple[DictConfig, Path]:
    """The config of the run to resume (its own, so the result is that run's), marked as resuming."""
    from embfreq.run_dir import run_config

    run_dir = Path(cfg.resume)
    old = run_config(run_dir)
    if old.get("resume") and Path(old.resume) != run_dir:
        raise UserError(f"{run_dir}: config names another run to resume ({old.resume})")
    old.resume = str(run_dir)
    return old, run_dir


def quiet_libraries() -> None:
    """The CLI shows embfreq's own messages and warnings; Lightning's start-up notes and tips, and
    warnings about library internals, go."""
    import warnings

    for name in ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "lightning.pytorch",
                 "lightning.pytorch.utilities.rank_zero", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in (r".*Sparse CSR tensor support is in beta.*", r".*treespec, LeafSpec.*is deprecated.*",
                    r".*is smaller than the logging interval.*", r".*does not have many workers.*"):
        warnings.filterwarnings("ignore", message=message)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    quiet_libraries()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    fresh = not cfg.get("resume") and _fresh(run_dir)
    try:
        if cfg.get("resume"):
            extra = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
            if extra:  # the run continues with its own config.yaml; another value would be silently lost
                raise UserError(f"resume= continues the run with its own config; it takes no other overrides "
                                f"(got {' '.join(extra)}); start a new run to change settings")
            cfg, run_dir = resume_config(cfg)
        result = run_job(cfg, run_dir)
    except UserError as e:  # one line, no traceback; SystemExit passes through Hydra
        if fresh and not (run_dir / "metrics.json").exists():
            _remove_run_dir(run_dir)
        print(f"embfreq: error: {e}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    except Exception:
        if fresh and not _training_started:
            _remove_run_dir(run_dir)
        raise
    # what a sweeper (Optuna, Ax) optimises: the monitored validation metric, never test
    return result.get("val", {}).get(cfg.monitor.metric)


def _resume_run_dir_args(argv: list[str]) -> list[str]:
    """`resume=<dir>` continues in that dir: Hydra must not make a new run dir (nor overwrite the
    run's .hydra/ record) for it; its log goes on in the run's own log file."""
    dirs = [a.split("=", 1)[1] for a in argv if a.startswith("resume=")]
    if len(dirs) != 1 or any(a.startswith(("-m", "--multirun")) for a in argv) or not dirs[0]:
        return []
    return [f"hydra.run.dir={dirs[0]}", "hydra.output_subdir=null"]


def _check_writable_output(argv: list[str]) -> None:
    """The dir that will hold the run (or sweep) dirs can be written: else one line, before Hydra's
    PermissionError traceback."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    key = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    given = [a.split("=", 1)[1] for a in argv if a.startswith(key) and "${" not in a]
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return  # --help, --cfg: no run dir
    target = Path(given[-1] if given else ("multirun" if multirun else "outputs")).absolute()
    if given and not multirun and not any(a.startswith("resume=") for a in argv):
        _refuse_finished(target)  # before Hydra rewrites the run's .hydra/ record
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot create the run dir {target}: {existing} is not a writable directory "
                        "(read-only?); run from another dir or give hydra.run.dir= / hydra.sweep.dir=")


def _baseline_switch(argv: list[str]) -> list[str]:
    """`baseline=false` (or true) on the command line: the sweeper's switch for the no-band jobs."""
    return [f"hydra.sweeper.{a}" if a.partition("=")[0] == "baseline" else a for a in argv]


def _register_sweeper() -> None:
    """Hydra finds plugins by scanning the hydra_plugins namespace, which some editable installs hide;
    the sweeper of train.yaml is registered by name here as well."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.embfreq_sweeper.embfreq_sweeper import EmbfreqSweeper

    name = f"{EmbfreqSweeper.__module__}.{EmbfreqSweeper.__name__}"
    Plugins.instance().class_name_to_class.setdefault(name, EmbfreqSweeper)


def cli() -> None:
    """`embfreq-train` and `python -m embfreq.train`: the overrides are checked first (a mistake is one
    line and exit 2, before Hydra makes a run dir); a sweep exits non-zero when a job failed."""
    from embfreq import sweep
    from embfreq.cli_args import check_train_overrides, error, open_mappings

    _register_sweeper()
    argv = open_mappings(_baseline_switch(sys.argv[1:]))
    try:
        argv = check_train_overrides(argv)
        _check_writable_output(argv)
    except UserError as e:
        sys.exit(error(e))
    sys.argv = [sys.argv[0], *argv, *_resume_run_dir_args(argv)]
    main()
    if sweep.exit_code:
        sys.exit(sweep.exit_code)


if __name__ == "__main__":
    cli()
