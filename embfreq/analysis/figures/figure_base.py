"""What every figure shares: a pyplot-free Figure, one style (sizes, fonts, axis labels with
units, display names), label placement that overlaps nothing, and the atomic save of PNG and PDF.

Figures are ``matplotlib.figure.Figure`` on an Agg canvas, never pyplot, so no global backend
or figure registry is touched (the report and the training process may draw at the same time).

The style, for every figure of the package (the report's and a run's):

- print size: one column (`COLUMN`) or the text width (`PAGE`), text at `FONT` points, none
  under `SMALL`, so each figure is legible printed at its own size;
- every axis labelled, with its unit (`LABELS`): what is measured, on which split, in which unit;
- display names (`display`): "SASRec", "MF-BPR", "no band", never a config key such as
  ``mf_bpr`` or the report's ``baseline`` label;
- lines only through a series that is really ordered (epochs, budgets of one strategy); points
  of unrelated bands are markers;
- labels placed where they overlap no other label, marker or bar (`place_labels`), legends
  outside the data where the data may lie anywhere;
- PNG (200 dpi) and PDF side by side (`save_png_pdf`), the PDF without a creation date.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from embfreq.io import atomic_path

COLUMN = 3.4  # inches: one column of a two-column paper
PAGE = 7.0  # inches: the text width
FONT = 7.5  # points at print size (the figures are printed at their own size)
SMALL = 7.0  # the smallest text drawn
DPI = 200  # of the PNGs

# axis labels: the quantity, the split it is measured on, its unit
LABELS = {
    "ndcg": "test NDCG@10 (mean over seeds)",
    "delta_pct": "Δ test NDCG@10 vs no band (% of no band)",
    "delta": "Δ test NDCG@10 vs no band (absolute)",
    "val_ndcg": "validation NDCG@10",
    "epoch": "training epoch",
    "share": "items without an own vector (% of items, symlog)",
    "params": "embedding parameters allocated (% of the full table)",
    "upper": "band's upper bound (training interactions, inclusive)",
    "lower": "band's lower bound (training interactions, inclusive)",
    "target_freq": "training frequency of the test target (interactions)",
    "item_freq": "training frequency (interactions)",
}

# display names of config keys: models, data sets, the report's no-band label, item tables
NAMES = {
    "sasrec": "SASRec", "mf_bpr": "MF-BPR", "mfbpr": "MF-BPR", "gru4rec": "GRU4Rec",
    "beauty": "Beauty", "beauty_1000": "Beauty (users ≥ 10)", "yelp": "Yelp", "lastfm": "Last.fm",
    "amazon2014": "Amazon 2014",
    "baseline": "no band",
    "all": "neighbours (all)", "outside_band": "neighbours (outside band)",
    "neighbours (all)": "neighbours (all)", "neighbours (outside_band)": "neighbours (outside band)",
    "neighbours": "neighbours", "shared": "one shared vector", "hashed": "hashed", "qr": "QR",
    "mixed_dim": "mixed dim",
    "buckets": "buckets", "band_dim": "band dim",
}


def display(name) -> str:
    """The display name of a config key ("mf_bpr" -> "MF-BPR", "baseline" -> "no band"); an item
    table with its budget as the report writes it ("hashed buckets=16") -> "hashed, 16 buckets",
    ("mixed_dim band_dim=8") -> "mixed dim, band dim 8"; anything else as given."""
    name = "" if name is None else str(name)
    if name in NAMES:
        return NAMES[name]
    head, _, rest = name.partition(" ")
    if head in NAMES and rest and all("=" in kv for kv in rest.split()):
        parts = []
        for kv in rest.split():
            k, v = kv.split("=", 1)
            parts.append(f"{v} {display(k)}" if k == "buckets" else f"{display(k)} {v}")
        return f"{display(head)}, " + ", ".join(parts)
    return name


def display_title(title: str) -> str:
    """A "model · data · band ..." title with each part's display name; "band [0, 5]
    (neighbours=outside_band)" -> "band [0, 5], neighbours (outside band)"; a part
    "neighbours=hashed buckets=16" (a report panel) -> "hashed, 16 buckets"."""
    out = []
    for part in title.split(" · "):
        head, sep, mode = part.partition(" (neighbours=")
        if sep and mode.endswith(")"):
            part = f"{head}, {display(mode[:-1])}"
        elif part.startswith("neighbours="):  # a report panel's item table
            part = part.split("=", 1)[1]
        out.append(display(part))
    return " · ".join(out)


def fit_title(title: str, width_in: float, fontsize: float = FONT) -> str:
    """A "model · data · band" title with display names (`display_title`), broken at its
    separators where one line would be wider than `width_in` inches (about 0.6 em per character
    in DejaVu Sans), instead of letting it be cut off."""
    per_line = max(10, int(width_in * 72 / (0.6 * fontsize)))
    lines: list[str] = []
    for part in display_title(title).split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= per_line:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def bound_tick(v, lower: bool) -> str:
    """A band bound as a tick label: the number, "inf" for an open upper side and "-inf" for an
    open lower side (as in the band labels, "(-inf, 5]")."""
    from embfreq.band import bound_text

    return ("-inf" if lower else "inf") if v is None else bound_text(v)


def new_figure(width: float, height: float, *, constrained: bool = True) -> Figure:
    """A blank figure of `width` x `height` inches on its own Agg canvas."""
    # constrained layout instead of bbox_inches="tight": the saved size stays the print size
    fig = Figure(figsize=(width, height), layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def style_axes(ax, labelsize: float = SMALL) -> None:
    ax.tick_params(labelsize=labelsize)
    ax.grid(alpha=0.25, lw=0.5)


def freeze_layout(fig: Figure) -> None:
    """Compute the constrained layout once and keep it: positions checked afterwards (label
    placement) are the printed ones."""
    fig.canvas.draw()
    fig.set_layout_engine("none")


# where a label may go, in points from its anchor, in order of preference
OFFSETS = ((4, 2, "left", "bottom"), (4, -2, "left", "top"), (-4, 2, "right", "bottom"), (-4, -2, "right", "top"),
           (0, 6, "center", "bottom"), (0, -6, "center", "top"), (8, -4, "left", "center"),
           (-8, -4, "right", "center"), (10, 10, "left", "bottom"), (-10, -10, "right", "top"),
           (0, 14, "center", "bottom"), (0, -14, "center", "top"), (14, 0, "left", "center"),
           (-14, 0, "right", "center"))


def obstacles(ax) -> list[tuple]:
    """Window boxes of what a label must not cover in `ax`: its markers, bars, and reference
    lines (a straight two-point line such as the no-band level)."""
    fig = ax.figure
    out = []
    for line in ax.get_lines():
        m = line.get_marker()
        if m not in (None, "", " ", "None", "none"):
            r = (line.get_markersize() / 2 + 0.5) * fig.dpi / 72
            for px, py in line.get_transform().transform(line.get_xydata()):
                out.append((px - r, py - r, px + r, py + r))
        elif len(line.get_xydata()) == 2 and line.get_linestyle() not in ("None", "none", "", " "):
            (x0, y0), (x1, y1) = line.get_transform().transform(line.get_xydata())
            if x0 == x1 or y0 == y1:  # horizontal or vertical: its box is the line
                out.append((min(x0, x1) - 1, min(y0, y1) - 1.5, max(x0, x1) + 1, max(y0, y1) + 1.5))
    for coll in ax.collections:  # error bars: thin boxes along each segment
        if hasattr(coll, "get_segments"):
            for seg in coll.get_segments():
                if len(seg) >= 2:
                    (x0, y0), (x1, y1) = coll.get_transform().transform(seg[[0, -1]])
                    out.append((min(x0, x1) - 1, min(y0, y1) - 1, max(x0, x1) + 1, max(y0, y1) + 1))
    return out


def place_labels(fig: Figure, labels: list[tuple], *, fontsize: float = SMALL, offsets=OFFSETS) -> list:
    """Annotate each (axes, x, y, text, colour, x shift in points) at the first offset where it lies
    inside its axes and overlaps no label placed before and no marker or bar (`obstacles`); on the
    frozen layout (`freeze_layout`). Returns the annotations."""
    renderer = fig.canvas.get_renderer()
    taken = {ax: obstacles(ax) for ax in {a for a, *_ in labels}}
    out = []
    for ax, x, y, text, colour, shift in labels:
        for n, (dx, dy, ha, va) in enumerate(offsets):
            # on a light box: a label may cross a grid or dashed level line and stay readable
            t = ax.annotate(text, (x, y), xytext=(dx + shift, dy), textcoords="offset points", fontsize=fontsize,
                            color=colour, ha=ha, va=va, zorder=5,
                            bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.8})
            e = t.get_window_extent(renderer)
            box = (e.x0, e.y0, e.x1, e.y1)
            inside = ax.bbox.x0 <= e.x0 and e.x1 <= ax.bbox.x1 and ax.bbox.y0 <= e.y0 and e.y1 <= ax.bbox.y1
            if inside and not any(overlap(box, b) for b in taken[ax]):
                break
            if n < len(offsets) - 1:
                t.remove()
        taken[ax].append(box)
        out.append(t)
    return out


def overlap(a: tuple, b: tuple) -> bool:
    """Whether two (x0, y0, x1, y1) boxes overlap (touching is not overlapping)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def texts(fig: Figure) -> list:
    """Every visible, non-empty text the figure draws (titles, axis and tick labels, legends,
    annotations, cell values); tick labels only of the ticks drawn (inside the view)."""
    from matplotlib.text import Text

    ticks, drawn = set(), set()
    for ax in fig.axes:
        for axis in ax._axis_map.values():
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks |= {id(tick.label1), id(tick.label2)}
            for tick in axis._update_ticks():  # the ticks a draw shows
                drawn |= {id(tick.label1), id(tick.label2)}
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
            and (id(t) not in ticks or id(t) in drawn)]


