"""Figures of the band experiment, from the records of `embfreq.analysis.sweep.bands`: the change in
NDCG@10 over (lower_freq, upper_freq), the frontier of NDCG@10 against the share of items without
an own vector, and the change by the target's training frequency. One-column size, PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embfreq.analysis.figures.figure_base import new_figure, save_as, style_axes
from embfreq.band import bound_order, bound_text

COLUMN = 3.4  # inches: one column of a two-column paper
FONT = 7.5


def save(fig, stem: Path) -> list[Path]:
    out = []
    for ext, kw in (("png", {"dpi": 200}), ("pdf", {})):
        # not with_suffix: names may hold dots (model.net.x=1)
        out.append(save_as(fig, stem.parent / f"{stem.name}.{ext}", ext, **kw))
    return out


def _pct(x: float) -> str:
    return f"{x:+.0f}" if abs(x) >= 1 else f"{x:+.1f}"


def heatmap_delta(recs: list[dict], title: str, stem: Path) -> list[Path]:
    """Cells: change of test NDCG@10 against the baseline, in % of the baseline, with the paired 95%
    CI; * marks a CI that excludes 0. Rows lower_freq, columns upper_freq."""
    from matplotlib.colors import TwoSlopeNorm

    recs = [r for r in recs if r.get("delta_ndcg10") is not None and r.get("baseline_ndcg10")]
    lowers = sorted({r["lower_freq"] for r in recs}, key=lambda v: bound_order(v, True))
    uppers = sorted({r["upper_freq"] for r in recs}, key=lambda v: bound_order(v, False))
    data = np.full((len(lowers), len(uppers)), np.nan)
    for r in recs:
        data[lowers.index(r["lower_freq"]), uppers.index(r["upper_freq"])] = 100 * r["delta_ndcg10"] / r["baseline_ndcg10"]
    fig = new_figure(max(COLUMN, 1.3 + 0.62 * len(uppers)), 0.9 + 0.48 * len(lowers))
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
            txt += f"{'*' if r.get('significant') else ''}\n[{lo}, {hi}]"
        dark = abs(data[i, j]) > 0.6 * lim
        ax.text(j, i, txt, ha="center", va="center", fontsize=FONT - 1.5, color="white" if dark else "black")
    ax.set_xticks(range(len(uppers)), [bound_text(v) for v in uppers], fontsize=FONT)
    ax.set_yticks(range(len(lowers)), [bound_text(v) for v in lowers], fontsize=FONT)
    ax.set_xlabel("upper_freq (training interactions, inclusive)", fontsize=FONT)
    ax.set_ylabel("lower_freq (inclusive)", fontsize=FONT)
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    cb.set_label("Δ test NDCG@10 vs no band (%)", fontsize=FONT)
    cb.ax.tick_params(labelsize=FONT)
    ax.set_title(title, fontsize=FONT)
    return save(fig, stem)


def frontier(recs: list[dict], title: str, stem: Path) -> list[Path]:
    """Test NDCG@10 (mean over seeds) against the share of items without an own vector, one line per
    neighbours mode in order of share; bars are the paired 95% CI of the change, placed on the
    baseline's level; the baseline is the star at 0%. Each point names its band."""
    base = [r for r in recs if r["band"] == "baseline"]
    bands = [r for r in recs if r["band"] != "baseline" and r.get("delta_ndcg10") is not None]
    fig = new_figure(COLUMN, 2.6)
    ax = fig.add_subplot()
    if base:
        b = base[0]
        ax.axhline(b["ndcg10_mean"], color="0.5", lw=0.7, ls="--")
        ax.plot([0], [b["ndcg10_mean"]], "*", ms=9, color="black", label="no band", zorder=5)
    for k, mode in enumerate(sorted({r["neighbours"] for r in bands})):
        rs = sorted((r for r in bands if r["neighbours"] == mode), key=lambda r: r["share_in_band"])
        x = np.array([100 * r["share_in_band"] for r in rs])
        y = np.array([r["baseline_ndcg10"] + r["delta_ndcg10"] for r in rs])
        lo = np.array([r["baseline_ndcg10"] + r["delta_ci_low"] if r.get("delta_ci_low") is not None else np.nan for r in rs])
        hi = np.array([r["baseline_ndcg10"] + r["delta_ci_high"] if r.get("delta_ci_high") is not None else np.nan for r in rs])
        err = np.nan_to_num(np.vstack([y - lo, hi - y]))
        ax.errorbar(x, y, yerr=err, fmt="-o" if mode == "all" else "--s", ms=3.5, lw=0.9, capsize=2,
                    color=f"C{k}", label=f"neighbours={mode}")
        for n, (xi, yi, r) in enumerate(zip(x, y, rs)):  # labels alternate above and below: neighbours are close
            ax.annotate(r["band"], (xi, yi), xytext=(3, 4 if n % 2 == 0 else -9), textcoords="offset points",
                        fontsize=FONT - 2, color=f"C{k}")
    # bands hold from a fraction of a percent (hot items) to most items (cold ones)
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ax.set_xlim(-0.2, 130)
    ticks = [0, 1, 3, 10, 30, 100]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("items without an own vector (% of items, symlog)", fontsize=FONT)
    ax.set_ylabel("test NDCG@10", fontsize=FONT)
    ax.set_title(title, fontsize=FONT)
    style_axes(ax, FONT)
    ax.legend(fontsize=FONT - 1, frameon=False)
    return save(fig, stem)


def buckets(recs: list[dict], title: str, stem: Path) -> list[Path]:
    """Change of test NDCG@10 per training-frequency bucket of the target, one marker per band, with
    the paired 95% CI: which items pay for the band."""
    bucket_names = list(dict.fromkeys(r["bucket"] for r in recs))
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
        label = band + ("" if mode == "all" else f" ({mode})")
        ax.errorbar(xs, ys, yerr=err, fmt="o", ms=3, lw=0.8, capsize=1.5, color=f"C{k % 10}", label=label)
    ax.axhline(0, color="black", lw=0.6)
    counts = {r["bucket"]: r["users"] for r in recs}
    ax.set_xticks(range(len(bucket_names)), [f"{b}\nn={counts[b]:,}" for b in bucket_names], fontsize=FONT - 1.5)
    ax.set_xlabel("training frequency of the test target (interactions)", fontsize=FONT)
    ax.set_ylabel("Δ test NDCG@10 vs no band", fontsize=FONT)
    ax.set_title(title, fontsize=FONT)
    style_axes(ax, FONT)
    ax.legend(fontsize=FONT - 2, frameon=False, ncol=2)
    return save(fig, stem)
