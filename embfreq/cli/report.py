"""`python -m embfreq.report PATH [PATH...] [--out DIR]`: tables and figures of a sweep.

Writes runs.csv (per run), summary.csv (per configuration: mean ± std over seeds, paired bootstrap
CIs of the change against the baseline), buckets.csv, summary.md and the figures into the sweep dir
(or out=DIR), and prints the results table. Several sweep dirs merge into one report (with out=).
`out=DIR` is the same as `--out DIR`.
"""

from __future__ import annotations

import argparse
import os
import sys

from embfreq.cli.args import ArgumentParser, error, key_values
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


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="embfreq-report",
        description="Read the runs under sweep dirs or run dirs; write runs.csv, summary.csv (mean ± std over\n"
                    "seeds, paired bootstrap CIs against the baseline), buckets.csv, summary.md and the figures;\n"
                    "print the results table.",
        epilog="examples:\n  embfreq-report docs/results/bands                    # writes into the sweep dir\n"
               "  embfreq-report multirun/<date>/<time> more/sweep --out docs/results/x   (or out=docs/results/x)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="sweep dirs (searched for runs) or run dirs; several merge into one report")
    p.add_argument("--out", metavar="DIR",
                   help="where to write the report (default: the sweep dir, or the shared parent of the run dirs)")
    return p


def main(argv: list[str] | None = None) -> int:
    """`embfreq-report` and `python -m embfreq.report`; `argv` as a shell passes it (default: sys.argv[1:])."""
    try:
        args = parser().parse_args(key_values(sys.argv[1:] if argv is None else list(argv), {"out": "--out"}))
        if not args.paths:
            raise UserError("no paths: give sweep dirs or run dirs (python -m embfreq.report DIR... [--out DIR])")
        report(args.paths, args.out)
    except UserError as e:  # one line, no traceback
        return error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
