"""The result record of one run: metrics.json (what was trained, its test and validation metrics, its
cost and machine), the per-user test ranks, TensorBoard's hparams, the per-item analysis, and the
lines printed at its start and end."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from embfreq.band import Band
from embfreq.io import flatten, write_json


def param_counts(model) -> dict:
    items = model.items
    return {
        "embedding_params": int(sum(p.numel() for p in items.parameters())),  # allocated, whatever the strategy
        "embedding_params_saved": int(items.parameters_saved),
        "total_params": int(sum(p.numel() for p in model.parameters())),
    }


def band_info(model, dm) -> dict:
    items = model.items
    n = dm.num_items
    return {
        "items": n,
        "items_in_band": int(items.num_in_band),
        "share_in_band": float(items.num_in_band) / max(n, 1),
    }


def scalars(metrics: dict, prefix: str) -> dict:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def dataset_summary(cfg: DictConfig, dm, model) -> str:
    """What the run trains on, printed at its start."""
    st = dm.data.stats()
    n, in_band = st["items"], int(model.items.num_in_band)
    if cfg.lower_freq is None and cfg.upper_freq is None:
        band = "no band (every item has its own vector)"
    else:
        lo = 0 if cfg.lower_freq is None else cfg.lower_freq
        hi = "inf)" if cfg.upper_freq is None else f"{cfg.upper_freq}]"
        band = f"band [{lo}, {hi}: {in_band:,} items in band ({in_band / max(n, 1):.1%})"
    return (f"embfreq: data {cfg.data.name}: {st['users']:,} users, {n:,} items, {st['interactions']:,} interactions "
            f"({st['train_interactions']:,} for training); {band}; model {cfg.model.name}, seed {cfg.seed}")


def _full_batches(loaders) -> int | None:
    try:
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        return sum(len(dl) for dl in loaders)
    except TypeError:  # no length: cannot tell
        return None


def partial_evaluation(trainer, tester, dm) -> dict:
    """{"val": ..., "test": ...} for each evaluation that saw only some of its batches
    (fast_dev_run, limit_val_batches, limit_test_batches); {} when both were complete."""
    out = {}
    if trainer.fast_dev_run:
        return {"fit": f"fast_dev_run={trainer.fast_dev_run}", "val": "fast_dev_run", "test": "fast_dev_run"}
    # the limits as set, not the batch counts: a resumed finished run validates nothing and is complete
    checks = (("val", trainer.limit_val_batches, dm.val_dataloader), ("test", tester.limit_test_batches, dm.test_dataloader))
    for name, limit, loaders in checks:
        full = _full_batches(loaders())
        if isinstance(limit, float) and limit < 1.0:
            out[name] = f"limit_{name}_batches={limit:g}" + (f" of {full} batches" if full else "")
        elif isinstance(limit, int) and full is not None and limit < full:
            out[name] = f"{limit} of {full} batches"
    return out


def metrics_table(result: dict) -> str:
    """The test metrics at 5, 10 and 20 as a small table, with the best epoch."""
    test = result.get("test", {})
    ks = [k for k in (5, 10, 20) if f"test/ndcg@{k}" in test]
    lines = ["         " + "".join(f"{f'@{k}':>9}" for k in ks)]
    for name in ("hr", "ndcg", "mrr"):
        lines.append(f"test {name.upper():<4}" + "".join(f"{test.get(f'test/{name}@{k}', float('nan')):9.4f}" for k in ks))
    best = result.get("best_epoch")
    val = result.get("val", {}).get("val/ndcg@10")
    lines.append(f"best epoch {best + 1 if best is not None else 'none'} of {result.get('epochs_trained')}"
                 + (f" (val NDCG@10 {val:.4f})" if val is not None else ""))
    return "\n".join(lines)


def epochs_trained(trainer, ckpt_dir: Path, spawned: bool) -> int:
    if not spawned:
        return int(trainer.current_epoch)
    from embfreq.training.run_dir import load_checkpoint

    last = ckpt_dir / "last.ckpt"  # the main process of ddp_spawn never ran the loop
    return int(load_checkpoint(last)["epoch"]) + 1 if last.is_file() else 0


def best_checkpoint(best_cb) -> tuple[str | None, int | None, dict]:
    """(path, epoch, validation metrics) of the best checkpoint: every validation metric of the best
    epoch comes from the checkpoint; the callback's monitored score is the fallback."""
    best_path = best_cb.best_model_path or None
    val = {} if best_cb.best_model_score is None else {best_cb.monitor: float(best_cb.best_model_score)}
    best_epoch = None
    if best_path:
        from embfreq.training.run_dir import load_checkpoint

        ck = load_checkpoint(best_path)
        best_epoch = int(ck["epoch"])
        val = {k: float(v) for k, v in ck.get("embfreq_val_metrics", {}).items()} or val
    return best_path, best_epoch, val


