"""Which items fill the users' top k: the share of top-k slots that go to a band's items.

    python scripts/band_exposure.py RUN_DIR [RUN_DIR ...] --band 100 inf [--k 10]

Per run (its best checkpoint, test users, full ranking with seen items removed as in evaluation):
the mean number of the band's items in a user's top k, for the users whose target is in the band
and for the others, and the mean training frequency of the top-k items. With it one sees whether a
substitute moves a band's items up or down every user's list, not only the lists of its own users.
The band is the same for every run (a baseline has none of its own). Needs the runs' checkpoints.
"""

from __future__ import annotations

import argparse
import sys

import torch

from embfreq.errors import UserError
from embfreq.training.run_dir import restore


def top_k_items(model, dm, k: int):
    """(targets, top-k item ids) over the test users, seen items (not the target) and padding removed."""
    targets, tops = [], []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            scores = model.score(batch)
            scores[:, 0] = float("-inf")
            if model.remove_seen:
                t = batch["targets"].long()
                keep = scores.gather(1, t[:, None])
                scores[batch["seen_rows"], batch["seen_cols"]] = float("-inf")
                scores.scatter_(1, t[:, None], keep)  # the target is never removed
            tops.append(scores.topk(k, dim=1).indices)
            targets.append(batch["targets"].long())
    return torch.cat(targets), torch.cat(tops)


def exposure(run_dir, lower, upper, k: int) -> dict:
    cfg, dm, model = restore(run_dir)
    freq = dm.item_freq
    band = torch.ones_like(freq, dtype=torch.bool)
    if lower is not None:
        band &= freq >= lower
    if upper is not None:
        band &= freq <= upper
    band[0] = False
    targets, top = top_k_items(model, dm, k)
    in_band_target = band[targets]
    hits = band[top].sum(1).double()
    out = {"run": str(run_dir), "item_table": str(cfg.get("item_table", {}).get("name", "neighbours")),
           "band_lower": cfg.get("lower_freq"), "band_upper": cfg.get("upper_freq"),
           "users": int(len(targets)), "in_band_users": int(in_band_target.sum())}
    for name, users in (("in_band_target", in_band_target), ("other", ~in_band_target)):
        out[f"{name}: band items in top {k}"] = float(hits[users].mean()) if users.any() else float("nan")
        out[f"{name}: mean train freq of top {k}"] = float(freq[top[users]].double().mean()) if users.any() else float("nan")
    return out


def bound(text: str):
    return None if text.lower() in ("inf", "none", "null") else float(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--band", nargs=2, metavar=("LOWER", "UPPER"), required=True, help="e.g. 100 inf")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args(argv)
    try:
        lower, upper = (bound(b) for b in args.band)
    except ValueError:
        print(f"band_exposure: --band takes two numbers (or inf), got {' '.join(args.band)}", file=sys.stderr)
        return 2
    if args.k < 1:
        print(f"band_exposure: --k must be >= 1, got {args.k}", file=sys.stderr)
        return 2
    rows = []
    for run in args.runs:
        try:
            rows.append(exposure(run, lower, upper, args.k))
        except UserError as e:
            print(f"band_exposure: {e}", file=sys.stderr)
            return 2
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
