"""embfreq against pmixer/SASRec.pytorch on the same Beauty split, in one run, interleaved.

    python benchmarks/pmixer_side_by_side.py /path/to/SASRec.pytorch [--rounds 3]

pmixer/SASRec.pytorch is not a dependency: give the path of a checkout (its `python/` dir holds
model.py and utils.py, which this script imports; nothing of it is copied here). Both sides train
SASRec with 64 dimensions, 2 blocks, 1 head, dropout 0.2, maxlen 50, batch 256, BCE with one negative
per position, Adam lr 1e-3 (pmixer: pre-LN, `--norm_first`); embfreq without a band.

Data: embfreq's processed Beauty (bundled, 5-core) is written in pmixer's format (`user item` lines in
time order) into a temporary dir, so pmixer's own `data_partition` makes the same leave-two-out split.
pmixer samples batches with its `WarpSampler` (1 worker process; its memory is not in pmixer's RSS).

Each side runs in its own worker process, set up once; the rounds interleave them (order swapped
every round): one training epoch each, then one full-ranking validation pass each (every user: its
training sequence, the validation item ranked against all items, seen items removed). pmixer's own
evaluation scores 100 sampled items; the adapted pass takes its `log2feats` last position against its
whole item table, in batches of 512 users. Threads: both sides at 1 and at 2 threads (each phase's
fastest median is reported), and a row for embfreq at its own default policy (training 1 thread,
evaluation all cores). `--compiled` adds a third worker, embfreq with `compile=true` (its builds, one per thread count,
are paid in warm-up epochs before the rounds and reported apart), timed at 1 and 2 threads too.
OpenMP waiting as embfreq's CLI sets it (`GOMP_SPINCOUNT=10000`) for both, unless
`OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` is set.

FLOP limit: one epoch's real positions, forward + backward (3x forward), counted exactly from the
sequence lengths (per block: Q, K, V, output and two FFN layers, 12 D^2 per position; attention
4 D per attended key; the loss 4 D), divided by the speed of a float32 4096^2 matmul at all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOAD_ARGS = dict(bundled="Beauty.txt.gz", format="seq", min_user_interactions=5, min_item_interactions=5)
MAXLEN, DIM, BLOCKS, BATCH, EVAL_BATCH = 50, 64, 2, 256, 512


def _processed(cache_dir: str):
    sys.path.insert(0, str(REPO))
    from embfreq.data.processed import load_processed

    return load_processed(**LOAD_ARGS, cache_dir=cache_dir)


# -- workers: read commands on stdin, answer one JSON line each --------------------------------------
def embfreq_worker(cache_dir: str, compiled: bool = False) -> None:
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    import torch

    import _worker as w
    from embfreq.training.threads import phase_threads, usable_cpus

    policy = phase_threads(None, usable_cpus())
    dm = w._datamodule({"load_args": LOAD_ARGS, "cache_dir": cache_dir}, "seq")
    model = w._model("sasrec", dm, "none")
    opt = model.configure_optimizers()
    build = {}
    if compiled:
        model.compile_step()
        t0 = time.perf_counter()
        for n in sorted({1, min(2, usable_cpus())}):  # inductor builds again for another thread count
            torch.set_num_threads(n)
            w._epoch(model, opt, dm)
        build = {"warmup_s": time.perf_counter() - t0, "compile_s": model.compiled_step.record()["seconds"]}
    answer({"ready": True, "threads": policy, **build})
    for line in sys.stdin:
        cmd, _, threads = line.strip().partition(" ")
        if cmd == "quit":
            break
        torch.set_num_threads(int(threads) if threads else policy["train" if cmd == "epoch" else "eval"])
        t0 = time.perf_counter()
        if cmd == "epoch":
            w._epoch(model, opt, dm)
        else:
            ranks = w._validate(model, dm)
        answer({"seconds": time.perf_counter() - t0, "threads": torch.get_num_threads(),
                **({"users": int(len(ranks)), "ndcg10": ndcg10(ranks)} if cmd == "val" else {})})
    answer({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def pmixer_worker(pmixer: str, data_dir: str) -> None:
    sys.path.insert(0, str(Path(pmixer) / "python"))
    import numpy as np
    import torch
    from model import SASRec as PmixerSASRec
    from utils import WarpSampler, data_partition

    os.chdir(data_dir)  # data_partition reads data/<name>.txt
    user_train, user_valid, _test, usernum, itemnum = data_partition("BeautyEmbfreq")
    args = argparse.Namespace(device="cpu", hidden_units=DIM, maxlen=MAXLEN, num_blocks=BLOCKS, num_heads=1,
                              dropout_rate=0.2, norm_first=True)
    torch.manual_seed(1)
    model = PmixerSASRec(usernum, itemnum, args)
    for _name, p in model.named_parameters():  # the initialisation of pmixer's main.py
        try:
            torch.nn.init.xavier_normal_(p.data)
        except ValueError:
            pass
    model.pos_emb.weight.data[0, :] = 0
    model.item_emb.weight.data[0, :] = 0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    bce = torch.nn.BCEWithLogitsLoss()
    sampler = WarpSampler(user_train, usernum, itemnum, batch_size=BATCH, maxlen=MAXLEN, n_workers=1)
    num_batch = (len(user_train) - 1) // BATCH + 1
    users = np.array([u for u in range(1, usernum + 1) if user_valid.get(u)])
    seqs = np.zeros((len(users), MAXLEN), dtype=np.int64)
    for r, u in enumerate(users):
        s = user_train[u][-MAXLEN:]
        seqs[r, MAXLEN - len(s):] = s
    targets = np.array([user_valid[u][0] for u in users])
    answer({"ready": True, "users": int(usernum), "items": int(itemnum)})
    for line in sys.stdin:
        cmd, _, threads = line.strip().partition(" ")
        if cmd == "quit":
            break
        torch.set_num_threads(int(threads))
        t0 = time.perf_counter()
        if cmd == "epoch":
            model.train()
            for _ in range(num_batch):  # pmixer's training step, as its main.py takes it
                u, seq, pos, neg = (np.array(x) for x in sampler.next_batch())
                pos_logits, neg_logits = model(u, seq, pos, neg)
                idx = np.where(pos != 0)
                loss = bce(pos_logits[idx], torch.ones_like(pos_logits[idx]))
                loss = loss + bce(neg_logits[idx], torch.zeros_like(neg_logits[idx]))
                opt.zero_grad()
                loss.backward()
                opt.step()
            answer({"seconds": time.perf_counter() - t0, "threads": int(threads)})
            continue
        model.eval()
        ranks = []
        with torch.no_grad():
            table = model.item_emb.weight  # the adapted pass: every item, not 100 samples
            for s in range(0, len(users), EVAL_BATCH):
                b = slice(s, s + EVAL_BATCH)
                h = model.log2feats(seqs[b])[:, -1, :]
                scores = h @ table.T
                scores[:, 0] = float("-inf")
                for r, u in enumerate(users[b]):
                    seen = np.array(user_train[u])
                    t = targets[b][r]
                    scores[r, seen[seen != t]] = float("-inf")
                tgt = torch.as_tensor(targets[b])
                ts = scores.gather(1, tgt[:, None])
                ranks.append(((scores >= ts).sum(1) - 1 + 1))
        ranks = torch.cat(ranks)
        answer({"seconds": time.perf_counter() - t0, "threads": int(threads), "users": int(len(ranks)),
                "ndcg10": ndcg10(ranks)})
    sampler.close()
    answer({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def ndcg10(ranks) -> float:
    import torch

    r = ranks.to(torch.float64)
    return float(((r <= 10).to(torch.float64) / torch.log2(r + 1)).mean())


def answer(d: dict) -> None:
    print("ANSWER " + json.dumps(d), flush=True)


class Worker:
    def __init__(self, args: list[str], env: dict):
        self.p = subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env=env)
        self.ready = self.read()

    def read(self) -> dict:
        for line in self.p.stdout:
            if line.startswith("ANSWER "):
                return json.loads(line[7:])
        raise SystemExit(f"worker {self.p.args} ended without an answer (exit {self.p.wait()})")

    def ask(self, cmd: str) -> dict:
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return self.read()

    def close(self) -> dict:
        out = self.ask("quit")
        self.p.wait()
        return out


# -- the FLOP limit ---------------------------------------------------------------------------------
def epoch_gflop(d) -> tuple[float, int]:
    """Forward + backward GFLOP of one epoch's real positions, and the number of positions."""
    import numpy as np

    n = np.minimum(np.diff(d.split.train_ptr) - 1, MAXLEN)  # training positions per user (inputs -> next item)
    n = n[n > 0].astype(np.float64)
    positions = float(n.sum())
    keys = float((n * (n + 1) / 2).sum())  # causal attention: keys attended, summed over positions
    fwd = BLOCKS * (12 * DIM * DIM * positions + 4 * DIM * keys) + 4 * DIM * positions
    return 3 * fwd / 1e9, int(positions)


