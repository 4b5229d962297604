"""Every config value checked up front, before any data is read: one place, one line per problem,
each naming its key (`python -m embfreq.train` prints it and exits 2)."""

from __future__ import annotations

import numbers

import torch
from omegaconf import DictConfig, OmegaConf

from embfreq.band import check_band
from embfreq.data.batches import PAIR_SAMPLING
from embfreq.data.graph import NORMALIZATIONS
from embfreq.device import uses_gpu
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
    for key in ("eval_every", "patience", "trainer.max_epochs", "data.batch_size", "data.eval_batch_size"):
        _int(cfg, key, 1)
    _int(cfg, "data.maxlen", 1)
    net_maxlen = OmegaConf.select(cfg, "model.net.maxlen")
    if net_maxlen is not None and net_maxlen != cfg.data.maxlen:  # positions the windows never fill, or too few
        raise ConfigError(f"model.net.maxlen={net_maxlen} differs from data.maxlen={cfg.data.maxlen}; set data.maxlen "
                          "(the encoder follows it)")
    _int(cfg, "seed", 0)  # numpy seeds refuse negatives
    _int(cfg, "threads", 1, allow_none=True)
    _int(cfg, "data.num_workers", 0)
    _choice(cfg, "data.sampling", ("seq", "pair"))
    _choice(cfg, "data.normalization", NORMALIZATIONS)
    _int(cfg, "data.max_neighbours", 1, allow_none=True)
    _int(cfg, "data.min_user_interactions", 0)
    _int(cfg, "data.min_item_interactions", 0)
    if cfg.data.get("pair_sampling") is not None:
        _choice(cfg, "data.pair_sampling", PAIR_SAMPLING)
    if not isinstance(cfg.data.get("drop_duplicates", False), bool):
        raise ConfigError(f"data.drop_duplicates must be true or false, got {cfg.data.drop_duplicates!r}")
    ks = list(cfg.eval.ks)
    if 10 not in ks:
        raise ConfigError(f"eval.ks must include 10 (the results and report use @10), got {ks}")
    check_monitor(cfg, ks)
    _choice(cfg, "eval.repeat_target", ("rank", "remove"))
    if cfg.eval.repeat_target == "remove" and not cfg.eval.remove_seen:
        raise ConfigError("eval.repeat_target=remove removes the target with the seen items: it needs eval.remove_seen=true")
    check_optimizer(cfg)
    check_device(cfg)


MONITORED = ("hr", "ndcg", "mrr", "recall", "precision")


def check_monitor(cfg: DictConfig, ks) -> None:
    metric = OmegaConf.select(cfg, "monitor.metric")
    name, _, k = str(metric).removeprefix("val/").partition("@")
    if not str(metric).startswith("val/") or name not in MONITORED or not k.isdigit() or int(k) not in ks:
        raise ConfigError(f"monitor.metric must be val/<{'|'.join(MONITORED)}>@<k> with k in eval.ks {ks}, got {metric!r}")
    _choice(cfg, "monitor.mode", ("max",))  # every ranking metric: higher is better


def _positive(cfg: DictConfig, key: str, low: float, strict: bool) -> None:
    v = OmegaConf.select(cfg, key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or (v <= low if strict else v < low):
        raise ConfigError(f"{key} must be a number {'>' if strict else '>='} {low}, got {v!r}")


def check_optimizer(cfg: DictConfig) -> None:
    """The optimiser and scheduler are importable classes of the right kind, with sane rates."""
    import hydra.utils

    for key, base in (("model.optimizer", torch.optim.Optimizer), ("model.scheduler", object)):
        spec = OmegaConf.select(cfg, key)
        if spec is None:
            if key == "model.optimizer":
                raise ConfigError(f"{key} is required (e.g. {{_target_: torch.optim.Adam, _partial_: true, lr: 1e-3}})")
            continue
        target = spec.get("_target_") if isinstance(spec, DictConfig) else None
        try:
            cls = hydra.utils.get_class(str(target)) if target else None
        except Exception:
            cls = None
        if cls is None or not issubclass(cls, base):
            what = "a torch.optim.Optimizer class" if base is torch.optim.Optimizer else "a class"
            raise ConfigError(f"{key}._target_ must name {what}, got {target!r}")
        _check_arguments(key, cls, spec)
        if not spec.get("_partial_", False):
            raise ConfigError(f"{key} needs _partial_: true (it is called with the model's "
                              f"{'parameters' if key.endswith('optimizer') else 'optimizer'})")
    _positive(cfg, "model.optimizer.lr", 0, strict=True)
    _positive(cfg, "model.optimizer.weight_decay", 0, strict=False)


def _check_arguments(key: str, cls, spec: DictConfig) -> None:
    import inspect

    kwargs = {k: v for k, v in spec.items() if not str(k).startswith("_")}
    try:
        inspect.signature(cls).bind_partial(*([None] * 1), **kwargs)  # the first argument comes at run time
    except TypeError as e:
        raise ConfigError(f"{key}: {cls.__name__} does not take these arguments ({e}): {sorted(kwargs)}") from None
    except ValueError:  # no signature to check (a builtin)
        pass


def check_device(cfg: DictConfig) -> None:
    """A GPU setting on a machine without one, and mixed precision on CPU, in one line each."""
    accel = str(cfg.trainer.get("accelerator", "auto"))
    if accel in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accel} but no CUDA GPU is available here; use trainer=cpu "
                          "(or trainer.accelerator=auto)")
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision in ("32", "32-true"):
        return
    if not uses_gpu(accel):
        raise ConfigError(f"trainer.precision={precision} needs a GPU; on CPU use trainer.precision=32-true")
