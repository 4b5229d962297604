"""Validation curves of finished runs, read from their TensorBoard logs, as one CSV and one figure.

    python scripts/validation_curves.py RUNS_ROOT [RUNS_ROOT ...] --out DIR [--cap 200]
    python scripts/validation_curves.py --from-csv DIR/val_curves.csv --out DIR [--cap 200]   # redraw

Every run dir under the roots (a dir with metrics.json and tb/) gives one curve per validation
epoch (`epoch` = epochs trained, Lightning's epoch index + 1): `val_curves.csv` (configuration, seed, epoch, val_ndcg10, val_hr10, full precision; best = 1 at
the epoch whose checkpoint gave the run's test metrics) and
`val_curves.png`/`.pdf` (one panel per configuration, one line per seed, a mark at each run's best
epoch and a dashed line at `--cap`, the shorter budget being compared). Run dirs committed under
docs/results keep no tb/ (its size), so the CSV is what is committed and `--from-csv` redraws the
figure from it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

from embfreq.analysis.figures.figure_base import COLUMN, FONT, LABELS, display, new_figure, save_png_pdf, style_axes
from embfreq.band import band_label
from embfreq.errors import UserError
from embfreq.training.run_dir import METRICS, read_metrics

FIELDS = ("configuration", "seed", "epoch", "val_ndcg10", "val_hr10", "best")
TAGS = {"val_ndcg10": "val/ndcg@10", "val_hr10": "val/hr@10"}


def read_curve(run_dir: Path) -> list[dict]:
    """Rows (epoch, val_ndcg10, val_hr10) of one run, from its tb/ event files, epochs 1-based."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted((run_dir / "tb").glob("events.out.tfevents.*"))
    by_step: dict[int, dict] = defaultdict(dict)
    epoch_at: dict[int, float] = {}
    for f in events:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags()["scalars"]
        if "epoch" in tags:
            epoch_at.update({e.step: e.value for e in acc.Scalars("epoch")})
        for col, tag in TAGS.items():
            if tag in tags:
                for e in acc.Scalars(tag):
                    by_step[e.step][col] = e.value
    if not by_step:
        raise UserError(f"{run_dir}: no validation scalars ({', '.join(TAGS.values())}) in tb/")
    rows = []
    for step in sorted(by_step):
        if step not in epoch_at:  # Lightning logs `epoch` with every logged step
            raise UserError(f"{run_dir}: validation at step {step} has no `epoch` scalar in tb/")
        rows.append({"epoch": int(epoch_at[step]) + 1, **by_step[step]})
    return rows


def configuration(metrics: dict) -> str:
    """`SASRec · Beauty (users ≥ 10) · [0, 5]`; the table and neighbour set only where not the defaults."""
    parts = [display(metrics["model"]), display(metrics["data"]),
             band_label(metrics.get("lower_freq"), metrics.get("upper_freq"))]
    if metrics.get("item_table") not in (None, "neighbours"):
        parts.append(metrics["item_table"])
    if metrics.get("neighbours") not in (None, "all"):
        parts.append(metrics["neighbours"])
    return " · ".join(display(p) for p in parts)


def collect(roots: list[Path]) -> list[dict]:
    rows = []
    for root in roots:
        if not root.is_dir():
            raise UserError(f"{root}: not a directory")
        run_dirs = sorted(p.parent for p in root.rglob(METRICS) if (p.parent / "tb").is_dir())
        if not run_dirs:
            raise UserError(f"{root}: no run dir with {METRICS} and tb/ below it")
        for run_dir in run_dirs:
            m = read_metrics(run_dir)
            best = m.get("best_epoch")  # metrics.json counts epochs from 0
            for r in read_curve(run_dir):
                rows.append({"configuration": configuration(m), "seed": m["seed"], **r,
                             "best": int(best is not None and r["epoch"] == best + 1)})
    rows.sort(key=lambda r: (r["configuration"], r["seed"], r["epoch"]))
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FIELDS)
        for r in rows:
            w.writerow([r["configuration"], r["seed"], r["epoch"],
                        *(repr(float(r[c])) if r.get(c) is not None else "" for c in FIELDS[3:5]), r["best"]])


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise UserError(f"{path}: columns {reader.fieldnames}, expected {list(FIELDS)}")
        return [{"configuration": r["configuration"], "seed": int(r["seed"]), "epoch": int(r["epoch"]),
                 "val_ndcg10": float(r["val_ndcg10"]), "best": int(r["best"])} for r in reader]


def plot(rows: list[dict], out: Path, cap: int | None) -> None:
    """One panel per configuration, one line per seed (a run's curve is ordered in epochs)."""
    configs = sorted({r["configuration"] for r in rows})
    fig = new_figure(COLUMN * len(configs) * 0.8, 2.4)
    axes = fig.subplots(1, len(configs), sharey=True, squeeze=False)[0]
    for ax, config in zip(axes, configs):
        for seed in sorted({r["seed"] for r in rows if r["configuration"] == config}):
            pts = [r for r in rows if r["configuration"] == config and r["seed"] == seed]
            colour = f"C{(int(seed) - 1) % 10}"  # one colour per seed in every panel
            ax.plot([p["epoch"] for p in pts], [p["val_ndcg10"] for p in pts], lw=0.9, color=colour,
                    label=f"seed {seed}")
            for p in pts:
                if p["best"]:  # the checkpoint the test metrics come from
                    ax.plot([p["epoch"]], [p["val_ndcg10"]], "o", ms=3, color=colour)
        if cap:
            ax.axvline(cap, ls="--", lw=0.7, color="0.4")
        ax.set_title(config, fontsize=FONT)
        ax.set_xlabel(LABELS["epoch"], fontsize=FONT)
        style_axes(ax)
        ax.legend(fontsize=FONT - 1, loc="lower right", frameon=False)
    axes[0].set_ylabel(LABELS["val_ndcg"], fontsize=FONT)
    save_png_pdf(fig, out / "val_curves")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("roots", nargs="*", type=Path)
    p.add_argument("--from-csv", type=Path, help="redraw the figure from a val_curves.csv instead")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cap", type=int, default=None, help="draw a dashed line at this epoch")
    a = p.parse_args(argv)
    try:
        if bool(a.roots) == bool(a.from_csv):
            raise UserError("give run roots or --from-csv, not both or neither")
        a.out.mkdir(parents=True, exist_ok=True)
        if a.from_csv:
            rows = read_csv(a.from_csv)
        else:
            write_csv(collect(a.roots), a.out / "val_curves.csv")
            rows = read_csv(a.out / "val_curves.csv")  # the figure is what the CSV holds, either way
        plot(rows, a.out, a.cap)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(rows)} validation points, {len({(r['configuration'], r['seed']) for r in rows})} runs"
          f" -> {a.out}/" + ("" if a.from_csv else "val_curves.csv, ") + "val_curves.png/pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
