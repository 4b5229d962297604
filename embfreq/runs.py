"""A run directory: its config, its checkpoints, and the model rebuilt from them."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from embfreq.errors import UserError

CONFIG = "config.yaml"


def run_config(run_dir: str | Path) -> DictConfig:
    """The resolved config a run was started with."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir}: not a run directory (no {CONFIG})")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # YAML syntax error or unreadable file: one line, not a parser traceback
        raise UserError(f"{path}: unreadable run config ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(cfg, DictConfig) or "model" not in cfg or "data" not in cfg:
        raise UserError(f"{path}: not a run config (no model and data sections)")
    return cfg


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    path = Path(run_dir) / "checkpoints" / f"{which}.ckpt"
    if not path.is_file():
        raise UserError(f"{run_dir}: no {which} checkpoint at {path}")
    return path


def load_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint, loaded without unpickling arbitrary objects."""
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise UserError(f"{path}: empty checkpoint (0 bytes; a save was interrupted)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign file
        raise UserError(f"{path}: unreadable checkpoint ({type(e).__name__}: {_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else "no message"


def restore(run_dir: str | Path, which: str = "best"):
    """(cfg, datamodule, model) of a run, with the weights of its `which` checkpoint, in eval mode."""
    from embfreq.builders import build_datamodule, build_model

    cfg = run_config(run_dir)
    dm = build_datamodule(cfg)
    dm.setup("test")
    model = build_model(cfg, dm)
    ckpt = load_checkpoint(checkpoint_path(run_dir, which))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as e:
        raise UserError(f"{run_dir}: checkpoint does not fit the run's model ({_first_line(e)})") from None
    return cfg, dm, model.eval()
