"""The study's first finding as a table: frequency against embedding norm, from runs' metrics.json.

    python scripts/norm_table.py RUNS_ROOT [...] [--seed 1]

One row per (data, model) no-band run of `--seed` under the roots, from the `analysis` record that
training writes into metrics.json (embfreq.analysis per-item analysis of the best checkpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MODEL_NAMES = {"sasrec": "SASRec", "mf_bpr": "MF-BPR", "gru4rec": "GRU4Rec"}
HEADER = ("| data | model | test NDCG@10 | Spearman ρ(freq, norm) | never-trained items | norm threshold "
          "| items at or below it (never-trained among them) | balanced accuracy |\n"
          "|---|---|---|---|---|---|---|---|")


def is_plain_no_band(m: dict) -> bool:
    return (m.get("lower_freq") is None and m.get("upper_freq") is None
            and m.get("neighbours") in (None, "all") and m.get("item_table") in (None, "neighbours"))


def rows(roots: list[Path], seed: int) -> list[dict]:
    found = {}
    for root in roots:
        for f in sorted(root.rglob("metrics.json")):
            m = json.loads(f.read_text())
            if m.get("seed") != seed or not is_plain_no_band(m) or "analysis" not in m:
                continue
            key = (m["data"], m["model"])
            if key in found:
                raise SystemExit(f"error: two no-band runs of {key[0]} {key[1]} seed {seed}: "
                                 f"{found[key]['_dir']} and {f.parent}")
            found[key] = {**m, "_dir": f.parent}
    if not found:
        raise SystemExit(f"error: no no-band run of seed {seed} with an analysis record under "
                         + ", ".join(map(str, roots)))
    return [found[k] for k in sorted(found)]


def table(runs: list[dict]) -> str:
    lines = [HEADER]
    for m in runs:
        a = m["analysis"]
        lines.append(
            f"| {m['data']} | {MODEL_NAMES.get(m['model'], m['model'])} | {m['test']['test/ndcg@10']:.4f} "
            + f"| {a['spearman_freq_norm']:+.2f}".replace("-", "−")  # the minus sign the pages use
            + f" | {a['never_trained_items']:,} | {a['norm_threshold']:.2f} "
            f"| {a['items_below_threshold']:,} ({a['never_trained_below_threshold']:,}) "
            f"| {a['threshold_balanced_accuracy']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("roots", nargs="+", type=Path)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    print(table(rows(a.roots, a.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
