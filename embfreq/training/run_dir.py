"""A run directory: its config, its metrics.json, its checkpoints, and the model rebuilt from them."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from embfreq.errors import UserError, first_line
from embfreq.io import read_json_object

CONFIG = "config.yaml"
METRICS = "metrics.json"
LOCK = ".embfreq.lock"


def lock_run_dir(run_dir: str | Path):
    """The run dir's lock (filelock on <run dir>/.embfreq.lock), held by this process until released
    (or the object is dropped, or the process ends, also by a kill); a dir that another process holds
    is refused in one line. Then the temp files of a killed write there are removed."""
    from filelock import FileLock, Timeout

    from embfreq.errors import RunDirInUse, RunFailed
    from embfreq.io import remove_temp_files

    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(run_dir / LOCK))
        lock.acquire(timeout=0)
    except Timeout:
        raise RunDirInUse(f"{run_dir}: in use by another embfreq process (it holds {LOCK}); wait for it to end "
                          "or choose another run dir") from None
    except OSError as e:
        raise RunFailed(f"{run_dir}: cannot write the run dir ({e.strerror or first_line(e)})") from None
    remove_temp_files(run_dir)
    return lock


def run_config(run_dir: str | Path) -> DictConfig:
    """The resolved config a run was started with."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir}: not a run directory (no {CONFIG})")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # YAML syntax error or unreadable file: one line, not a parser traceback
        raise UserError(f"{path}: unreadable run config ({type(e).__name__}: {first_line(e)})") from None
    if not isinstance(cfg, DictConfig) or "model" not in cfg or "data" not in cfg:
        raise UserError(f"{path}: not a run config (no model and data sections)")
    return cfg


def read_metrics(run_dir: str | Path) -> dict:
    """A run's metrics.json, or {} when it has none (unfinished or killed). A damaged one is an
    error, so that nobody overwrites or reports it as if it were empty."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return {}
    m, why = read_json_object(path)
    if why:
        raise UserError(f"{path}: unreadable {METRICS} ({why})")
    for key in ("test", "val", "seconds"):
        if key in m and not isinstance(m[key], dict):
            raise UserError(f"{path}: unreadable {METRICS} ({key!r} is not an object)")
    return m


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    path = Path(run_dir) / "checkpoints" / f"{which}.ckpt"
    if not path.is_file():
        raise UserError(f"{run_dir}: no {which} checkpoint at {path}")
    return path


def load_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint, loaded without unpickling arbitrary objects."""
    import torch  # here, not at the top: the report reads metrics.json without paying for torch

    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise UserError(f"{path}: empty checkpoint (0 bytes; a save was interrupted)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign file
        raise UserError(f"{path}: unreadable checkpoint ({type(e).__name__}: {first_line(e)})") from None


def restore(run_dir: str | Path, which: str = "best", check=None):
    """(cfg, datamodule, model) of a run, with the weights of its `which` checkpoint, in eval mode.
    `check(cfg, dm)`, when given, runs once the data is loaded and before the model is built."""
    from embfreq.training.builders import build_datamodule, build_model

    cfg = run_config(run_dir)
    dm = build_datamodule(cfg)
    dm.setup("test")
    if check is not None:
        check(cfg, dm)
    model = build_model(cfg, dm)
    ckpt = load_checkpoint(checkpoint_path(run_dir, which))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as e:
        raise UserError(f"{run_dir}: checkpoint does not fit the run's model ({first_line(e)})") from None
    return cfg, dm, model.eval()
