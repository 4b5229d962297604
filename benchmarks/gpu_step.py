"""SASRec on Beauty: training epoch and full-ranking validation pass, eager against compiled.

    python benchmarks/gpu_step.py [--device cuda] [--epochs 3] [--modes eager,compiled,cudagraphs]
                                  [--max-batches N] [--backend inductor] [--out DIR]

Modes: `eager`; `compiled` (the package's compile=true: `RankingModel.compile_step`, inductor, dynamic
shapes); `cudagraphs` (the same with torch.compile mode "reduce-overhead": CUDA graphs, one per batch
shape, so the first epoch records them). All modes share one process and the same batches; after a
first epoch (which pays the compilation, reported apart), epochs take turns between the modes and the
table gives medians. The validation pass is the package's, eager in every mode (only the training
step is compiled). Prints a markdown table (and writes it to DIR/gpu_step.md with --out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
LOAD_ARGS = dict(bundled="Beauty.txt.gz", format="seq", min_user_interactions=5, min_item_interactions=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per mode, after the first")
    ap.add_argument("--modes", default="eager,compiled,cudagraphs")
    ap.add_argument("--max-batches", type=int, default=0, help="batches per epoch (0: all); for a dry run")
    ap.add_argument("--backend", default="inductor")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default="/tmp/embfreq-bench-cache")
    ap.add_argument("--out")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    import _worker as w
    from embfreq.training.compile_step import CompiledStep

    dev = a.device
    dm = w._datamodule({"load_args": LOAD_ARGS, "cache_dir": a.cache_dir}, "seq")
    batches = []
    for i, b in enumerate(dm.train_dataloader()):
        if a.max_batches and i >= a.max_batches:
            break
        batches.append(w._to(b, dev))
    modes = [m for m in a.modes.split(",") if m and (m != "cudagraphs" or dev.startswith("cuda"))]
    runs = {}
    for mode in modes:
        model = w._model("sasrec", dm, "0-5", device=dev)
        opt = model.configure_optimizers()
        if mode != "eager":
            model.compiled_step = CompiledStep(model.dense_loss, backend=a.backend)
            if mode == "cudagraphs":
                model.compiled_step.compiled = torch.compile(model.dense_loss, backend=a.backend, dynamic=True,
                                                             mode="reduce-overhead")
        runs[mode] = (model, opt)

    def epoch(model, opt):
        model.train()
        step = model.compiled_loss if getattr(model, "compiled_step", None) is not None else model.training_loss
        t0 = time.perf_counter()
        for b in batches:
            loss = step(b)
            opt.zero_grad()
            loss.backward()
            opt.step()
        w._sync(dev)
        return time.perf_counter() - t0

    first = {m: epoch(*runs[m]) for m in modes}  # compiles (and records CUDA graphs)
    times = {m: [] for m in modes}
    for _ in range(a.epochs):
        for m in modes:
            times[m].append(epoch(*runs[m]))
    val = {m: [] for m in modes}
    for _ in range(max(1, a.epochs)):
        for m in modes:
            t0 = time.perf_counter()
            w._validate(runs[m][0], dm, device=dev)
            val[m].append(time.perf_counter() - t0)
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else "CPU"
    lines = [f"# SASRec, Beauty, band [0,5], batch 256, {len(batches)} batches per epoch, device {dev} ({name}), "
             f"torch {torch.__version__}, {a.threads} CPU thread(s); {time.strftime('%Y-%m-%d %H:%M')}",
             "| mode | first epoch (compile included) | compile s | epoch s (median; all) | speed-up over eager (eager s / this s) | validation pass s |",
             "|---|---|---|---|---|---|"]
    base = statistics.median(times["eager"]) if "eager" in times else None
    for m in modes:
        med = statistics.median(times[m])
        comp = runs[m][0].compiled_step.record()["seconds"] if m != "eager" else 0.0
        ratio = f"{base / med:.2f}x" if base else ""
        lines.append(f"| {m} | {first[m]:.2f} | {comp:.1f} | {med:.3f} ({', '.join(f'{t:.3f}' for t in times[m])}) | "
                     f"{ratio} | {statistics.median(val[m]):.3f} |")
    text = "\n".join(lines)
    print(text, flush=True)
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "gpu_step.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
