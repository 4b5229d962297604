"""What each run of a sweep is compared with: its variant (the config keys on which runs of one
model and data differ, besides band and seed) and its no-band baseline."""

from __future__ import annotations

import json

import numpy as np

# Config keys that never split runs into separate panels: the swept band and seed have their
# own axes, and these others do not change results.
IGNORED_KEYS = ("seed", "lower_freq", "upper_freq", "neighbours", "cache_dir", "threads", "threads.train",
                "threads.eval", "compile", "resume", "analysis",
                "data.seed", "data.cache_dir", "data.num_workers", "data.bucketing", "data.eval_batch_size")
IGNORED_PREFIXES = ("trainer.", "callbacks.", "logger.", "item_table.")  # item_table: a mode, as neighbours  # run mechanics: the best checkpoint's monitor is monitor.*


def _ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def assign_variants(rows) -> None:
    """Name the config keys (other than band, seed, ...) on which runs of one model and data differ."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r.model, r.data), []).append(r)
    for group in groups.values():
        group = [r for r in group if r.config]  # runs without config.yaml cannot say how they differ
        keys = sorted({k for r in group for k in r.config if not _ignored(k)})
        varying = [k for k in keys if len({json.dumps(r.config.get(k), sort_keys=True, default=str) for r in group}) > 1]
        for r in group:
            r.variant = ", ".join(f"{k}={_fmt_value(r.config.get(k))}" for k in varying)


def _fmt_value(v) -> str:
    return "null" if v is None else str(v)


def assign_baselines(rows) -> None:
    """Baseline of a run: ok no-band runs of the same model and data (same variant when there is
    one), of the same seed when there is one, else the mean over all of them."""
    bases = [r for r in rows if r.ok and r.is_baseline and r.ndcg is not None]
    for r in rows:
        if not r.ok or r.is_baseline:
            continue
        cands = [b for b in bases if (b.model, b.data) == (r.model, r.data)]
        same_variant = [b for b in cands if b.variant == r.variant]
        cands = same_variant or cands
        same_seed = [b for b in cands if b.seed == r.seed and r.seed is not None]
        cands = same_seed or cands
        if cands:
            r.baseline = {
                "hr": float(np.mean([b.hr for b in cands if b.hr is not None])) if any(b.hr is not None for b in cands) else None,
                "ndcg": float(np.mean([b.ndcg for b in cands])),
                "runs": len(cands),
            }
