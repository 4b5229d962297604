"""Redraw a run's frequency-norm scatter and the study's four panels from its items.csv(.gz) alone.

    python scripts/item_figures.py RUN_DIR --out PREFIX

RUN_DIR holds metrics.json and items.csv or items.csv.gz (what `embfreq.analyze` writes; committed
run dirs keep the gzipped table, not the checkpoint). Writes PREFIX_norm.png/.pdf and
PREFIX_panels.png/.pdf with the figure code training uses, and checks that the table gives the
Spearman rho recorded in metrics.json (a table from another run is refused).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import sys
from pathlib import Path

import numpy as np

from embfreq.analysis.per_run.items import summary_numbers
from embfreq.analysis.figures.plots import plot_freq_vs_norm, plot_frequency_panels


def read_items(run_dir: Path) -> dict[str, np.ndarray]:
    path = next((p for p in (run_dir / "items.csv.gz", run_dir / "items.csv") if p.exists()), None)
    if path is None:
        raise SystemExit(f"error: {run_dir}: no items.csv or items.csv.gz")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"error: {path}: no items")

    def col(name, kind=float):
        if name not in rows[0]:
            raise SystemExit(f"error: {path}: no column {name!r}")
        return np.array([kind(r[name]) if r[name] != "" else math.nan for r in rows])

    return {"freq": col("freq"), "in_band": col("in_band", int).astype(bool), "norm": col("effective_norm"),
            "count": col("test_cases", int), "recall": np.nan_to_num(col("recall@10")),
            "ndcg": np.nan_to_num(col("ndcg@10"))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", required=True, help="output prefix: PREFIX_norm.png, PREFIX_panels.png (+ .pdf)")
    a = p.parse_args(argv)
    metrics = json.loads((a.run_dir / "metrics.json").read_text())
    it = read_items(a.run_dir)
    summary = summary_numbers(it["freq"], it["norm"], padding=False)
    rho, recorded = summary["spearman_freq_norm"], metrics.get("analysis", {}).get("spearman_freq_norm")
    if recorded is None or not math.isclose(rho, recorded, rel_tol=1e-9, abs_tol=1e-12):
        raise SystemExit(f"error: {a.run_dir}: items table gives rho {rho}, metrics.json records {recorded}")
    title = metrics["analysis"].get("figure_title")
    no_band = metrics.get("lower_freq") is None and metrics.get("upper_freq") is None
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    plot_freq_vs_norm(it["freq"], it["norm"], it["in_band"], f"{a.out}_norm.png", rho, title=title, padding=False)
    plot_frequency_panels(it["freq"], it["norm"], it["recall"], it["ndcg"], f"{a.out}_panels.png", title,
                          counts=it["count"], in_band=None if no_band else it["in_band"], padding=False)
    print(f"{a.out}_norm.png/.pdf, {a.out}_panels.png/.pdf (rho {rho:+.3f}, as recorded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
