"""The NDCG@10 heatmap of a sweep report: per panel (model, data, variant, neighbours) one
(lower_freq x upper_freq) grid of test NDCG@10, mean ± std over seeds, coloured about the baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embfreq.analysis.figures.figure_base import (COLUMN, FONT, LABELS, PAGE, SMALL, bound_tick, display, fit_title,
                                          new_figure, save_png_pdf)
from embfreq.analysis.sweep.sweep_runs import Row
from embfreq.band import bound_order


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)  # NDCG@10 of the ok runs
    statuses: list[str] = field(default_factory=list)  # statuses of the other runs

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else None

    def text(self) -> str:
        if self.values:
            s = f"{self.mean:.4f}"
            if len(self.values) > 1:
                s += f"\n±{self.std:.4f}\nn={len(self.values)}"
            if self.statuses:
                s += f"\n+{len(self.statuses)} {'/'.join(sorted(set(self.statuses)))}"
            return s
        return "/".join(sorted(set(self.statuses)))


@dataclass
class Grid:
    panel: tuple
    lowers: list  # row values, None (open) first
    uppers: list  # column values, None (inf) last
    cells: dict  # (lower, upper) -> Cell
    baseline: Cell


def grids(rows: list[Row]) -> list[Grid]:
    """One (lower_freq x upper_freq) grid of NDCG@10 per panel (model, data, variant, neighbours)."""
    panels: dict[tuple, list[Row]] = {}
    for r in rows:
        if not r.is_baseline:
            panels.setdefault(r.panel, []).append(r)
    out = []
    for panel, prs in sorted(panels.items(), key=lambda kv: tuple(map(str, kv[0]))):
        lowers = sorted({r.lower_freq for r in prs}, key=lambda v: bound_order(v, True))
        uppers = sorted({r.upper_freq for r in prs}, key=lambda v: bound_order(v, False))
        cells: dict = {}
        for r in prs:
            c = cells.setdefault((r.lower_freq, r.upper_freq), Cell())
            (c.values.append(r.ndcg) if r.ok and r.ndcg is not None else c.statuses.append(r.status))
        model, data, variant, _ = panel
        base = Cell()
        bases = [b for b in rows if b.is_baseline and (b.model, b.data) == (model, data)]
        bases = [b for b in bases if b.variant == variant] or bases
        for b in bases:
            (base.values.append(b.ndcg) if b.ok and b.ndcg is not None else base.statuses.append(b.status))
        out.append(Grid(panel, lowers, uppers, cells, base))
    return out


def _panel_title(panel: tuple) -> str:
    model, data, variant, neighbours = panel
    s = f"{display(model)} · {display(data)}"
    if variant:
        s += f" · {variant}"
    s += f" · {display(neighbours or 'all')}"
    return s


def plot_heatmap(grid: Grid, path: Path) -> list[Path]:
    """Test NDCG@10 per (lower_freq, upper_freq) cell, mean, ± std and n over seeds; the colour
    scale is centred on the baseline, so better cells and worse cells differ in hue. Written as
    `path` (PNG) and the PDF beside it; returns [png, pdf]."""
    from matplotlib.colors import TwoSlopeNorm

    nr, nc = len(grid.lowers), len(grid.uppers)
    data = np.full((nr, nc), np.nan)
    for i, lo in enumerate(grid.lowers):
        for j, hi in enumerate(grid.uppers):
            c = grid.cells.get((lo, hi))
            if c is not None and c.mean is not None:
                data[i, j] = c.mean
    fig = new_figure(min(PAGE, max(COLUMN, 1.6 + 0.7 * nc)), max(2.4, 1.35 + 0.5 * nr))
    ax = fig.add_subplot(1, 1, 1)
    finite = data[np.isfinite(data)]
    base = grid.baseline.mean
    norm, cmap = None, "viridis"
    if finite.size:
        lo_v, hi_v = float(finite.min()), float(finite.max())
        if base is not None and lo_v < base < hi_v:  # red below the baseline, blue above
            norm, cmap = TwoSlopeNorm(vcenter=base, vmin=lo_v, vmax=hi_v), "RdBu"
    ax.set_facecolor("#dddddd")  # cells without an ok run
    im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, norm=norm, aspect="auto")
    if finite.size:
        cb = fig.colorbar(im, ax=ax, shrink=0.9)
        cb.set_label(LABELS["ndcg"].replace(" (", "\n("), fontsize=FONT)
        cb.ax.tick_params(labelsize=SMALL)
        if base is not None and finite.min() <= base <= finite.max():
            cb.ax.axhline(base, color="black", lw=1.2)
    for (lo, hi), c in grid.cells.items():
        i, j = grid.lowers.index(lo), grid.uppers.index(hi)
        color = "black"
        if c.mean is not None:  # light text on dark cells
            r, g, b, _ = im.cmap(im.norm(c.mean))
            color = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"
        ax.text(j, i, c.text(), ha="center", va="center", fontsize=SMALL, color=color, linespacing=1.1)
    ax.set_xticks(range(nc), [bound_tick(v, False) for v in grid.uppers], fontsize=SMALL)
    ax.set_yticks(range(nr), [bound_tick(v, True) for v in grid.lowers], fontsize=SMALL)
    ax.tick_params(length=0)
    ax.set_xlabel(LABELS["upper"], fontsize=FONT)
    ax.set_ylabel(LABELS["lower"].replace(" (", "\n("), fontsize=FONT)
    b = grid.baseline
    if b.values:
        btxt = f"no band {b.mean:.4f}" + (f" ± {b.std:.4f} (n={len(b.values)}" if len(b.values) > 1 else " (n=1")
        btxt += "; black line)" if norm is not None else ")"
    elif b.statuses:
        btxt = "no band: " + "/".join(sorted(set(b.statuses)))
    else:
        btxt = "no run without a band"
    ax.set_title(f"{fit_title(_panel_title(grid.panel), fig.get_figwidth())}\n{btxt}", fontsize=FONT)
    return save_png_pdf(fig, path)
