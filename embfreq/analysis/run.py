"""Per-item analysis of one trained model: items.csv, the study's figures, summary numbers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from embfreq.analysis.items import item_table, summary_numbers, write_items_csv
from embfreq.analysis.plots import plot_freq_vs_norm, plot_frequency_buckets, plot_frequency_panels

log = logging.getLogger(__name__)

FIGURES = ("frequency_panels.png", "frequency_buckets.png", "freq_vs_norm.png")
NORM_COLUMN = "effective_norm"  # the items.csv column behind the Norm panel, the scatter and the summary


def item_norms(items) -> tuple[np.ndarray, np.ndarray]:
    """L2 norms of each item's own learned row (NaN where it has none) and of its effective row."""
    with torch.no_grad():
        in_band = items.in_band.cpu().numpy()
        w = items.weight.detach().float().cpu()
        own = np.full(len(in_band), np.nan)
        if w.shape[0] == len(in_band):
            own[:] = w.norm(dim=-1).numpy()
        else:  # outside_band: rows exist only for items outside the band, in item order
            own[~in_band] = w.norm(dim=-1).numpy()
        eff = items.effective_weight().detach().float().cpu().norm(dim=-1).numpy()
    return own, eff


def analyze_model(model, dm, per_item: dict | None, run_dir: str | Path, logger=None) -> dict:
    """Write items.csv and the figures into run_dir (and TensorBoard); return the summary numbers."""
    run_dir = Path(run_dir)
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
    summary = {**summary_numbers(freq, norm), "norm": NORM_COLUMN}
    rho = summary.get("spearman_freq_norm")
    paths = [
        plot_frequency_panels(freq, norm, per_item["recall"], per_item["ndcg"], run_dir / FIGURES[0],
                              counts=per_item["count"]),
        plot_frequency_buckets(freq, {"recall@10": per_item["recall"], "ndcg@10": per_item["ndcg"]},
                               per_item["count"], run_dir / FIGURES[1])[0],
        plot_freq_vs_norm(freq, norm, in_band, run_dir / FIGURES[2], rho),
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
