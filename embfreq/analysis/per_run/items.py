"""Per-item analysis tables: training frequency against embedding norm and per-item quality.

Convention for every function here and in ``plots``: arrays are indexed by internal item id
and row 0 is the padding item, which is dropped (pass ``padding=False`` when the arrays
hold real items only).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from embfreq.io import atomic_path

PER_ITEM_KEYS = ("count", "hr", "recall", "ndcg")


def to_numpy(x) -> np.ndarray:
    """Array from a numpy array, list or (any-device) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def real_items(x, padding: bool = True) -> np.ndarray:
    x = to_numpy(x)
    if x.ndim != 1:
        raise ValueError(f"per-item arrays must be 1-D, got shape {x.shape}")
    if padding:
        if len(x) == 0:
            raise ValueError("expected a padding row 0, got an empty array")
        return x[1:]
    return x


def item_columns(k: int = 10) -> tuple[str, ...]:
    return ("item", "raw_id", "freq", "in_band", "own_norm", "effective_norm", "test_cases",
            f"hr@{k}", f"recall@{k}", f"ndcg@{k}")


def _opt_float(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def item_table(
    item_ids: Sequence[str],
    item_freq: np.ndarray,
    in_band: np.ndarray,
    own_norm: np.ndarray,
    effective_norm: np.ndarray,
    per_item: Mapping[str, np.ndarray],
    *,
    k: int = 10,
) -> list[dict]:
    """One dict per real item (internal ids 1..N-1), keys ``item_columns(k)``.

    All arrays have length N (row 0 = padding). ``item_ids`` has length N (entry 0 ignored) or
    N-1 (raw ids of items 1..N-1). ``own_norm`` is NaN where the item has no own embedding
    row. ``per_item`` is ``PerItemMetrics(k=k).compute()`` (tensors or arrays). Missing values
    are None: own_norm/effective_norm when NaN, and the metrics of items with no test case
    (PerItemMetrics reports 0 there, which would read as "always missed").
    """
    freq = to_numpy(item_freq)
    n = len(freq)
    arrays = {"in_band": to_numpy(in_band), "own_norm": to_numpy(own_norm), "effective_norm": to_numpy(effective_norm)}
    missing = [key for key in PER_ITEM_KEYS if key not in per_item]
    if missing:
        raise ValueError(f"per_item lacks keys {missing}; expected {PER_ITEM_KEYS}")
    arrays.update({key: to_numpy(per_item[key]) for key in PER_ITEM_KEYS})
    for name, a in arrays.items():
        if a.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},) like item_freq, got {a.shape}")
    if n < 1:
        raise ValueError("item_freq must contain at least the padding row")
    ids = list(item_ids)
    if len(ids) == n:
        ids = ids[1:]
    elif len(ids) != n - 1:
        raise ValueError(f"item_ids must have {n} (with padding) or {n - 1} entries, got {len(ids)}")

    rows = []
    for i in range(1, n):
        cases = int(arrays["count"][i])
        has = cases > 0
        rows.append({
            "item": i,
            "raw_id": str(ids[i - 1]),
            "freq": int(freq[i]),
            "in_band": bool(arrays["in_band"][i]),
            "own_norm": _opt_float(arrays["own_norm"][i]),
            "effective_norm": _opt_float(arrays["effective_norm"][i]),
            "test_cases": cases,
            f"hr@{k}": float(arrays["hr"][i]) if has else None,
            f"recall@{k}": float(arrays["recall"][i]) if has else None,
            f"ndcg@{k}": float(arrays["ndcg"][i]) if has else None,
        })
    return rows


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return str(v)


