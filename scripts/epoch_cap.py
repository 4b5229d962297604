"""Print what a longer training cap changes (the epoch-cap tables of docs/results/epoch_cap_*).

Each run under LONG against the run under SHORT with the same model, data, seed, band and item table,
and head to head within each cap.

    python scripts/epoch_cap.py docs/results/item_tables/runs docs/results/bands/runs \
        --long docs/results/epoch_cap_sasrec_beauty_1000/runs

The two runs of a pair must differ only in trainer.max_epochs (and in paths or threads) among the config keys
both have; the gaps are paired
bootstraps over the test users (`embfreq.analysis.sweep.stats.paired_change`).
"""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path

from embfreq.analysis.per_run.per_user import FILE, per_user_metric, read_test_users
from embfreq.analysis.sweep.stats import paired_change
from embfreq.analysis.sweep.sweep_runs import find_run_dirs, read_run
from embfreq.errors import UserError

CAP = "trainer.max_epochs"


def _key(r) -> tuple:
    return (r.model, r.data, r.seed, r.lower_freq, r.upper_freq, r.neighbours)


def _same_but_cap(a: dict, b: dict) -> bool:
    # keys both configs have: older runs' config.yaml lacks some later-added keys (callbacks, threads)
    keys = (set(a) & set(b)) - {CAP, "threads"}  # threads: speed, not the protocol
    return all(a.get(k) == b.get(k) for k in keys if not any(w in k for w in ("dir", "path", "cache", "resume")))


def pairs(short_paths, long_paths) -> list[tuple]:
    """(label, short row, long row), in the long runs' order; exits with one line when a long run has
    no or several matching short runs."""
    short = [read_run(d) for d in find_run_dirs(short_paths)]
    out = []
    for lr in (read_run(d) for d in find_run_dirs(long_paths)):
        if not lr.ok:
            sys.exit(f"epoch_cap: {lr.run_dir} is not a finished run (status {lr.status})")
        match = [s for s in short if s.ok and _key(s) == _key(lr) and _same_but_cap(s.config, lr.config)]
        if len(match) != 1:
            sys.exit(f"epoch_cap: {len(match)} runs under {', '.join(map(str, short_paths))} match {lr.run_dir} "
                     "(need exactly one with the same config but trainer.max_epochs)")
        for r in (match[0], lr):
            if not (r.run_dir / FILE).is_file():
                sys.exit(f"epoch_cap: {r.run_dir} has no {FILE}: the paired gaps need every user's rank")
        out.append(("no band" if lr.is_baseline else f"{lr.band} {lr.neighbours}", match[0], lr))
    return sorted(out, key=lambda t: (t[0] != "no band", t[0]))


def _ndcg(row):
    return _ndcg_of(row.run_dir)


@lru_cache(maxsize=None)  # each run is paired several times
def _ndcg_of(run_dir: Path):
    return per_user_metric(read_test_users(run_dir)["rank"], "ndcg")


def _ci(c) -> str:
    star = "*" if c.significant else ""
    return f"{c.delta:+.4f} [{c.low:+.4f}, {c.high:+.4f}]{star}".replace("-", "−")


def table(found: list[tuple]) -> str:
    caps = sorted({int(r.config[CAP]) for _, s, lr in found for r in (s, lr)})
    lines = [f"| configuration | cap {caps[0]}: epochs, best epoch, test NDCG@10 | cap {caps[-1]}: epochs, best epoch, "
             f"test NDCG@10 | longer minus shorter [95% CI] | wall time (longer) |", "|---|---|---|---|---|"]
    for label, s, lr in found:
        cells = [f"{r.metrics['epochs_trained']}, {r.metrics['best_epoch']}, {r.ndcg:.4f}" for r in (s, lr)]
        wall = lr.metrics["seconds"]["total"] / 60
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {_ci(paired_change(_ndcg(lr), _ndcg(s)))} | {wall:.1f} min |")
    base = [(s, lr) for label, s, lr in found if label == "no band"]
    others = [(label, s, lr) for label, s, lr in found if label != "no band"]
    if base and len(others) > 1:
        lead = max(others, key=lambda t: t[1].ndcg)  # the shorter cap's best: does it stay ahead?
        lines += ["", f"| configuration | against no band, cap {caps[0]} | against no band, cap {caps[-1]} | against "
                  f"{lead[0]}, cap {caps[0]} | against {lead[0]}, cap {caps[-1]} |", "|---|---|---|---|---|"]
        (bs, bl), (_, fs, fl) = base[0], lead
        for label, s, lr in others:
            cells = [_ci(paired_change(_ndcg(s), _ndcg(bs))), _ci(paired_change(_ndcg(lr), _ndcg(bl)))]
            cells += ["", ""] if s is fs else [_ci(paired_change(_ndcg(s), _ndcg(fs))), _ci(paired_change(_ndcg(lr), _ndcg(fl)))]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("short", nargs="+", type=Path, help="results dirs holding the shorter-cap runs")
    ap.add_argument("--long", nargs="+", type=Path, required=True, help="results dirs holding the longer-cap runs")
    args = ap.parse_args(argv)
    try:
        print(table(pairs(args.short, args.long)))
    except UserError as e:
        sys.exit(f"epoch_cap: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
