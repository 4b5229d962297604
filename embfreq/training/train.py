"""One run: config -> objects -> fit -> test the best checkpoint -> record (metrics.json) in its run dir.

`train` is the run itself; `run_job` is the same under the per-job failure policy (training/job.py).
The command line (`python -m embfreq.train`) is embfreq/cli/train.py.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from embfreq.errors import DataError
from embfreq.training import job
from embfreq.training import compile_step
from embfreq.training.builders import build_callbacks, build_datamodule, build_loggers, build_model, run_threads
from embfreq.training.config_checks import check_config
from embfreq.training.job import interruptible, rank_zero, task_wrapper
from embfreq.training.record import (best_checkpoint, dataset_summary, epochs_trained, partial_evaluation,
                                     result_record, scalars, write_record)
from embfreq.training.resume import check_or_record_run_state, checkpoint_to_resume, keep_training_times

log = logging.getLogger("embfreq.train")


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

    # -- instantiate: data, model, callbacks, loggers, trainer
    dm = build_datamodule(cfg)
    dm.setup("fit")
    ptr = dm.data.split.train_ptr
    if cfg.data.sampling == "seq" and not (ptr[1:] - ptr[:-1] >= 2).any():
        # no next-item pair to learn from: Lightning would skip fit and the untrained model be reported "ok"
        raise DataError(f"{dm.data.source}: no training sequences: every user has 3 interactions (one left after "
                        f"the validation and test items); {cfg.model.name} needs users with at least 4")
    t_data = time.time() - t0
    log.info("data: %s in %.2fs", "loaded from cache" if dm.data.cached else "parsed", t_data)
    if rank_zero():
        check_or_record_run_state(run_dir, recorded, dm.data.fingerprint())
    model = build_model(cfg, dm)
    compile_step.configure(model, cfg)  # the `compile` setting: torch.compile of the training step or eager
    if rank_zero():
        print(dataset_summary(cfg, dm, model), flush=True)
    ckpt_dir = run_dir / "checkpoints"
    callbacks, best_cb, stop_cb = build_callbacks(cfg, ckpt_dir)
    loggers = build_loggers(cfg, run_dir)
    from embfreq.training.callbacks import EpochLines, EpochSeed, KeepStopped, RunProgressBar, ValidateLastEpoch
    from embfreq.training.checkpoint_io import AtomicCheckpointIO
    from embfreq.training.thread_phases import PhaseThreads

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

    # -- fit (from the last checkpoint when resuming)
    t1 = time.time()
    resume_from = checkpoint_to_resume(cfg, run_dir, ckpt_dir)
    job.mark_training_started()
    with interruptible(trainer):
        # weights_only: our checkpoints hold tensors and plain values only; never unpickle arbitrary objects
        trainer.fit(model, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
    t_fit = time.time() - t1

    # -- test the best checkpoint
    t2 = time.time()
    tester = trainer
    spawned = type(getattr(trainer.strategy, "launcher", None)).__name__ == "_MultiProcessingLauncher"
    if spawned:
        # ddp_spawn trains in worker processes and hands back only the weights: the per-user ranks and
        # per-item metrics come from a test pass in this process
        tester = pl.Trainer(accelerator=trainer_args.get("accelerator", "auto"), devices=1, logger=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            deterministic=trainer_args["deterministic"])
    best_path = best_cb.best_model_path or None
    with interruptible(tester):
        test_out = tester.test(model, datamodule=dm, ckpt_path=best_path or None, verbose=False,
                               weights_only=True)
    t_test = time.time() - t2

    # -- record
    test = dict(getattr(model, "last_test", {})) or scalars(test_out[0] if test_out else {}, "test/")
    partial = partial_evaluation(trainer, tester, dm)
    best_path, best_epoch, val = best_checkpoint(best_cb)
    result = result_record(cfg, run_dir, dm, model, partial=partial, epochs=epochs_trained(trainer, ckpt_dir, spawned),
                           best_path=best_path, best_epoch=best_epoch, val=val, test=test, started_at=t0, threads=threads,
                           seconds={"data": t_data, "fit": t_fit, "test": t_test, "total": time.time() - t0})
    keep_training_times(result, cfg, run_dir)
    if trainer.is_global_zero:
        write_record(cfg, run_dir, result, model, dm, loggers, partial)
    return result


@task_wrapper
def run_job(cfg: DictConfig, run_dir: Path) -> dict:
    """One Hydra job: `train` under the per-job failure policy (a sweep records a failed job and goes on)."""
    return train(cfg, run_dir)
