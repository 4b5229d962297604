"""The seed-aware interval (stats.seed_change, a two-level bootstrap over seeds, then users) on tiny
hand-made data: against a naive loop, by enumeration, and in the cases that can be worked out by hand."""

import itertools

import numpy as np
import pytest

from embfreq.analysis.sweep import stats
from embfreq.analysis.sweep.stats import BOOT_SEED, N_BOOT


def naive_two_level(diff, n_boot=N_BOOT, seed=BOOT_SEED):
    """One resample at a time: draw the seeds, draw the users, average the drawn seeds' values of the
    drawn users (each user drawn once for all the resample's seeds)."""
    diff = np.asarray(diff, dtype=float)
    n_seeds, n = diff.shape
    seeds_rng, users_rng = np.random.default_rng([seed, 1]), np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        s = seeds_rng.integers(0, n_seeds, n_seeds)
        u = users_rng.integers(0, n, n)
        out.append(np.mean([[diff[i, j] for j in u] for i in s]))
    return np.array(out)


# 2 seeds x 3 users of (band - baseline) per-user NDCG@10
BAND = np.array([[0.5, 0.0, 1.0], [0.3, 0.2, 0.0]])
BASE = np.array([[0.1, 0.1, 0.2], [0.3, 0.0, 0.4]])


def test_resamples_equal_a_naive_loop_whatever_the_chunking():
    diff = BAND - BASE
    naive = naive_two_level(diff)
    for chunk in (250, 7, N_BOOT):
        assert np.allclose(stats.hierarchical_means(diff, chunk=chunk), naive, rtol=0, atol=1e-15)
    ch = stats.seed_change(BAND, BASE)
    lo, hi = np.quantile(naive, [0.025, 0.975])
    assert (ch.low, ch.high) == (pytest.approx(lo, abs=1e-15), pytest.approx(hi, abs=1e-15))
    assert ch.delta == pytest.approx(diff.mean(), abs=1e-15) and ch.users == 3
    k = min((naive <= 0).sum(), (naive >= 0).sum())
    assert ch.p == pytest.approx(min(1.0, 2 * (k + 1) / (N_BOOT + 1)))
    assert ch.significant == (lo > 0 or hi < 0)


def test_every_resample_is_one_of_the_enumerated_ones_and_their_mean_is_the_change():
    """2 seeds x 3 users: 2^2 seed draws x 3^3 user draws = 108 equally likely resamples."""
    diff = BAND - BASE
    exact = np.array([diff[np.ix_(s, u)].mean() for s in itertools.product(range(2), repeat=2)
                      for u in itertools.product(range(3), repeat=3)])
    assert len(exact) == 108 and exact.mean() == pytest.approx(diff.mean(), abs=1e-15)
    means = stats.hierarchical_means(diff, n_boot=20000)
    assert np.isin(np.round(means, 12), np.round(exact, 12)).all()
    # 20,000 draws from the 108: mean and spread within 5 standard errors of the enumerated ones
    assert abs(means.mean() - exact.mean()) < 5 * exact.std() / np.sqrt(20000)
    assert means.std() == pytest.approx(exact.std(), rel=0.03)


def test_identical_seeds_give_the_user_bootstrap_exactly():
    """With no seed-to-seed spread the seed draws change nothing, and the user draws are the user
    bootstrap's own: the two intervals are equal."""
    band, base = np.tile(BAND[0], (3, 1)), np.tile(BASE[0], (3, 1))
    user, seed = stats.paired_change(band, base), stats.seed_change(band, base)
    assert (seed.delta, seed.low, seed.high, seed.p) == pytest.approx((user.delta, user.low, user.high, user.p), abs=1e-15)


def test_seed_spread_that_the_user_bootstrap_cannot_see():
    """Every user gains 1 in seed 1 and loses 0.5 in seed 2: the user bootstrap sees a sure +0.25, the
    two-level one the three seed draws {1, 1}, {1, 2}, {2, 2} with means 1, 0.25 and -0.5."""
    band = np.array([[1.0, 1.0, 1.0], [-0.5, -0.5, -0.5]])
    base = np.zeros((2, 3))
    user, seed = stats.paired_change(band, base), stats.seed_change(band, base)
    assert (user.low, user.high, user.significant) == (0.25, 0.25, True)
    means = stats.hierarchical_means(band - base)
    assert set(np.round(means, 12)) == {1.0, 0.25, -0.5}
    assert (seed.delta, seed.low, seed.high, seed.significant) == (0.25, -0.5, 1.0, False)
    assert seed.p == stats.bootstrap_p(means) and seed.p > 0.3


def test_one_seed_has_no_seed_aware_interval():
    ch = stats.seed_change(BAND[:1], BASE[:1])
    assert ch.delta == pytest.approx((BAND[0] - BASE[0]).mean())
    assert np.isnan(ch.low) and np.isnan(ch.high) and np.isnan(ch.p) and ch.significant is False
    from embfreq.analysis.sweep import bands

    assert bands.seed_verdict(ch) == "1 seed"
    assert bands.seed_cells("delta_", ch) == {"delta_seed_ci_low": None, "delta_seed_ci_high": None}
    assert stats.seed_change(BAND[0], BASE[0]).users == 3  # (users,) is one seed


def test_shapes_must_pair():
    with pytest.raises(ValueError, match="same seeds and users"):
        stats.seed_change(BAND, BASE[:1])
    with pytest.raises(ValueError, match="empty"):
        stats.hierarchical_means(np.zeros((2, 0)))
