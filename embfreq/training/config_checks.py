"""The config schema and its checks: SCHEMA, one table of every checked key with its type and range
or choices, applied before any data is read (one line per problem, naming its key; the CLI prints it
and exits 2) and listed by `--help`; then the checks that relate keys (band, monitor, optimiser class,
device). Unknown keys and group options are refused earlier, on the command line (embfreq/cli/args.py)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from embfreq.band import Band
from embfreq.data.batches import PAIR_SAMPLING
from embfreq.data.graph import NORMALIZATIONS
from embfreq.training.device import uses_gpu
from embfreq.errors import ConfigError
from embfreq.nn.smoothed_embedding import NEIGHBOURS

MODELS = ("sasrec", "gru4rec", "mf_bpr")


@dataclass(frozen=True)
class Key:
    """One config key: its kind (int, number, choice, bool, band), range or choices, and what it means."""

    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    null: bool = False
    strict: bool = False  # number: low itself excluded
    mapping: bool = False  # may also be a mapping, whose keys have their own entries
    help: str = ""


# THE schema: every checked key, its type and range or choices, and its --help line (top-level keys).
# check_config applies it; `python -m embfreq.train --help` lists the top-level keys from it. A key
# that the chosen model or data has not (model.net.num_heads for mf_bpr) is not checked.
SCHEMA: dict[str, Key] = {
    "seed": Key("int", 0, 2**32 - 1, help="random seed of data order, initialisation and dropout (0 to 2^32-1)"),
    "lower_freq": Key("band", help="the band: items with lower_freq <= training frequency <= upper_freq (null = open side)"),
    "upper_freq": Key("band", help="upper end of the band (null = open); lower_freq=null upper_freq=null: no band"),
    "item_table.neighbours": Key("choice", choices=NEIGHBOURS, help="which neighbours a band item averages"),
    "eval_every": Key("int", 1, help="validate every N epochs (and always in the last epoch)"),
    "patience": Key("int", 1, help="early stopping, in validations without improvement"),
    "deterministic": Key("choice", choices=(True, False, "warn"), help="Lightning's deterministic flag (warn: "
                         "deterministic kernels, a warning where none exists)"),
    "threads": Key("int", 1, null=True, mapping=True, help="torch threads of both phases, or threads.train / "
                   "threads.eval each (null: training 1, evaluation the job's cores, divided among joblib jobs)"),
    "threads.train": Key("int", 1, null=True),
    "threads.eval": Key("int", 1, null=True),
    "compile": Key("choice", choices=(True, False, "auto"), help="torch.compile of the training step (false: eager; "
                   "auto: compiled on CUDA, eager on CPU, where it gains ~1.2x after a ~50 s build and is not bit-identical)"),
    "analysis": Key("bool", help="per-item table and figures after testing"),
    "trainer.max_epochs": Key("int", 1),
    "data.batch_size": Key("int", 1),
    "data.eval_batch_size": Key("int", 1),
    "data.maxlen": Key("int", 1),
    "data.num_workers": Key("int", 0),
    "data.sampling": Key("choice", choices=("seq", "pair")),
    "data.normalization": Key("choice", choices=NORMALIZATIONS),
    "data.max_neighbours": Key("int", 1, null=True),
    "data.min_user_interactions": Key("int", 0),
    "data.min_item_interactions": Key("int", 0),
    "data.pair_sampling": Key("choice", choices=PAIR_SAMPLING, null=True),
    "data.drop_duplicates": Key("bool"),
    "data.bucketing": Key("bool"),
    "model.name": Key("choice", choices=MODELS),
    "model.embedding_dim": Key("int", 1),
    "model.net.num_blocks": Key("int", 1),
    "model.net.num_heads": Key("int", 1),
    "model.net.num_layers": Key("int", 1),
    "model.net.hidden_dim": Key("int", 1, null=True),
    "model.optimizer.lr": Key("number", 0, strict=True),
    "model.optimizer.weight_decay": Key("number", 0),
    "eval.remove_seen": Key("bool"),
    "eval.repeat_target": Key("choice", choices=("rank", "remove")),
}


def check_key(cfg: DictConfig, key: str, spec: Key) -> None:
    """Raise ConfigError when the value at `key` does not fit `spec`; an absent key passes."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node:
        return
    v = OmegaConf.select(cfg, key)
    if spec.kind == "band" or (v is None and spec.null) or (spec.mapping and isinstance(v, DictConfig)):
        return
    null = " or null" if spec.null else ""
    if spec.kind == "choice":
        if v in spec.choices and not (isinstance(v, bool) and not any(isinstance(c, bool) for c in spec.choices)):
            return
        shown = tuple(str(c).lower() if isinstance(c, bool) else c for c in spec.choices)
        raise ConfigError(f"{key} must be one of {shown}{null}, got {v!r}")
    if spec.kind == "bool":
        if not isinstance(v, bool):
            raise ConfigError(f"{key} must be true or false, got {v!r}")
        return
    if spec.kind == "int":
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < spec.low:
            raise ConfigError(f"{key} must be an integer >= {spec.low}{null}, got {v!r}")
        if spec.high is not None and v > spec.high:
            raise ConfigError(f"{key} must be an integer <= {spec.high}{null}, got {v!r}")
        return
    # number
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or v != v or (v <= spec.low if spec.strict else v < spec.low):
        raise ConfigError(f"{key} must be a number {'>' if spec.strict else '>='} {spec.low}{null}, got {v!r}")
    if spec.high is not None and v >= spec.high:
        raise ConfigError(f"{key} must be a number below {spec.high}{null}, got {v!r}")


def help_lines() -> str:
    """The top-level keys of the schema, one line each, for `--help`."""
    def kind(s: Key) -> str:
        if s.choices:
            return " | ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in s.choices) + ": "
        return ""

    top = [(k, s) for k, s in SCHEMA.items() if "." not in k and s.help]
    return "\n".join(f"  {k:<14}{kind(s)}{s.help}" for k, s in top)


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first bad value."""
    if OmegaConf.is_missing(cfg.data, "path"):
        raise ConfigError(f"data.path is required for data={cfg.data.name} (data.path=/path/to/interactions)")
    Band(cfg.lower_freq, cfg.upper_freq)  # BandError (a ConfigError) for a bad bound
    for key, spec in SCHEMA.items():
        if not key.startswith("model.optimizer."):
            check_key(cfg, key, spec)  # the optimiser's values after its class (check_optimizer)
    threads = cfg.get("threads")
    if isinstance(threads, DictConfig) and set(threads) - {"train", "eval"}:
        raise ConfigError(f"threads takes train and eval, got {sorted(set(threads) - {'train', 'eval'})}")
    net_maxlen = OmegaConf.select(cfg, "model.net.maxlen")
    if net_maxlen is not None and net_maxlen != cfg.data.maxlen:  # positions the windows never fill, or too few
        raise ConfigError(f"model.net.maxlen={net_maxlen} differs from data.maxlen={cfg.data.maxlen}; set data.maxlen "
                          "(the encoder follows it)")
    ks = list(cfg.eval.ks)
    if 10 not in ks:
        raise ConfigError(f"eval.ks must include 10 (the results and report use @10), got {ks}")
    check_monitor(cfg, ks)
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
    check_key(cfg, "monitor.mode", Key("choice", choices=("max",)))  # every ranking metric: higher is better


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
    for key in ("model.optimizer.lr", "model.optimizer.weight_decay"):
        check_key(cfg, key, SCHEMA[key])


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
