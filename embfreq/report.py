"""`python -m embfreq.report <sweep dir | run dirs...> [--out DIR]`: tables and figures of a sweep.

Writes runs.csv (per run), summary.csv (per configuration: mean ± std over seeds, paired bootstrap
CIs of the change against the baseline), buckets.csv, summary.md and the figures into the sweep dir
(or --out), and prints the results table. Several sweep dirs merge into one report (with --out).
"""

from __future__ import annotations

import argparse
import os
import sys

from embfreq.errors import UserError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m embfreq.report", description=__doc__.splitlines()[0].split(": ", 1)[1])
    ap.add_argument("paths", nargs="+", help="a sweep dir (searched for runs), or run dirs")
    ap.add_argument("--out", default=None, help="where to write the report (default: the sweep dir, "
                                                 "or the shared parent of the run dirs)")
    args = ap.parse_args(argv)
    from embfreq.analysis.sweep_report import make_report

    try:
        report = make_report(args.paths, args.out)
    except UserError as e:
        print(f"embfreq: error: {e}", file=sys.stderr)
        return 2
    try:
        print(report.summary, end="")
        print(f"\nwrote {len(report.files)} files to {report.out_dir}: " + ", ".join(f.name for f in report.files))
        sys.stdout.flush()
    except BrokenPipeError:  # piped into `head`: the files are written, the rest of the table is not wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
