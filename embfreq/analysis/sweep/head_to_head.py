"""Which substitute wins at a budget: in each band, the item-table configurations that allocate
about the same memory (a budget tier) against the tier's best one, paired over the test users and
the seeds both have, overall, on the in-band targets and on the other users. The figure and
budgets.csv compare each configuration with the no-band baseline; this says whether two of them
differ. The leader is picked on validation NDCG@10 (metrics.json `val`), the gaps are scored on
test: the test users do not pick the leader they then score. Each gap has the user bootstrap's
interval (`ci_*`, `p_value`, the seeds held fixed) and the seed-aware two-level bootstrap's
(`seed_ci_*`, `seed_p`, `stats.seed_change`; empty with one paired seed); `significant_holm` and
`seed_significant_holm` correct for the several rivals of one leader."""

from __future__ import annotations

import numpy as np

from embfreq.analysis.sweep import bands
from embfreq.analysis.figures.budget_figure import NEIGHBOUR_MODES, strategy_budget
from embfreq.analysis.per_run.per_user import per_user_metric
from embfreq.analysis.sweep.stats import LEVEL, holm, in_bucket, paired_change, seed_change
from embfreq.band import band_label

# one budget tier: allocations within 10% of the tier's smallest (28% and 30% of the table, not 28% and 32.5%)
TIER_RATIO = 1.10
COLUMNS = ("data", "model", "variant", "band", "tier", "strategy", "budget", "params_share", "seeds", "ndcg10_mean",
           "against", "paired_seeds", "delta_ndcg10", "ci_low", "ci_high", "significant", "p_value", "p_holm",
           "significant_holm", "inband_users",
           "delta_ndcg10_inband", "inband_ci_low", "inband_ci_high", "rest_users", "delta_ndcg10_rest",
           "rest_ci_low", "rest_ci_high",
           # appended: what picks the leader, and the seed-aware interval (stats.seed_change)
           "val_ndcg10_mean", "seed_ci_low", "seed_ci_high", "seed_p", "seed_p_holm", "seed_significant",
           "seed_significant_holm", "inband_seed_ci_low", "inband_seed_ci_high", "rest_seed_ci_low",
           "rest_seed_ci_high")


def tiers(shares: list[float], ratio: float = TIER_RATIO) -> list[int]:
    """The tier index of each share: sorted, a new tier starts above `ratio` x the current tier's smallest."""
    order = sorted(range(len(shares)), key=lambda i: shares[i])
    out, tier, start = [0] * len(shares), -1, None
    for i in order:
        if start is None or shares[i] > start * ratio:
            tier, start = tier + 1, shares[i]
        out[i] = tier
    return out


def compare(rows) -> list[dict]:
    """head_to_head.csv: per (model, data, variant, band) with a strategy other than `neighbours`, each
    tier's leader (the best mean validation NDCG@10 among the configurations with the most seeds) and
    every other configuration of the tier with its paired change on test against the leader."""
    configs = [c for c in bands.group_configs(rows) if c.runs]
    bases = {(c.model, c.data, c.variant): c for c in configs if c.is_baseline}
    by_band: dict[tuple, list] = {}
    for c in configs:
        if not c.is_baseline:
            by_band.setdefault((c.model, c.data, c.variant, c.lower_freq, c.upper_freq), []).append(c)
    out: list[dict] = []
    cache: dict = {}  # run dir -> per-user ranks: a tier's leader is read once, not once per rival
    for (model, data, variant, lo, hi), cs in by_band.items():
        base = bases.get((model, data, variant))
        full = base.runs[0].metrics.get("embedding_params") if base else None
        if not full or all(c.neighbours in NEIGHBOUR_MODES for c in cs):
            continue  # nothing to measure the memory against, or the band study's own comparison
        cs = [c for c in cs if c.runs[0].metrics.get("embedding_params") is not None]
        shares = [c.runs[0].metrics["embedding_params"] / full for c in cs]
        tier_of = tiers(shares)
        for t in sorted(set(tier_of)):
            members = [(c, s) for c, s, k in zip(cs, shares, tier_of) if k == t]
            most = max(len(c.runs) for c, _ in members)
            leader = max((c for c, _ in members if len(c.runs) == most), key=_val_key)
            recs = []
            for c, share in sorted(members, key=lambda m: (m[0] is not leader, -_mean(m[0]))):
                rec = _record(c, share, t, band_label(lo, hi))
                if c is not leader:
                    rec.update(_against(c, leader, lo, hi, cache))
                recs.append(rec)
            _adjust(recs)
            out.extend(recs)
    return out


def _adjust(recs: list[dict]) -> None:
    """Holm over the tier's rivals of its leader: the leader is checked against all of them at once,
    so each nominal p is corrected for the family; the same for the seed-aware p where it exists."""
    tested = [r for r in recs if r.get("p_value") is not None]
    for r, p in zip(tested, holm([r["p_value"] for r in tested])):
        r.update(p_holm=p, significant_holm=p < 1 - LEVEL)
    tested = [r for r in recs if r.get("seed_p") is not None]
    for r, p in zip(tested, holm([r["seed_p"] for r in tested])):
        r.update(seed_p_holm=p, seed_significant_holm=p < 1 - LEVEL)


