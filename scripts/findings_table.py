"""Print the findings tables of docs/results.md from a results page's committed summary.csv.

One dataset, SASRec and MF-BPR side by side, so the page's numbers come from committed files.

    python scripts/findings_table.py [docs/results/bands/summary.csv] [--data beauty_1000]
    python scripts/findings_table.py --head-to-head docs/results/item_tables/head_to_head.csv
"""

from __future__ import annotations

import argparse
import csv

BANDS = ("[0, 0]", "[0, 5]", "[0, 20]", "[5, 5]", "[5, 20]", "[10, 20]", "[20, 100]", "[100, inf)")
MODELS = ("sasrec", "mf_bpr")


def num(r: dict, key: str) -> float | None:
    return float(r[key]) if r.get(key) not in (None, "") else None


def change(r: dict) -> str:
    base = num(r, "baseline_ndcg10")
    lo, hi = 100 * num(r, "delta_ci_low") / base, 100 * num(r, "delta_ci_high") / base
    star = "*" if r["significant"] == "yes" else ""
    return f"{100 * num(r, 'delta_ndcg10') / base:+.1f}% [{lo:+.1f}, {hi:+.1f}]{star}"


def in_band(r: dict) -> str:
    star = "*" if num(r, "inband_ci_low") > 0 or num(r, "inband_ci_high") < 0 else ""
    return f"{num(r, 'inband_baseline_ndcg10'):.4f} → {num(r, 'delta_ndcg10_inband'):+.4f}{star}"


MODEL_NAMES = {"sasrec": "SASRec", "mf_bpr": "MF-BPR"}


def budget_part(strategy: str, key: str, value: str) -> str:
    """("hashed", "buckets", "525") -> "B = 525"; ("qr", "buckets", "508") -> "508 buckets"."""
    if key == "buckets":
        return f"{int(value):,} buckets" if strategy == "qr" else f"B = {int(value):,}"
    return f"d' = {int(value):,}" if key == "band_dim" else f"{key} = {value}"


def strategy(r: dict) -> str:
    """A head_to_head.csv row's configuration, e.g. "hashed B = 525"; other seeds than 1-3 in parentheses."""
    budget = ", ".join(budget_part(r["strategy"], *b.split("=", 1)) for b in r["budget"].split())
    seeds = "" if r["seeds"] == "1;2;3" else f" (seed {r['seeds'].replace(';', ',')})"
    return r["strategy"] + (f" {budget}" if budget else "") + seeds


def head_to_head(path: str) -> None:
    """Per band and budget tier with two or more configurations: the best one, and each other's paired
    change against it (head_to_head.csv of a report)."""
    tiers: dict[tuple, list[dict]] = {}
    for r in csv.DictReader(open(path)):
        tiers.setdefault((r["data"], r["model"], r["band"], r["tier"]), []).append(r)
    print("| data | model | band | % of full table | best at this memory (test NDCG@10) | "
          "the others: Δ NDCG@10 against the best [95% CI] |")
    print("|---|---|---|---|---|---|")
    for (data, model, band, _), rs in sorted(tiers.items(), key=lambda kv: kv[0][:2]):
        if len(rs) < 2:
            continue
        (lead,) = [r for r in rs if not r["against"]]
        shares = sorted(100 * float(r["params_share"]) for r in rs)
        share = f"{shares[0]:.1f}" + (f"–{shares[-1]:.1f}" if f"{shares[-1]:.1f}" != f"{shares[0]:.1f}" else "")
        others = "; ".join(f"{strategy(r)} {num(r, 'delta_ndcg10'):+.4f} [{num(r, 'ci_low'):+.4f}, "
                           f"{num(r, 'ci_high'):+.4f}]" + ("*" if r["significant"] == "yes" else "")
                           + ("†" if r["significant_holm"] == "yes" else "")
                           for r in rs if r["against"])
        print(f"| {data} | {MODEL_NAMES.get(model, model)} | {band} | {share}% | {strategy(lead)} ({num(lead, 'ndcg10_mean'):.4f}) | {others} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary", nargs="?", default="docs/results/bands/summary.csv")
    ap.add_argument("--data", default="beauty_1000")
    ap.add_argument("--head-to-head", metavar="CSV", help="print the head-to-head table of this head_to_head.csv instead")
    args = ap.parse_args()
    if args.head_to_head:
        return head_to_head(args.head_to_head)
    rows = [r for r in csv.DictReader(open(args.summary)) if r["data"] == args.data]
    by = {(r["model"], r["band"], r["neighbours"]): r for r in rows}
    print("| band | items in band | SASRec Δ NDCG@10 [95% CI] | SASRec in-band targets: baseline → Δ | "
          "MF-BPR Δ NDCG@10 [95% CI] | MF-BPR in-band targets: baseline → Δ |")
    print("|---|---|---|---|---|---|")
    for mode in ("all", "outside_band"):
        for band in BANDS:
            rs = [by.get((m, band, mode)) for m in MODELS]
            first = next((r for r in rs if r), None)
            if first is None:
                continue
            cells = [band + ("" if mode == "all" else " (outside_band)"),
                     f"{int(first['items_in_band']):,} ({100 * float(first['share_in_band']):.1f}%)"]
            for r in rs:
                ok = r is not None and num(r, "delta_ndcg10") is not None and num(r, "delta_ci_low") is not None
                cells += [change(r) + f" (seeds {r['paired_seeds'].replace(';', ',')})", in_band(r)] if ok else ["", ""]
            print("| " + " | ".join(cells) + " |")
    for m in MODELS:
        r = by.get((m, "baseline", ""))
        if r:
            std = f" ± {float(r['ndcg10_std']):.4f}" if r["ndcg10_std"] else ""
            print(f"\nNo band, {m}: test NDCG@10 {float(r['ndcg10_mean']):.4f}{std}, HR@10 {float(r['hr10_mean']):.4f} "
                  f"(seeds {r['seeds'].replace(';', ',')})")


if __name__ == "__main__":
    main()