def matmul_gflops(threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    a @ b
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * 4096**3 / (time.perf_counter() - t0) / 1e9)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pmixer", nargs="?", help="path of a SASRec.pytorch checkout")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compiled", action="store_true", help="also time embfreq with compile=true")
    ap.add_argument("--cache-dir", default=os.environ.get("EMBFREQ_CACHE", "/tmp/embfreq-bench-cache"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker in ("embfreq", "embfreq-compiled"):
        return embfreq_worker(a.cache_dir, compiled=a.worker == "embfreq-compiled")
    if a.worker == "pmixer":
        return pmixer_worker(a.pmixer, a.data_dir)
    if not a.pmixer or not (Path(a.pmixer) / "python" / "model.py").is_file():
        raise SystemExit(f"{a.pmixer}: not a SASRec.pytorch checkout (no python/model.py)")
    sys.path.insert(0, str(REPO))
    from embfreq.training.threads import usable_cpus

    cores = usable_cpus()
    d = _processed(a.cache_dir)
    gflop, positions = epoch_gflop(d)
    limit_gflops = matmul_gflops(cores)
    from embfreq.training.threads import with_wait_policy

    env = dict(os.environ)
    with_wait_policy(env)  # what embfreq's CLI sets, for both sides
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").mkdir()
        ptr, items = d.split.train_ptr, d.split.train_items
        with open(Path(tmp) / "data" / "BeautyEmbfreq.txt", "w") as f:
            for u in range(len(ptr) - 1):
                for i in [*items[ptr[u]:ptr[u + 1]], d.split.valid[u], d.split.test[u]]:
                    f.write(f"{u + 1} {int(i)}\n")
        emb = Worker(["--worker", "embfreq", "--cache-dir", a.cache_dir], env)
        pm = Worker([str(a.pmixer), "--worker", "pmixer", "--data-dir", tmp], env)
        workers = {"embfreq": emb, "pmixer": pm}
        if a.compiled:
            workers["embfreq-compiled"] = Worker(["--worker", "embfreq-compiled", "--cache-dir", a.cache_dir], env)
        counts = sorted({1, min(2, cores)})  # both sides at each count; each phase reports its fastest
        t = {(side, ph, n): [] for side in workers for ph in ("epoch", "val") for n in counts}
        quality = {}
        for r in range(a.rounds):
            sides = [(side, n) for side in workers for n in counts]
            for phase in ("epoch", "val"):
                for side, n in (sides if r % 2 == 0 else sides[::-1]):
                    res = workers[side].ask(f"{phase} {n}")
                    t[(side, phase, n)].append(res["seconds"])
                    if phase == "val":
                        quality[side] = res
        ready = {side: wk.ready for side, wk in workers.items()}
        peaks = {side: wk.close()["peak_mib"] for side, wk in workers.items()}
    med = {k: statistics.median(v) for k, v in t.items()}

    def fastest(side: str, phase: str) -> tuple[float, int]:
        n = min(counts, key=lambda c: med[(side, phase, c)])
        return med[(side, phase, n)], n

    (pm_epoch, pm_epoch_n), (pm_val, pm_val_n) = fastest("pmixer", "epoch"), fastest("pmixer", "val")
    (e_epoch, e_epoch_n), (e_val, e_val_n) = fastest("embfreq", "epoch"), fastest("embfreq", "val")
    limit = gflop / limit_gflops
    pol = ready["embfreq"]["threads"]
    print(f"# embfreq against pmixer/SASRec.pytorch, Beauty ({quality['embfreq']['users']:,} users), {a.rounds} "
          f"interleaved rounds, medians; {cores} cores; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# FLOP limit: {gflop:.1f} GFLOP per epoch ({positions:,} positions, forward + backward) at "
          f"{limit_gflops:.0f} GFLOP/s (float32 4096^2 matmul, {cores} threads) = {limit:.3f} s")
    print("| | pmixer | embfreq | pmixer / embfreq | target |")
    print("|---|---|---|---|---|")
    print(f"| training epoch, s | {pm_epoch:.2f} ({pm_epoch_n} thr) | {e_epoch:.2f} ({e_epoch_n} thr) | "
          f"{pm_epoch / e_epoch:.1f}x | >= 10x |")
    print(f"| epoch / FLOP limit | {pm_epoch / limit:.1f}x | {e_epoch / limit:.1f}x | | embfreq <= 3x |")
    print(f"| full-ranking validation pass, s | {pm_val:.2f} ({pm_val_n} thr) | {e_val:.2f} ({e_val_n} thr) | "
          f"{pm_val / e_val:.1f}x | >= 5x |")
    pe, pv = med[("embfreq", "epoch", pol["train"])], med[("embfreq", "val", pol["eval"])]
    print(f"| embfreq at its default policy (training {pol['train']} thr, evaluation {pol['eval']} thr), s | | "
          f"epoch {pe:.2f}, validation {pv:.2f} | {pm_epoch / pe:.1f}x, {pm_val / pv:.1f}x | |")
    if a.compiled:
        (c_epoch, c_n), b = fastest("embfreq-compiled", "epoch"), ready["embfreq-compiled"]
        print(f"| embfreq compiled (compile=true; builds {b['compile_s']:.0f} s, paid once), s | | "
              f"epoch {c_epoch:.2f} ({c_n} thr); {c_epoch / limit:.1f}x the FLOP limit | {pm_epoch / c_epoch:.1f}x | |")
    print(f"| peak RSS, MiB (set-up, {a.rounds} epochs, {a.rounds} validations per thread count) | "
          f"{peaks['pmixer']:.0f} | {peaks['embfreq']:.0f} | | |")
    print(f"| val NDCG@10 after {a.rounds} epochs (a sanity check) | {quality['pmixer']['ndcg10']:.4f} | "
          f"{quality['embfreq']['ndcg10']:.4f} | | |")
    print("raw: " + json.dumps({" ".join(map(str, k)): [round(x, 3) for x in v] for k, v in t.items()}))


if __name__ == "__main__":
    main()
