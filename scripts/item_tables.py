"""SASRec training-epoch cost of each item-table strategy relative to the plain table, on beauty_1000.

Usage: python scripts/item_tables.py [--epochs 1] [--repeats 3] [--max-batches N] [--band 0,5]

Every configuration is built once; the repeats take turns (the order rotated each round), so each
ratio compares epochs measured close in time, and the table reports the medians. ``plain`` is the
table without a band; the others use the band ``--band`` with the options of
``embfreq/conf/item_table/<name>.yaml``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONF = REPO / "embfreq" / "conf"

# (label, item_table config name or None for the plain table, neighbours)
CONFIGS = [("plain", None, "all"), ("neighbours", "neighbours", "all"),
           ("neighbours/outside_band", "neighbours", "outside_band"), ("shared", "shared", "all"),
           ("hashed", "hashed", "all"), ("mixed_dim", "mixed_dim", "all"), ("qr", "qr", "all")]


def bound(s: str):
    return None if s in ("null", "none", "") else float(s)


def load_data(args):
    from omegaconf import OmegaConf

    from embfreq.data.datamodule import RecDataModule

    load_args = OmegaConf.to_container(OmegaConf.load(CONF / "data" / f"{args.data}.yaml"), resolve=True)
    load_args.pop("name", None)
    cache = args.cache_dir or os.environ.get("EMBFREQ_CACHE") or str(Path(os.environ.get("HOME", ".")) / ".cache/embfreq")
    dm = RecDataModule(**load_args, cache_dir=cache, sampling="seq", maxlen=args.maxlen, batch_size=args.batch_size,
                       seed=args.seed)
    dm.setup()
    return dm


def build(dm, table: str | None, neighbours: str, args):
    import torch
    from omegaconf import OmegaConf

    from functools import partial

    import hydra.utils

    from embfreq.models import SASRec
    from embfreq.nn.sasrec import SASRecEncoder

    spec = OmegaConf.to_container(OmegaConf.load(CONF / "item_table" / f"{table or 'neighbours'}.yaml"))
    spec.pop("name")
    if spec.get("neighbours"):
        spec["neighbours"] = neighbours
    lo, hi = (None, None) if table is None else args.band
    torch.manual_seed(args.seed)
    items = hydra.utils.instantiate(spec, num_embeddings=dm.num_items + 1, embedding_dim=args.dim,
                                    item_freq=dm.item_freq, operator=dm.operator, lower_freq=lo, upper_freq=hi,
                                    padding_idx=0)
    model = SASRec(partial(SASRecEncoder, maxlen=args.maxlen, embedding_dim=args.dim), items,
                   loss="bce").to(args.device)
    opt = model.configure_optimizers()  # after .to(): the fused optimiser needs its parameters in place
    return model, opt["optimizer"] if isinstance(opt, dict) else opt


def run_epoch(model, opt, dm, args, max_batches=None) -> None:
    import torch

    model.train()
    for i, b in enumerate(dm.train_dataloader()):
        if max_batches is not None and i >= max_batches:
            break
        if args.device != "cpu":
            b = {k: v.to(args.device, non_blocking=True) if hasattr(v, "to") else v for k, v in b.items()}
        loss = model.training_loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if args.device != "cpu":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="epochs per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-batches", type=int, default=None, help="cut each epoch short (quick checks)")
    p.add_argument("--band", type=lambda s: tuple(bound(x) for x in s.split(",")), default=(0.0, 5.0),
                   help="lower,upper training frequency of the band (null: open side)")
    p.add_argument("--only", nargs="*", default=None, help="labels to measure besides plain")
    p.add_argument("--data", default="beauty_1000")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--maxlen", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    import warnings

    import torch

    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    if args.threads:
        torch.set_num_threads(args.threads)
    dm = load_data(args)
    configs = [c for c in CONFIGS if c[0] == "plain" or args.only is None or c[0] in args.only]
    runs = {label: build(dm, table, nb, args) for label, table, nb in configs}
    for model, opt in runs.values():  # warm-up: first-call allocations stay out of the timings
        run_epoch(model, opt, dm, args, max_batches=2)

    seconds = {label: [] for label in runs}
    ratios = {label: [] for label in runs}
    labels = list(runs)
    for r in range(args.repeats):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        this = {}
        for label in order:
            model, opt = runs[label]
            t0 = time.perf_counter()
            for _ in range(args.epochs):
                run_epoch(model, opt, dm, args, args.max_batches)
            this[label] = (time.perf_counter() - t0) / args.epochs
        for label in labels:
            seconds[label].append(this[label])
            ratios[label].append(this[label] / this["plain"])

    items = runs["plain"][0].items
    full = items.num_embeddings * items.embedding_dim
    band_items = runs[labels[-1]][0].items.num_in_band if len(labels) > 1 else 0
    batches = "all" if args.max_batches is None else f"first {args.max_batches}"
    print(f"SASRec on {args.data}: {dm.num_items} items, band {list(args.band)} with {band_items} items, d={args.dim}, "
          f"{batches} batches of {args.batch_size}, {args.epochs} epoch(s) x {args.repeats} interleaved repeats, "
          f"{torch.get_num_threads()} threads, {args.device}\n")
    print("| strategy | params allocated | share of full table | s / epoch (median) | ratio to plain (median) |")
    print("|---|---:|---:|---:|---:|")
    for label in labels:
        n = sum(p.numel() for p in runs[label][0].items.parameters())
        print(f"| {label} | {n:,} | {n / full:.1%} | {statistics.median(seconds[label]):.3f} | "
              f"{statistics.median(ratios[label]):.2f} |")


if __name__ == "__main__":
    main()
