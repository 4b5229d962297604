"""Peak RSS of training against a validation pass (issue 34: no memory spike in evaluation).

    python benchmarks/eval_memory.py [--rounds 2] [--threads 2] [--compare-default] [--only mf_bpr]

Each configuration (SASRec and MF-BPR on Beauty, no band and band [0,5]) runs in a fresh process:
set-up, then `rounds` times one training epoch and one full-ranking validation pass. A thread samples
the RSS every 2 ms; the table gives each phase's peak (the highest over the rounds), the validation
peak minus the training peak, and the target: at most the score buffer (eval batch x items x 4 bytes)
plus 100 MiB above the training peak, in every round. `--compare-default` adds a row per
configuration with glibc's dynamic mmap threshold (EMBFREQ_MMAP_THRESHOLD=default), the behaviour
before `embfreq.training.memory`. Not a timing: the numbers hold on a busy machine too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
CONFIGS = [("sasrec", "none"), ("sasrec", "0-5"), ("mf_bpr", "none"), ("mf_bpr", "0-5")]
LOAD_ARGS = dict(bundled="Beauty.txt.gz", format="seq", min_user_interactions=5, min_item_interactions=5)
MIB = 2.0**20


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def measure(model_name: str, band: str, rounds: int, threads: int, cache_dir: str) -> dict:
    """In this process: phase peaks over `rounds` of (epoch, validation pass)."""
    import torch

    torch.set_num_threads(threads)
    import _worker as w

    peak = [0.0]

    def sample():
        while True:
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.002)

    threading.Thread(target=sample, daemon=True).start()
    spec = {"load_args": LOAD_ARGS, "cache_dir": cache_dir}
    dm = w._datamodule(spec, "seq" if model_name == "sasrec" else "pair")
    model = w._model(model_name, dm, band)
    opt = model.configure_optimizers()
    setup = rss_mib()
    out = {"setup": setup, "train": [], "val": []}
    for _ in range(rounds):
        peak[0] = rss_mib()
        w._epoch(model, opt, dm)
        time.sleep(0.01)
        out["train"].append(peak[0])
        peak[0] = rss_mib()
        w._validate(model, dm)
        time.sleep(0.01)
        out["val"].append(peak[0])
    from embfreq.training.memory import heap_record

    out["heap"] = heap_record()
    out["score_buffer"] = 512 * (dm.num_items + 1) * 4 / MIB
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare-default", action="store_true")
    ap.add_argument("--only", help="configurations whose model matches, e.g. mf_bpr")
    ap.add_argument("--cache-dir", default=os.environ.get("EMBFREQ_CACHE", "/tmp/embfreq-bench-cache"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        model_name, band = a.child.split(":")
        print("RESULT " + json.dumps(measure(model_name, band, a.rounds, a.threads, a.cache_dir)), flush=True)
        return
    modes = ["package"] + (["default"] if a.compare_default else [])
    print(f"# peak RSS (MiB), Beauty, {a.rounds} rounds of (epoch, validation pass), {a.threads} threads, "
          f"each row a fresh process; {time.strftime('%Y-%m-%d %H:%M')}")
    print("| model | band | mmap threshold | set-up | training peak | validation peak | val - train (worst round) "
          "| score buffer | target: val - train <= buffer + 100 | ok |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    for model_name, band in CONFIGS:
        if a.only and a.only not in model_name:
            continue
        for mode in modes:
            env = dict(os.environ)
            if mode == "default":
                env["EMBFREQ_MMAP_THRESHOLD"] = "default"
            p = subprocess.run([sys.executable, __file__, "--child", f"{model_name}:{band}", "--rounds", str(a.rounds),
                                "--threads", str(a.threads), "--cache-dir", a.cache_dir], env=env,
                               capture_output=True, text=True)
            line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"{model_name} {band}: no result\n{p.stderr[-2000:]}")
            r = json.loads(line[7:])
            # each round's validation against the training peak so far
            worst = max(v - max(r["train"][: i + 1]) for i, v in enumerate(r["val"]))
            ok = worst <= r["score_buffer"] + 100
            failed |= mode == "package" and not ok
            thr = r["heap"]["mmap_threshold"]
            print(f"| {model_name} | {'no band' if band == 'none' else '[0,5]'} | "
                  f"{'glibc dynamic' if thr is None else f'{thr / MIB:g} MiB'} | {r['setup']:.0f} | "
                  f"{max(r['train']):.0f} | {max(r['val']):.0f} | {worst:+.0f} | {r['score_buffer']:.0f} | "
                  f"<= {r['score_buffer'] + 100:.0f} | {'yes' if ok else '**NO**'} |", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
