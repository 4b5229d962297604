"""`python -m embfreq.train` (`embfreq-train`): the overrides checked, then Hydra runs one job per run
(embfreq.training.train.run_job), or a sweep of them; a user error is one line and a non-zero exit."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from embfreq.training.threads import configure_openmp

configure_openmp()  # before torch loads libgomp: a short spin-wait (OMP_WAIT_POLICY=PASSIVE on a shared machine)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import embfreq.conf  # noqa: E402,F401  (registers the resolver of the run dir names)
from embfreq.errors import UserError  # noqa: E402
from embfreq.training import job  # noqa: E402
from embfreq.training.job import RESERVE, refuse_finished  # noqa: E402
from embfreq.training.resume import resume_config  # noqa: E402
from embfreq.training.run_dir import LOCK  # noqa: E402
from embfreq.training.train import run_job  # noqa: E402


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


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
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
        if fresh and not job.training_started:
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
        refuse_finished(target)  # before Hydra rewrites the run's .hydra/ record
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
    from embfreq.cli.args import check_train_overrides, error, open_mappings
    from embfreq.training import sweep

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
