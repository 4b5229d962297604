"""Which substitute for an own embedding is best at equal memory: test NDCG@10 of each item-table
strategy against the embedding parameters it allocates, as a share of the full table (the no-band
baseline's), from the summary records of `embfreq.analysis.bands`. One figure per model, data
(variant) and band, written when a band has a strategy other than `neighbours`; `points` gives
budgets.csv, exactly what is plotted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embfreq.analysis.band_figures import COLUMN, FONT, save
from embfreq.analysis.figure_base import new_figure, style_axes

COLUMNS = ("data", "model", "variant", "band", "strategy", "budget", "seeds", "embedding_params", "params_share",
           "ndcg10_mean", "ci_low", "ci_high", "bars", "delta_pct", "significant")
# the summary's `neighbours` column: a neighbour mode of the default strategy, or another strategy
# with its budget ("hashed buckets=256", see sweep_runs.substitute); no torch import for NEIGHBOURS
NEIGHBOUR_MODES = ("all", "outside_band")
BASELINE = "no band"
BOOTSTRAP, SEED_STD = "95% paired bootstrap CI", "± seed std"
# a strategy keeps its colour in every figure
ORDER = ("neighbours (all)", "neighbours (outside_band)", "shared", "hashed", "qr", "mixed_dim")
MIN_FONT = 7.0  # legible at one column width


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
         "significant": r.get("significant")}
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


def plot(pts: list[dict], title: str, stem: Path) -> list[Path]:
    """The points of one (model, data, variant, band): one line per strategy through its budgets in
    order of params (a marker when it has one), bars as in `bars`, the baseline dashed and starred."""
    fig = new_figure(COLUMN, 2.9)
    ax = fig.add_subplot()
    base = next(p for p in pts if p["strategy"] == BASELINE)
    y0 = base["ndcg10_mean"]
    ax.axhline(y0, color="0.5", lw=0.7, ls="--", zorder=1)
    # under the others: neighbours (all) allocates the full table too, its ring must show around the star
    ax.plot([100 * base["params_share"]], [y0], "*", ms=13, color="black", zorder=3, label=f"no band ({y0:.4f})")
    by_strategy = lines(pts)
    kinds = list(dict.fromkeys(p["bars"] for p in pts if p["bars"]))
    others = [s for s in by_strategy if s not in ORDER]
    for s, rs in by_strategy.items():
        x = np.array([100 * p["params_share"] for p in rs])
        y = np.array([p["ndcg10_mean"] for p in rs])
        lo, hi = (np.array([np.nan if p[k] is None else p[k] for p in rs], dtype=float) for k in ("ci_low", "ci_high"))
        budgets = [p["budget"] for p in rs]
        # one budget: named in the legend; several: the swept key in the legend, its value at each point
        keys = " ".join(dict.fromkeys(kv.split("=")[0] for b in budgets for kv in b.split()))
        label = s + (f" ({budgets[0]})" if len(rs) == 1 and budgets[0] else f" ({keys})" if keys else "")
        if len(kinds) > 1 and any(p["bars"] == SEED_STD for p in rs):  # the legend title names the CI
            label += f", bars {SEED_STD}"
        c = _colour(s, others)
        hollow = s.startswith("neighbours")
        # bars drawn from ci_low to ci_high, not around the mean: with seeds the baseline lacks, the
        # mean (all seeds) need not lie in the CI (paired seeds)
        ax.errorbar(x, (lo + hi) / 2, yerr=(hi - lo) / 2, fmt="none", lw=0.9, capsize=2, color=c, zorder=4)
        ax.plot(x, y, "-o" if len(rs) > 1 else "o", ms=5 if hollow else 4, mew=1.3 if hollow else 1, lw=0.9,
                color=c, label=label, mfc="white" if hollow else c, zorder=4)
        if len(rs) > 1:
            for n, (xi, yi, b) in enumerate(zip(x, y, budgets)):  # above and below in turn: budgets lie close
                value = " ".join(kv.split("=")[-1] for kv in b.split())
                ax.annotate(value, (xi, yi), xytext=(3, 3 if n % 2 == 0 else -9), textcoords="offset points",
                            fontsize=MIN_FONT, color=c)
    ax.set_xlim(0, 105)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("embedding parameters allocated (% of the full table)", fontsize=FONT)
    ax.set_ylabel("test NDCG@10", fontsize=FONT)
    ax.set_title(title, fontsize=FONT)
    style_axes(ax, FONT)
    # below the axes: points may lie anywhere in the plot; two columns fit one column's width
    labels = ax.get_legend_handles_labels()[1]
    ncol = 2 if max(map(len, labels)) <= 26 else 1
    fig.legend(loc="outside lower center", ncol=ncol, fontsize=MIN_FONT, title_fontsize=MIN_FONT, frameon=False,
               title=f"bars: {BOOTSTRAP if len(kinds) > 1 else kinds[0]}" if kinds else None)
    fig.set_size_inches(COLUMN, 2.5 + 0.16 * (-(-len(labels) // ncol) + bool(kinds)))
    return save(fig, stem)


def markdown(pts: list[dict]) -> str:
    """The plotted points as a table."""
    head = ["model", "data", "band", "strategy", "budget", "seeds", "embedding params (% of full table)",
            "test NDCG@10", "bars", "Δ vs no band"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for p in pts:
        ci = f" [{p['ci_low']:.4f}, {p['ci_high']:.4f}]" if p["ci_low"] is not None else ""
        delta = "" if p["delta_pct"] is None else f"{p['delta_pct']:+.1f}%" + ("*" if p["significant"] else "")
        cells = [p["model"] + (f" ({p['variant']})" if p["variant"] else ""), p["data"], p["band"], p["strategy"],
                 p["budget"], p["seeds"], f"{p['embedding_params']:,} ({100 * p['params_share']:.1f}%)",
                 f"{p['ndcg10_mean']:.4f}{ci}", p["bars"], delta]
        out.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
    return "\n".join(out) + "\n"
