"""What every figure shares: a pyplot-free Figure, the axes style, and the atomic save.

Figures are ``matplotlib.figure.Figure`` on an Agg canvas, never pyplot, so no global backend
or figure registry is touched (the report and the training process may draw at the same time).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from embfreq.io import atomic_path


def new_figure(width: float, height: float, *, constrained: bool = True) -> Figure:
    """A blank figure of `width` x `height` inches on its own Agg canvas."""
    # constrained layout instead of bbox_inches="tight": the saved size stays the print size
    fig = Figure(figsize=(width, height), layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def style_axes(ax, labelsize: float) -> None:
    ax.tick_params(labelsize=labelsize)
    ax.grid(alpha=0.25, lw=0.5)


def save_as(fig: Figure, path: str | Path, fmt: str, **savefig_kwargs) -> Path:
    """Write `fig` to `path` in format `fmt` (png, pdf), atomically; returns the path."""
    if fmt == "pdf":  # no creation date: the same figure gives the same bytes (no diff in a results page)
        savefig_kwargs = {"metadata": {"CreationDate": None}, **savefig_kwargs}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **savefig_kwargs)
    return Path(path)
