"""The resume protocol: `resume=<run dir>` continues a run with its own config, from its last checkpoint,
only if what it trains on (config and data) is unchanged and the run was not moved."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from embfreq.errors import UserError
from embfreq.io import write_json
from embfreq.training.integrity import RUN_STATE, config_sha256, read_run_state


def resume_config(cfg: DictConfig) -> tuple[DictConfig, Path]:
    """The config of the run to resume (its own, so the result is that run's), marked as resuming."""
    from embfreq.training.run_dir import run_config

    run_dir = Path(cfg.resume)
    old = run_config(run_dir)
    if old.get("resume") and Path(old.resume) != run_dir:
        raise UserError(f"{run_dir}: config names another run to resume ({old.resume})")
    old.resume = str(run_dir)
    return old, run_dir


def check_or_record_run_state(run_dir: Path, cfg: DictConfig, data_fingerprint: str) -> None:
    """A fresh run records what it trains on (its resolved config and its data); a resume must find
    both unchanged, else the checkpoint's optimiser and batches would belong to another experiment."""
    state = {"config_sha256": config_sha256(cfg), "data_fingerprint": data_fingerprint}
    old = read_run_state(run_dir) if cfg.get("resume") else None
    if old is None:  # a fresh run; a run from before this record resumes unchecked
        write_json(run_dir / RUN_STATE, state)
        return
    changed = [name for key, name in (("config_sha256", "config.yaml"), ("data_fingerprint", "the data"))
               if old.get(key) != state[key]]
    if changed:
        raise UserError(f"{run_dir}: cannot resume: {' and '.join(changed)} changed since the run started "
                        "(start a new run for a new experiment)")


def checkpoint_to_resume(cfg: DictConfig, run_dir: Path, ckpt_dir: Path) -> Path | None:
    """The last checkpoint a resume continues from (None for a new run), checked before Lightning reads it."""
    resume_from = ckpt_dir / "last.ckpt" if cfg.get("resume") else None
    if resume_from is not None and not resume_from.is_file():
        raise UserError(f"{run_dir}: cannot resume, no checkpoint at {resume_from}")
    if resume_from is not None:
        from embfreq.training.run_dir import load_checkpoint

        state = load_checkpoint(resume_from)  # a truncated or foreign file: one clear error, not Lightning's traceback
        # Lightning drops ModelCheckpoint's best score when its dir changed, and keeps a path into the old dir
        saved = {str(v.get("dirpath")) for k, v in state.get("callbacks", {}).items() if k.startswith("ModelCheckpoint")}
        if saved - {os.path.realpath(ckpt_dir)}:
            raise UserError(f"{run_dir}: the run was moved (its checkpoints name {sorted(saved)[0]}); "
                            "resume it at its original path")
    return resume_from


def previous_ok_result(run_dir: Path) -> dict | None:
    from embfreq.training.run_dir import read_metrics

    try:
        m = read_metrics(run_dir)
    except UserError:  # a damaged record has no wall times worth keeping
        return None
    return m if m.get("status") == "ok" else None


def keep_training_times(result: dict, cfg: DictConfig, run_dir: Path) -> None:
    """Resuming a finished run repeats its test: the wall times stay those of the training."""
    previous = previous_ok_result(run_dir) if cfg.get("resume") else None
    if previous is not None and isinstance(previous.get("seconds"), dict):
        result["seconds_resume"] = result["seconds"]
        result["seconds"] = previous["seconds"]
