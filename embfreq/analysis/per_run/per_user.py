"""Per-user test results of one run: the file every paired comparison is computed from.

`test_users.npz` holds, in user order, each user's test rank (full ranking, seen items removed),
the test target and the target's training frequency. Ranks are all a run adds; the other two
arrays make the file self-contained for the split by frequency bucket.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embfreq.io import atomic_path

FILE = "test_users.npz"


def _smallest_uint(a: np.ndarray) -> np.ndarray:
    top = int(a.max(initial=0))
    for dt in (np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return a.astype(dt)
    return a.astype(np.uint64)


def write_test_users(run_dir: str | Path, ranks: np.ndarray, targets: np.ndarray, target_freq: np.ndarray) -> Path:
    ranks, targets = np.asarray(ranks), np.asarray(targets)
    if not (len(ranks) == len(targets) == len(target_freq)):
        raise ValueError(f"ranks, targets and target_freq differ in length: {len(ranks)}, {len(targets)}, {len(target_freq)}")
    if len(ranks) and int(ranks.min()) < 1:
        raise ValueError("every user needs a test rank >= 1 (a user was not tested)")
    path = Path(run_dir) / FILE
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, rank=_smallest_uint(ranks), target=_smallest_uint(targets),
                                target_freq=np.asarray(target_freq, dtype=np.uint32))
    return path


def read_test_users(run_dir: str | Path) -> dict[str, np.ndarray]:
    """{"rank", "target", "target_freq"} as int64 arrays, in user order."""
    path = Path(run_dir) / FILE
    with np.load(path) as z:
        return {k: z[k].astype(np.int64) for k in ("rank", "target", "target_freq")}


def per_user_metric(ranks: np.ndarray, metric: str, k: int = 10) -> np.ndarray:
    """Per-user HR@k or NDCG@k from 1-based ranks (one target per user); float64."""
    r = np.asarray(ranks, dtype=np.float64)
    hit = r <= k
    if metric == "hr":
        return hit.astype(np.float64)
    if metric == "ndcg":
        return np.where(hit, 1.0 / np.log2(r + 1.0), 0.0)
    raise ValueError(f"unknown metric {metric!r}; expected 'hr' or 'ndcg'")
