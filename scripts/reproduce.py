"""Rerun the published-baseline reproductions (embfreq/conf/experiment/*) and print the README's results table.

    python scripts/reproduce.py [--only sasrec_bce_recboard ...] [--out benchmarks/out/reproduce]
    python scripts/reproduce.py --table-only DIR     # print the table of finished runs

Each experiment is a full training run (minutes to an hour on a 2-core CPU; see README).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = {
    # name: (dataset, model, loss, published NDCG@10, published HR@10)
    "sasrec_bce_recboard": ("beauty", "SASRec", "BCE, attends to padding", 0.0354, 0.0668),
    "sasrec_bce_recboard_masked": ("beauty", "SASRec", "BCE, padding masked", 0.0354, 0.0668),
    "sasrec_ce": ("beauty", "SASRec", "CE", None, None),
    "mf_bpr_recboard": ("beauty", "MF-BPR", "BPR", 0.0227, 0.0447),
}


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def table(out: Path, names) -> str:
    rows = ["| dataset | model | loss | HR@10 | NDCG@10 | published HR@10 / NDCG@10 | best epoch | epochs run | wall time | machine |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        f = out / name / "metrics.json"
        if not f.is_file():
            continue
        m = json.loads(f.read_text())
        data, model, loss, p_ndcg, p_hr = EXPERIMENTS[name]
        pub = f"{p_hr:.4f} / {p_ndcg:.4f}" if p_ndcg else "-"
        t = m["test"]
        rows.append(f"| {data} | {model} | {loss} | {t['test/hr@10']:.4f} | {t['test/ndcg@10']:.4f} | {pub} | "
                    f"{m['best_epoch'] + 1} | {m['epochs_trained']} | {m['seconds']['total'] / 60:.1f} min | {machine()} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "reproduce")
    ap.add_argument("--trainer", default="default")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    if not args.table_only:
        for name in args.only:
            cmd = [sys.executable, "-m", "embfreq.train", f"experiment={name}", f"trainer={args.trainer}",
                   f"hydra.run.dir={args.out / name}"]
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
    print(table(args.out, args.only))


if __name__ == "__main__":
    main()
