"""Copy the small result files of finished sweep runs into a results page, then build its report.

    python scripts/collect_results.py SWEEP_DIR [SWEEP_DIR ...] --to docs/results/bands

Per run: metrics.json, config.yaml and test_users.npz (no checkpoints, no TensorBoard), under
<to>/runs/<sweep dir name>/<seed dir>/<run dir>. Runs without metrics.json (unfinished) and runs
stopped on purpose ("status": "interrupted", e.g. a sweep cut short) are left out, and listed. A
destination that already holds another run (two sweeps with the same parent/name) copies nothing.
Then `python -m embfreq.report <to> --out <to>` regenerates the tables and figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

FILES = ("metrics.json", "config.yaml", "test_users.npz")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", nargs="+", type=Path)
    ap.add_argument("--to", type=Path, required=True)
    args = ap.parse_args()
    plan = {}  # dest -> run; checked whole before anything is copied, so a clash copies nothing
    for sweep in args.sweeps:
        for m in sorted(sweep.rglob("metrics.json")):
            run = m.parent
            if any(p.startswith(".") for p in run.relative_to(sweep).parts):
                continue
            if json.loads(m.read_text()).get("status") == "interrupted":
                print(f"left out (interrupted): {run}")
                continue
            dest = args.to / "runs" / sweep.parent.name / sweep.name / run.relative_to(sweep)
            if dest in plan:
                return clash(f"{plan[dest]} and {run} would both be copied to {dest}")
            if (dest / "metrics.json").is_file() and (dest / "metrics.json").read_bytes() != m.read_bytes():
                return clash(f"{dest} already holds another run than {run}")
            plan[dest] = run
    for dest, run in plan.items():
        dest.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, dest / name)
    print(f"copied {len(plan)} runs into {args.to / 'runs'}")
    from embfreq.cli.report import main as report

    return report([str(args.to), "--out", str(args.to)])


def clash(why: str) -> int:
    print(f"collect_results: nothing copied: {why} (give the sweeps distinct parent/name dirs)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
