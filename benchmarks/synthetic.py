"""Seeded power-law interaction data for benchmarks: Zipf-like user activity and item popularity.

User ``r`` (by activity rank, 1-based) gets an expected ``min_len + (N - U*min_len) * w_r / sum(w)``
interactions with ``w_r = r^-user_exponent`` (expectations capped at `max_len`, if given); the counts
are a multinomial draw around that, so they sum exactly to N. With the defaults (user exponent 0.5,
item exponent 1.0) 10M interactions over 1M users have median 9 and max ~2,600 per user, and the most
popular of 200k items takes ~8% of all interactions.
Each interaction's item is drawn independently with probability ``∝ rank^-item_exponent``.
User and item ids are random permutations of the ranks (so id order says nothing about activity).
Lines are grouped by user (``--interleave``: a random global order); a user's lines are their time order.

Usage::

    python benchmarks/synthetic.py --interactions 1_000_000 --users 100_000 --items 50_000 -o syn1m.pairs

Library use: ``generate(...) -> (users, items)`` int64 arrays in file order, ``write_pairs(path, users, items)``,
``raw_interactions(users, items)`` (an ``embfreq.data.readers.RawInteractions``, no file involved).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -float(exponent)
    return w / w.sum()


def user_lengths(rng: np.random.Generator, interactions: int, users: int, exponent: float,
                 min_len: int, max_len: int | None) -> np.ndarray:
    """Interactions per user (by activity rank), summing exactly to `interactions`."""
    if users * min_len > interactions:
        raise ValueError(f"{users} users x min_len {min_len} exceeds {interactions} interactions")
    if max_len is not None and users * max_len < interactions:
        raise ValueError(f"{users} users x max_len {max_len} cannot hold {interactions} interactions")
    extra = interactions - users * min_len
    p = _zipf_weights(users, exponent)
    if max_len is not None:
        # water-filling: cap the heaviest users, spread their excess over the others in proportion
        cap = (max_len - min_len) / max(extra, 1)
        for _ in range(100):
            over = p > cap
            if not over.any():
                break
            free = 1.0 - cap * over.sum()
            p = np.where(over, cap, p * free / p[~over].sum())
        p = np.minimum(p, cap)
        p /= p.sum()
    counts = rng.multinomial(extra, p) if extra > 0 else np.zeros(users, dtype=np.int64)
    return (counts + min_len).astype(np.int64)


def generate(interactions: int = 1_000_000, users: int = 100_000, items: int = 50_000,
             user_exponent: float = 0.5, item_exponent: float = 1.0, min_len: int = 5,
             max_len: int | None = None, seed: int = 0, interleave: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, item ids) per interaction, int64, in file (time) order; ids start at 1.

    Lines are grouped by user (as in the SASRec repository's files) unless `interleave`, which puts
    them in a random global order (each user's own lines keep a valid time order either way).
    """
    rng = np.random.default_rng(seed)
    lengths = user_lengths(rng, interactions, users, user_exponent, min_len, max_len)
    user_id = rng.permutation(users).astype(np.int64) + 1  # rank -> id
    item_id = rng.permutation(items).astype(np.int64) + 1
    u = np.repeat(user_id, lengths)
    # iid popularity draws == multinomial counts per item in a random order (no per-draw search)
    it = np.repeat(item_id, rng.multinomial(interactions, _zipf_weights(items, item_exponent)))
    rng.shuffle(it)
    if interleave:
        order = rng.permutation(interactions)
        u, it = u[order], it[order]
    return u, it


def pairs_bytes(users: np.ndarray, items: np.ndarray) -> bytes:
    """``user item\\n`` lines with right-aligned (space-padded) columns, built column by column in numpy.

    The leading spaces are whitespace to the reader (``line.split()``), so the ids read back exactly.
    """
    cols = [np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)]
    if len(cols[0]) != len(cols[1]):
        raise ValueError("users and items differ in length")
    if any(c.min(initial=0) < 0 or c.max(initial=0) >= 2**32 for c in cols):
        raise ValueError("ids must be in [0, 2^32)")
    widths = [len(str(int(c.max(initial=0)))) for c in cols]
    tbl = np.empty((len(cols[0]), sum(widths) + 2), dtype=np.uint8)
    start = 0
    for c, w in zip(cols, widths):
        x = c.astype(np.uint32)
        for k in range(w - 1, -1, -1):  # rightmost digit first
            d = (x % 10).astype(np.uint8) + ord("0")
            if k < w - 1:
                d[x == 0] = ord(" ")  # nothing left of the number: padding
            tbl[:, start + k] = d
            x //= 10
        start += w
        tbl[:, start] = ord(" ")
        start += 1
    tbl[:, -1] = ord("\n")
    return tbl.tobytes()


def write_pairs(path: str | Path, users: np.ndarray, items: np.ndarray) -> Path:
    """A `pairs` file (gzip when the name ends in .gz); `embfreq.data.readers` reads `.pairs` as pairs."""
    path = Path(path)
    data = pairs_bytes(users, items)
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=1)
    path.write_bytes(data)
    return path


def raw_interactions(users: np.ndarray, items: np.ndarray, source: str = "synthetic"):
    """The same data as the reader would give for the pairs file (string ids, no ratings/timestamps)."""
    from embfreq.data.readers import RawInteractions

    return RawInteractions(users.astype(str).astype(object), items.astype(str).astype(object), None, None, source)


def describe(users: np.ndarray, items: np.ndarray) -> dict:
    """Shape statistics, including the co-occurrence work sum_u n_u^2 (distinct items per user)."""
    uu, inv = np.unique(users, return_inverse=True)
    key = inv.astype(np.int64) * (int(items.max()) + 1) + items
    distinct_pairs = np.unique(key)
    per_user = np.bincount(distinct_pairs // (int(items.max()) + 1))
    lengths = np.bincount(inv)
    pop = np.bincount(items)
    return {
        "interactions": len(users),
        "users": len(uu),
        "items": int((pop > 0).sum()),
        "max_user_len": int(lengths.max()),
        "median_user_len": float(np.median(lengths)),
        "top_item_share": float(pop.max() / len(items)),
        "distinct_pairs": int(len(distinct_pairs)),
        "cooc_products": int((per_user.astype(np.int64) ** 2).sum()),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interactions", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    ap.add_argument("--users", type=lambda s: int(s.replace("_", "")), default=100_000)
    ap.add_argument("--items", type=lambda s: int(s.replace("_", "")), default=50_000)
    ap.add_argument("--user-exponent", type=float, default=0.5, help="Zipf exponent of user activity by rank")
    ap.add_argument("--item-exponent", type=float, default=1.0, help="Zipf exponent of item popularity by rank")
    ap.add_argument("--min-len", type=int, default=5)
    ap.add_argument("--max-len", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--interleave", action="store_true", help="random global line order instead of by user")
    ap.add_argument("-o", "--output", default=None, help="pairs file to write (.pairs or .pairs.gz)")
    ap.add_argument("--describe", action="store_true", help="print shape statistics")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    u, i = generate(a.interactions, a.users, a.items, a.user_exponent, a.item_exponent, a.min_len, a.max_len, a.seed,
                    a.interleave)
    t1 = time.perf_counter()
    print(f"generated {len(u):,} interactions in {t1 - t0:.2f} s", file=sys.stderr)
    if a.output:
        write_pairs(a.output, u, i)
        print(f"wrote {a.output} in {time.perf_counter() - t1:.2f} s", file=sys.stderr)
    if a.describe:
        for k, v in describe(u, i).items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
