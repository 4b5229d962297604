"""Paired comparisons of two configurations over the same test users.

The change of a metric is the mean over users of (band run - baseline run), averaged over the
seeds both have. Its 95% confidence interval comes from a paired bootstrap over test users: the
same resampled users score both runs (and every seed), so user difficulty cancels out.
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
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0


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
