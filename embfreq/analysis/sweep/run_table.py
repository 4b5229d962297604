"""The per-run table of a sweep report: one record per run, written as runs.csv and as the
markdown table of summary.md."""

from __future__ import annotations

import os
from pathlib import Path

from embfreq.analysis.sweep import bands
from embfreq.analysis.sweep.sweep_runs import Row, as_int, as_number

CSV_COLUMNS = (
    "run", "status", "reason", "model", "data", "variant", "seed", "lower_freq", "upper_freq", "band",
    "neighbours", "items", "items_in_band", "share_in_band", "embedding_params", "embedding_params_saved",
    "total_params", "epochs_trained", "best_epoch", "test_hr@10", "test_ndcg@10", "baseline_hr@10",
    "baseline_ndcg@10", "baseline_runs", "delta_hr@10", "delta_ndcg@10", "delta_ndcg@10_pct", "seconds_total",
)


def row_record(r: Row, out_dir: Path | None = None) -> dict:
    """The CSV row of a run (None where a value does not apply)."""
    m = r.metrics if r.status == "ok" else {}
    base_ndcg, base_hr = r.baseline.get("ndcg"), r.baseline.get("hr")
    ndcg, hr = r.ndcg, r.hr
    return {
        "run": _rel(r.run_dir, out_dir),
        "status": r.status,
        "reason": r.reason,
        "model": r.model,
        "data": r.data,
        "variant": r.variant,
        "seed": r.seed,
        "lower_freq": r.lower_freq,
        "upper_freq": r.upper_freq,
        "band": r.band,
        "neighbours": r.neighbours,
        "items": as_int(m.get("items")),
        "items_in_band": as_int(m.get("items_in_band")),
        "share_in_band": as_number(m.get("share_in_band")),
        "embedding_params": as_int(m.get("embedding_params")),
        "embedding_params_saved": as_int(m.get("embedding_params_saved")),
        "total_params": as_int(m.get("total_params")),
        "epochs_trained": as_int(m.get("epochs_trained")),
        "best_epoch": as_int(m.get("best_epoch")),
        "test_hr@10": hr,
        "test_ndcg@10": ndcg,
        "baseline_hr@10": base_hr,
        "baseline_ndcg@10": base_ndcg,
        "baseline_runs": r.baseline.get("runs"),
        "delta_hr@10": hr - base_hr if hr is not None and base_hr is not None else None,
        "delta_ndcg@10": ndcg - base_ndcg if ndcg is not None and base_ndcg is not None else None,
        "delta_ndcg@10_pct": 100.0 * (ndcg - base_ndcg) / base_ndcg if ndcg is not None and base_ndcg else None,
        "seconds_total": as_number(m.get("seconds", {}).get("total")) if isinstance(m.get("seconds"), dict) else None,
    }


def label_base(rows: list[Row], out: Path) -> Path:
    """Runs are named relative to the report dir when inside it, else to their common parent."""
    dirs = [r.run_dir for r in rows]
    out = out.resolve()
    if all(out in d.parents for d in dirs):
        return out
    return Path(os.path.commonpath([d.parent for d in dirs]))


def _rel(p: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return str(p.relative_to(base.resolve()))
        except ValueError:
            pass
    return str(p)


def csv_text(records: list[dict]) -> str:
    return bands.csv_text(records, CSV_COLUMNS)


def markdown_table(records: list[dict]) -> str:
    show_variant = any(rec["variant"] for rec in records)
    head = ["run", "model", "data"] + (["variant"] if show_variant else []) + [
        "band", "seed", "items in band", "embedding params (saved)", "HR@10", "NDCG@10", "Δ NDCG@10 vs baseline", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for rec in records:
        cells = [rec["run"], rec["model"], rec["data"]] + ([rec["variant"]] if show_variant else []) + [
            rec["band"] + ("" if rec["neighbours"] in (None, "all") or rec["band"] == "baseline" else f" ({rec['neighbours']})"),
            _cell(rec["seed"]),
            _in_band(rec),
            _params(rec),
            _f4(rec["test_hr@10"]),
            _f4(rec["test_ndcg@10"]),
            _delta(rec),
            rec["status"] + (f": {_short(rec['reason'])}" if rec["status"] != "ok" and rec["reason"] else ""),
        ]
        lines.append("| " + " | ".join(_md_escape(str(c)) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    return "" if v is None else str(v)


def _f4(v) -> str:
    return "" if v is None else f"{v:.4f}"


def _in_band(rec: dict) -> str:
    if rec["items_in_band"] is None:
        return ""
    share = rec["share_in_band"]
    return f"{rec['items_in_band']:,} / {rec['items']:,} ({100 * share:.1f}%)" if share is not None and rec["items"] else f"{rec['items_in_band']:,}"


def _params(rec: dict) -> str:
    if rec["embedding_params"] is None:
        return ""
    saved = rec["embedding_params_saved"]
    return f"{rec['embedding_params']:,}" + (f" ({saved:,})" if saved else "")


def _delta(rec: dict) -> str:
    d, pct = rec["delta_ndcg@10"], rec["delta_ndcg@10_pct"]
    if d is None:
        return ""
    return f"{d:+.4f}" + (f" ({pct:+.1f}%)" if pct is not None else "")


def _short(s: str, n: int = 100) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")
