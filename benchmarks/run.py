"""Data-pipeline and training benchmarks; prints one markdown table.

Every measurement runs in a fresh subprocess (benchmarks/_worker.py), so peak memory is per step.
Columns: wall seconds (median over repeats), CPU seconds of the process (less sensitive to a
shared machine), peak RSS of the process, and Δ = peak minus the RSS just before the step
(imports and inputs excluded), the 1-minute load average when the row started, target and ok.

Usage::

    python benchmarks/run.py                  # everything (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick          # skip synthetic 10M
    python benchmarks/run.py --only beauty,graph      # rows whose dataset or group matches
    python benchmarks/run.py --only syn1m:graph       # dataset:group
    python benchmarks/run.py --quality 20     # also: SASRec NDCG@10 with/without max_neighbours
    python benchmarks/run.py --only beauty:process --repeats 1 --quality 20 --quality-seeds 1,2
    python benchmarks/run.py --device cuda --only beauty:train,beauty:val   # GPU rows (no targets)

Datasets: beauty, yelp, syn1m, syn10m. Groups: generate, process, cache, graph, train, val, lightning.
Workers wait the way `python -m embfreq.train` does (a short spin, `GOMP_SPINCOUNT=10000`, unless
OMP_WAIT_POLICY or GOMP_SPINCOUNT is set; benchmarks/omp_wait.md). On a shared, oversubscribed
machine pass --omp-passive.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_worker.py"
GIB = 1024.0

BUNDLED = dict(format="seq", min_user_interactions=5, min_item_interactions=5)
DATASETS = {
    "beauty": {"label": "Beauty", "load_args": dict(bundled="Beauty.txt.gz", **BUNDLED)},
    "yelp": {"label": "Yelp", "load_args": dict(bundled="Yelp.txt.gz", **BUNDLED)},
    "syn1m": {"label": "synthetic 1M", "gen": dict(interactions=1_000_000, users=100_000, items=50_000)},
    "syn10m": {"label": "synthetic 10M", "gen": dict(interactions=10_000_000, users=1_000_000, items=200_000)},
}
GROUPS = ("generate", "process", "cache", "graph", "train", "val", "lightning")
K = 50  # max_neighbours compared against none


class Runner:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="embfreq-bench-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.env = dict(os.environ)
        if args.omp_passive:
            self.env["OMP_WAIT_POLICY"] = "PASSIVE"
        else:
            from embfreq.training.threads import with_wait_policy

            with_wait_policy(self.env)
        self.env.setdefault("PYTHONWARNINGS", "ignore")

    # -- plumbing ---------------------------------------------------------------------------------
    def worker(self, spec: dict, timeout: float = 900) -> dict:
        if self.args.threads:
            spec = dict(spec, threads=self.args.threads)
        p = subprocess.run([sys.executable, str(WORKER), json.dumps(spec)], capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        for line in p.stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"worker {spec['step']} failed (rc {p.returncode}): " + " | ".join(tail))

    def row(self, dataset: str, step: str, seconds=None, cpu=None, peak=None, delta=None, target: str = "",
            ok: bool | None = None, load: float | None = None, note: str = "") -> None:
        r = dict(dataset=dataset, step=step, seconds=seconds, cpu=cpu, peak=peak, delta=delta, target=target,
                 ok=ok, load=load, note=note)
        self.rows.append(r)
        print("  " + format_row(r), file=sys.stderr, flush=True)

    def selected(self, ds: str, group: str) -> bool:
        if self.args.quick and ds == "syn10m":
            return False
        if not self.args.only:
            return True
        return any(tok in (ds, group, f"{ds}:{group}") for tok in self.args.only)

    def load_args(self, ds: str, k: int | None = None) -> dict:
        d = DATASETS[ds]
        if "gen" in d:
            args = dict(path=str(self.pairs_path(ds)), format="pairs", min_user_interactions=5, min_item_interactions=5)
        else:
            args = dict(d["load_args"])
        return dict(args, max_neighbours=k)

    def pairs_path(self, ds: str) -> Path:
        return self.work / f"{ds}.pairs"

    def cache_dir(self, ds: str, k: int | None) -> Path:
        return self.work / "cache" / f"{ds}-k{k}"

    def ensure_pairs(self, ds: str) -> None:
        if "gen" in DATASETS[ds] and not self.pairs_path(ds).exists():
            self.worker(dict(step="generate", path=str(self.pairs_path(ds)), **DATASETS[ds]["gen"]))

    def ensure_cache(self, ds: str, k: int | None) -> None:
        cdir = self.cache_dir(ds, k)
        if not list(cdir.glob("*.npz")):
            self.ensure_pairs(ds)
            self.worker(dict(step="process", load_args=self.load_args(ds, k), cache_dir=str(cdir)))

    # -- data rows --------------------------------------------------------------------------------
    def data_rows(self, ds: str) -> None:
        label = DATASETS[ds]["label"]
        big = ds == "syn10m"
        reps = 1 if ds.startswith("syn") else self.args.repeats
        ks = [None, K] if ds.startswith("syn") else [None]
        if "gen" in DATASETS[ds] and self.selected(ds, "generate"):
            load = os.getloadavg()[0]
            g = DATASETS[ds]["gen"]
            r = self.worker(dict(step="generate", path=str(self.pairs_path(ds)), **g))
            self.row(label, "generate + write pairs file", r["seconds"], r["cpu"], r["peak"], r["delta"], load=load,
                     note=f"{g['interactions']:,} interactions, {g['users']:,} users, {g['items']:,} items, "
                          f"{r['bytes'] / 2**20:.0f} MiB")
        for k in ks:
            kname = "" if not ds.startswith("syn") else f", max_neighbours={k}"
            cdir = self.cache_dir(ds, k)
            if self.selected(ds, "process"):
                self.ensure_pairs(ds)
                load = os.getloadavg()[0]
                res = []
                for _ in range(reps):
                    shutil.rmtree(cdir, ignore_errors=True)
                    res.append(self.worker(dict(step="process", load_args=self.load_args(ds, k), cache_dir=str(cdir)),
                                           timeout=1800))
                r = summarise(res)
                target, ok = "", None
                if ds == "beauty":
                    target, ok = "≤ 3 s", r["seconds"] <= 3
                elif big:
                    target, ok = "≤ 90 s, ≤ 10 GiB", r["seconds"] <= 90 and r["peak"] <= 10 * GIB
                last = res[-1]
                self.row(label, f"process from raw (read+filter+split+graph+cache write){kname}", r["seconds"],
                         r["cpu"], r["peak"], r["delta"], target, ok, load,
                         note=f"{last['users']:,} users, {last['items']:,} items, {last['interactions']:,} "
                              f"interactions, graph nnz {last['nnz']:,}" + (f"; {reps} runs" if reps > 1 else ""))
            if self.selected(ds, "cache"):
                self.ensure_cache(ds, k)
                load = os.getloadavg()[0]
                res = [self.worker(dict(step="process", load_args=self.load_args(ds, k), cache_dir=str(cdir)))
                       for _ in range(reps)]
                r = summarise(res)
                assert all(x["cached"] for x in res), "expected a cache hit"
                target, ok = ("≤ 0.3 s", r["seconds"] <= 0.3) if ds == "beauty" else ("", None)
                self.row(label, f"load from cache{kname}", r["seconds"], r["cpu"], r["peak"], r["delta"], target, ok,
                         load, note=f"{reps} runs" if reps > 1 else "")
        for k in ks:
            if self.selected(ds, "graph"):
                self.ensure_cache(ds, None)
                load = os.getloadavg()[0]
                res = [self.worker(dict(step="graph", cache_dir=str(self.cache_dir(ds, None)), max_neighbours=k),
                                   timeout=1800) for _ in range(reps)]
                r = summarise(res)
                target, ok = "", None
                if ds == "syn1m":
                    target, ok = "< 2 GiB peak", r["peak"] < 2 * GIB
                self.row(label, f"graph build (build_operator), max_neighbours={k}", r["seconds"], r["cpu"],
                         r["peak"], r["delta"], target, ok, load,
                         note=f"nnz {res[-1]['nnz']:,}" + (f"; {reps} runs" if reps > 1 else ""))

    # -- training rows ----------------------------------------------------------------------------
    def train_rows(self, model: str) -> None:
        ds = "beauty"
        want_train = self.selected(ds, "train")
        want_val = self.selected(ds, "val")
        want_pl = self.selected(ds, "lightning") and self.args.device == "cpu"
        device = self.args.device
        on_cpu = device == "cpu"
        label = "Beauty" if on_cpu else f"Beauty ({device})"
        if not (want_train or want_val or want_pl):
            return
        self.ensure_cache(ds, None)
        self.ensure_cache(ds, K)
        name = "SASRec" if model == "sasrec" else "MF-BPR"
        bs = 256 if model == "sasrec" else 2048
        epoch_target = 3.0 if model == "sasrec" else 0.5
        base = dict(load_args=self.load_args(ds), cache_dir=str(self.cache_dir(ds, None)), model=model,
                    device=device)
        load = os.getloadavg()[0]
        r = self.worker(dict(base, step="train", repeats=self.args.epochs, lightning=want_pl, k=K,
                             k_cache_dir=str(self.cache_dir(ds, K))), timeout=1800)
        mem = {}  # (phase, config) -> peak of a process running only that
        for phase, wanted in (("train", want_train), ("val", want_val)):
            for band in ("none", "0-5") if wanted else ():
                mem[phase, band] = self.worker(dict(base, step="train_mem", band=band, phase=phase))
        configs = [("none", "no band"), ("0-5", "band [0,5]"), (f"0-5/k{K}", f"band [0,5], max_neighbours={K}")]
        med = {c: statistics.median(r["epoch"][c]) for c, _ in configs}
        reps = len(r["epoch"]["none"])
        if want_train:
            for c, text in configs:
                m = mem.get(("train", c), {})
                self.row(label, f"{name} epoch (batch {bs}{', maxlen 50' if model == 'sasrec' else ''}), {text}",
                         med[c], statistics.median(r["cpu"]["epoch"][c]), m.get("peak"), m.get("delta"),
                         f"≤ {epoch_target:g} s" if on_cpu else "", med[c] <= epoch_target if on_cpu else None, load,
                         note=f"median of {reps} interleaved; {r['batches']} batches; {r['threads']['train']} thread(s); "
                              f"{', '.join(f'{x:.2f}' for x in r['epoch'][c])}" + gpu_note(m))
            for c, text in configs[1:]:
                ratios = [b / a for a, b in zip(r["epoch"]["none"], r["epoch"][c])]
                ratio = statistics.median(ratios)
                self.row(label, f"{name} epoch ratio {text} / no band", None, None, None, None,
                         "≤ 1.15x" if on_cpu else "", ratio <= 1.15 if on_cpu else None, load,
                         note=f"{ratio:.2f}x (median of per-pair ratios {', '.join(f'{x:.2f}' for x in ratios)}); "
                              f"band rows nnz {r['band_nnz'][c]:,}")
        if want_val:
            for c, text in configs[:2]:
                v = statistics.median(r["val"][c])
                m = mem.get(("val", c), {})
                self.row(label, f"{name} validation pass (full ranking, 22,363 users), {text}", v,
                         statistics.median(r["cpu"]["val"][c]), m.get("peak"), m.get("delta"),
                         "≤ 1.5 s" if on_cpu else "", v <= 1.5 if on_cpu else None, load,
                         note=f"median of {len(r['val'][c])}; {r['threads']['eval']} thread(s); "
                              + ", ".join(f"{x:.2f}" for x in r["val"][c])
                              + gpu_note(m))
        if want_pl:
            for c, text in configs[:2]:
                t = statistics.median(r["lightning"][c])
                self.row("Beauty", f"{name} epoch via Lightning Trainer(max_epochs=1), {text}", t, None, None, None,
                         "", None, load, note=f"{t / med[c]:.2f}x the plain loop")

    # -- quality ----------------------------------------------------------------------------------
    def quality(self, epochs: int, seeds: list[int]) -> str:
        ds = "beauty"
        for k in (None, K):
            self.ensure_cache(ds, k)
        runs = {}
        for seed in seeds:
            print(f"quality, seed {seed} ...", file=sys.stderr, flush=True)
            runs[seed] = self.worker(dict(step="quality", load_args=self.load_args(ds),
                                          cache_dir=str(self.cache_dir(ds, None)), max_neighbours=[None, K],
                                          epochs=epochs, every=max(1, epochs // 4), seed=seed), timeout=3600)
        cols = [(seed, k) for seed in seeds for k in ("None", str(K))]
        head = " | ".join(f"seed {s}, max_neighbours={k}" for s, k in cols)
        lines = [f"| SASRec, band [0,5], Beauty | {head} |",
                 "|---" * (len(cols) + 1) + "|"]
        first = runs[seeds[0]]["None"]["val_ndcg10"]
        for j, (e, _) in enumerate(first):
            lines.append(f"| val NDCG@10 after epoch {e} | "
                         + " | ".join(f"{runs[s][k]['val_ndcg10'][j][1]:.4f}" for s, k in cols) + " |")
        lines.append(f"| test NDCG@10 after epoch {epochs} | "
                     + " | ".join(f"{runs[s][k]['test_ndcg10']:.4f}" for s, k in cols) + " |")
        lines.append("| operator nnz / band-row nnz | "
                     + " | ".join(f"{runs[s][k]['nnz']:,} / {runs[s][k]['band_nnz']:,}" for s, k in cols) + " |")
        lines.append("| train + eval seconds | " + " | ".join(f"{runs[s][k]['seconds']:.0f}" for s, k in cols) + " |")
        return "\n".join(lines)


def gpu_note(m: dict) -> str:
    return f"; GPU peak {m['gpu_peak']:.0f} MiB" if "gpu_peak" in m else ""


def summarise(res: list[dict]) -> dict:
    return {
        "seconds": statistics.median(x["seconds"] for x in res),
        "cpu": statistics.median(x["cpu"] for x in res),
        "peak": max(x["peak"] for x in res),
        "delta": max(x["delta"] for x in res),
    }


def _f(x, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def format_row(r: dict) -> str:
    ok = "" if r["ok"] is None else ("yes" if r["ok"] else "**NO**")
    return (f"| {r['dataset']} | {r['step']} | {_f(r['seconds'], '.2f')} | {_f(r['cpu'], '.2f')} | "
            f"{_f(r['peak'], '.0f')} | {_f(r['delta'], '.0f')} | {r['target']} | {ok} | {_f(r['load'], '.1f')} | "
            f"{r['note']} |")


HEADER = ("| dataset | step | seconds | cpu s | peak MiB | Δ MiB | target | ok | load | notes |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def machine() -> str:
    import torch

    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                   if x.startswith("MemTotal")) / 2**20
    except (OSError, StopIteration):
        mem = float("nan")
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{model}, {os.cpu_count()} cores, {mem:.1f} GiB RAM{gpu}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip synthetic 10M")
    ap.add_argument("--only", type=lambda s: [t.strip() for t in s.split(",") if t.strip()], default=None,
                    help=f"comma list of datasets {list(DATASETS)}, groups {list(GROUPS)} or dataset:group")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the small-data steps (median)")
    ap.add_argument("--epochs", type=int, default=3, help="interleaved epochs per configuration (median)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads in the training workers, both phases (default: embfreq's per-phase policy, "
                         "training 1 thread and evaluation all usable cores)")
    ap.add_argument("--omp-passive", action="store_true",
                    help="OMP_WAIT_POLICY=PASSIVE in the workers (for a shared, oversubscribed machine)")
    ap.add_argument("--quality", type=int, default=0, metavar="EPOCHS",
                    help="also train SASRec on Beauty for EPOCHS epochs with and without max_neighbours=50")
    ap.add_argument("--quality-seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1],
                    help="model seeds of the quality runs, e.g. 1,2")
    ap.add_argument("--device", default="cpu",
                    help="where the training and validation rows run, e.g. cuda (no targets apply there)")
    ap.add_argument("--workdir", default=None, help="where data files and caches go (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    if args.device != "cpu":
        import torch

        try:
            torch.empty(0, device=args.device)
        except (RuntimeError, AssertionError) as e:
            ap.error(f"--device {args.device} is not usable here: {str(e).splitlines()[0]}")
    if args.only:
        bad = [t for t in args.only if not any(p in DATASETS or p in GROUPS for p in t.split(":"))]
        if bad:
            ap.error(f"unknown --only token(s) {bad}; datasets {list(DATASETS)}, groups {list(GROUPS)}")

    run = Runner(args)
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    try:
        for ds in DATASETS:
            if any(run.selected(ds, g) for g in GROUPS[:4]):
                print(f"{ds} ...", file=sys.stderr, flush=True)
                run.data_rows(ds)
        for model in ("sasrec", "mf"):
            print(f"training {model} ...", file=sys.stderr, flush=True)
            run.train_rows(model)
        quality = run.quality(args.quality, args.quality_seeds) if args.quality else None
    finally:
        if not args.workdir:
            shutil.rmtree(run.work, ignore_errors=True)
    load1 = os.getloadavg()
    print(HEADER)
    for r in run.rows:
        print(format_row(r))
    print()
    from embfreq.training.threads import phase_threads, usable_cpus

    policy = phase_threads(args.threads, usable_cpus())
    print(f"{machine()}; workers' threads: training {policy['train']}, evaluation {policy['eval']} "
          f"({'--threads' if args.threads else 'embfreq policy'}); "
          f"OMP_WAIT_POLICY={run.env.get('OMP_WAIT_POLICY', '(default)')}, "
          f"GOMP_SPINCOUNT={run.env.get('GOMP_SPINCOUNT', '(default)')}; "
          f"load average {load0[0]:.1f}/{load0[1]:.1f} at start, {load1[0]:.1f}/{load1[1]:.1f} at end; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; total {time.perf_counter() - t0:.0f} s")
    if quality:
        print()
        print(quality)


if __name__ == "__main__":
    main()
