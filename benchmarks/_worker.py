"""One benchmark measurement in a fresh process (so peak memory never mixes); used by run.py.

Usage: python benchmarks/_worker.py '<json spec>'  -> prints one line ``RESULT {json}``.
Every measurement reports wall seconds, CPU seconds of this process, its peak RSS (``ru_maxrss``)
and ``delta``: the peak minus the RSS just before the measured step (imports and inputs excluded).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

MIB = 1024 * 1024


def rss_mib() -> float:
    """Current resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Measure:
    """Wall and CPU time of a block, plus RSS before it (for the peak delta)."""

    def __enter__(self):
        gc.collect()
        self.base = rss_mib()
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.cpu0
        return False

    def result(self, **extra) -> dict:
        peak = peak_mib()
        return {"seconds": self.seconds, "cpu": self.cpu, "peak": peak, "delta": peak - self.base, **extra}


# -- data ---------------------------------------------------------------------------------------
def step_generate(spec: dict) -> dict:
    import synthetic

    with Measure() as m:
        u, i = synthetic.generate(spec["interactions"], spec["users"], spec["items"], seed=spec.get("seed", 0))
        synthetic.write_pairs(spec["path"], u, i)
    return m.result(bytes=os.path.getsize(spec["path"]))


def step_process(spec: dict) -> dict:
    """load_processed: from raw when the cache dir is empty (read, filter, split, graph, cache write),
    else from the cache."""
    from embfreq.data import processed  # noqa: F401  (imports torch, scipy: not part of the timing)
    from embfreq.data import readers  # noqa: F401
    from embfreq.data.processed import load_processed

    with Measure() as m:
        d = load_processed(**spec["load_args"], cache_dir=spec["cache_dir"])
    stats = d.stats()
    return m.result(cached=d.cached, nnz=stats["graph_nnz"], users=stats["users"], items=stats["items"],
                    interactions=stats["interactions"], train=stats["train_interactions"])


def _train_arrays(cache_dir: str):
    """Training interactions from the (single) processed cache in `cache_dir`, nothing else loaded."""
    import numpy as np

    npz = sorted(Path(cache_dir).glob("*.npz"))
    if len(npz) != 1:
        raise SystemExit(f"expected one cache file in {cache_dir}, found {len(npz)}")
    with np.load(npz[0], allow_pickle=False) as z:
        ptr, items, n = z["train_ptr"], z["train_items"], len(z["item_freq"])
    users = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    return users, items, len(ptr) - 1, n


def step_graph(spec: dict) -> dict:
    """build_operator alone (as `process` calls it, float32 cast included) on the cached training data."""
    import numpy as np

    from embfreq.data.graph import build_operator

    users, items, num_users, n = _train_arrays(spec["cache_dir"])
    k = spec.get("max_neighbours")
    with Measure() as m:
        op = build_operator(users, items, num_users, n, spec.get("normalization", "left"), k)
        op = op.astype(np.float32)
    return m.result(nnz=int(op.nnz))


# -- training -----------------------------------------------------------------------------------
BANDS = {"none": (None, None), "0-5": (0, 5)}


def _setup_torch(spec: dict):
    import torch

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    import warnings

    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    return torch


def _thread_policy(spec: dict) -> dict:
    """Threads per phase: --threads N sets both; else embfreq's own policy, as a run gets it
    (training 1 thread, evaluation all usable cores)."""
    from embfreq.training.threads import phase_threads, usable_cpus

    return phase_threads(int(spec["threads"]) if spec.get("threads") else None, usable_cpus())


def _datamodule(spec: dict, sampling: str, max_neighbours=None):
    from embfreq.data.datamodule import RecDataModule

    args = dict(spec["load_args"], max_neighbours=max_neighbours)
    bs = 256 if sampling == "seq" else 2048
    dm = RecDataModule(**args, cache_dir=spec["cache_dir"], sampling=sampling, maxlen=50, batch_size=bs,
                       eval_batch_size=512, seed=1)
    dm.setup()
    return dm


def _to(batch: dict, device: str) -> dict:
    if device == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if hasattr(v, "to") else v for k, v in batch.items()}


def _sync(device: str) -> None:
    """Wait for queued GPU work, so wall time covers it."""
    if device != "cpu":
        import torch

        torch.cuda.synchronize()


def _model(model: str, dm, band: str, seed: int = 1, operator=None, device: str = "cpu"):
    import torch

    from functools import partial

    from embfreq.models import MFBPR, SASRec
    from embfreq.nn import SmoothedItemEmbedding
    from embfreq.nn.sasrec import SASRecEncoder

    lo, hi = BANDS[band]
    torch.manual_seed(seed)
    op = dm.operator if operator is None else operator
    table = SmoothedItemEmbedding(dm.num_items + 1, 64, dm.item_freq, op, lo, hi, padding_idx=0)
    if model == "sasrec":
        encoder = partial(SASRecEncoder, maxlen=50, embedding_dim=64, num_blocks=2, num_heads=1, dropout=0.2)
        net = SASRec(encoder, table, loss="bce")
    else:
        net = MFBPR(num_users=dm.num_users, item_table=table)
    return net.to(device)  # before configure_optimizers: the fused Adam needs its parameters in place