def overlapping_texts(fig: Figure, pad: float = 0.0) -> list[tuple[str, str]]:
    """Pairs of visible texts whose boxes overlap (shrunk by `pad` pixels), on the figure as drawn:
    what a check of "no overlapping labels" asserts empty."""
    import math

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    for t in texts(fig):
        e = t.get_window_extent(renderer)
        if e.width > 0 and e.height > 0:
            boxes.append((t, (e.x0 + pad, e.y0 + pad, e.x1 - pad, e.y1 - pad)))

    def apart(a, ba, b, bb) -> bool:
        r = a.get_rotation()
        if r % 90 == 0 or r != b.get_rotation():
            return not overlap(ba, bb)
        # two slanted labels side by side (rotated tick labels): their upright boxes overlap, the text
        # does not when the centres lie a line height apart across the writing direction
        nx, ny = -math.sin(math.radians(r)), math.cos(math.radians(r))
        dx, dy = (ba[0] + ba[2] - bb[0] - bb[2]) / 2, (ba[1] + ba[3] - bb[1] - bb[3]) / 2
        return abs(dx * nx + dy * ny) >= a.get_fontsize() * fig.dpi / 72 - 2 * pad

    return [(a.get_text(), b.get_text()) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:]
            if not apart(a, ba, b, bb)]


def save_as(fig: Figure, path: str | Path, fmt: str, **savefig_kwargs) -> Path:
    """Write `fig` to `path` in format `fmt` (png, pdf), atomically; returns the path."""
    if fmt == "pdf":  # no creation date: the same figure gives the same bytes (no diff in a results page)
        savefig_kwargs = {"metadata": {"CreationDate": None}, **savefig_kwargs}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **savefig_kwargs)
    return Path(path)


def save_png_pdf(fig: Figure, stem: str | Path) -> list[Path]:
    """`stem`.png and `stem`.pdf side by side, each atomically; returns [png, pdf]. The stem is
    used as given (names may hold dots: model.net.x=1), a trailing .png dropped."""
    stem = Path(stem)
    if stem.suffix == ".png":
        stem = stem.with_suffix("")
    # dpi of the PDF only applies to rasterised artists (scatters of thousands of points stay small)
    return [save_as(fig, stem.parent / f"{stem.name}.png", "png", dpi=DPI),
            save_as(fig, stem.parent / f"{stem.name}.pdf", "pdf", dpi=300)]