def write_items_csv(path, table: Sequence[Mapping], k: int | None = None) -> None:
    """Write the item table atomically (``embfreq.io.atomic_path``: temp file, fsync, rename).

    Columns are ``item_columns(k)``; k is read from the table's ``hr@k`` key when not given.
    None/NaN become empty cells, booleans 0/1, floats full precision.
    """
    path = Path(path)
    if k is None:
        k = 10
        if table:
            hk = [c for c in table[0] if c.startswith("hr@")]
            if hk:
                k = int(hk[0][3:])
    cols = item_columns(k)
    with atomic_path(path, durable=True) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for row in table:
                w.writerow([_cell(row[c]) for c in cols])


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of finite values, ties get the mean of their positions."""
    from scipy.stats import rankdata  # here: the report reads run dirs without paying for scipy.stats

    return rankdata(np.asarray(x), method="average").astype(np.float64)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (Pearson correlation of average ranks) over pairs where both are finite.

    NaN when fewer than 2 such pairs or either side is constant. The ranks are scipy's; the correlation
    is not scipy.stats.spearmanr because that differs from this arithmetic in the last bit for about
    half the inputs, and the 317 committed metrics.json values come from this arithmetic.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman needs two 1-D arrays of one length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return float("nan")
    rx = average_ranks(x) - (len(x) + 1) / 2.0
    ry = average_ranks(y) - (len(y) + 1) / 2.0
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if den == 0.0:
        return float("nan")
    return float(np.clip(float(rx @ ry) / den, -1.0, 1.0))


def norm_threshold(norms: np.ndarray, never_trained: np.ndarray) -> tuple[float | None, float | None]:
    """Threshold t for the rule "norm <= t means never trained" with the best balanced accuracy.

    Balanced accuracy (mean of the two per-class recalls) rather than error count because
    never-trained items are usually a small minority. Cuts are tried at every distinct norm;
    ties in accuracy go to the smallest cut. t is reported as the midpoint between the cut
    norm and the next larger norm (the cut itself when it is the largest), so it sits in
    the gap. Returns (t, balanced accuracy); (None, None) when either class is empty.
    NaN norms must be removed by the caller.
    """
    norms = np.asarray(norms, dtype=np.float64)
    neg = np.asarray(never_trained, dtype=bool)
    n_never, n_trained = int(neg.sum()), int((~neg).sum())
    if n_never == 0 or n_trained == 0:
        return None, None
    order = np.argsort(norms, kind="mergesort")
    v, c = norms[order], neg[order]
    cum_never = np.cumsum(c)
    cum_trained = np.cumsum(~c)
    last = np.r_[v[1:] != v[:-1], True]  # last index of each distinct norm
    idx = np.flatnonzero(last)
    ba = 0.5 * (cum_never[idx] / n_never + 1.0 - cum_trained[idx] / n_trained)
    j = int(np.argmax(ba))
    cut = v[idx[j]]
    t = float(cut)
    if j + 1 < len(idx):
        mid = float((cut + v[idx[j + 1]]) / 2.0)
        # Adjacent floats can round the midpoint up onto the next norm.
        t = mid if mid < v[idx[j + 1]] else t
    return t, float(ba[j])


def summary_numbers(item_freq: np.ndarray, norms: np.ndarray, *, padding: bool = True) -> dict:
    """Headline numbers for one model's item embeddings; JSON-ready (undefined values are None).

    Keys: num_items, spearman_freq_norm (all items), spearman_freq_norm_trained (freq >= 1),
    never_trained_items (freq == 0), norm_threshold (see ``norm_threshold``),
    threshold_balanced_accuracy, items_below_threshold (norm <= t, any class),
    never_trained_below_threshold, trained_below_threshold. Items with a NaN norm count in
    num_items/never_trained_items only.
    """
    freq = real_items(item_freq, padding).astype(np.float64)
    norm = real_items(norms, padding).astype(np.float64)
    if freq.shape != norm.shape:
        raise ValueError(f"item_freq and norms differ in length: {freq.shape} vs {norm.shape}")
    never = freq == 0
    rho_all = spearman(freq, norm)
    rho_trained = spearman(freq[~never], norm[~never])
    ok = np.isfinite(norm)
    t, ba = norm_threshold(norm[ok], never[ok])
    out = {
        "num_items": int(len(freq)),
        "spearman_freq_norm": _opt_float(rho_all),
        "spearman_freq_norm_trained": _opt_float(rho_trained),
        "never_trained_items": int(never.sum()),
        "norm_threshold": t,
        "threshold_balanced_accuracy": ba,
        "items_below_threshold": None,
        "never_trained_below_threshold": None,
        "trained_below_threshold": None,
    }
    if t is not None:
        below = ok & (norm <= t)
        out["items_below_threshold"] = int(below.sum())
        out["never_trained_below_threshold"] = int((below & never).sum())
        out["trained_below_threshold"] = int((below & ~never).sum())
    return out