def _epoch(model, opt, dm, device: str = "cpu") -> int:
    """One plain-loop training epoch; the compiled step when the model has one (`compile_step`)."""
    model.train()
    step = model.compiled_loss if getattr(model, "compiled_step", None) is not None else model.training_loss
    n = 0
    for b in dm.train_dataloader():
        loss = step(_to(b, device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += 1
    _sync(device)
    return n


def _validate(model, dm, stage: str = "valid", device: str = "cpu"):
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        loader = dm.val_dataloader() if stage == "valid" else dm.test_dataloader()
        for b in loader:
            out.append(model.ranks(_to(b, device)))
    ranks = torch.cat(out).cpu()
    _sync(device)
    return ranks


def step_train(spec: dict) -> dict:
    """Plain-loop epochs, then validation passes, the configurations taking turns; optional Lightning epochs.

    Configurations: ``none`` (no band), ``0-5`` (band [0,5]) and ``0-5/k<K>`` (band [0,5] with the
    operator built with max_neighbours=K, read from `k_cache_dir`).
    """
    torch = _setup_torch(spec)
    policy = _thread_policy(spec)
    model_name, device = spec["model"], spec.get("device", "cpu")
    dm = _datamodule(spec, "seq" if model_name == "sasrec" else "pair")
    runs = {}
    for band in BANDS:
        model = _model(model_name, dm, band, device=device)
        runs[band] = (model, model.configure_optimizers())
    if spec.get("k"):
        from embfreq.data.graph import to_torch_csr
        from embfreq.data.processed import load_processed

        pk = load_processed(**dict(spec["load_args"], max_neighbours=spec["k"]), cache_dir=spec["k_cache_dir"])
        model = _model(model_name, dm, "0-5", operator=to_torch_csr(pk.operator), device=device)
        runs[f"0-5/k{spec['k']}"] = (model, model.configure_optimizers())
    epoch = {b: [] for b in runs}
    val = {b: [] for b in runs}
    cpu = {"epoch": {b: [] for b in runs}, "val": {b: [] for b in runs}}
    batches = 0
    torch.set_num_threads(policy["train"])
    for _ in range(spec["repeats"]):
        for band, (model, opt) in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            batches = _epoch(model, opt, dm, device)
            epoch[band].append(time.perf_counter() - t0)
            cpu["epoch"][band].append(time.process_time() - c0)
    torch.set_num_threads(policy["eval"])
    for _ in range(spec["repeats"]):
        for band, (model, _opt) in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            _validate(model, dm, device=device)
            val[band].append(time.perf_counter() - t0)
            cpu["val"][band].append(time.process_time() - c0)
    res = {"epoch": epoch, "val": val, "cpu": cpu, "batches": batches,
           "threads": {k: policy[k] for k in ("train", "eval")},
           "band_nnz": {b: int(m.items.band_nnz) for b, (m, _o) in runs.items()}, "peak": peak_mib()}
    torch.set_num_threads(policy["train"])
    if spec.get("lightning") and device == "cpu":
        import logging

        import pytorch_lightning as pl

        for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.ERROR)
        res["lightning"] = {b: [] for b in BANDS}
        for _ in range(spec.get("lightning_repeats", 1)):
            for band in BANDS:
                model = runs[band][0]
                trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                                     enable_checkpointing=False, enable_progress_bar=False,
                                     enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
                model.train()  # Lightning keeps the modules' mode; the validation passes left them in eval
                t0 = time.perf_counter()
                trainer.fit(model, datamodule=dm)
                res["lightning"][band].append(time.perf_counter() - t0)
    return res


def step_train_mem(spec: dict) -> dict:
    """Peak memory of one configuration and phase (one epoch, or one validation pass), in a process of its own."""
    torch = _setup_torch(spec)
    torch.set_num_threads(_thread_policy(spec)["train" if spec["phase"] == "train" else "eval"])
    device = spec.get("device", "cpu")
    dm = _datamodule(spec, "seq" if spec["model"] == "sasrec" else "pair")
    model = _model(spec["model"], dm, spec["band"], device=device)
    opt = model.configure_optimizers()
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    with Measure() as m:
        if spec["phase"] == "train":
            _epoch(model, opt, dm, device)
        else:
            _validate(model, dm, device=device)
    extra = {"gpu_peak": torch.cuda.max_memory_allocated() / MIB} if device != "cpu" else {}
    return m.result(**extra)


def _ndcg10(ranks) -> float:
    import torch

    r = ranks.double()
    return float(torch.where(r <= 10, 1.0 / torch.log2(r + 1.0), torch.zeros_like(r)).mean())


def step_quality(spec: dict) -> dict:
    """SASRec (band [0,5]) on one dataset with and without max_neighbours: NDCG@10 at equal epochs."""
    _setup_torch(spec)
    every = spec.get("every", 5)
    out = {}
    for k in spec["max_neighbours"]:
        dm = _datamodule(spec, "seq", max_neighbours=k)
        model = _model("sasrec", dm, "0-5", seed=spec.get("seed", 1))
        opt = model.configure_optimizers()
        curve = []
        t0 = time.perf_counter()
        for e in range(1, spec["epochs"] + 1):
            _epoch_seeded(model, opt, dm, e)
            if e % every == 0 or e == spec["epochs"]:
                curve.append((e, _ndcg10(_validate(model, dm))))
        out[str(k)] = {"val_ndcg10": curve, "test_ndcg10": _ndcg10(_validate(model, dm, "test")),
                       "nnz": int(dm.data.operator.nnz), "band_nnz": int(model.items.band_nnz),
                       "seconds": time.perf_counter() - t0}
    return out


def _epoch_seeded(model, opt, dm, epoch: int) -> None:
    """One epoch with the sampler's epoch set, so each epoch sees new batches and negatives."""
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    model.train()
    for b in loader:
        loss = model.training_loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()


STEPS = {
    "generate": step_generate,
    "process": step_process,
    "graph": step_graph,
    "train": step_train,
    "train_mem": step_train_mem,
    "quality": step_quality,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    res = STEPS[spec["step"]](spec)
    print("RESULT " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
