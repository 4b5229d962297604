"""What `.weight` as the effective table costs: a SASRec training step reading `items.weight` (the
cached property) against the same step computing the table directly (the code before `.weight` was
the effective table), and a tied-weight step that reads the table twice (forward and `.weight`).

Usage: python benchmarks/item_table_weight.py [--batches 30] [--rounds 5] [--threads 1]

Same process, same data (bundled Beauty, band [0, 5], batch 256, maxlen 50), the variants take
turns each round, each pair's order swapped every other round; the table prints per-step medians and the ratio to the direct computation.
Target (issue 31): the cached property at most 1.05x the direct computation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rotated(names: list, r: int) -> list:
    """Round r's order: each pair (before, cached) swapped every other round, so neither variant
    always runs first (allocator and cache state after the other one)."""
    out = []
    for i in range(0, len(names), 2):
        pair = names[i:i + 2]
        out += pair if r % 2 == 0 else pair[::-1]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()

    import torch

    from embfreq.data.datamodule import RecDataModule
    from embfreq.models import SASRec
    from embfreq.nn import SmoothedItemEmbedding
    from embfreq.nn.sasrec import SASRecEncoder

    torch.set_num_threads(args.threads)
    dm = RecDataModule(bundled="Beauty.txt.gz", format="seq", min_user_interactions=5, min_item_interactions=5,
                       cache_dir=args.cache_dir or str(Path.home() / ".cache/embfreq"), sampling="seq", maxlen=50,
                       batch_size=256, seed=1)
    dm.setup("fit")
    batches = [b for _, b in zip(range(args.batches), dm.train_dataloader())]
    torch.manual_seed(1)
    table = SmoothedItemEmbedding(dm.num_items + 1, 64, dm.item_freq, dm.operator, 0, 5, padding_idx=0)
    model = SASRec(partial(SASRecEncoder, maxlen=50, embedding_dim=64), table).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cls = type(table)
    cached = cls.weight

    def step_model(batch):
        loss = model.training_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def step_tied(batch):  # a user model: forward for the inputs, .weight for the scores
        h = table(batch["inputs"]).mean(1)
        loss = (h @ table.weight.T).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    variants = {
        "SASRec step, direct table (before)": (step_model, property(lambda self: self._compute_table())),
        "SASRec step, .weight (cached)": (step_model, cached),
        "tied step, table computed per read": (step_tied, property(lambda self: self._compute_table())),
        "tied step, .weight (cached)": (step_tied, cached),
    }
    times = {k: [] for k in variants}
    try:
        names = list(variants)
        for r in range(args.rounds):
            for name in _rotated(names, r):
                step, prop = variants[name]
                cls.weight = prop
                step(batches[0])  # warm-up
                t0 = time.perf_counter()
                for b in batches:
                    step(b)
                times[name].append((time.perf_counter() - t0) / len(batches))
    finally:
        cls.weight = cached
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"threads={args.threads}, {args.batches} batches x {args.rounds} rounds, per-step medians")
    print("| variant | ms / step | ratio |")
    print("|---|---|---|")
    names = list(med)
    for i, k in enumerate(names):
        base = med[names[i - i % 2]]
        print(f"| {k} | {med[k]:.2f} | {med[k] / base:.3f}x |")


if __name__ == "__main__":
    main()
