"""Which substitute for an own embedding is best at equal memory: test NDCG@10 of each item-table
strategy against the embedding parameters it allocates, as a share of the full table (the no-band
baseline's), from the summary records of `embfreq.analysis.sweep.bands`. One figure per model, data
(variant) and band, written when a band has a strategy other than `neighbours`; `points` gives
budgets.csv, exactly what is plotted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

from embfreq.analysis.figures.band_figures import save
from embfreq.analysis.figures.figure_base import (COLUMN, FONT, LABELS, SMALL, display, display_title, freeze_layout,
                                          new_figure, place_labels, style_axes)

COLUMNS = ("data", "model", "variant", "band", "strategy", "budget", "seeds", "embedding_params", "params_share",
           "ndcg10_mean", "ci_low", "ci_high", "bars", "delta_pct", "significant",
           "seed_significant")  # appended: the summary's seed-aware verdict (yes, no, "1 seed")
# the summary's `neighbours` column: a neighbour mode of the default strategy, or another strategy
# with its budget ("hashed buckets=256", see sweep_runs.substitute); no torch import for NEIGHBOURS
NEIGHBOUR_MODES = ("all", "outside_band")
BASELINE = "no band"
BOOTSTRAP, SEED_STD = "95% paired bootstrap CI", "± seed std"
# a strategy keeps its colour in every figure
ORDER = ("neighbours (all)", "neighbours (outside_band)", "shared", "hashed", "qr", "mixed_dim")
MIN_FONT = SMALL  # legible at one column width


def strategy_budget(neighbours: str) -> tuple[str, str]:
    """"hashed buckets=256" -> ("hashed", "buckets=256"); a neighbour mode -> ("neighbours (all)", "")."""
    if neighbours in NEIGHBOUR_MODES:
        return f"neighbours ({neighbours})", ""
    name, _, budget = neighbours.partition(" ")
    return name, budget


def points(summary: list[dict]) -> list[dict]:
    """budgets.csv: for each (model, data, variant, band) with a strategy other than `neighbours`,
    the baseline (at 100%) and every configuration of the band, strategies in ORDER, each by params."""
    bases = {(r["model"], r["data"], r["variant"]): r for r in summary if r["band"] == "baseline"}
    by_band: dict[tuple, list[dict]] = {}
    for r in summary:
        if r["band"] != "baseline" and r.get("ndcg10_mean") is not None and r.get("embedding_params") is not None:
            by_band.setdefault((r["model"], r["data"], r["variant"], r["band"]), []).append(r)
    out: list[dict] = []
    for (model, data, variant, band), recs in by_band.items():
        base = bases.get((model, data, variant))
        if not base or not base.get("embedding_params") or base.get("ndcg10_mean") is None:
            continue  # no full table to measure the memory against
        if all(r["neighbours"] in NEIGHBOUR_MODES for r in recs):
            continue  # the band study's own figure (frontier) covers it
        pts = [_point(r, band, base, *strategy_budget(r["neighbours"])) for r in recs]
        out += [_point(base, band, base, BASELINE, "")]
        out += sorted(pts, key=lambda p: (_rank(p["strategy"]), p["embedding_params"]))
    return out


def groups(pts: list[dict]) -> dict[tuple, list[dict]]:
    """The points of each figure: (model, data, variant, band) -> points; never two bands or models in one."""
    out: dict[tuple, list[dict]] = {}
    for p in pts:
        out.setdefault((p["model"], p["data"], p["variant"], p["band"]), []).append(p)
    return out


def lines(pts: list[dict]) -> dict[str, list[dict]]:
    """The points of one figure by strategy (its line), each in order of params; not the baseline."""
    out: dict[str, list[dict]] = {}
    for p in pts:
        if p["strategy"] != BASELINE:
            out.setdefault(p["strategy"], []).append(p)
    return {s: sorted(rs, key=lambda p: p["embedding_params"]) for s, rs in out.items()}


def _point(r: dict, band: str, base: dict, strategy: str, budget: str) -> dict:
    p = {"data": r["data"], "model": r["model"], "variant": r["variant"], "band": band, "strategy": strategy,
         "budget": budget, "seeds": r["seeds"], "embedding_params": r["embedding_params"],
         "params_share": r["embedding_params"] / base["embedding_params"], "ndcg10_mean": r["ndcg10_mean"],
         "ci_low": None, "ci_high": None, "bars": "", "delta_pct": r.get("delta_pct"),
         "significant": r.get("significant"), "seed_significant": r.get("seed_significant")}
    if strategy == BASELINE:
        return p  # the paired CIs of the others already hold the baseline's noise
    if r.get("delta_ci_low") is not None:  # the change's CI, on the level of the baseline's same seeds
        p.update(ci_low=r["baseline_ndcg10"] + r["delta_ci_low"], ci_high=r["baseline_ndcg10"] + r["delta_ci_high"],
                 bars=BOOTSTRAP)
    elif r.get("ndcg10_std") is not None:  # no per-user files: training noise only
        p.update(ci_low=r["ndcg10_mean"] - r["ndcg10_std"], ci_high=r["ndcg10_mean"] + r["ndcg10_std"], bars=SEED_STD)
    return p


def _rank(strategy: str) -> int:
    return ORDER.index(strategy) if strategy in ORDER else len(ORDER)


def _colour(strategy: str, others: list[str]) -> str:
    k = _rank(strategy)
    return f"C{k if k < len(ORDER) else len(ORDER) + others.index(strategy)}"


def x_panels(shares: list[float], gap: float = 30.0) -> list[tuple[float, float]]:
    """The x ranges (in % of the full table) of the figure's panels: one, or two when the points
    fall in two groups more than `gap` points apart (the substitutes' budgets and the full tables
    at 100%), so that neither group is squeezed into a corner; each range padded on both sides,
    in proportion to its span (a small band's budgets differ by hundredths of a point)."""
    xs = sorted(set(100 * s for s in shares))
    cuts = [i for i in range(1, len(xs)) if xs[i] - xs[i - 1] > gap]
    split = max(cuts, key=lambda i: xs[i] - xs[i - 1]) if cuts else None
    groups = [xs] if split is None else [xs[:split], xs[split:]]
    out = []
    for g in groups:
        span = g[-1] - g[0]
        # budgets within a fraction of a point (a band of a few items) get a panel of their own scale
        pad = max(0.08 * span, min(2.5, 0.25 * span)) if span else 2.5
        out.append((max(0.0, g[0] - pad), g[-1] + pad))
    return out


def budget_ticks(xs: list[float], lo: float, hi: float) -> list[float]:
    """Ticks of a narrow panel [lo, hi]: each budget inside it, rounded to the fewest decimals (up to
    3) that keep it inside, so a panel padded by hundredths of a point still gets a labelled tick."""
    out = set()
    for x in xs:
        if lo <= x <= hi:
            out.add(next((r for d in range(4) if lo <= (r := round(x, d)) <= hi), x))
    return sorted(out)


def draw(pts: list[dict], title: str):
    """The Figure of one (model, data, variant, band): one line per strategy through its budgets in
    order of params (a marker when it has one), bars as in `bars`, the baseline dashed and starred.
    The x axis is broken when the budgets lie far from 100% (`x_panels`); budget labels are placed
    where they overlap no other label and no marker."""
    fig = new_figure(COLUMN, 2.9)
    ranges = x_panels([p["params_share"] for p in pts])
    widths = [max(hi - lo, 0.22 * sum(h - l for l, h in ranges)) for lo, hi in ranges]
    axes = fig.subplots(1, len(ranges), sharey=True, squeeze=False, width_ratios=widths)[0]
    base = next(p for p in pts if p["strategy"] == BASELINE)
    y0 = base["ndcg10_mean"]
    by_strategy = lines(pts)
    kinds = list(dict.fromkeys(p["bars"] for p in pts if p["bars"]))
    others = [s for s in by_strategy if s not in ORDER]
    labels: list[tuple] = []  # (axes, x, y, text, colour, shift) of each budget value
    shift = dodge(by_strategy, sum(h - l for l, h in ranges))
    for k, ax in enumerate(axes):
        ax.axhline(y0, color="0.5", lw=0.7, ls="--", zorder=1)
        # under the others: neighbours (all) allocates the full table too, its ring must show around the star
        ax.plot([100 * base["params_share"]], [y0], "*", ms=13, color="black", zorder=3,
                label=f"no band ({y0:.4f})" if k == 0 else None)
        for s, rs in by_strategy.items():
            x = np.array([100 * p["params_share"] for p in rs])
            y = np.array([p["ndcg10_mean"] for p in rs])
            lo, hi = (np.array([np.nan if p[c] is None else p[c] for p in rs], dtype=float)
                      for c in ("ci_low", "ci_high"))
            budgets = [p["budget"] for p in rs]
            # one budget: named in the legend; several: the swept key in the legend, its value at each point
            keys = ", ".join(dict.fromkeys(display(kv.split("=")[0]) for b in budgets for kv in b.split()))
            label = (display(f"{s} {budgets[0]}") if len(rs) == 1 and budgets[0]
                     else f"{display(s)} (labels: {keys})" if keys else display(s))
            if len(kinds) > 1 and any(p["bars"] == SEED_STD for p in rs):  # the legend title names the CI
                label += f", bars {SEED_STD}"
            c = _colour(s, others)
            hollow = s.startswith("neighbours")
            at = ax.transData + ScaledTranslation(shift[s] / 72, 0, fig.dpi_scale_trans)
            # bars drawn from ci_low to ci_high, not around the mean: with seeds the baseline lacks, the
            # mean (all seeds) need not lie in the CI (paired seeds)
            ax.errorbar(x, (lo + hi) / 2, yerr=(hi - lo) / 2, fmt="none", lw=0.9, capsize=2, color=c, zorder=4,
                        transform=at)
            ax.plot(x, y, "-o" if len(rs) > 1 else "o", ms=5 if hollow else 4, mew=1.3 if hollow else 1, lw=0.9,
                    color=c, label=label if k == 0 else None, mfc="white" if hollow else c, zorder=4, transform=at)
            if len(rs) > 1:
                for xi, yi, b in zip(x, y, budgets):
                    if ranges[k][0] <= xi <= ranges[k][1]:
                        labels.append((ax, xi, yi, " ".join(kv.split("=")[-1] for kv in b.split()), c, shift[s]))
        ax.set_xlim(*ranges[k])
        if len(axes) > 1 and ranges[k][1] - ranges[k][0] < 12:  # a narrow panel: a tick at each budget only
            ax.set_xticks(budget_ticks([100 * p["params_share"] for p in pts], *ranges[k]))
        else:  # at most 5 ticks: labels like 99.75 must not run into each other at one column
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4 if len(axes) > 1 else 5, steps=[1, 2, 2.5, 5, 10]))
        style_axes(ax)
        if k > 0:  # the break: no spine between the panels, a slash on each side
            ax.spines["left"].set_visible(False)
            ax.tick_params(axis="y", left=False)
        if k < len(axes) - 1:
            ax.spines["right"].set_visible(False)
        for side in ([1] if k == 0 and len(axes) > 1 else []) + ([0] if k > 0 else []):
            ax.plot([side, side], [0, 0], transform=ax.transAxes, marker=[(-1, -1.6), (1, 1.6)], ms=5, mew=0.8,
                    color="k", clip_on=False, ls="none")
    # explicit: autoscaling ignores artists drawn through the dodge's transform
    ys = [v for p in pts for v in (p["ndcg10_mean"], p["ci_low"], p["ci_high"]) if v is not None and np.isfinite(v)]
    pad = 0.06 * (max(ys) - min(ys)) or 0.05 * abs(max(ys)) or 0.01
    axes[0].set_ylim(min(ys) - pad, max(ys) + pad)
    axes[0].set_xlabel(LABELS["params"], fontsize=FONT)
    if len(axes) > 1:  # centred under both panels (not supxlabel: it would share the legend's place)
        axes[0].xaxis.set_label_coords(sum(widths) / widths[0] / 2, -0.12)
        axes[0].xaxis.label.set_va("top")
    axes[0].set_ylabel(LABELS["ndcg"], fontsize=FONT)
    fig.suptitle(display_title(title), fontsize=FONT)
    # below the axes: points may lie anywhere in the plot; two columns fit one column's width
    names = axes[0].get_legend_handles_labels()[1]
    ncol = 2 if max(map(len, names)) <= 26 else 1
    fig.legend(loc="outside lower center", ncol=ncol, fontsize=MIN_FONT, title_fontsize=MIN_FONT, frameon=False,
               title=f"bars: {BOOTSTRAP if len(kinds) > 1 else kinds[0]}" if kinds else None)
    fig.set_size_inches(COLUMN, 2.5 + 0.16 * (-(-len(names) // ncol) + bool(kinds)))
    freeze_layout(fig)  # the checked positions are the printed ones
    _fit_markers(axes)
    place_labels(fig, labels, fontsize=MIN_FONT)
    return fig


CLEAR = 2.0  # points between a marker and the frame


def _fit_markers(axes) -> None:
    """Widen the shared y range until every marker lies wholly inside the axes, `CLEAR` points from the
    frame (the star is larger than the y padding allows for); the axes' size in pixels is fixed by then."""
    ax = axes[0]
    h = ax.bbox.height
    marks = [(y, (line.get_markersize() / 2 + CLEAR) * ax.figure.dpi / 72) for a in axes for line in a.get_lines()
             if line.get_marker() in ("o", "*") for y in line.get_ydata()]
    if not marks or h <= 0:
        return
    lo, hi = ax.get_ylim()
    for _ in range(5):  # each step solves for the current scale; the scale shrinks, so a few converge
        scale = (hi - lo) / h  # data units per pixel
        new_hi = max([hi] + [y + r * scale for y, r in marks])
        new_lo = min([lo] + [y - r * scale for y, r in marks])
        if (new_lo, new_hi) == (lo, hi):
            break
        lo, hi = new_lo, new_hi
    ax.set_ylim(lo, hi)


def dodge(by_strategy: dict[str, list[dict]], span: float, tol: float = 0.015, step: float = 2.5) -> dict[str, float]:
    """A horizontal shift in points per strategy line: the lines with a point within `tol` x `span`
    (in %) of another line's point are drawn side by side, `step` points apart, so that their bars
    do not hide each other; the others are not moved. budgets.csv keeps the exact values."""
    xs = {s: [100 * p["params_share"] for p in rs] for s, rs in by_strategy.items()}
    close = [s for s in xs if any(abs(a - b) <= tol * span for t in xs if t != s for a in xs[s] for b in xs[t])]
    return {s: (close.index(s) - (len(close) - 1) / 2) * step if s in close else 0.0 for s in xs}


def plot(pts: list[dict], title: str, stem: Path) -> list[Path]:
    """`draw`, saved as PNG and PDF."""
    return save(draw(pts, title), stem)


def markdown(pts: list[dict]) -> str:
    """The plotted points as a table."""
    head = ["model", "data", "band", "strategy", "budget", "seeds", "embedding params (% of full table)",
            "test NDCG@10", "bars", "Δ vs no band"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for p in pts:
        ci = f" [{p['ci_low']:.4f}, {p['ci_high']:.4f}]" if p["ci_low"] is not None else ""
        seed = p.get("seed_significant")  # the star is the seed-aware verdict; the bars stay the user CI
        delta = "" if p["delta_pct"] is None else (f"{p['delta_pct']:+.1f}%" + ("*" if seed is True else "")
                                                   + (f" ({seed})" if isinstance(seed, str) else ""))
        cells = [p["model"] + (f" ({p['variant']})" if p["variant"] else ""), p["data"], p["band"], p["strategy"],
                 p["budget"], p["seeds"], f"{p['embedding_params']:,} ({100 * p['params_share']:.1f}%)",
                 f"{p['ndcg10_mean']:.4f}{ci}", p["bars"], delta]
        out.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
    return "\n".join(out) + "\n"
