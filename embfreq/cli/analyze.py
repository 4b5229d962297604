"""`python -m embfreq.analyze RUN_DIR [--which best|last] [--accelerator auto|cpu|gpu]`: redo a run's per-item
analysis from its checkpoint.

Rebuilds the model from the run's config.yaml and checkpoint, tests it with full ranking, and rewrites
items.csv, the figures and the "analysis" entry of metrics.json (the rest of metrics.json is kept).
`which=X` and `accelerator=X` are the same as `--which X` and `--accelerator X`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import zipfile
from pathlib import Path

from embfreq.training.threads import configure_openmp

configure_openmp()  # before torch loads libgomp (the test pass runs on all cores)

import yaml  # noqa: E402

from embfreq.cli.args import ArgumentParser, error, key_values
from embfreq.training.device import uses_gpu
from embfreq.errors import UserError, first_line
from embfreq.io import write_json
from embfreq.training.run_dir import CONFIG, METRICS, checkpoint_path, lock_run_dir, read_metrics, restore, run_config

WHICH = ("best", "last")
ACCELERATORS = ("auto", "cpu", "gpu")


def _precision(cfg, accelerator: str) -> str:
    """The run's precision on a GPU (same numbers as its own test); mixed precision is GPU-only here."""
    return str(cfg.trainer.get("precision", "32-true")) if uses_gpu(accelerator) else "32-true"


def run_test_pass(model, dm, cfg, run_dir: Path, accelerator: str = "auto") -> dict:
    """Full-ranking test pass; returns the model's per-item metrics (count/hr/recall/ndcg)."""
    import pytorch_lightning as pl
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        trainer = _trainer(pl, cfg, run_dir, accelerator)
    except MisconfigurationException as e:  # e.g. accelerator=gpu on a machine without one
        raise UserError(f"accelerator={accelerator}: {first_line(e)}") from None
    trainer.test(model, datamodule=dm, verbose=False)
    per_item = getattr(model, "test_per_item", None)
    if per_item is None:
        raise RuntimeError("the test pass produced no per-item metrics")
    return per_item


def _trainer(pl, cfg, run_dir: Path, accelerator: str):
    return pl.Trainer(
        accelerator=accelerator,
        devices=1,  # one process: the per-item sums are complete without a DDP reduce
        precision=_precision(cfg, accelerator),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,  # the loaders bring their own batch sampler
        default_root_dir=str(run_dir),  # nothing is written with logger and checkpoints off
    )


def analyze(run_dir: str | Path, which: str = "best", accelerator: str = "auto") -> dict:
    """Regenerate the analysis of one run; returns the new "analysis" entry."""
    run_dir = Path(run_dir)
    # Cheap checks first: a wrong path should fail in a blink, not after importing Lightning.
    for key, value, choices in (("which", which, WHICH), ("accelerator", accelerator, ACCELERATORS)):
        if value not in choices:
            raise UserError(f"{key}={value}: expected one of {', '.join(choices)}")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a run directory (no such directory)")
    if not (run_dir / CONFIG).is_file():
        raise UserError(f"{run_dir}: not a run directory (no {CONFIG})")
    metrics = read_metrics(run_dir)  # a corrupt one is refused here, not overwritten at the end
    if metrics.get("status") == "failed" and str(metrics.get("error", "")).startswith("training diverged"):
        raise UserError(f"{run_dir}: the run failed ({first_line(ValueError(metrics['error']))}); "
                        "its checkpoints are no result to analyze")
    ckpt = checkpoint_path(run_dir, which)
    # torch.save writes a zip; a truncated file lacks its central directory (read from the end only).
    if not zipfile.is_zipfile(ckpt):
        raise UserError(f"{ckpt}: unreadable checkpoint (not a complete torch zip archive; truncated?)")
    lock = lock_run_dir(run_dir)  # no other process writes here meanwhile; a killed analyze's temp files go
    try:
        return _analyze_locked(run_dir, which, accelerator, metrics)
    finally:
        lock.release()


