"""OpenMP wait policy and threads on a busy or a quiet machine: SASRec training steps and a
validation pass on beauty_1000 (or --data beauty), each setting in a fresh process (libgomp reads its environment
once, at load), interleaved, median of the repeats.

    python benchmarks/omp_wait.py --threads 2 --repeats 3 --batches 40

Prints a markdown table: seconds per setting and the ratio to OpenMP's default (spin-waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

DATASETS = {  # the bundled configs of embfreq/conf/data/
    "beauty_1000": {"bundled": "Beauty.txt.gz", "min_user_interactions": 10, "min_item_interactions": 0},
    "beauty": {"bundled": "Beauty.txt.gz", "min_user_interactions": 5, "min_item_interactions": 5},
}
SETTINGS = {
    "default (spin, libgomp's 300k-iteration spin)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "GOMP_SPINCOUNT=100": {"GOMP_SPINCOUNT": "100"},
    "embfreq's CLI choice": None,  # whatever embfreq.train sets before importing torch
}

WORKER = r"""
import json, os, sys, time
if {cli}:
    import embfreq.training.threads as t; t.configure_openmp()
import torch
torch.set_num_threads({threads})
from embfreq.data.datamodule import RecDataModule
from functools import partial

from embfreq.models import SASRec
from embfreq.nn import SmoothedItemEmbedding
from embfreq.nn.sasrec import SASRecEncoder
dm = RecDataModule(**{load_args!r},
                   cache_dir={cache!r}, sampling="seq", maxlen=50, batch_size=256, eval_batch_size=512, seed=0)
dm.setup("fit")
torch.manual_seed(0)
model = SASRec(partial(SASRecEncoder, maxlen=50, embedding_dim=64),
               SmoothedItemEmbedding(dm.num_items + 1, 64, dm.item_freq, dm.operator, padding_idx=0))
opt = model.configure_optimizers()
model.train()
t0 = time.perf_counter()
for i, batch in enumerate(dm.train_dataloader()):
    if i == {batches}:
        break
    loss = model.training_loss(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
train = time.perf_counter() - t0
model.eval()
t0 = time.perf_counter()
with torch.no_grad():
    for batch in dm.val_dataloader():
        model.ranks(batch)
val = time.perf_counter() - t0
print("RESULT", json.dumps({{"train": train, "val": val, "env": {{k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}}}}))
"""


def run(setting: dict | None, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(setting or {})
    code = WORKER.format(cli=setting is None, threads=args.threads, cache=args.cache, batches=args.batches,
                         load_args=DATASETS[args.data])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not line:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(line[0][7:])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", choices=sorted(DATASETS), default="beauty_1000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--only", nargs="*", help="settings to run (substrings of their names)")
    ap.add_argument("--cache", default=os.path.expanduser(os.environ.get("EMBFREQ_CACHE", "~/.cache/embfreq")))
    args = ap.parse_args(argv)
    settings = {k: v for k, v in SETTINGS.items() if not args.only or k == next(iter(SETTINGS))
                or any(o in k for o in args.only)}
    res = {name: [] for name in settings}
    load0 = os.getloadavg()
    for _ in range(args.repeats):
        for name, setting in settings.items():
            res[name].append(run(setting, args))
    load1 = os.getloadavg()
    base = {p: statistics.median(r[p] for r in res[next(iter(SETTINGS))]) for p in ("train", "val")}
    print(f"{args.threads} threads, {args.batches} training batches (batch 256) + one validation pass, {args.data}; "
          f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at end; {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| setting | train s (median) | val s (median) | train / default | val / default | all repeats (train) |")
    print("|---|---|---|---|---|---|")
    for name, rs in res.items():
        tr = statistics.median(r["train"] for r in rs)
        va = statistics.median(r["val"] for r in rs)
        print(f"| {name} | {tr:.2f} | {va:.2f} | {tr / base['train']:.2f} | {va / base['val']:.2f} | "
              f"{', '.join('%.1f' % r['train'] for r in rs)} |")


if __name__ == "__main__":
    main()
