"""The objects of a run, built from its config: the DataModule, the model with its optimiser, threads."""

from __future__ import annotations


from omegaconf import DictConfig, OmegaConf

from embfreq.errors import ConfigError, UserError, first_line
from embfreq.training.threads import phase_threads, usable_cpus

def build_datamodule(cfg: DictConfig):
    """`data` instantiated: the RecDataModule with its file, preprocessing and batches."""
    import hydra.utils
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(cfg.data, _convert_="all")
    except InstantiationException as e:  # the DataModule checks its arguments: a bad setting, one line
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        if isinstance(e.__cause__, (ValueError, TypeError)):
            raise ConfigError(f"data: {first_line(e.__cause__)}") from None
        raise


def _instantiate(what: str, spec):
    import hydra.utils

    if spec is None:
        return None
    try:
        return hydra.utils.instantiate(spec)
    except Exception as e:  # unknown class, bad key: one line naming the config key
        cause = e.__cause__ or e
        raise ConfigError(f"model.{what}: {type(cause).__name__}: {first_line(cause)}"
                          ) from None


def neighbours_mode(cfg: DictConfig) -> str:
    """The run's neighbour mode (all | outside_band), recorded in metrics.json; "all" for a table
    that uses no neighbours (reports name those by their strategy)."""
    return str(OmegaConf.select(cfg, "item_table.neighbours", default="all"))


def build_item_table(cfg: DictConfig, dm):
    """`item_table` instantiated for the data: the band (`lower_freq`, `upper_freq`), the item count,
    frequencies and graph from the DataModule, the width `model.embedding_dim`, padding row 0."""
    import hydra.utils

    spec = OmegaConf.to_container(cfg.item_table, resolve=True)
    name = spec.pop("name", None)  # a label, not an argument
    try:
        return hydra.utils.instantiate(spec, num_embeddings=dm.num_items + 1,
                                       embedding_dim=int(cfg.model.embedding_dim), item_freq=dm.item_freq,
                                       operator=dm.operator, lower_freq=cfg.lower_freq, upper_freq=cfg.upper_freq,
                                       padding_idx=0)
    except Exception as e:  # the tables check their arguments: a bad setting, one line naming it
        cause = e.__cause__ or e
        if isinstance(cause, UserError):
            raise cause from None
        raise ConfigError(f"item_table {name}: {first_line(cause)}") from None


def build_model(cfg: DictConfig, dm):
    """`model` instantiated: the LightningModule, given its item table (`build_item_table`), the
    user count for MF-BPR, and the run's evaluation settings."""
    import hydra.utils
    from hydra.errors import InstantiationException

    spec = OmegaConf.to_container(cfg.model, resolve=True)
    name = spec.pop("name", None)  # a label, not an argument
    spec.pop("embedding_dim", None)  # the item table's width (and the encoder's, by interpolation)
    optimizer = _instantiate("optimizer", spec.pop("optimizer", None))
    scheduler = _instantiate("scheduler", spec.pop("scheduler", None))
    net = spec.pop("net", None)
    if net is not None:  # a _partial_ encoder: the model builds it after its item table
        net = {"net": _instantiate("net", net)}
    extra = {"num_users": dm.num_users} if cfg.data.sampling == "pair" else {}
    item_table = build_item_table(cfg, dm)  # drawn first: the random initialisation of the published runs
    try:
        return hydra.utils.instantiate(
            spec,
            _convert_="all",
            **(net or {}),
            item_table=item_table,
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
            raise ConfigError(f"model {name}: {e.__cause__}") from None
        raise


def torch_threads(cfg: DictConfig) -> int | None:
    """Threads per job: `threads` if set to a number, else the cores this process may use (a SLURM or
    cgroup CPU set, not the whole node) divided among parallel joblib jobs; None when neither applies."""
    if isinstance(cfg.get("threads"), int):
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


def run_threads(cfg: DictConfig) -> dict:
    """The run's thread count per phase, {"train", "eval", "source"} (`embfreq.training.threads.phase_threads`):
    `threads=N` sets both; `threads.train` / `threads.eval` each; otherwise training at 1 thread and
    evaluation on this job's share of the cores (a joblib sweep divides them among its jobs)."""
    setting = cfg.get("threads")
    share = torch_threads(cfg) if not isinstance(setting, int) else setting
    return phase_threads(setting, share or usable_cpus())


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
