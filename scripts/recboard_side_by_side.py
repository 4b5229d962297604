"""embfreq against RecBoard's own SASRec or MF-BPR on the same split: export the split, plot the curves.

    python scripts/recboard_side_by_side.py export DIR [overrides...]   # DIR/{train,valid,test}.txt
    python scripts/recboard_side_by_side.py plot docs/results/recboard_sasrec [TITLE]

`export` writes embfreq's leave-one-out split (the DataModule of `experiment=sasrec_bce_recboard`
unless overrides say otherwise) in FreeRec's format: tab-separated `USER ITEM TIMESTAMP` with a
header, rows in sequence order, the timestamp a user's position; FreeRec item = embfreq item - 1
(embfreq's row 0 is padding, FreeRec adds its own), so both item tables hold the same items.
`plot` draws curves.csv (epoch, impl, val_ndcg10, val_hr10) of a results page as curves.png/pdf.
The runs themselves and their commands: docs/results/recboard_sasrec/ and recboard_mf_bpr/.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

CONF = Path(__file__).resolve().parents[1] / "embfreq" / "conf"


def export(out: Path, overrides: list[str]) -> dict:
    import hydra.utils
    from hydra import compose, initialize_config_dir

    from embfreq.io import atomic_path

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="train", overrides=["experiment=sasrec_bce_recboard", *overrides])
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    d = dm.data_processed()
    sp = d.split
    lengths = np.diff(sp.train_ptr)
    users = np.repeat(np.arange(d.num_users), lengths)
    position = np.arange(len(sp.train_items)) - sp.train_ptr[users]
    out.mkdir(parents=True, exist_ok=True)
    for name, u, i, t in (("train", users, sp.train_items, position),
                          ("valid", np.arange(d.num_users), sp.valid, lengths),
                          ("test", np.arange(d.num_users), sp.test, lengths + 1)):
        rows = np.stack([u, np.asarray(i) - 1, t], axis=1)
        with atomic_path(out / f"{name}.txt") as tmp:  # a failed run leaves no half-written split
            np.savetxt(tmp, rows, fmt="%d", delimiter="\t", header="USER\tITEM\tTIMESTAMP", comments="")
    stats = {"users": int(d.num_users), "items": int(d.num_items), "train_rows": int(len(sp.train_items)),
             "fingerprint": d.fingerprint()}
    (out / "export_stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    return stats


def plot(page: Path, title: str = "SASRec-BCE · Beauty · same split and settings, seed 1") -> list[Path]:
    from embfreq.analysis.figures.band_figures import save
    from embfreq.analysis.figures.figure_base import COLUMN, FONT, LABELS, SMALL, display_title, new_figure, style_axes

    with open(page / "curves.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    fig = new_figure(COLUMN, 2.4)
    ax = fig.add_subplot()
    for impl, marker in (("recboard", "o"), ("embfreq", "s")):
        pts = sorted((int(r["epoch"]), float(r["val_ndcg10"])) for r in rows if r["impl"] == impl)
        ax.plot(*zip(*pts), marker=marker, ms=3, lw=0.9, label={"recboard": "RecBoard (FreeRec)"}.get(impl, impl))
    ax.set_xlabel(LABELS["epoch"], fontsize=FONT)
    ax.set_ylabel(LABELS["val_ndcg"], fontsize=FONT)
    ax.set_title(display_title(title), fontsize=FONT)
    style_axes(ax)
    ax.legend(fontsize=SMALL, frameon=False)
    return save(fig, page / "curves")


def main(argv: list[str]) -> int:
    try:
        if len(argv) >= 2 and argv[0] == "export":
            print(json.dumps(export(Path(argv[1]), argv[2:])))
        elif len(argv) in (2, 3) and argv[0] == "plot":
            print(" ".join(str(p) for p in plot(Path(argv[1]), *argv[2:])))
        else:
            print("usage: " + " | ".join(line.strip() for line in __doc__.splitlines()[2:4]), file=sys.stderr)
            return 2
    except Exception as e:  # bad overrides, a missing curves.csv: one line, not a traceback
        print(f"recboard_side_by_side: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
