"""Per-item figures: frequency-sorted panels, frequency buckets, frequency vs norm.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never pyplot, so no
global backend or figure registry is touched. They are sized for print (one column, 3.4 in, or
the text width, 7 in, for the four panels) with no text under 7 pt at that size, and each is
written atomically as PNG and as PDF beside it (same stem). Arrays follow the convention of
``embfreq.analysis.per_run.items``: row 0 is padding and dropped unless ``padding=False``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from embfreq.analysis.figures.figure_base import (COLUMN, FONT, LABELS, PAGE, SMALL, fit_title, new_figure, save_png_pdf,
                                          style_axes)
from embfreq.analysis.per_run.items import real_items

BAND_COLOUR = "tab:red"
NORM_LABEL = "L2 norm of effective vector"  # the row the model scores with (run_analysis.NORM_COLUMN)


_fit_title = fit_title  # the name the figures below use


def save_figure(fig: Figure, path) -> Path:
    """Write ``path`` (PNG) and the PDF with the same stem, each atomically; returns the PNG path."""
    return save_png_pdf(fig, Path(path).with_suffix(""))[0]


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-item arrays differ in length: {lengths}")
    return next(iter(lengths.values()))


def band_extent(freq, in_band, *, padding: bool = True) -> tuple[int, int] | None:
    """(first, last) position of the in-band items on the frequency-sorted x axis of the panels
    (the same stable sort), or None without in-band items. A band is a frequency interval, so its
    items lie side by side there."""
    f = real_items(freq, padding).astype(np.float64)
    band = real_items(in_band, padding).astype(bool)
    _same_length(freq=f, in_band=band)
    pos = np.flatnonzero(band[np.argsort(f, kind="mergesort")])
    return None if len(pos) == 0 else (int(pos[0]), int(pos[-1]))


def frequency_panels_figure(freq, norm, recall, ndcg, title: str | None = None, *, counts=None, in_band=None,
                            padding: bool = True, k: int = 10) -> Figure:
    """The figure of ``plot_frequency_panels``."""
    f = real_items(freq, padding).astype(np.float64)
    v = {name: real_items(a, padding).astype(np.float64)
         for name, a in (("norm", norm), ("recall", recall), ("ndcg", ndcg))}
    labels = {"norm": NORM_LABEL.replace(" of ", " of\n"),
              "recall": f"Recall@{k}\n(mean over item's\ntest cases)",
              "ndcg": f"NDCG@{k}\n(mean over item's\ntest cases)"}
    c = None if counts is None else real_items(counts, padding)
    band = None if in_band is None else real_items(in_band, padding).astype(bool)
    _same_length(freq=f, **v, **({} if c is None else {"counts": c}), **({} if band is None else {"in_band": band}))
    order = np.argsort(f, kind="mergesort")
    x = np.arange(len(f))
    fig = new_figure(PAGE, 6.2)
    axes = fig.subplots(4, 1, sharex=True)
    axes[0].plot(x, f[order], lw=1, color="tab:blue")
    # frequencies span 0 to thousands; symlog keeps the zeros (linear below 1)
    axes[0].set_yscale("symlog", linthresh=1.0, linscale=0.5)
    axes[0].set_ylim(bottom=0)
    axes[0].set_ylabel(LABELS["item_freq"].replace(" (", "\n("), fontsize=FONT)
    for ax, (name, vals) in zip(axes[1:], v.items()):
        y = vals[order]
        is_norm = name == "norm"
        show = np.ones(len(y), dtype=bool) if c is None or is_norm else c[order] > 0
        ax.scatter(x[show], y[show], s=1.5 if len(f) > 2000 else 4,  # many items: small dots
                   color="tab:orange" if is_norm else "tab:green", linewidths=0, rasterized=True)
        ax.set_ylabel(labels[name], fontsize=FONT)
        if not is_norm:
            ax.set_ylim(-0.04, 1.04)  # per-item means of a metric in [0, 1]
    extent = None if band is None else band_extent(f, band, padding=False)
    if extent is not None:
        lo, hi = extent[0] - 0.5, extent[1] + 0.5
        for j, ax in enumerate(axes):
            ax.axvspan(lo, hi, color=BAND_COLOUR, alpha=0.12, lw=0, zorder=0,
                       label=f"in band ({int(band.sum())} items)" if j == 0 else None)
            for edge in (lo, hi):
                ax.axvline(edge, color=BAND_COLOUR, lw=0.6, ls="--", zorder=0)
        axes[0].legend(loc="upper left", fontsize=SMALL, frameon=False)
    elif band is not None and len(f):
        axes[0].text(0.01, 0.95, "no item in band", transform=axes[0].transAxes, ha="left", va="top",
                     fontsize=SMALL, color=BAND_COLOUR)
    for ax in axes:
        style_axes(ax, SMALL)
    if len(f):
        axes[-1].set_xlim(-0.5, len(f) - 0.5)
    else:
        axes[0].text(0.5, 0.5, "no items", transform=axes[0].transAxes, ha="center", fontsize=FONT)
    axes[-1].set_xlabel("item rank by training frequency (ascending; items)", fontsize=FONT)
    fig.align_ylabels(axes)
    if title:
        fig.suptitle(_fit_title(title, PAGE, FONT + 0.5), fontsize=FONT + 0.5)
    return fig


def plot_frequency_panels(freq, norm, recall, ndcg, path, title: str | None = None, *,
                          counts=None, in_band=None, padding: bool = True, k: int = 10) -> Path:
    """Four stacked panels (training frequency, L2 norm of the effective vector, Recall@k, NDCG@k)
    over items sorted by training frequency, ascending (stable, so equal frequencies keep item-id
    order); the frequency axis is symlog. With ``in_band`` the band's items are shaded, edges
    dashed. With ``counts`` (test cases per item) items without test cases are left out of the
    Recall/NDCG panels instead of being drawn as 0. Returns the PNG path (the PDF is beside it).
    """
    fig = frequency_panels_figure(freq, norm, recall, ndcg, title, counts=counts, in_band=in_band,
                                  padding=padding, k=k)
    return save_figure(fig, path)


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
    The interval is not clipped here; ``ci_bars`` clips what is drawn.
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


def ci_bars(rows: list[dict], name: str, value_range: tuple[float, float] | None = (0.0, 1.0)):
    """What ``plot_frequency_buckets`` draws for ``name``: arrays (bucket, mean, low, high) over the
    buckets with a mean, low/high = mean -/+ ci95 clipped to ``value_range`` (the normal interval
    of a metric in [0, 1] can reach below 0 in sparse buckets, a value the metric cannot take);
    without a CI (< 2 items) low = high = mean."""
    pts = [(r["bucket"], r[name], r[f"{name}_ci95"] or 0.0) for r in rows if r[name] is not None]
    x, y, e = (np.array(a, dtype=np.float64) for a in (zip(*pts) if pts else ([], [], [])))
    low, high = y - e, y + e
    if value_range is not None:
        low, high = np.clip(low, *value_range), np.clip(high, *value_range)
    return x, y, low, high


def frequency_buckets_figure(rows: list[dict], names, *, title: str | None = None,
                             value_range: tuple[float, float] | None = (0.0, 1.0)) -> Figure:
    """The figure of ``plot_frequency_buckets`` from its rows."""
    fig = new_figure(COLUMN, 3.3)
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=[2.2, 1])
    xs = np.array([r["bucket"] for r in rows])
    drawn = False
    for name in names:
        x, y, low, high = ci_bars(rows, name, value_range)
        if len(x):
            ax.errorbar(x, y, yerr=np.vstack([y - low, high - y]), marker="o", ms=3, lw=1, capsize=2,
                        elinewidth=0.8, label=name)
            drawn = True
    ax.set_ylabel("mean over test\ncases (95% CI)", fontsize=FONT)
    if value_range is not None:
        lo, hi = value_range
        pad = 0.03 * (hi - lo)
        top = ax.get_ylim()[1] if drawn else hi
        ax.set_ylim(lo - pad, min(top, hi + pad))  # room for a mean at 0, nothing beyond the range
    if drawn:
        ax.legend(loc="best", fontsize=SMALL, frameon=False)
    else:
        ax.text(0.5, 0.5, "no test cases", transform=ax.transAxes, ha="center", fontsize=FONT)
    # items and test cases per bucket: how much each mean rests on
    w = 0.4
    ax_n.bar(xs - w / 2, [r["items"] for r in rows], w, color="0.55", label="items")
    ax_n.bar(xs + w / 2, [r["test_cases"] for r in rows], w, color="0.2", label="test cases")
    ax_n.set_yscale("symlog", linthresh=1.0, linscale=1.0)  # counts span 0 to thousands; 0 and 1 a decade apart
    top = max([10] + [max(r["items"], r["test_cases"]) for r in rows])
    ax_n.set_ylim(0, 100 * top)  # headroom for the legend above the bars (a log axis)
    kmax = int(math.floor(math.log10(100 * top)))
    step = -(-(kmax + 1) // 4)  # at most 4 decades labelled besides 0: the panel is short
    ax_n.set_yticks([0] + [10 ** k for k in range(0, kmax + 1, step)])
    ax_n.yaxis.set_minor_locator(NullLocator())
    ax_n.set_ylabel("count", fontsize=FONT)
    if rows:
        ax_n.legend(loc="upper right", fontsize=SMALL, frameon=False, ncols=2)
    ax_n.set_xticks(xs, [r["label"] for r in rows], rotation=45, ha="right", rotation_mode="anchor")
    # keep buckets without tests (often bucket 0) on the axis
    ax_n.set_xlim(-0.5, max(len(rows), 1) - 0.5)
    ax_n.set_xlabel("training frequency (interactions, powers of 2)", fontsize=FONT)
    for a in (ax, ax_n):
        style_axes(a, SMALL)
    fig.align_ylabels([ax, ax_n])
    fig.suptitle(_fit_title(title, COLUMN) if title else "Metrics by training-frequency bucket", fontsize=FONT)
    return fig


def plot_frequency_buckets(freq, values: Mapping[str, np.ndarray], counts, path, *,
                           title: str | None = None, padding: bool = True,
                           value_range: tuple[float, float] | None = (0.0, 1.0)) -> tuple[Path, list[dict]]:
    """Plot ``frequency_buckets``: per value an error-bar line over buckets (95% CI clipped to
    ``value_range``), over a panel of the items and test cases of each bucket. Returns (png path, rows)."""
    rows = frequency_buckets(freq, values, counts, padding=padding)
    fig = frequency_buckets_figure(rows, list(values), title=title, value_range=value_range)
    return save_figure(fig, path), rows


def freq_vs_norm_figure(freq, norm, in_band, rho: float | None, *, title: str | None = None,
                        padding: bool = True) -> Figure:
    """The figure of ``plot_freq_vs_norm``."""
    f = real_items(freq, padding).astype(np.float64)
    n = real_items(norm, padding).astype(np.float64)
    band = real_items(in_band, padding).astype(bool)
    _same_length(freq=f, norm=n, in_band=band)
    ok = np.isfinite(n)
    fig = new_figure(COLUMN, 2.9)
    ax = fig.subplots()
    # a run without a band item (a baseline) lists its items as items, not as "out of band"
    rest = "items outside the band" if (band & ok).any() else "items"
    for sel, colour, label in ((~band, "tab:blue", rest), (band, BAND_COLOUR, "items in the band")):
        sel = sel & ok
        if sel.any():  # a baseline has no in-band series to list
            ax.scatter(f[sel], n[sel], s=3, alpha=0.5, color=colour, linewidths=0,
                       label=f"{label} ({int(sel.sum()):,})", rasterized=True)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=-0.2)
    ax.set_xlabel(LABELS["item_freq"][:-1] + ", symlog)", fontsize=FONT)
    ax.set_ylabel(NORM_LABEL, fontsize=FONT)
    if ok.any():
        ax.legend(loc="best", markerscale=3, fontsize=SMALL, frameon=False)
    style_axes(ax, SMALL)
    rho_s = "n/a" if rho is None or (isinstance(rho, float) and math.isnan(rho)) else f"{rho:.3f}"
    head = _fit_title(title, COLUMN) + "\n" if title else ""
    ax.set_title(f"{head}Spearman ρ(freq, norm) = {rho_s}", fontsize=FONT)
    return fig


def plot_freq_vs_norm(freq, norm, in_band, path, rho: float | None, *,
                      title: str | None = None, padding: bool = True) -> Path:
    """Scatter of the L2 norm of the effective item vector against training frequency on a symlog
    x axis (linear in [0, 1], so never-trained items sit at 0), in-band items in a second colour,
    Spearman rho in the title. Items with a NaN norm are not drawn. Returns the PNG path."""
    return save_figure(freq_vs_norm_figure(freq, norm, in_band, rho, title=title, padding=padding), path)