def result_record(cfg: DictConfig, run_dir: Path, dm, model, *, partial: dict, epochs: int, best_path: str | None,
                  best_epoch: int | None, val: dict, test: dict, seconds: dict, started_at: float,
                  threads: dict) -> dict:
    """metrics.json of a finished run; `threads` is the per-phase thread policy (builders.run_threads)."""
    from embfreq.training import compile_step
    from embfreq.training.builders import neighbours_mode
    from embfreq.training.device import machine_record

    return {
        "status": "partial" if partial else "ok",
        **({"partial": partial, "reason": "partial evaluation (" + "; ".join(f"{k}: {v}" for k, v in partial.items())
            + "): its metrics are not comparable with full runs"} if partial else {}),
        "model": cfg.model.name,
        "data": cfg.data.name,
        "seed": int(cfg.seed),
        "lower_freq": cfg.lower_freq,
        "upper_freq": cfg.upper_freq,
        "neighbours": neighbours_mode(cfg),
        "item_table": str(cfg.item_table.name) if cfg.get("item_table") else "neighbours",
        **band_info(model, dm),
        **param_counts(model),
        "epochs_trained": epochs,
        "best_epoch": best_epoch,
        "best_checkpoint": best_path,
        "val": val,
        "test": test,
        "seconds": seconds,
        "run_dir": str(run_dir),
        "threads": threads["train"],  # with the wall times: what the cost was measured on
        "thread_policy": threads,  # training and evaluation thread counts, and what set them
        "compile": compile_step.record(model, cfg),  # compiled or eager, and the seconds compiling took
        "machine": machine_record(),  # what exact repetition needs: same CPU kind, same libraries
        "host": {"cpus": os.cpu_count(), "device": str(model.device), "torch": torch.__version__},
        "data_cached": bool(dm.data.cached),  # sweeps: only the first job per dataset should parse
        "started_at": started_at,  # epoch seconds; shows whether parallel sweep jobs overlapped
    }


def hparams(cfg: DictConfig, result: dict) -> dict:
    from embfreq.training.builders import neighbours_mode

    model = {f"model.{k}": v for k, v in flatten(OmegaConf.to_container(cfg.model, resolve=True)).items()
             if not k.startswith(("optimizer.", "scheduler")) and not k.endswith(("_target_", "_partial_"))
             and k != "name" and isinstance(v, (int, float, str, bool))}
    return {
        "model": cfg.model.name, "data": cfg.data.name, "seed": int(cfg.seed),
        "band": Band(cfg.lower_freq, cfg.upper_freq).label,  # TensorBoard hparams take no None
        "neighbours": neighbours_mode(cfg), "items_in_band": result["items_in_band"],
        "batch_size": int(cfg.data.batch_size), **model,
    }


def write_record(cfg: DictConfig, run_dir: Path, result: dict, model, dm, loggers, partial: dict) -> None:
    """On rank zero: test_users.npz, the loggers' hparams, the per-item analysis and metrics.json."""
    from embfreq.analysis.per_run.per_user import write_test_users

    test, val = result["test"], result["val"]
    if "test" not in partial:  # per-user ranks of some users only: no paired comparison from them
        ranks = model.test_user_ranks.numpy()
        test_targets = dm.data.split.test
        freq = dm.data.item_freq
        write_test_users(run_dir, ranks, test_targets, freq[test_targets])
    # HPARAMS-tab metrics under hp/: under their own names they would add a false step-0 point
    # to the val/* and test/* curves
    from pytorch_lightning.loggers import TensorBoardLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams(cfg, result), {f"hp/{k.replace('/', '_')}": v for k, v in {**test, **val}.items()})
        else:
            logger.log_hyperparams(hparams(cfg, result))
    if cfg.analysis and not partial:
        from embfreq.analysis.per_run.run_analysis import analyze_model

        board = next((lg for lg in loggers if hasattr(getattr(lg, "experiment", None), "add_figure")), None)
        result["analysis"] = analyze_model(model, dm, getattr(model, "test_per_item", None), run_dir, board)
    result["finished_at"] = time.time()
    write_json(run_dir / "metrics.json", result)
