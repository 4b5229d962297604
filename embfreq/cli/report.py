"""`python -m embfreq.report PATHS... [out=DIR]`: tables and figures of a sweep.

Writes runs.csv (per run), summary.csv (per configuration: mean ± std over seeds, paired bootstrap
CIs of the change against the baseline), buckets.csv, summary.md and the figures into the sweep dir
(or out=DIR), and prints the results table. Several sweep dirs merge into one report (with out=).
A Hydra app (embfreq/conf/report.yaml): bare arguments are paths=[...], --out DIR is out=DIR.
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from embfreq.cli.args import error, run_app
from embfreq.errors import UserError


def report(paths: list[str], out: str | None = None) -> None:
    """Write the report of the runs under `paths` and print its table and what it wrote."""
    from embfreq.analysis.sweep.sweep_report import make_report

    rep = make_report(paths, out)
    try:
        print(rep.summary, end="")
        print(f"\nwrote {len(rep.files)} files to {rep.out_dir}: " + ", ".join(f.name for f in rep.files))
        sys.stdout.flush()
    except BrokenPipeError:  # piped into `head`: the files are written, the rest of the table is not wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _paths(cfg: DictConfig) -> list[str]:
    paths = None if OmegaConf.is_missing(cfg, "paths") else cfg.paths
    paths = [paths] if isinstance(paths, str) else list(paths or [])  # paths=DIR is one path
    if not paths:
        raise UserError("no paths: give sweep dirs or run dirs (python -m embfreq.report DIR... [out=DIR])")
    return [str(p) for p in paths]


@hydra.main(version_base="1.3", config_path="../conf", config_name="report")
def app(cfg: DictConfig) -> None:
    try:
        report(_paths(cfg), cfg.out)
    except UserError as e:  # one line, no traceback; SystemExit passes through Hydra
        sys.exit(error(e))


def main(argv: list[str] | None = None) -> int:
    """`embfreq-report` and `python -m embfreq.report`; `argv` as a shell passes it (default: sys.argv[1:])."""
    return run_app(app, argv, key="paths", many=True, flags={"--out": "out"})


if __name__ == "__main__":
    sys.exit(main())
