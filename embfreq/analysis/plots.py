"""Per-item figures: frequency-sorted panels, frequency buckets, frequency vs norm.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never pyplot, so no
global backend or figure registry is touched. Each PNG is written atomically. Arrays follow
the convention of ``embfreq.analysis.items``: row 0 is padding and dropped unless
``padding=False``.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from embfreq.analysis.items import real_items


def _new_figure(**kwargs) -> Figure:
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-item arrays differ in length: {lengths}")
    return next(iter(lengths.values()))


def plot_frequency_panels(freq, norm, recall, ndcg, path, title: str | None = None, *,
                          counts=None, padding: bool = True, k: int = 10) -> Path:
    """Four stacked panels (Freqs, Norm, Recall@k, NDCG@k) over items sorted by training
    frequency, ascending (stable, so equal frequencies keep item-id order).

    With ``counts`` (test cases per item) items without test cases are left out of the
    Recall/NDCG panels instead of being drawn as 0.
    """
    f = real_items(freq, padding).astype(np.float64)
    v = {"Norm": real_items(norm, padding).astype(np.float64),
         f"Recall@{k}": real_items(recall, padding).astype(np.float64),
         f"NDCG@{k}": real_items(ndcg, padding).astype(np.float64)}
    c = None if counts is None else real_items(counts, padding)
    _same_length(freq=f, **v, **({} if c is None else {"counts": c}))
    order = np.argsort(f, kind="mergesort")
    x = np.arange(len(f))
    fig = _new_figure(figsize=(10, 9))
    axes = fig.subplots(4, 1, sharex=True)
    axes[0].plot(x, f[order], lw=1, color="tab:blue")
    axes[0].set_title("Freqs")
    for ax, (name, vals) in zip(axes[1:], v.items()):
        y = vals[order]
        show = np.ones(len(y), dtype=bool) if c is None or name == "Norm" else c[order] > 0
        ax.scatter(x[show], y[show], s=2, color="tab:orange" if name == "Norm" else "tab:green", linewidths=0)
        ax.set_title(name)
    axes[-1].set_xlabel("items sorted by training frequency")
    if len(f) == 0:
        axes[0].text(0.5, 0.5, "no items", transform=axes[0].transAxes, ha="center")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _bucket_of(freq: np.ndarray) -> np.ndarray:
    """0 for freq 0, b >= 1 for freq in [2**(b-1), 2**b); frexp is exact for integers."""
    _, e = np.frexp(np.maximum(freq, 0).astype(np.float64))
    return np.where(freq > 0, e, 0).astype(np.int64)


def _bucket_label(b: int) -> str:
    if b <= 1:
        return str(b)
    return f"{2 ** (b - 1)}-{2 ** b - 1}"


def frequency_buckets(freq, values: Mapping[str, np.ndarray], counts, *, padding: bool = True) -> list[dict]:
    """Per power-of-two frequency bucket, the test-case-weighted mean of each per-item value.

    Buckets: 0 = never trained, b >= 1 = freq in [2**(b-1), 2**b - 1]; every bucket from 0 to
    the highest occupied one is listed. Row keys: bucket, label, freq_min, freq_max, items,
    items_with_tests, test_cases, then per value name ``name`` (mean over test cases, i.e.
    sum(value*count)/sum(count) over items with tests) and ``name_ci95`` (half-width of a
    normal 95% interval, 1.96 * SE). The SE treats items as clusters of test cases
    (cluster-robust: sqrt(m/(m-1) * sum(c_i^2 (v_i - mean)^2)) / sum(c_i) over m items),
    because only per-item means are known, not per-test-case values; with one test case per
    item it is the usual sd/sqrt(n). Undefined numbers (no tests; CI with < 2 items) are None.
    """
    f = real_items(freq, padding)
    c = real_items(counts, padding).astype(np.float64)
    vals = {name: real_items(a, padding).astype(np.float64) for name, a in values.items()}
    _same_length(freq=f, counts=c, **vals)
    if len(f) and (f.min() < 0 or c.min() < 0):
        raise ValueError("frequencies and test-case counts must be non-negative")
    b = _bucket_of(f)
    rows = []
    for bucket in range(int(b.max()) + 1 if len(b) else 0):
        in_b = b == bucket
        tested = in_b & (c > 0)
        w = c[tested]
        row = {
            "bucket": bucket,
            "label": _bucket_label(bucket),
            "freq_min": 0 if bucket == 0 else 2 ** (bucket - 1),
            "freq_max": 0 if bucket == 0 else 2 ** bucket - 1,
            "items": int(in_b.sum()),
            "items_with_tests": int(tested.sum()),
            "test_cases": int(w.sum()),
        }
        m = len(w)
        for name, a in vals.items():
            mean = ci = None
            if m:
                x = a[tested]
                mu = float((x * w).sum() / w.sum())
                mean = mu
                if m >= 2:
                    se = math.sqrt(m / (m - 1) * float(((w * (x - mu)) ** 2).sum())) / float(w.sum())
                    ci = 1.96 * se
            row[name] = mean
            row[f"{name}_ci95"] = ci
        rows.append(row)
    return rows


def plot_frequency_buckets(freq, values: Mapping[str, np.ndarray], counts, path, *,
                           title: str | None = None, padding: bool = True) -> tuple[Path, list[dict]]:
    """Plot ``frequency_buckets``: per value an error-bar line over buckets, with the item
    count (and test cases) of each bucket written along the bottom. Returns (png path, rows)."""
    rows = frequency_buckets(freq, values, counts, padding=padding)
    fig = _new_figure(figsize=(10, 5))
    ax = fig.subplots()
    xs = np.array([r["bucket"] for r in rows])
    for name in values:
        pts = [(r["bucket"], r[name], r[f"{name}_ci95"]) for r in rows if r[name] is not None]
        if pts:
            x, y, e = zip(*pts)
            ax.errorbar(x, y, yerr=[0.0 if v is None else v for v in e], marker="o", ms=4, capsize=3, label=name)
    ax.set_xticks(xs, [r["label"] for r in rows], rotation=45, ha="right")
    # Keep buckets without tests (often bucket 0) on the axis.
    ax.set_xlim(-0.5, max(len(rows), 1) - 0.5)
    ax.set_xlabel("training frequency bucket")
    ax.set_ylabel("mean over test cases (95% CI)")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo - 0.12 * (hi - lo), hi)
    tr = blended_transform_factory(ax.transData, ax.transAxes)
    for r in rows:
        ax.text(r["bucket"], 0.01, f"n={r['items']}\nt={r['test_cases']}", transform=tr,
                ha="center", va="bottom", fontsize=7, color="0.3")
    if not rows or all(r[n] is None for r in rows for n in values):
        ax.text(0.5, 0.5, "no test cases", transform=ax.transAxes, ha="center")
    if any(r[n] is not None for r in rows for n in values):
        ax.legend(loc="upper left")
    ax.set_title(title or "Metrics by training-frequency bucket (n = items, t = test cases)")
    return _save(fig, path), rows


def plot_freq_vs_norm(freq, norm, in_band, path, rho: float | None, *,
                      title: str | None = None, padding: bool = True) -> Path:
    """Scatter of embedding norm against training frequency on a symlog x axis (linear in
    [0, 1], so never-trained items sit at 0), in-band items in a second colour, Spearman rho
    in the title. Items with a NaN norm are not drawn."""
    f = real_items(freq, padding).astype(np.float64)
    n = real_items(norm, padding).astype(np.float64)
    band = real_items(in_band, padding).astype(bool)
    _same_length(freq=f, norm=n, in_band=band)
    ok = np.isfinite(n)
    fig = _new_figure(figsize=(7, 5))
    ax = fig.subplots()
    for sel, colour, label in ((~band, "tab:blue", "out of band"), (band, "tab:red", "in band")):
        sel = sel & ok
        ax.scatter(f[sel], n[sel], s=4, alpha=0.5, color=colour, linewidths=0, label=f"{label} ({int(sel.sum())})")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=-0.2)
    ax.set_xlabel("training frequency (symlog)")
    ax.set_ylabel("embedding norm")
    ax.legend(loc="best", markerscale=3)
    rho_s = "n/a" if rho is None or (isinstance(rho, float) and math.isnan(rho)) else f"{rho:.3f}"
    ax.set_title(f"{title + ': ' if title else ''}Spearman ρ(freq, norm) = {rho_s}")
    return _save(fig, path)
