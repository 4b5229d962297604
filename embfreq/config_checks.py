"""Every config value checked up front, before any data is read: one place, one line per problem,
each naming its key (`python -m embfreq.train` prints it and exits 2)."""

from __future__ import annotations

import numbers

import torch
from omegaconf import DictConfig, OmegaConf

from embfreq.band import check_band
from embfreq.data.batches import PAIR_SAMPLING
from embfreq.data.graph import NORMALIZATIONS
from embfreq.errors import ConfigError

MODELS = ("sasrec", "gru4rec", "mf_bpr")
NEIGHBOURS = ("all", "outside_band")


def _int(cfg: DictConfig, key: str, low: int, allow_none: bool = False) -> None:
    v = OmegaConf.select(cfg, key)
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        expected = f"an integer >= {low}" + (" or null" if allow_none else "")
        raise ConfigError(f"{key} must be {expected}, got {v!r}")


def _choice(cfg: DictConfig, key: str, choices, allow_none: bool = False) -> None:
    v = OmegaConf.select(cfg, key)
    if (v is None and allow_none) or v in choices:
        return
    raise ConfigError(f"{key} must be one of {tuple(choices)}{' or null' if allow_none else ''}, got {v!r}")


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first bad value."""
    if OmegaConf.is_missing(cfg.data, "path"):
        raise ConfigError(f"data.path is required for data={cfg.data.name} (data.path=/path/to/interactions)")
    check_band(cfg.lower_freq, cfg.upper_freq)
    _choice(cfg, "model.name", MODELS)
    _choice(cfg, "neighbours", NEIGHBOURS)
    for key in ("eval_every", "patience", "trainer.max_epochs", "model.batch_size", "eval.batch_size"):
        _int(cfg, key, 1)
    if int(cfg.trainer.max_epochs) < int(cfg.eval_every):
        raise ConfigError(f"trainer.max_epochs={cfg.trainer.max_epochs} < eval_every={cfg.eval_every}: the run would "
                          "never validate (no best checkpoint, no test); lower eval_every")
    if "maxlen" in cfg.model.net:
        _int(cfg, "model.net.maxlen", 1)
    _int(cfg, "seed", 0)  # numpy seeds refuse negatives
    _int(cfg, "threads", 1, allow_none=True)
    _int(cfg, "num_workers", 0)
    _choice(cfg, "data.normalization", NORMALIZATIONS)
    _int(cfg, "data.max_neighbours", 1, allow_none=True)
    _int(cfg, "data.min_user_interactions", 0)
    _int(cfg, "data.min_item_interactions", 0)
    if cfg.model.get("pair_sampling") is not None:
        _choice(cfg, "model.pair_sampling", PAIR_SAMPLING)
    if not isinstance(cfg.data.get("drop_duplicates", False), bool):
        raise ConfigError(f"data.drop_duplicates must be true or false, got {cfg.data.drop_duplicates!r}")
    ks = list(cfg.eval.ks)
    if 10 not in ks:
        raise ConfigError(f"eval.ks must include 10 (checkpointing and early stopping watch val/ndcg@10), got {ks}")
    check_device(cfg)


def check_device(cfg: DictConfig) -> None:
    """A GPU setting on a machine without one, and mixed precision on CPU, in one line each."""
    accel = str(cfg.trainer.get("accelerator", "auto"))
    if accel in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accel} but no CUDA GPU is available here; use trainer=cpu "
                          "(or trainer.accelerator=auto)")
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision in ("32", "32-true"):
        return
    on_gpu = accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available())
    if not on_gpu:
        raise ConfigError(f"trainer.precision={precision} needs a GPU; on CPU use trainer.precision=32-true")
