"""MF-BPR's band overhead: the whole effective table against only the batch's rows.

    python benchmarks/band_rows.py [--batches 20] [--threads 1]

MF-BPR (Beauty, band [0, 5], batch 2048) computes the whole effective table ``Q @ W`` every step and
its backward ``Q^T @ G``, although a step reads only the rows of its positives and negatives. This
times, per step and averaged over real training batches, the parts of the alternative that computes
only those rows with the same kernel (`F.embedding_bag`), so that forward and gradient stay
bit-identical (checked and printed): the batch's distinct items, the sub-operator of their rows,
its product, the transposed sub-operator (entries of each column in row order, as in ``Q^T``) and
the gradient product. The last line compares both with the budget the issue-34 target leaves
(band at most 1.15x the no-band step).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
LOAD_ARGS = dict(bundled="Beauty.txt.gz", format="seq", min_user_interactions=5, min_item_interactions=5)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=20, help="training batches timed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default="/tmp/embfreq-bench-cache")
    a = ap.parse_args(argv)
    import torch

    import _worker
    from embfreq.nn.smoothed_embedding import _csr_matmul  # the table's own product: one weighted bag a row

    def bag(col, dense, crow, val):
        return _csr_matmul(crow, col, val, dense)

    torch.set_num_threads(a.threads)
    dm = _worker._datamodule({"load_args": LOAD_ARGS, "cache_dir": a.cache_dir}, "pair")
    t = _worker._model("mf_bpr", dm, "0-5").items
    crow, col, val = t.q_crow, t.q_col, t.q_values
    crow_t, col_t, val_t = t.q_t_crow, t.q_t_col, t.q_t_values
    w = t.own_weight.detach()
    n = w.shape[0]
    batches = [b for _, b in zip(range(a.batches), dm.train_dataloader())]
    parts = dict.fromkeys(["full forward", "full backward", "distinct items", "sub-operator rows", "sub forward",
                           "transposed sub-operator", "sub backward"], 0.0)
    identical = True
    sub_nnz = 0

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        parts[name] += time.perf_counter() - t0
        return out

    for i, b in enumerate([batches[0]] + batches):  # the first round warms up and is not counted
        if i == 1:
            parts = dict.fromkeys(parts, 0.0)
            sub_nnz = 0
        ids = torch.cat([b["positives"], b["negatives"]])
        full = timed("full forward", lambda: bag(col, w, crow, val))
        uniq = timed("distinct items", lambda: torch.unique(ids, sorted=True))
        grad = torch.randn(uniq.numel(), w.shape[1])

        def dense_grad():
            g = w.new_zeros(n, w.shape[1])
            g[uniq] = grad
            return bag(col_t, g, crow_t, val_t)

        full_grad = timed("full backward", dense_grad)

        def rows():
            starts, counts = crow[uniq], crow[uniq + 1] - crow[uniq]
            ends = torch.cumsum(counts, 0)
            e = torch.arange(int(ends[-1])) + torch.repeat_interleave(starts - (ends - counts), counts)
            return counts, torch.cat([ends.new_zeros(1), ends]), col[e], val[e]

        counts, scrow, scol, sval = timed("sub-operator rows", rows)
        sub = timed("sub forward", lambda: bag(scol, w, scrow, sval))

        def transposed():
            order = torch.argsort(scol, stable=True)
            local = torch.repeat_interleave(torch.arange(uniq.numel()), counts)
            c = torch.zeros(n + 1, dtype=torch.int64)
            c[1:] = torch.cumsum(torch.bincount(scol, minlength=n), 0)
            return c, local[order], sval[order]

        tcrow, tcol, tval = timed("transposed sub-operator", transposed)
        sub_grad = timed("sub backward", lambda: bag(tcol, grad, tcrow, tval))
        identical &= torch.equal(sub, full[uniq]) and torch.equal(sub_grad, full_grad)
        sub_nnz += scol.numel()

    plain = _worker._model("mf_bpr", dm, "none")
    opt = plain.configure_optimizers()
    t0 = 0.0
    for i, b in enumerate([batches[0]] + batches):
        t0 = time.perf_counter() if i == 1 else t0
        loss = plain.training_loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    k = len(batches)
    budget = 0.15 * (time.perf_counter() - t0) / k * 1e3
    ms = {name: s / k * 1e3 for name, s in parts.items()}
    print(f"# MF-BPR, Beauty, band [0,5]: {t.num_in_band} band items, {int(col.numel())} operator entries; "
          f"{k} batches of {len(batches[0]['users'])}, {sub_nnz / k:.0f} entries in a batch's rows; "
          f"torch {torch.__version__}, {a.threads} thread(s)")
    print("| part | ms a step |\n|---|---|")
    for name, v in ms.items():
        print(f"| {name} | {v:.2f} |")
    full_ms = ms["full forward"] + ms["full backward"]
    sub_ms = sum(v for name, v in ms.items() if not name.startswith("full"))
    print(f"\nwhole table {full_ms:.2f} ms a step; batch rows only {sub_ms:.2f} ms (its two products alone "
          f"{ms['sub forward'] + ms['sub backward']:.2f} ms); bit-identical: {'yes' if identical else 'NO'}; "
          f"the target's budget (0.15 x a no-band step): {budget:.2f} ms")


if __name__ == "__main__":
    main()
