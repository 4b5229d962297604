"""Raw interactions -> remapped, filtered, time-ordered per-user sequences -> leave-one-out split."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from embfreq.errors import DataError

log = logging.getLogger(__name__)

PAD_ID = "<pad>"


@dataclass
class Sequences:
    """Time-ordered item sequences per user, with contiguous ids.

    Users are 0..num_users-1; items are 1..num_items, 0 is reserved for padding.
    `user_ids[u]` and `item_ids[i]` are the raw ids (`item_ids[0]` is the padding marker).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    ptr: np.ndarray  # (num_users + 1,) offsets into `items`
    items: np.ndarray  # (interactions,) int64

    @property
    def num_users(self) -> int:
        return len(self.ptr) - 1

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.ptr)


def _compact(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(codes, return_inverse=True)` for int codes in [0, size), in O(n + size) without a sort."""
    present = np.bincount(codes, minlength=size) > 0
    remap = np.cumsum(present) - 1
    return np.flatnonzero(present), remap[codes]


def _codes(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous codes for raw ids, compared as written: `007` and `7` are two ids. When every id is
    an integer in canonical decimal form (no sign, zero padding, spaces or `_`), they are numbered
    in numeric order by the fast integer path; else in string order."""
    try:
        as_int = raw.astype(np.int64)
    except (ValueError, TypeError, OverflowError):
        as_int = None
    if as_int is not None and raw.dtype.kind not in "iu" and not np.array_equal(as_int.astype(str), raw.astype(str)):
        as_int = None  # `+10`, `1_0`, ` 5`, `007`: not the canonical form, so not the same id as `10`, `5`, `7`
    if as_int is not None:
        lo, hi = (int(as_int.min()), int(as_int.max())) if len(as_int) else (0, -1)
        if hi - lo < 4 * len(as_int) + (1 << 20):  # dense enough: no sort needed
            uniq, inv = _compact(as_int - lo, hi - lo + 1)
            uniq += lo
        else:
            uniq, inv = np.unique(as_int, return_inverse=True)
        return uniq.astype(str), inv.astype(np.int64)
    uniq, inv = np.unique(raw.astype(str), return_inverse=True)
    return uniq, inv.astype(np.int64)


def k_core(users: np.ndarray, items: np.ndarray, min_user: int, min_item: int) -> np.ndarray:
    """Boolean mask of interactions kept by iterative k-core filtering (repeats count)."""
    keep = np.ones(len(users), dtype=bool)
    if min_user <= 1 and min_item <= 1:
        return keep
    nu = int(users.max(initial=-1)) + 1
    ni = int(items.max(initial=-1)) + 1
    while True:
        u, i = users[keep], items[keep]
        uc = np.bincount(u, minlength=nu)
        ic = np.bincount(i, minlength=ni)
        ok = (uc[u] >= min_user) & (ic[i] >= min_item)
        if ok.all():
            return keep
        idx = np.flatnonzero(keep)
        keep[idx[~ok]] = False


def build_sequences(
    raw,
    min_rating: float | None = None,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    drop_duplicates: bool = False,
) -> Sequences:
    """Filter and order raw interactions (a `RawInteractions`) into per-user sequences.

    Exact duplicates (same user, item and timestamp) are reported, and dropped with
    `drop_duplicates` (RecBole's `rm_dup_inter`): kept, a duplicated last interaction makes the
    validation target equal the test target."""
    users_raw, items_raw = raw.users, raw.items
    n = len(users_raw)
    keep = np.ones(n, dtype=bool)
    if min_rating is not None:
        if raw.ratings is None:
            raise DataError(f"{raw.source}: data.min_rating={min_rating} is set but the file has no rating column")
        keep &= raw.ratings >= min_rating
    u_ids, u = _codes(users_raw)
    i_ids, i = _codes(items_raw)
    # per user, by time; both sorts are stable so ties keep file order
    if raw.timestamps is None:
        order = np.argsort(u, kind="stable")
    else:
        order = np.lexsort((raw.timestamps, u))
    order = order[keep[order]]
    if raw.timestamps is not None:
        order = _handle_duplicates(order, u, i, raw.timestamps, drop_duplicates, raw.source)
    u, i = u[order], i[order]
    kept = k_core(u, i, min_user_interactions, min_item_interactions)
    u, i = u[kept], i[kept]
    if len(u) == 0:
        raise DataError(
            f"{raw.source}: no interactions left after filtering (min_rating={min_rating}, "
            f"min_user_interactions={min_user_interactions}, min_item_interactions={min_item_interactions})"
        )
    used_u, u = _compact(u, len(u_ids))
    used_i, i = _compact(i, len(i_ids))
    counts = np.bincount(u, minlength=len(used_u))
    ptr = np.zeros(len(used_u) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return Sequences(
        user_ids=u_ids[used_u],
        item_ids=np.concatenate([np.array([PAD_ID]), i_ids[used_i]]),
        ptr=ptr,
        items=(i + 1).astype(np.int64),
    )


def _handle_duplicates(order: np.ndarray, u: np.ndarray, i: np.ndarray, t: np.ndarray, drop: bool,
                       source: str) -> np.ndarray:
    """`order` (sorted by user, then time) without the repeats of an exact (user, item, time) row
    when `drop`; either way their number is logged as a warning."""
    if len(order) < 2:
        return order
    # equal (user, time) runs are adjacent in `order`; sort each run by item to find repeats
    o = order[np.lexsort((i[order], t[order], u[order]))]
    dup = np.zeros(len(o), dtype=bool)
    dup[1:] = (u[o][1:] == u[o][:-1]) & (t[o][1:] == t[o][:-1]) & (i[o][1:] == i[o][:-1])
    n = int(dup.sum())
    if not n:
        return order
    if not drop:
        log.warning("%s: %d exact duplicate interactions (same user, item and time); a repeated last "
                    "interaction makes validation equal test. data.drop_duplicates=true drops them", source, n)
        return order
    log.warning("%s: dropped %d exact duplicate interactions (same user, item and time)", source, n)
    gone = np.zeros(len(u), dtype=bool)
    gone[o[dup]] = True
    return order[~gone[order]]


def drop_short_users(seqs: Sequences, min_length: int = 3) -> tuple[Sequences, int]:
    """Remove users too short for leave-one-out; returns the new sequences and how many were dropped."""
    lengths = seqs.lengths
    short = lengths < min_length
    dropped = int(short.sum())
    if dropped == 0:
        return seqs, 0
    log.warning("dropped %d users with fewer than %d interactions (leave-one-out needs them)", dropped, min_length)
    keep_users = ~short
    mask = np.repeat(keep_users, lengths)
    items = seqs.items[mask]
    # items that only short users had disappear: renumber to stay contiguous
    used, inv = _compact(np.concatenate([[0], items]), seqs.num_items + 1)
    ptr = np.zeros(int(keep_users.sum()) + 1, dtype=np.int64)
    np.cumsum(lengths[keep_users], out=ptr[1:])
    if ptr[-1] == 0:
        raise DataError("no users left with at least 3 interactions; leave-one-out needs train, validation and test")
    return Sequences(seqs.user_ids[keep_users], seqs.item_ids[used], ptr, inv[1:].astype(np.int64)), dropped


@dataclass
class Split:
    """Leave-one-out: the last item is the test target, the one before the validation target."""

    train_ptr: np.ndarray
    train_items: np.ndarray
    valid: np.ndarray  # (num_users,) validation target per user
    test: np.ndarray  # (num_users,) test target per user

    @property
    def train_users(self) -> np.ndarray:
        """User index of every training interaction."""
        return np.repeat(np.arange(len(self.train_ptr) - 1), np.diff(self.train_ptr))


def leave_one_out(seqs: Sequences) -> Split:
    ends = seqs.ptr[1:]
    if (seqs.lengths < 3).any():
        raise DataError("leave-one-out needs at least 3 interactions per user")
    test = seqs.items[ends - 1]
    valid = seqs.items[ends - 2]
    lengths = seqs.lengths - 2
    mask = np.ones(len(seqs.items), dtype=bool)
    mask[ends - 1] = False
    mask[ends - 2] = False
    train_ptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=train_ptr[1:])
    return Split(train_ptr, seqs.items[mask], valid, test)
