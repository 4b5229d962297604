"""The band experiment's tables: runs grouped by configuration, mean ± std over seeds, and the
paired change against the no-band baseline with bootstrap CIs, overall and by target frequency.

Everything comes from run outputs (metrics.json, test_users.npz); nothing is retrained.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from embfreq.analysis.per_run.per_user import FILE as USERS_FILE
from embfreq.analysis.per_run.per_user import per_user_metric, read_test_users
from embfreq.analysis.sweep.stats import FREQ_BUCKETS, Change, bucket_label, in_bucket, paired_change, seed_change
from embfreq.band import band_label, bound_order

SUMMARY_COLUMNS = (
    "data", "model", "variant", "neighbours", "lower_freq", "upper_freq", "band", "items", "items_in_band",
    "share_in_band", "embedding_params", "embedding_params_saved", "seeds", "paired_seeds", "runs_not_ok",
    "ndcg10_mean", "ndcg10_std", "hr10_mean", "hr10_std", "baseline_ndcg10", "baseline_hr10",
    "delta_ndcg10", "delta_ci_low", "delta_ci_high", "delta_pct", "significant",
    "delta_hr10", "delta_hr10_ci_low", "delta_hr10_ci_high", "hr10_significant",
    "inband_users", "inband_baseline_ndcg10", "delta_ndcg10_inband", "inband_ci_low", "inband_ci_high",
    "rest_users", "rest_baseline_ndcg10", "delta_ndcg10_rest", "rest_ci_low", "rest_ci_high", "seconds_mean",
    # appended: the seed-aware (two-level bootstrap, stats.seed_change) interval of the same changes
    "delta_seed_ci_low", "delta_seed_ci_high", "seed_p", "seed_significant",
    "inband_seed_ci_low", "inband_seed_ci_high", "rest_seed_ci_low", "rest_seed_ci_high",
)
BUCKET_COLUMNS = ("data", "model", "variant", "neighbours", "band", "bucket", "users", "paired_seeds",
                  "delta_ndcg10", "ci_low", "ci_high", "significant")
# per-user means must reproduce metrics.json (which logs float32) to this
MATCH_TOL = 1e-6


class MismatchError(ValueError):
    """A run's per-user file disagrees with its metrics.json."""


@dataclass
class Config:
    """The runs (seeds) of one configuration."""
    model: str
    data: str
    variant: str
    neighbours: str
    lower_freq: float | None
    upper_freq: float | None
    runs: list = field(default_factory=list)  # ok Rows
    not_ok: list = field(default_factory=list)

    @property
    def is_baseline(self) -> bool:
        return self.lower_freq is None and self.upper_freq is None

    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.runs)

    def by_seed(self) -> dict:
        return {r.seed: r for r in self.runs}


def group_configs(rows) -> list[Config]:
    groups: dict[tuple, Config] = {}
    for r in rows:
        if r.status == "skipped":
            continue
        nb = "" if r.is_baseline else str(r.neighbours or "all")
        key = (str(r.model), str(r.data), r.variant, nb, r.lower_freq, r.upper_freq)
        c = groups.setdefault(key, Config(*key))
        (c.runs if r.ok and r.ndcg is not None else c.not_ok).append(r)
    return list(groups.values())


def checked_users(run) -> dict | None:
    """Per-user ranks of a run, checked against its metrics.json; None without the file."""
    if not (run.run_dir / USERS_FILE).is_file():
        return None
    u = read_test_users(run.run_dir)
    for metric, value in (("ndcg", run.ndcg), ("hr", run.hr)):
        mean = float(per_user_metric(u["rank"], metric).mean()) if len(u["rank"]) else float("nan")
        if value is not None and not abs(mean - value) <= MATCH_TOL:
            raise MismatchError(f"{run.run_dir}: {USERS_FILE} gives {metric}@10 {mean:.7f}, metrics.json {value:.7f}")
    return u