def _mean(c) -> float:
    return float(np.mean([r.ndcg for r in c.runs]))


def _val_mean(c) -> float | None:
    """Mean validation NDCG@10 of the configuration's runs; None where a run lacks it."""
    vals = [(r.metrics.get("val") or {}).get("val/ndcg@10") for r in c.runs]
    return float(np.mean(vals)) if all(isinstance(v, (int, float)) for v in vals) else None


def _val_key(c) -> float:
    """What picks the leader: validation NDCG@10; a configuration without it leads only a tier of such."""
    v = _val_mean(c)
    return float("-inf") if v is None else v


def _name(c) -> tuple[str, str]:
    return strategy_budget(c.neighbours)


def _record(c, share: float, tier: int, band: str) -> dict:
    strategy, budget = _name(c)
    return {"data": c.data, "model": c.model, "variant": c.variant, "band": band, "tier": tier, "strategy": strategy,
            "budget": budget, "params_share": share, "seeds": ";".join(map(str, c.seeds())), "ndcg10_mean": _mean(c),
            "val_ndcg10_mean": _val_mean(c)}


def _against(c, leader, lo, hi, cache: dict) -> dict:
    """The paired change of `c` against the tier leader over the seeds both have; none without per-user files."""
    strategy, budget = _name(leader)
    out: dict = {"against": f"{strategy} {budget}".strip()}
    cs, ls = c.by_seed(), leader.by_seed()
    seeds = sorted(set(cs) & set(ls))
    out["paired_seeds"] = ";".join(map(str, seeds)) or None
    def users_of(run):
        if run.run_dir not in cache:
            cache[run.run_dir] = bands.checked_users(run)
        return cache[run.run_dir]

    users = [(users_of(cs[s]), users_of(ls[s])) for s in seeds]
    if not seeds or any(a is None or b is None for a, b in users):
        return out
    for s, (a, b) in zip(seeds, users):
        if not np.array_equal(a["target"], b["target"]):
            raise bands.MismatchError(f"{cs[s].run_dir}: its test users differ from {ls[s].run_dir}'s")
    mine = np.stack([per_user_metric(a["rank"], "ndcg") for a, _ in users])
    theirs = np.stack([per_user_metric(b["rank"], "ndcg") for _, b in users])
    ch = paired_change(mine, theirs)
    out.update(delta_ndcg10=ch.delta, ci_low=ch.low, ci_high=ch.high, significant=ch.significant, p_value=ch.p)
    out.update(bands.split_changes(mine, theirs, in_bucket(users[0][0]["target_freq"], lo, hi)))
    sc = seed_change(mine, theirs)
    out.update(bands.seed_cells("", sc), seed_significant=bands.seed_verdict(sc), seed_p=None if sc.p != sc.p else sc.p)
    return out


def markdown(recs: list[dict]) -> str:
    """The comparison as a table: per band and tier the leader first, then each other configuration's
    change against it."""
    head = ["model", "data", "band", "% of full table", "strategy", "budget", "seeds", "validation NDCG@10",
            "test NDCG@10", "Δ against the tier's leader [95% CI over users] {over seeds and users}",
            "in-band targets Δ [users] {seeds and users}", "other users Δ [users] {seeds and users}"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in recs:
        lead = r.get("against") is None
        cells = [r["model"] + (f" ({r['variant']})" if r["variant"] else ""), r["data"], r["band"],
                 f"{100 * r['params_share']:.1f}%", r["strategy"], r["budget"], r["seeds"],
                 "" if r["val_ndcg10_mean"] is None else f"{r['val_ndcg10_mean']:.4f}",
                 f"{r['ndcg10_mean']:.4f}", "leader" if lead else _ci(r, "delta_ndcg10", ""),
                 "" if lead else _ci(r, "delta_ndcg10_inband", "inband_"), "" if lead else _ci(r, "delta_ndcg10_rest", "rest_")]
        out.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
    return "\n".join(out) + "\n"


def _ci(r: dict, key: str, prefix: str) -> str:
    """"Δ [user CI] {seed-aware CI}*†": the stars from the seed-aware CI (* excludes 0, † Holm's
    correction keeps it); "{1 seed}" where there is no seed-aware interval."""
    if r.get(key) is None:
        return "no per-user files" if key == "delta_ndcg10" else ""
    s = f"{r[key]:+.4f} [{r[f'{prefix}ci_low']:+.4f}, {r[f'{prefix}ci_high']:+.4f}]"
    slo, shi = r.get(f"{prefix}seed_ci_low"), r.get(f"{prefix}seed_ci_high")
    if slo is None:
        return s + " {" + bands.ONE_SEED + "}"
    star = "*" if slo > 0 or shi < 0 else ""
    if key == "delta_ndcg10" and r.get("seed_significant_holm"):
        star += "†"
    return s + f" {{{slo:+.4f}, {shi:+.4f}}}{star}"
