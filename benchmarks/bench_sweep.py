"""Wall time of one 6-job sweep on small synthetic data: basic launcher (sequential, all cores per job)
vs joblib with 2 parallel jobs (cores divided among them).

Usage: python benchmarks/bench_sweep.py [--users 1500] [--items 400] [--epochs 4] [--model sasrec]
                                        [--n-jobs 2] [--repeats 1] [--no-single-thread] [--keep DIR]

A third row, the basic launcher with threads=1, tells the gain of running jobs side by side apart
from the gain of fewer torch threads per job (which is large on a loaded machine).

The processed-data cache is built before timing, so both launchers measure training alone (plus
process start-up, which joblib pays again in each worker). Prints a table and the load average,
since on a shared machine other work changes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BAND_GRID = ["lower_freq=0,5", "upper_freq=10,50,null"]  # 6 jobs, all trainable


def write_data(path: Path, users: int, items: int, seed: int = 0) -> Path:
    """Sequences with power-law item popularity (so bands hold both rare and frequent items)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, items + 1) ** 0.8
    p /= p.sum()
    with open(path, "w") as f:
        for u in range(1, users + 1):
            seq = rng.choice(np.arange(1, items + 1), size=int(rng.integers(5, 41)), p=p)
            f.write(f"{u} {' '.join(map(str, seq))}\n")
    return path


def common_args(data: Path, model: str, epochs: int) -> list[str]:
    return [f"model={model}", "data=custom", f"data.path={data}", "data.min_user_interactions=0",
            "data.min_item_interactions=0", f"trainer.max_epochs={epochs}", "eval_every=2", "data.batch_size=128",
            "analysis=false", "trainer=cpu", *BAND_GRID]


def run_sweep(args: list[str], sweep_dir: Path, env: dict) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "embfreq.train", "-m", *args, f"hydra.sweep.dir={sweep_dir}"],
                         cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"sweep failed ({out.returncode}):\n{out.stderr[-3000:]}")
    ms = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))]
    bad = [m for m in ms if m.get("status") != "ok"]
    if len(ms) != 6 or bad:
        sys.exit(f"expected 6 ok jobs, got {len(ms)} ({[m.get('error') for m in bad]})")
    return wall, ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1500)
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--model", default="sasrec")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-single-thread", action="store_true", help="skip the basic launcher with threads=1")
    ap.add_argument("--keep", default=None, help="keep the sweeps here instead of a temporary dir")
    a = ap.parse_args()

    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench_sweep."))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EMBFREQ_CACHE": str(work / "cache"), "PYTHONPATH": str(REPO)}
    data = write_data(work / "data.txt", a.users, a.items)
    from embfreq.data.processed import load_processed

    d = load_processed(path=str(data), cache_dir=work / "cache")  # warm cache: timings exclude parsing
    print(f"data: {d.num_users} users, {d.num_items} items, {len(d.seqs.items)} interactions; "
          f"model {a.model}, {a.epochs} epochs, 6 jobs; cpus {os.cpu_count()}")
    base = common_args(data, a.model, a.epochs)
    launchers = {"basic": [], f"joblib n_jobs={a.n_jobs}": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={a.n_jobs}"]}
    if not a.no_single_thread:  # separates the gain of parallel jobs from that of fewer threads per job
        launchers["basic threads=1"] = ["threads=1"]
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in launchers}
    load_before = os.getloadavg()
    for rep in range(a.repeats):
        for i, (name, extra) in enumerate(launchers.items()):  # alternate, so load drifts hit both
            wall, ms = run_sweep(base + extra, work / f"r{rep}_{i}", env)
            job_sum = sum(m["seconds"]["total"] for m in ms)
            results[name].append((wall, job_sum))
    load_after = os.getloadavg()

    basic_wall = float(np.median([w for w, _ in results["basic"]]))
    print("\n| launcher | threads/job | wall s | sum of job s | wall vs basic |")
    print("|---|---|---|---|---|")
    cpus = os.cpu_count() or 1
    for name, rs in results.items():
        wall = float(np.median([w for w, _ in rs]))
        jobs = float(np.median([s for _, s in rs]))
        threads = cpus if name == "basic" else 1 if "threads=1" in name else max(1, cpus // a.n_jobs)
        print(f"| {name} | {threads} | {wall:.1f} | {jobs:.1f} | {wall / basic_wall:.2f}x |")
    print(f"\nload average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}; "
          f"after: {' '.join(f'{x:.2f}' for x in load_after)}  (median of {a.repeats} repeat(s))")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
