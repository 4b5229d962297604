"""Figures of the band experiment, from the records of `embfreq.analysis.sweep.bands`: the change in
NDCG@10 over (lower_freq, upper_freq), the frontier of NDCG@10 against the share of items without
an own vector, and the change by the target's training frequency. One-column size, PNG and PDF,
in the style of `figure_base`.

The frontier and the bucket figure show the band study's item table, the neighbour average (both
modes), where a report has it; other item tables (shared, hashed, ...) have their own figure at
equal memory (`budget_figure`), and their per-bucket changes stay in buckets.csv. A report with
no neighbour-mean band shows every configuration instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.transforms import ScaledTranslation

from embfreq.analysis.figures.figure_base import (COLUMN, FONT, LABELS, SMALL, bound_tick, display, display_title,
                                          freeze_layout, new_figure, place_labels, save_png_pdf, style_axes)
from embfreq.band import bound_order

__all__ = ["COLUMN", "FONT", "save", "heatmap_delta", "frontier", "buckets", "band_study"]

NEIGHBOUR_MODES = ("all", "outside_band")
MARKERS = "osD^vP<>Xh"
BARS = "bars: 95% paired bootstrap CI of the change"


def save(fig, stem: Path) -> list[Path]:
    """PNG and PDF of `fig` beside each other (`figure_base.save_png_pdf`)."""
    return save_png_pdf(fig, stem)


def _pct(x: float) -> str:
    return f"{x:+.0f}" if abs(x) >= 1 else f"{x:+.1f}"


def band_study(recs: list[dict]) -> list[dict]:
    """The records the frontier and bucket figures draw: those of the neighbour-average item table
    where there are any, else all of them (a report of other item tables only)."""
    own = [r for r in recs if r.get("neighbours") in NEIGHBOUR_MODES]
    return own or list(recs)


def _series_name(mode) -> str:
    return display(mode or "all")


def _short(mode) -> str:
    """An item table in a legend entry after its band: "outside band", "hashed, 16 buckets"."""
    name = display(mode)
    return name[len("neighbours ("):-1] if name.startswith("neighbours (") else name


def heatmap_delta(recs: list[dict], title: str, stem: Path) -> list[Path]:
    """Cells: change of test NDCG@10 against the baseline, in % of the baseline, with its paired 95%
    CI over test users in brackets; * marks a seed-aware CI (over seeds and users) that excludes 0,
    as in summary.md. Rows lower_freq, columns upper_freq."""
    from matplotlib.colors import TwoSlopeNorm

    recs = [r for r in recs if r.get("delta_ndcg10") is not None and r.get("baseline_ndcg10")]
    lowers = sorted({r["lower_freq"] for r in recs}, key=lambda v: bound_order(v, True))
    uppers = sorted({r["upper_freq"] for r in recs}, key=lambda v: bound_order(v, False))
    data = np.full((len(lowers), len(uppers)), np.nan)
    for r in recs:
        data[lowers.index(r["lower_freq"]), uppers.index(r["upper_freq"])] = 100 * r["delta_ndcg10"] / r["baseline_ndcg10"]
    fig = new_figure(max(COLUMN, 1.5 + 0.66 * len(uppers)), max(2.4, 1.2 + 0.48 * len(lowers)))
    ax = fig.add_subplot()
    lim = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
    im = ax.imshow(np.ma.masked_invalid(data), cmap="RdBu", norm=TwoSlopeNorm(0, -lim - 1e-9, lim + 1e-9), aspect="auto")
    ax.set_facecolor("#e5e5e5")  # no run for this band
    for r in recs:
        i, j = lowers.index(r["lower_freq"]), uppers.index(r["upper_freq"])
        base = r["baseline_ndcg10"]
        txt = f"{data[i, j]:+.1f}%"
        if r.get("delta_ci_low") is not None:
            # whole percents: the interval must fit its cell at one column width
            lo, hi = (_pct(100 * r[k] / base) for k in ("delta_ci_low", "delta_ci_high"))
            txt += f"{'*' if r.get('seed_significant') is True else ''}\n[{lo}, {hi}]"
        dark = abs(data[i, j]) > 0.6 * lim
        ax.text(j, i, txt, ha="center", va="center", fontsize=SMALL, color="white" if dark else "black")
    ax.set_xticks(range(len(uppers)), [bound_tick(v, False) for v in uppers], fontsize=SMALL)
    ax.set_yticks(range(len(lowers)), [bound_tick(v, True) for v in lowers], fontsize=SMALL)
    ax.tick_params(length=0)
    ax.set_xlabel(LABELS["upper"], fontsize=FONT)
    ax.set_ylabel(LABELS["lower"].replace(" (", "\n("), fontsize=FONT)
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    cb.set_label(LABELS["delta_pct"].replace(" (", "\n("), fontsize=FONT)
    cb.ax.tick_params(labelsize=SMALL)
    ax.set_title(display_title(title) + "\n[95% CI over test users]; * seed-aware CI excludes 0", fontsize=FONT)
    return save(fig, stem)


def frontier(recs: list[dict], title: str, stem: Path) -> list[Path]:
    """Test NDCG@10 (mean over seeds) against the share of items without an own vector: one marker
    per band and item table (`band_study`), no line between bands (they are not one ordered series);
    the configurations of one band share its x and are drawn side by side; bars are the paired 95%
    CI of the change, placed on the baseline's level; the baseline is the star at 0% and the dashed
    level. Each band is named once, at a place that covers no other label, marker or bar."""
    base = [r for r in recs if r["band"] == "baseline"]
    bands = band_study([r for r in recs if r["band"] != "baseline" and r.get("delta_ndcg10") is not None])
    modes = sorted({r["neighbours"] or "all" for r in bands}, key=lambda m: (m not in NEIGHBOUR_MODES, m))
    fig = new_figure(COLUMN, 2.9 + 0.13 * len(modes))
    ax = fig.add_subplot()
    if base:
        b = base[0]
        ax.axhline(b["ndcg10_mean"], color="0.5", lw=0.7, ls="--", zorder=1)
        ax.plot([0], [b["ndcg10_mean"]], "*", ms=9, color="black", ls="none", label=f"no band ({b['ndcg10_mean']:.4f})",
                zorder=5)
    step = 4.0  # points between the configurations of one band
    tops: dict[str, tuple] = {}  # band -> (x, y) of its highest bar end: where its name goes
    for k, mode in enumerate(modes):
        rs = sorted((r for r in bands if (r["neighbours"] or "all") == mode), key=lambda r: r["share_in_band"])
        x = np.array([100 * r["share_in_band"] for r in rs])
        y = np.array([r["baseline_ndcg10"] + r["delta_ndcg10"] for r in rs])
        lo = np.array([r["baseline_ndcg10"] + r["delta_ci_low"] if r.get("delta_ci_low") is not None else np.nan for r in rs])
        hi = np.array([r["baseline_ndcg10"] + r["delta_ci_high"] if r.get("delta_ci_high") is not None else np.nan for r in rs])
        err = np.nan_to_num(np.vstack([y - lo, hi - y]))
        shift = (k - (len(modes) - 1) / 2) * step
        at = ax.transData + ScaledTranslation(shift / 72, 0, fig.dpi_scale_trans)
        ax.errorbar(x, y, yerr=err, fmt=MARKERS[k % len(MARKERS)], ls="none", ms=4, lw=0.9, capsize=2,
                    color=f"C{k % 10}", mfc="white" if k % 2 else f"C{k % 10}", mew=1.1, label=_series_name(mode),
                    transform=at, zorder=4)
        for xi, yi, top, r in zip(x, y, np.fmax(hi, y), rs):
            if r["band"] not in tops or top > tops[r["band"]][1]:
                tops[r["band"]] = (xi, top)
    # bands hold from a fraction of a percent (hot items) to most items (cold ones)
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ax.set_xlim(-0.3, 160)
    ticks = [0, 1, 3, 10, 30, 100]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel(LABELS["share"], fontsize=FONT)
    ax.set_ylabel(LABELS["ndcg"], fontsize=FONT)
    ax.set_title(display_title(title), fontsize=FONT)
    style_axes(ax)
    # explicit limits (the shifted artists are not autoscaled), with room above for the names
    ys = [v for r in bands for v in (r["baseline_ndcg10"] + r["delta_ndcg10"],
                                     *(r["baseline_ndcg10"] + r[c] for c in ("delta_ci_low", "delta_ci_high")
                                       if r.get(c) is not None))] + [r["ndcg10_mean"] for r in base]
    if ys:
        span = (max(ys) - min(ys)) or 0.05 * abs(max(ys)) or 0.01
        ax.set_ylim(min(ys) - 0.08 * span, max(ys) + 0.2 * span)
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2 if max(map(len, names or [""])) <= 26 else 1,
               fontsize=SMALL, title=BARS if bands else None, title_fontsize=SMALL, frameon=False)
    freeze_layout(fig)
    place_labels(fig, [(ax, x, y, band, "0.15", 0.0) for band, (x, y) in tops.items()], offsets=NAME_OFFSETS)
    return save(fig, stem)


# a band's name: above its highest bar end first, then beside it
NAME_OFFSETS = ((0, 3, "center", "bottom"), (8, 3, "left", "bottom"), (-8, 3, "right", "bottom"),
                (8, -3, "left", "top"), (-8, -3, "right", "top"), (0, 12, "center", "bottom"),
                (14, -10, "left", "top"), (-14, -10, "right", "top"), (12, 12, "left", "bottom"),
                (-12, 12, "right", "bottom"), (14, -22, "left", "top"), (-14, -22, "right", "top"))


def buckets(recs: list[dict], title: str, stem: Path) -> list[Path]:
    """Change of test NDCG@10 per training-frequency bucket of the target, one marker per band (and
    item table, `band_study`), with the paired 95% CI: which items pay for the band. Markers only:
    the buckets of one band are not joined."""
    bucket_names = list(dict.fromkeys(r["bucket"] for r in recs))
    counts = {r["bucket"]: r["users"] for r in recs}
    recs = band_study(recs)
    bands = list(dict.fromkeys((r["band"], r["neighbours"]) for r in recs))
    fig = new_figure(COLUMN, 2.6)
    ax = fig.add_subplot()
    width = 0.8 / max(len(bands), 1)
    for k, (band, mode) in enumerate(bands):
        rs = {r["bucket"]: r for r in recs if (r["band"], r["neighbours"]) == (band, mode)}
        xs = [i - 0.4 + width * (k + 0.5) for i, b in enumerate(bucket_names) if b in rs]
        ys = [rs[b]["delta_ndcg10"] for b in bucket_names if b in rs]
        err = [[rs[b]["delta_ndcg10"] - rs[b]["ci_low"] for b in bucket_names if b in rs],
               [rs[b]["ci_high"] - rs[b]["delta_ndcg10"] for b in bucket_names if b in rs]]
        label = band if (mode or "all") == "all" else f"{band} ({_short(mode)})"
        ax.errorbar(xs, ys, yerr=err, fmt=MARKERS[(k // 10) % len(MARKERS)], ls="none", ms=3, lw=0.8, capsize=1.5,
                    color=f"C{k % 10}", label=label)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(range(len(bucket_names)), [f"{b}\nn={counts[b]:,}" for b in bucket_names], fontsize=SMALL)
    ax.set_xlabel(LABELS["target_freq"] + ";\nn = test users whose target is in the bucket", fontsize=FONT)
    ax.set_ylabel(LABELS["delta"].replace(" (", "\n("), fontsize=FONT)
    ax.set_title(display_title(title), fontsize=FONT)
    style_axes(ax)
    names = ax.get_legend_handles_labels()[1]
    ncol = 2 if max(map(len, names or [""])) <= 30 else 1
    fig.legend(loc="outside lower center", ncol=ncol, fontsize=SMALL, frameon=False, title=BARS if bands else None,
               title_fontsize=SMALL, handletextpad=0.3, columnspacing=1.0)
    fig.set_size_inches(COLUMN, 2.6 + 0.15 * (-(-len(names) // ncol) + 1))
    return save(fig, stem)
