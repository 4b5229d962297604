"""Per-item analysis of one trained model: items.csv, the study's figures, summary numbers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from embfreq.analysis.per_run.items import item_table, summary_numbers, write_items_csv
from embfreq.analysis.figures.plots import plot_freq_vs_norm, plot_frequency_buckets, plot_frequency_panels
from embfreq.band import band_label

log = logging.getLogger(__name__)

FIGURES = ("frequency_panels.png", "frequency_buckets.png", "freq_vs_norm.png")  # each with a .pdf beside
NORM_COLUMN = "effective_norm"  # the items.csv column behind the Norm panel, the scatter and the summary
MODEL_NAMES = {"sasrec": "sasrec", "mfbpr": "mf_bpr", "gru4rec": "gru4rec"}  # class name -> cfg.model.name


def run_title(model_name: str | None, data_name: str | None, lower_freq, upper_freq, neighbours: str | None) -> str:
    """Figure title "model · data · band [l, u] (neighbours=...)", or "model · data · baseline" for
    the run without a band; a missing name is left out."""
    if lower_freq is None and upper_freq is None:
        band = band_label(None, None)  # neighbours does not apply without a band
    else:
        band = f"band {band_label(lower_freq, upper_freq)} (neighbours={neighbours})"
    return " · ".join(p for p in (model_name, data_name, band) if p)


def _data_name(dm, run_dir: Path) -> str | None:
    """The dataset's config name: from the datamodule when it keeps one, else from the run's
    config.yaml (train.py pops the name from the datamodule's load_args)."""
    name = (getattr(dm, "load_args", None) or {}).get("name") or getattr(dm, "data_name", None)
    if name:
        return str(name)
    if not (run_dir / "config.yaml").is_file():
        return None
    from embfreq.errors import UserError
    from embfreq.training.run_dir import run_config

    try:
        name = run_config(run_dir).data.get("name")
    except (UserError, ValueError, KeyError):  # no usable config: a title without the data name
        return None
    return None if name is None else str(name)


def default_title(model, dm, run_dir: str | Path) -> str:
    """Figure title of a run from the model's class and band and the data's name."""
    cls = type(model).__name__.lower()
    items = model.items
    return run_title(MODEL_NAMES.get(cls, cls), _data_name(dm, Path(run_dir)), items.lower_freq, items.upper_freq,
                     getattr(items, "neighbours", items.strategy))


def item_norms(items) -> tuple[np.ndarray, np.ndarray]:
    """L2 norms of each item's own learned row (NaN where it has none) and of its effective row."""
    with torch.no_grad():
        in_band = items.in_band.cpu().numpy()
        w = items.own_weight.detach().float().cpu()
        own = np.full(len(in_band), np.nan)
        if w.shape[0] == len(in_band):
            own[:] = w.norm(dim=-1).numpy()
        else:  # outside_band: rows exist only for items outside the band, in item order
            own[~in_band] = w.norm(dim=-1).numpy()
        eff = items.weight.detach().float().cpu().norm(dim=-1).numpy()
    return own, eff


def analyze_model(model, dm, per_item: dict | None, run_dir: str | Path, logger=None, *,
                  title: str | None = None) -> dict:
    """Write items.csv and the figures (PNG and PDF) into run_dir (and TensorBoard); return the
    summary numbers. ``title`` names model, data and band on every figure; by default it is
    built by ``default_title``."""
    run_dir = Path(run_dir)
    if title is None:
        title = default_title(model, dm, run_dir)
    items = model.items
    freq = dm.item_freq.numpy().astype(np.float64)
    in_band = items.in_band.cpu().numpy()
    own, eff = item_norms(items)
    n = len(freq)
    if per_item is None:
        per_item = {"count": np.zeros(n, dtype=np.int64), **{k: np.zeros(n) for k in ("hr", "recall", "ndcg")}}
    per_item = {k: np.asarray(v) for k, v in per_item.items()}
    table = item_table(dm.item_ids, freq, in_band, own, eff, per_item)
    write_items_csv(run_dir / "items.csv", table)
    # The norm studied is that of the row the model scores with: the effective row. It equals the own
    # row outside the band; inside it the own row (which neighbours="all" still keeps) is not used.
    norm = eff
    summary = {**summary_numbers(freq, norm), "norm": NORM_COLUMN, "figure_title": title}
    rho = summary.get("spearman_freq_norm")
    no_band = items.lower_freq is None and items.upper_freq is None  # nothing to mark, not an empty band
    paths = [
        plot_frequency_panels(freq, norm, per_item["recall"], per_item["ndcg"], run_dir / FIGURES[0], title,
                              counts=per_item["count"], in_band=None if no_band else in_band),
        plot_frequency_buckets(freq, {"Recall@10": per_item["recall"], "NDCG@10": per_item["ndcg"]},
                               per_item["count"], run_dir / FIGURES[1], title=title, value_range=(0.0, 1.0))[0],
        plot_freq_vs_norm(freq, norm, in_band, run_dir / FIGURES[2], rho, title=title),
    ]
    if logger is not None and hasattr(logger, "experiment"):
        _log_figures(logger.experiment, paths)
    return summary


def _log_figures(writer, paths) -> None:
    import matplotlib.image as mpimg

    for p in paths:
        img = mpimg.imread(str(p))[..., :3]
        writer.add_image(f"analysis/{Path(p).stem}", img, dataformats="HWC")
    writer.flush()  # the figures come after the last test log; do not leave them to a buffer
