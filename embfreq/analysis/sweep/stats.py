"""Paired comparisons of two configurations over the same test users.

The change of a metric is the mean over users of (band run - baseline run), averaged over the
seeds both have. Two 95% intervals are given for it:

- `paired_change`, the user bootstrap: the test users are resampled, the same resampled users score
  both runs (and every seed), so user difficulty cancels out. The seeds are held fixed, so it says
  how sure the change is for *these trained models*; training noise (another seed, another model)
  is left out.
- `seed_change`, the two-level (hierarchical) bootstrap: each resample first draws the seeds with
  replacement, then the users with replacement, and scores the drawn users on every drawn seed's
  paired difference (Saravanan, Berman & Sober 2020, "Application of the hierarchical bootstrap to
  multi-level data in neuroscience", Neurons, Behavior, Data analysis and Theory 3(5)). Seeds and
  users are crossed here (every seed scores the same users), not nested, so the users are drawn
  once per resample for all its seeds, as in Owen's (2007, Annals of Applied Statistics 1(2))
  pigeonhole bootstrap for crossed factors; drawing them anew within each seed would treat a
  user's consistent gain or loss as noise that averages out over the seeds and give an interval
  narrower than the user bootstrap's. Its variance holds both the seed-to-seed spread of the change
  and the user sampling error, so a change it calls significant is one that another set of seeds
  would be expected to show too.

  Why not a seed-level t interval (a t test on the per-seed mean changes)? Every seed scores the
  same test users, so the per-seed means share the user sampling error and their spread leaves it
  out: where the seeds agree closely, the t interval is narrower than the user bootstrap's. The
  two-level bootstrap keeps both sources, with the user bootstrap's resampling scheme. Its limit is
  the number of seeds: with 3 there are 10 distinct seed draws, and the bootstrap estimates the
  seed part of the variance with the factor (seeds - 1) / seeds (2/3), where a t interval pays for
  the same uncertainty with its 2-degree-of-freedom quantile (4.30). So the two-level interval is
  the less conservative of the two at 3 seeds, and a change near its edge (SASRec `beauty_1000`
  `[100, inf)` is one) should be read as fragile, not settled. With 1 seed there is no seed-aware
  interval at all: `seed_change` returns NaN bounds and p, and the tables say "1 seed".

The user draws of `seed_change` are the rows of `paired_change`'s stream (same `seed`), the seed
draws come from their own stream: with identical seeds the two intervals are equal, and any
difference between them is the seed resampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BOOT = 2000
LEVEL = 0.95
BOOT_SEED = 0
# training frequency buckets of the test target, for "which items pay for the band"
FREQ_BUCKETS = ((0, 0), (1, 5), (6, 20), (21, 100), (101, None))


@dataclass(frozen=True)
class Change:
    delta: float  # mean paired difference
    low: float  # confidence interval
    high: float
    users: int
    p: float = 1.0  # two-sided bootstrap p-value of "no change", from the same resamples as the interval

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (never with a NaN interval: one seed has no seed-aware interval)."""
        return bool(self.low > 0 or self.high < 0)


def bootstrap_means(values: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED, chunk: int = 250) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement, same size) of `values`. Resample b draws
    `rng.integers(0, n, n)` as the b-th row of one stream, whatever the chunking."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        raise ValueError("cannot bootstrap an empty sample")
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        out[start:start + m] = values[rng.integers(0, n, size=(m, n))].mean(1)
    return out


def hierarchical_means(diff: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED, chunk: int = 250) -> np.ndarray:
    """Means of `n_boot` two-level resamples of `diff` (seeds, users): resample b draws the seeds
    `rng_seeds.integers(0, S, S)` (row b of a stream of its own, [seed, 1]) and the users
    `rng.integers(0, U, U)` (row b of `bootstrap_means`'s stream), and averages the drawn seeds'
    values of the drawn users. Whatever the chunking, the same resamples."""
    diff = np.atleast_2d(np.asarray(diff, dtype=np.float64))
    n_seeds, n = diff.shape
    if n == 0 or n_seeds == 0:
        raise ValueError("cannot bootstrap an empty sample")
    seed_draws = np.random.default_rng([seed, 1]).integers(0, n_seeds, size=(n_boot, n_seeds))
    # weight of each seed in each resample: how often it was drawn, / seeds
    weights = np.zeros((n_boot, n_seeds))
    np.add.at(weights, (np.repeat(np.arange(n_boot), n_seeds), seed_draws.ravel()), 1.0 / n_seeds)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        users = rng.integers(0, n, size=(m, n))
        per_user = weights[start:start + m] @ diff  # (m, S) @ (S, n): each resample's seed mean of every user
        users += np.arange(0, m * n, n)[:, None]  # row b's draws as flat indices into per_user's row b
        out[start:start + m] = per_user.ravel()[users].mean(1)
    return out


def seed_change(band: np.ndarray, base: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL,
                seed: int = BOOT_SEED) -> Change:
    """The change of `paired_change` with the two-level (seeds, then users) bootstrap's interval and
    p-value; `band` and `base` are (seeds, users), paired by position. With fewer than 2 seeds
    there is no seed variance to estimate: the interval and p are NaN (never significant)."""
    band, base = np.atleast_2d(np.asarray(band, dtype=np.float64)), np.atleast_2d(np.asarray(base, dtype=np.float64))
    if band.shape != base.shape:
        raise ValueError(f"paired runs need the same seeds and users, got shapes {band.shape} and {base.shape}")
    diff = band - base
    delta = float(diff.mean(0).mean())  # as paired_change: over seeds per user, then over users
    if diff.shape[0] < 2:
        return Change(delta, float("nan"), float("nan"), int(diff.shape[1]), float("nan"))
    means = hierarchical_means(diff, n_boot, seed)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Change(delta, float(lo), float(hi), int(diff.shape[1]), bootstrap_p(means))


def paired_change(band: np.ndarray, base: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL,
                  seed: int = BOOT_SEED) -> Change:
    """Change of a per-user metric; `band` and `base` are (seeds, users) or (users,), paired by
    position. The users are resampled, each resample keeping all seeds of a user."""
    band, base = np.atleast_2d(np.asarray(band, dtype=np.float64)), np.atleast_2d(np.asarray(base, dtype=np.float64))
    if band.shape != base.shape:
        raise ValueError(f"paired runs need the same seeds and users, got shapes {band.shape} and {base.shape}")
    diff = (band - base).mean(0)  # per user, over seeds: resampling users keeps every seed paired
    means = bootstrap_means(diff, n_boot, seed)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Change(float(diff.mean()), float(lo), float(hi), int(diff.shape[0]), bootstrap_p(means))


def bootstrap_p(means: np.ndarray) -> float:
    """Two-sided p-value of a zero change from bootstrap means: twice the smaller share of resamples on
    either side of 0, counted as (k + 1) / (n + 1) so that it is never 0."""
    n = len(means)
    k = min(int((means <= 0).sum()), int((means >= 0).sum()))
    return min(1.0, 2 * (k + 1) / (n + 1))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the order given."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    out, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        out[i] = running
    return out


def bucket_label(lo: int, hi: int | None) -> str:
    if hi is None:
        return f">{lo - 1}" if lo else "all"
    return str(lo) if lo == hi else f"{lo}-{hi}"


def in_bucket(freq: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """Inclusive bounds, None = open, as bands are."""
    m = np.ones(len(freq), dtype=bool)
    if lo is not None:
        m &= freq >= lo
    if hi is not None:
        m &= freq <= hi
    return m
