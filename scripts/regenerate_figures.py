"""Regenerate every committed figure under docs/results from committed files, in one command.

    python scripts/regenerate_figures.py            # all jobs, in place (about 6 minutes on 2 cores)
    python scripts/regenerate_figures.py bands      # only the jobs whose folder contains "bands"
    python scripts/regenerate_figures.py --list     # the jobs and their commands, nothing run

Each job is the command its results page documents (its README's command block): the sweep report
(`python -m embfreq.report`, which also rewrites the page's tables, summary.md included) or the
RecBoard curve plot (`scripts/recboard_side_by_side.py plot`, curves.png/pdf from curves.csv).
Run from anywhere; paths are relative to the repository root, as in the pages' commands (summary.md
records the report's output path).

Afterwards, in a git checkout, two checks (exit 1 if either fails):
- the figures written are exactly the committed figures under docs/results (`git ls-files`): no
  committed figure that no job makes, no figure made that is not committed;
- the tables and pages the jobs rewrote are byte-identical to the committed ones (only figures may
  change: a table that changes means the results changed, not the style).

Also the validation curves of a page from its val_curves.csv (scripts/validation_curves.py) and
docs/figures/*_norm and *_panels, the per-run figures of two committed runs, from their committed
items.csv.gz (scripts/item_figures.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ("docs/results", "docs/figures")
FIGURE_SUFFIXES = (".png", ".pdf")

# (folder, kind, arguments): the commands of the results pages' README blocks
JOBS = (
    ("docs/results/bands", "report", ["docs/results/bands", "--out", "docs/results/bands"]),
    ("docs/results/item_tables", "report", ["docs/results/item_tables/runs", "out=docs/results/item_tables"]),
    # the last step of scripts/collect_results.py, which wrote this page
    ("docs/results/epoch_cap_sasrec_beauty_1000", "report",
     ["docs/results/epoch_cap_sasrec_beauty_1000", "--out", "docs/results/epoch_cap_sasrec_beauty_1000"]),
    ("docs/results/epoch_cap_400_bands", "report",
     ["docs/results/epoch_cap_400_bands", "out=docs/results/epoch_cap_400_bands"]),
    ("docs/results/epoch_cap_400_bands", "val_curves",
     ["--from-csv", "docs/results/epoch_cap_400_bands/val_curves.csv", "--out", "docs/results/epoch_cap_400_bands",
      "--cap", "200"]),
    ("docs/results/fragile_cells_seeds_4_5", "report",
     ["docs/results/bands/runs/bands_beauty_1000", "docs/results/fragile_cells_seeds_4_5/runs", "--out",
      "docs/results/fragile_cells_seeds_4_5"]),
    ("docs/figures", "item_figures",
     ["docs/results/fragile_cells_seeds_4_5/runs/fragile/s4_sasrec/0_sasrec_beauty_1000_baseline_all_s4", "--out",
      "docs/figures/beauty1000_sasrec"]),
    ("docs/figures", "item_figures",
     ["docs/results/fragile_cells_seeds_4_5/runs/fragile/s4_mf/0_mf_bpr_beauty_1000_baseline_all_s4", "--out",
      "docs/figures/beauty1000_mf"]),
    ("docs/results/recboard_sasrec", "curves", ["docs/results/recboard_sasrec"]),
    ("docs/results/recboard_mf_bpr", "curves",
     ["docs/results/recboard_mf_bpr", "MF-BPR · Beauty · same split and settings, seed 1"]),
    ("docs/results/recboard_mf_bpr/e1000", "curves",
     ["docs/results/recboard_mf_bpr/e1000", "MF-BPR · Beauty · same split, seed 1, 1000 epochs"]),
)


SCRIPTS = {"curves": ["scripts/recboard_side_by_side.py", "plot"],
           "val_curves": ["scripts/validation_curves.py"],   # validation curves from their committed CSV
           "item_figures": ["scripts/item_figures.py"]}       # a run's norm/panel figures from its items table
# the figures each kind of job writes into its folder (a report's: those its summary.md lists)
STEMS = {"curves": lambda args: ["curves"], "val_curves": lambda args: ["val_curves"],
         "item_figures": lambda args: [Path(args[-1]).name + "_norm", Path(args[-1]).name + "_panels"]}


def command(kind: str, args: list[str]) -> list[str]:
    if kind == "report":
        return [sys.executable, "-m", "embfreq.report", *args]
    return [sys.executable, *SCRIPTS[kind], *args]


def committed(under: tuple[str, ...] = RESULTS) -> list[str]:
    """The committed figures (PNG, PDF) under `under`, repository-relative, sorted."""
    out = subprocess.run(["git", "ls-files", "--", *under], cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted(p for p in out.stdout.splitlines() if p.endswith(FIGURE_SUFFIXES))


def figures_in(folder: str) -> list[str]:
    """The figures directly in `folder` (a job writes its figures there, not below)."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).iterdir()
                  if p.is_file() and p.suffix in FIGURE_SUFFIXES)


def run(jobs) -> list[str]:
    """Run the jobs; the figures they wrote (files whose time changed), repository-relative."""
    made: list[str] = []
    for folder, kind, args in jobs:
        t0 = time.time()
        before = {p: (ROOT / p).stat().st_mtime_ns for p in figures_in(folder)}
        cmd = command(kind, args)
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"regenerate_figures: {folder}: exit {p.returncode}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        new = [f for f in figures_in(folder) if before.get(f) != (ROOT / f).stat().st_mtime_ns]
        print(f"  {len(new)} figures in {time.time() - t0:.0f} s", flush=True)
        made += new
    return sorted(made)


def changed_tables(folders) -> list[str]:
    """Files under the job folders that differ from the committed ones, figures aside."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *folders], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    paths = [line[3:] for line in out.stdout.splitlines()]
    return [p for p in paths if not p.endswith(FIGURE_SUFFIXES)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", help="run only the jobs whose folder contains one of these")
    ap.add_argument("--list", action="store_true", help="print the jobs, run nothing")
    args = ap.parse_args(argv)
    jobs = [j for j in JOBS if not args.only or any(s in j[0] for s in args.only)]
    if args.list:
        for folder, kind, a in jobs:
            print(f"{folder}: {' '.join(command(kind, a)[1:])}")
        return 0
    made = run(jobs)
    folders = [f for f, _, _ in jobs]
    # the committed figures of the folders run (a folder's figures, not those of a job folder below it)
    expected = [p for p in committed() if str(Path(p).parent) in folders]
    ok = True
    if made != expected:
        ok = False
        for p in sorted(set(expected) - set(made)):
            print(f"committed but not made: {p}")
        for p in sorted(set(made) - set(expected)):
            print(f"made but not committed: {p}")
    if not args.only:
        stray = sorted(set(committed()) - set(made))
        if stray:
            ok = False
            print("committed figures under docs/results that no job makes: " + ", ".join(stray))
    tables = changed_tables(folders)
    if tables:
        ok = False
        print("tables or pages changed (they must not): " + ", ".join(tables))
    print(f"{len(made)} figures regenerated" + ("" if ok else "; CHECKS FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