def _analyze_locked(run_dir: Path, which: str, accelerator: str, metrics: dict) -> dict:
    _quiet()
    from embfreq.analysis.per_run.run_analysis import analyze_model, run_title

    try:
        cfg, dm, model = _restore_checked(run_dir, which, metrics)
    except yaml.YAMLError as e:
        raise UserError(f"{run_dir}: unreadable {CONFIG} ({first_line(e)})") from None
    per_item = run_test_pass(model, dm, cfg, run_dir, accelerator)
    items = model.items  # the band the checkpoint's model was built with; the names from its config
    title = run_title(cfg.model.name, cfg.data.name, items.lower_freq, items.upper_freq,
                      getattr(items, "neighbours", items.strategy))
    summary = analyze_model(model, dm, per_item, run_dir, title=title)
    summary["checkpoint"] = which
    # Re-read so that a concurrent writer of other keys is not undone by a stale copy.
    metrics = read_metrics(run_dir) or metrics
    if "status" not in metrics:  # a killed or unfinished run: its analysis must not read as a result
        metrics = {"status": "unfinished", "reason": f"no result of training; analysis of the {which} checkpoint only",
                   **metrics}
    metrics["analysis"] = summary
    write_json(run_dir / METRICS, metrics)
    return summary


def _restore_checked(run_dir: Path, which: str, metrics: dict):
    """`restore`, with the run's record checked first: its config.yaml and the data it names must be
    what the run trained on, else items.csv and the figures would describe other data than metrics.json."""
    from embfreq.training.integrity import check_config_unchanged, check_data_unchanged, read_run_state

    state = read_run_state(run_dir)
    check_config_unchanged(run_dir, run_config(run_dir), state, "analyze")
    return restore(run_dir, which, check=lambda cfg, dm: check_data_unchanged(
        run_dir, dm.data.fingerprint(), dm.num_items, state, metrics, "analyze"))


def _fmt(x, spec: str = ".4f") -> str:
    return "n/a" if x is None else format(x, spec)


def summary_line(s: dict) -> str:
    line = (f"embfreq: spearman(freq, {s.get('norm', 'norm')})={_fmt(s.get('spearman_freq_norm'))} "
            f"(freq>=1: {_fmt(s.get('spearman_freq_norm_trained'))}), "
            f"never-trained items={s.get('never_trained_items')}/{s.get('num_items')}, "
            f"norm threshold={_fmt(s.get('norm_threshold'))}")
    if s.get("norm_threshold") is not None:
        line += (f" (balanced acc {_fmt(s.get('threshold_balanced_accuracy'), '.3f')}, "
                 f"{s.get('items_below_threshold')} items below)")
    return line


def _quiet() -> None:
    """Keep Lightning's start-up chatter and known harmless warnings from burying the summary."""
    import warnings

    import pytorch_lightning  # noqa: F401  (its import sets its logger to INFO; lower it afterwards)

    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # torch's pytree API change, seen inside Lightning
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="embfreq-analyze",
        description="Rebuild a run's model from its config.yaml and checkpoint, test it with full ranking, and\n"
                    "rewrite its items.csv, figures and the \"analysis\" entry of metrics.json.",
        epilog="examples:\n  embfreq-analyze outputs/<date>/<time>_sasrec_beauty\n"
               "  embfreq-analyze outputs/<date>/<time>_sasrec_beauty --which last --accelerator cpu"
               "   (or which=last accelerator=cpu)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="*", metavar="RUN_DIR", help="a run directory written by embfreq-train")
    p.add_argument("--which", default="best", metavar="{best,last}", help="checkpoint to analyse (default: best)")
    p.add_argument("--accelerator", default="auto", metavar="{auto,cpu,gpu}",
                   help="Lightning accelerator of the test pass (default: auto)")
    return p


def main(argv: list[str] | None = None) -> int:
    """`embfreq-analyze` and `python -m embfreq.analyze`; `argv` as a shell passes it (default: sys.argv[1:])."""
    argv = key_values(sys.argv[1:] if argv is None else list(argv),
                      {"which": "--which", "accelerator": "--accelerator", "run_dir": "--run-dir"})
    try:
        p = parser()
        p.add_argument("--run-dir", dest="run_dir_key", help=argparse.SUPPRESS)  # run_dir=PATH, a path with =
        args = p.parse_args(argv)
        dirs = args.run_dir + ([args.run_dir_key] if args.run_dir_key else [])
        if not dirs:
            raise UserError("no run dir: python -m embfreq.analyze RUN_DIR [--which best|last]")
        if len(dirs) > 1:
            raise UserError(f"one run dir only, got {len(dirs)}: {' '.join(dirs)}")
        summary = analyze(dirs[0], args.which, args.accelerator)
    except UserError as e:  # one line, no traceback, like embfreq.train
        return error(e)
    print(summary_line(summary))
    print(f"embfreq: wrote items.csv, figures and metrics.json analysis in {dirs[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
