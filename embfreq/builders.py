"""The objects of a run, built from its config: the DataModule, the model with its optimiser, threads."""

from __future__ import annotations


from omegaconf import DictConfig, OmegaConf

from embfreq.errors import ConfigError, first_line
from embfreq.threads import usable_cpus

# run configs from before the optimiser became a config object name it inside model.net
_LEGACY_OPTIMIZERS = {"adam": "torch.optim.Adam", "adamw": "torch.optim.AdamW"}


def build_datamodule(cfg: DictConfig):
    from embfreq.data.datamodule import RecDataModule

    load_args = OmegaConf.to_container(cfg.data, resolve=True)
    load_args.pop("name", None)
    return RecDataModule(
        load_args,
        cache_dir=cfg.cache_dir,
        sampling=cfg.model.sampling,
        maxlen=int(cfg.model.net.get("maxlen", 1)),
        batch_size=int(cfg.model.batch_size),
        eval_batch_size=int(cfg.eval.batch_size),
        num_workers=int(cfg.num_workers),
        bucketing=bool(cfg.bucketing),
        pair_sampling=str(cfg.model.get("pair_sampling", "user")),
        seed=int(cfg.seed),
    )


def optimizer_configs(cfg: DictConfig) -> tuple[dict | None, dict | None]:
    """(optimizer, scheduler) as plain `_partial_` configs; an old run's `model.net.optimizer/lr/
    weight_decay` become the optimizer they named."""
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    if "optimizer" in net or "lr" in net:
        return ({"_target_": _LEGACY_OPTIMIZERS.get(net.get("optimizer", "adam"), net.get("optimizer")),
                 "_partial_": True, "lr": net.get("lr", 1e-3), "weight_decay": net.get("weight_decay", 0.0)}, None)
    opt = cfg.model.get("optimizer")
    sched = cfg.model.get("scheduler")
    to_dict = lambda c: None if c is None else OmegaConf.to_container(c, resolve=True)  # noqa: E731
    return to_dict(opt), to_dict(sched)


def _instantiate(what: str, spec: dict | None):
    import hydra.utils

    if spec is None:
        return None
    try:
        return hydra.utils.instantiate(spec)
    except Exception as e:  # unknown class, bad key: one line naming the config key
        cause = e.__cause__ or e
        raise ConfigError(f"model.{what}: {type(cause).__name__}: {first_line(cause)}"
                          ) from None


def build_model(cfg: DictConfig, dm):
    import hydra.utils
    from hydra.errors import InstantiationException

    opt_spec, sched_spec = optimizer_configs(cfg)
    optimizer, scheduler = _instantiate("optimizer", opt_spec), _instantiate("scheduler", sched_spec)
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    for legacy in ("optimizer", "lr", "weight_decay"):
        net.pop(legacy, None)
    extra = {"num_users": dm.num_users} if cfg.model.sampling == "pair" else {}
    try:
        return hydra.utils.instantiate(
            net,
            _convert_="all",
            num_items=dm.num_items,
            item_freq=dm.item_freq,
            operator=dm.operator,
            lower_freq=cfg.lower_freq,
            upper_freq=cfg.upper_freq,
            neighbours=cfg.neighbours,
            item_table=OmegaConf.to_container(cfg.item_table, resolve=True) if cfg.get("item_table") else None,
            optimizer=optimizer,
            scheduler=scheduler,
            ks=tuple(cfg.eval.ks),
            remove_seen=bool(cfg.eval.remove_seen),
            repeat_target=str(cfg.eval.get("repeat_target", "rank")),
            **extra,
        )
    except InstantiationException as e:
        # the constructors check their arguments with ValueError/TypeError: a bad setting, one line
        if isinstance(e.__cause__, (ValueError, TypeError)):
            raise ConfigError(f"model {cfg.model.name}: {e.__cause__}") from None
        raise


def torch_threads(cfg: DictConfig) -> int | None:
    """Threads per job: `threads` if set, else the cores this process may use (a SLURM or cgroup
    CPU set, not the whole node) divided among parallel joblib jobs; None leaves torch's default."""
    if cfg.get("threads"):
        return int(cfg.threads)
    try:
        from hydra.core.hydra_config import HydraConfig

        launcher = HydraConfig.get().launcher
        if "joblib" in str(launcher.get("_target_", "")):
            n_jobs = int(launcher.get("n_jobs") or 1)
            n_jobs = usable_cpus() if n_jobs < 0 else n_jobs
            return max(1, usable_cpus() // max(1, n_jobs))
    except Exception:
        pass
    return None


def build_callbacks(cfg: DictConfig, ckpt_dir) -> tuple[list, object, object | None]:
    """(callbacks, the best-checkpoint callback, the early-stopping callback or None) from
    `callbacks.*`; every ModelCheckpoint writes into `ckpt_dir`."""
    import hydra.utils
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    specs = {k: v for k, v in (cfg.get("callbacks") or {}).items() if v is not None}
    if "model_checkpoint" not in specs:
        raise ConfigError("callbacks.model_checkpoint is required: its best checkpoint is the one tested")
    built = {}
    for name, spec in specs.items():
        try:
            cb = hydra.utils.instantiate(spec)
        except Exception as e:
            cause = e.__cause__ or e
            raise ConfigError(f"callbacks.{name}: {type(cause).__name__}: {first_line(cause)}"
                              ) from None
        if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
            cb.dirpath = str(ckpt_dir)
        built[name] = cb
    best, stop = built["model_checkpoint"], built.get("early_stopping")
    if not isinstance(best, ModelCheckpoint) or best.monitor is None:
        raise ConfigError("callbacks.model_checkpoint must be a ModelCheckpoint with a monitor")
    if stop is not None and not isinstance(stop, EarlyStopping):
        raise ConfigError("callbacks.early_stopping must be an EarlyStopping (or null)")
    return list(built.values()), best, stop


def build_loggers(cfg: DictConfig, run_dir) -> list:
    """The `logger.*` loggers, each writing under the run dir."""
    import hydra.utils

    out = []
    for name, spec in (cfg.get("logger") or {}).items():
        if spec is None:
            continue
        try:
            out.append(hydra.utils.instantiate(spec, save_dir=str(run_dir)))
        except Exception as e:
            cause = e.__cause__ or e
            raise ConfigError(f"logger.{name}: {type(cause).__name__}: {first_line(cause)}"
                              ) from None
    return out
