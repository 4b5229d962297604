"""Forward+backward time of the smoothed item table on Beauty: the study's full ``P @ W`` vs band rows only.

Usage: python benchmarks/bench_embedding.py [--dim 64] [--repeats 20] [--warmup 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from embfreq.data.graph import build_operator, item_frequency, to_torch_csr  # noqa: E402
from embfreq.nn.smoothed_embedding import SmoothedItemEmbedding  # noqa: E402

BANDS = [(0, 5), (20, None)]


def beauty_path() -> Path:
    bundled = REPO / "embfreq" / "data" / "bundled" / "Beauty.txt.gz"
    return bundled if bundled.exists() else REPO.parent / "shared" / "data" / "Beauty.txt"


def read_training(path: Path):
    """Users and items of the training part (all but the last 2 items of each line)."""
    opener = gzip.open if path.suffix == ".gz" else open
    users, items = [], []
    max_user = max_item = 0
    with opener(path, "rt") as fh:
        for line in fh:
            tok = line.split()
            if not tok:
                continue
            u, seq = int(tok[0]), [int(x) for x in tok[1:]]
            max_user = max(max_user, u)
            max_item = max(max_item, max(seq, default=0))
            train = seq[:-2]
            users.extend([u] * len(train))
            items.extend(train)
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), max_user + 1, max_item + 1


def median_ms(steps, device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Median ms per call of each step; the steps take turns so that machine noise hits all alike."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for step in steps:
        for _ in range(warmup):
            step()
    times = [[] for _ in steps]
    for _ in range(repeats):
        for step, acc in zip(steps, times):
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            acc.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(acc) for acc in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)

    path = beauty_path()
    users, items, num_users, n = read_training(path)
    freq_np = item_frequency(items, n)
    p_sp = build_operator(users, items, num_users, n, "left")
    freq = torch.from_numpy(freq_np)
    p_full = to_torch_csr(p_sp).to(device)
    print(
        f"{path.name}: {n - 1} items (+ padding row 0), {len(items)} training interactions, "
        f"P nnz {p_sp.nnz}, dim {args.dim}, device {device}, threads {torch.get_num_threads()}, "
        f"median of {args.repeats} interleaved calls after {args.warmup} warm-up\n"
    )
    print("| band | items in band | nnz of band rows | study full P@W (ms) | band rows, autograd (ms) "
          "| module (ms) | speedup module vs study |")
    print("|---|---|---|---|---|---|---|")

    for lo, hi in BANDS:
        torch.manual_seed(0)
        module = SmoothedItemEmbedding(n, args.dim, freq, p_full, lo, hi, padding_idx=0).to(device)
        band_idx = module.band_idx
        band_np = band_idx.cpu().numpy()
        p_band = to_torch_csr(p_sp[band_np]).to(device)
        t = module.in_band.to(torch.float32).unsqueeze(1)
        w = module.own_weight
        r = torch.randn(n, args.dim, device=device)

        def study():
            return w * (1 - t) + torch.sparse.mm(p_full, w) * t

        def band_autograd():
            return w.index_copy(0, band_idx, torch.sparse.mm(p_band, w))

        def step_of(fn):
            def step():
                w.grad = None
                (fn() * r).sum().backward()
            return step

        # All three must agree before timing them.
        ref = study().detach()
        for fn in (band_autograd, lambda: module.weight):
            torch.testing.assert_close(fn().detach(), ref, rtol=1e-5, atol=1e-5)

        fns = (study, band_autograd, lambda: module.weight)
        ms = median_ms([step_of(fn) for fn in fns], device, args.repeats, args.warmup)
        band = f"[{lo}, {'∞' if hi is None else hi}]"
        print(f"| {band} | {module.num_in_band} | {module.band_nnz} | {ms[0]:.2f} | {ms[1]:.2f} "
              f"| {ms[2]:.2f} | {ms[0] / ms[2]:.1f}x |")


if __name__ == "__main__":
    main()