def _mean_std(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    return float(np.mean(xs)), (float(np.std(xs, ddof=1)) if len(xs) > 1 else None)


def _change_cells(prefix: str, ch: Change | None) -> dict:
    if ch is None:
        return {}
    return {f"{prefix}_ci_low": ch.low, f"{prefix}_ci_high": ch.high}


ONE_SEED = "1 seed"  # seed_significant where there is no seed-aware interval


def seed_cells(prefix: str, ch: Change) -> dict:
    """{prefix}seed_ci_{low,high} of a seed-aware change: empty (None) with 1 seed, never NaN in a table."""
    one = ch.low != ch.low  # NaN: one seed
    return {f"{prefix}seed_ci_low": None if one else ch.low, f"{prefix}seed_ci_high": None if one else ch.high}


def seed_verdict(ch: Change) -> bool | str:
    """seed_significant: yes / no, or "1 seed" where no seed-aware interval exists."""
    return ONE_SEED if ch.p != ch.p else ch.significant


def split_changes(ndcg: np.ndarray, base: np.ndarray, inband: np.ndarray) -> dict:
    """The paired change of per-user NDCG@10 (seeds, users) against `base` on the in-band targets
    and on the other users: {inband,rest}_users, delta_ndcg10_{inband,rest}, {inband,rest}_ci_{low,high},
    and the seed-aware interval {inband,rest}_seed_ci_{low,high} (empty with 1 seed)."""
    out: dict = {}
    for name, mask in (("inband", inband), ("rest", ~inband)):
        out[f"{name}_users"] = int(mask.sum())
        if mask.any():
            part = paired_change(ndcg[:, mask], base[:, mask])
            out[f"delta_ndcg10_{name}"] = part.delta
            out.update(_change_cells(name, part))
            out.update(seed_cells(f"{name}_", seed_change(ndcg[:, mask], base[:, mask])))
    return out


def analyse(rows) -> tuple[list[dict], list[dict]]:
    """(summary records, bucket records) for every configuration of `rows`."""
    configs = group_configs(rows)
    bases = {(c.model, c.data, c.variant): c for c in configs if c.is_baseline}
    summary, buckets = [], []
    for c in sorted(configs, key=_order):
        ndcg_m, ndcg_s = _mean_std([r.ndcg for r in c.runs])
        hr_m, hr_s = _mean_std([r.hr for r in c.runs if r.hr is not None])
        first = c.runs[0].metrics if c.runs else {}
        rec = {
            "data": c.data, "model": c.model, "variant": c.variant, "neighbours": c.neighbours or None,
            "lower_freq": c.lower_freq, "upper_freq": c.upper_freq, "band": _band(c),
            "items": first.get("items"), "items_in_band": first.get("items_in_band"),
            "share_in_band": first.get("share_in_band"), "embedding_params": first.get("embedding_params"),
            "embedding_params_saved": first.get("embedding_params_saved"),
            "seeds": ";".join(map(str, c.seeds())), "runs_not_ok": len(c.not_ok) or None,
            "ndcg10_mean": ndcg_m, "ndcg10_std": ndcg_s, "hr10_mean": hr_m, "hr10_std": hr_s,
            "seconds_mean": _mean_std([r.metrics.get("seconds", {}).get("total") for r in c.runs
                                       if isinstance(r.metrics.get("seconds"), dict)
                                       and r.metrics["seconds"].get("total") is not None])[0],
        }
        base = bases.get((c.model, c.data, c.variant))
        if not c.is_baseline and base is not None and c.runs:
            rec.update(_paired(c, base, buckets))
        summary.append(rec)
    return summary, buckets


def _paired(c: Config, base: Config, buckets: list[dict]) -> dict:
    bs, cs = base.by_seed(), c.by_seed()
    seeds = sorted(set(bs) & set(cs))
    out: dict = {"paired_seeds": ";".join(map(str, seeds)) or None}
    if not seeds:
        return out
    out["baseline_ndcg10"] = float(np.mean([bs[s].ndcg for s in seeds]))
    hrs = [bs[s].hr for s in seeds]
    out["baseline_hr10"] = float(np.mean(hrs)) if None not in hrs else None
    users = [(checked_users(cs[s]), checked_users(bs[s])) for s in seeds]
    if any(a is None or b is None for a, b in users):  # no per-user files: the change without a CI
        out["delta_ndcg10"] = float(np.mean([cs[s].ndcg - bs[s].ndcg for s in seeds]))
        out["delta_pct"] = 100 * out["delta_ndcg10"] / out["baseline_ndcg10"] if out["baseline_ndcg10"] else None
        return out
    for a, b in users:
        if not (np.array_equal(a["target"], b["target"]) and np.array_equal(a["target_freq"], b["target_freq"])):
            raise MismatchError(f"{c.runs[0].run_dir}: its test users differ from the baseline's (other data?)")
    freq = users[0][0]["target_freq"]
    band_ndcg = np.stack([per_user_metric(a["rank"], "ndcg") for a, _ in users])
    base_ndcg = np.stack([per_user_metric(b["rank"], "ndcg") for _, b in users])
    band_hr = np.stack([per_user_metric(a["rank"], "hr") for a, _ in users])
    base_hr = np.stack([per_user_metric(b["rank"], "hr") for _, b in users])
    ch = paired_change(band_ndcg, base_ndcg)
    hr = paired_change(band_hr, base_hr)
    out.update(delta_ndcg10=ch.delta, delta_ci_low=ch.low, delta_ci_high=ch.high, significant=ch.significant,
               delta_pct=100 * ch.delta / out["baseline_ndcg10"] if out["baseline_ndcg10"] else None,
               delta_hr10=hr.delta, delta_hr10_ci_low=hr.low, delta_hr10_ci_high=hr.high,
               hr10_significant=hr.significant)
    sc = seed_change(band_ndcg, base_ndcg)
    out.update(seed_cells("delta_", sc), seed_p=None if sc.p != sc.p else sc.p, seed_significant=seed_verdict(sc))
    inband = in_bucket(freq, c.lower_freq, c.upper_freq)
    out.update(split_changes(band_ndcg, base_ndcg, inband))
    for name, mask in (("inband", inband), ("rest", ~inband)):
        out[f"{name}_baseline_ndcg10"] = float(base_ndcg[:, mask].mean()) if mask.any() else None
    for lo, hi in FREQ_BUCKETS:
        mask = in_bucket(freq, lo, hi)
        if not mask.any():
            continue
        part = paired_change(band_ndcg[:, mask], base_ndcg[:, mask])
        buckets.append({"data": c.data, "model": c.model, "variant": c.variant, "neighbours": c.neighbours,
                        "band": _band(c), "bucket": bucket_label(lo, hi), "users": part.users,
                        "paired_seeds": out["paired_seeds"], "delta_ndcg10": part.delta, "ci_low": part.low,
                        "ci_high": part.high, "significant": part.significant})
    return out


def _band(c: Config) -> str:
    return band_label(c.lower_freq, c.upper_freq)


def _order(c: Config) -> tuple:
    return (c.data, c.model, c.variant, not c.is_baseline, c.neighbours, bound_order(c.lower_freq, True),
            bound_order(c.upper_freq, False))


def csv_text(records: list[dict], columns) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for rec in records:
        w.writerow({k: "" if rec.get(k) is None else _csv_value(rec[k]) for k in columns})
    return buf.getvalue()


def _csv_value(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return repr(v)
    return v


def markdown_summary(records: list[dict]) -> str:
    """The results table: mean ± std over seeds, the paired change with its user-bootstrap CI and
    its seed-aware CI (* = the seed-aware CI excludes 0; "1 seed": none exists), and the change on
    in-band targets and on the rest."""
    head = ["data", "model", "band", "neighbours", "items in band", "seeds", "NDCG@10", "HR@10",
            "Δ NDCG@10 [95% CI over users] {over seeds and users}", "in-band targets: users, baseline, Δ",
            "other targets: users, baseline, Δ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in records:
        share = r.get("share_in_band")
        inb = "" if r.get("items_in_band") is None or r["band"] == "baseline" else (
            f"{r['items_in_band']:,} ({100 * share:.1f}%)" if share is not None else f"{r['items_in_band']:,}")
        cells = [r["data"], r["model"] + (f" ({r['variant']})" if r.get("variant") else ""), r["band"],
                 r.get("neighbours") or "", inb, r["seeds"],
                 _pm(r["ndcg10_mean"], r["ndcg10_std"]) or f"no ok run ({r.get('runs_not_ok') or 0} not ok)",
                 _pm(r["hr10_mean"], r["hr10_std"]), _ci(r, "delta_ndcg10", "delta", r.get("delta_pct")),
                 _part(r, "inband"), _part(r, "rest")]
        lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
    return "\n".join(lines) + "\n"


def _part(r: dict, name: str) -> str:
    if r.get(f"delta_ndcg10_{name}") is None:
        return ""
    return f"{r[f'{name}_users']:,}, {r[f'{name}_baseline_ndcg10']:.4f}, " + _ci(r, f"delta_ndcg10_{name}", name)


def _pm(m, s) -> str:
    if m is None:
        return ""
    return f"{m:.4f}" + (f" ± {s:.4f}" if s is not None else "")


def _ci(r: dict, key: str, prefix: str, pct=None) -> str:
    """"Δ (pct) [user CI] {seed-aware CI}*", the star from the seed-aware CI; "1 seed" where it has none."""
    d = r.get(key)
    if d is None:
        return ""
    lo, hi = r.get(f"{prefix}_ci_low"), r.get(f"{prefix}_ci_high")
    s = f"{d:+.4f}" + (f" ({pct:+.1f}%)" if pct is not None else "")
    if lo is not None:
        s += f" [{lo:+.4f}, {hi:+.4f}]"
        slo, shi = r.get(f"{prefix}_seed_ci_low"), r.get(f"{prefix}_seed_ci_high")
        if slo is not None:
            s += f" {{{slo:+.4f}, {shi:+.4f}}}" + ("*" if slo > 0 or shi < 0 else "")
        elif r.get("seed_significant") == ONE_SEED:
            s += f" {{{ONE_SEED}}}"
    return s
