"""Batches for training (sequences or pairs, with sampled negatives) and for full-ranking evaluation.

Every batch is built vectorised in numpy from a key (epoch, batch index, user or interaction
indices), and its random numbers come from a generator seeded by (seed, epoch, batch index):
batches are reproducible whatever the worker count and survive a resume at an epoch boundary.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SeenItems:
    """Membership test for (user, item) pairs of the training part, used to reject negatives."""

    def __init__(self, train_ptr: np.ndarray, train_items: np.ndarray, num_items: int):
        users = np.repeat(np.arange(len(train_ptr) - 1, dtype=np.int64), np.diff(train_ptr))
        self.stride = np.int64(num_items + 1)
        # sort + drop repeats: numpy 2.4's np.unique (hash-based) took 0.2 s here on Beauty, this 7 ms
        keys = np.sort(users * self.stride + train_items)
        self.keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys

    def unseen_item(self, user: int, rng: np.random.Generator, num_items: int) -> int:
        """One item drawn uniformly from those the user has not seen (exact, by rank)."""
        base = np.int64(user) * self.stride
        lo, hi = np.searchsorted(self.keys, [base, base + self.stride])
        items = self.keys[lo:hi] - base  # the user's seen items, sorted
        free = num_items - len(items)
        if free <= 0:
            from embfreq.errors import DataError

            raise DataError(f"user {user} has interacted with every item in training: no negative item to sample")
        r = int(rng.integers(0, free))
        # the r-th unseen item: r + 1 plus the seen items that come before it
        return r + 1 + int(np.searchsorted(items - np.arange(1, len(items) + 1), r, side="right"))

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        q = users.astype(np.int64) * self.stride + items
        pos = np.searchsorted(self.keys, q)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == q if len(self.keys) else np.zeros(q.shape, dtype=bool)


def sample_negatives(rng: np.random.Generator, users: np.ndarray, seen: SeenItems, num_items: int,
                     max_rounds: int = 100) -> np.ndarray:
    """Uniform items in 1..num_items that the user has not interacted with in training.

    Rejection sampling; draws still seen after `max_rounds` (users who have seen almost every item)
    are drawn exactly from the user's unseen items instead, so a seen item is never returned.
    """
    neg = rng.integers(1, num_items + 1, size=users.shape)
    bad = seen.contains(users, neg)
    for _ in range(max_rounds):
        if not bad.any():
            return neg
        neg[bad] = rng.integers(1, num_items + 1, size=int(bad.sum()))
        bad[bad] = seen.contains(users[bad], neg[bad])
    for i in np.flatnonzero(bad):
        neg.flat[i] = seen.unseen_item(int(users.flat[i]), rng, num_items)
    return neg


def left_padded_windows(ptr: np.ndarray, values: np.ndarray, rows: np.ndarray, lengths: np.ndarray,
                        ends: np.ndarray) -> np.ndarray:
    """For each row r, the `lengths[r]` values ending just before `ends[r]`, left-padded with 0 to a common width."""
    width = int(lengths.max(initial=0))
    offs = np.arange(width)[None, :] - (width - lengths)[:, None]
    valid = offs >= 0
    idx = (ends - lengths)[:, None] + np.where(valid, offs, 0)
    out = np.where(valid, values[idx] if len(values) else 0, 0)
    return out.astype(np.int64)


def pack_rows(lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, int]:
    """First-fit decreasing: place sequences of `lengths` (each <= width) side by side in rows of
    `width`. Returns each sequence's row and start column, and the number of rows."""
    row = np.empty(len(lengths), dtype=np.int64)
    col = np.empty(len(lengths), dtype=np.int64)
    free: list[int] = []
    for r in np.argsort(-lengths, kind="stable").tolist():
        n = int(lengths[r])
        j = next((j for j, f in enumerate(free) if f >= n), len(free))
        if j == len(free):
            free.append(width)
        row[r], col[r] = j, width - free[j]
        free[j] -= n
    return row, col, len(free)


class BucketBatchSampler(Sampler):
    """Yields (epoch, batch index, indices) keys.

    Training (`shuffle`): batches of uniformly shuffled rows, the study's composition (each epoch a
    new permutation). Evaluation: rows sorted by length within pools of `pool_batches` batches when
    `bucketing`, so little padding is computed; exact, since each user is scored on its own. Under
    DDP each rank takes every world-th batch.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, shuffle: bool = True,
                 bucketing: bool = True, pool_batches: int = 50):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.rows = np.flatnonzero(lengths > 0)
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.bucketing = bucketing
        self.pool = pool_batches * batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        rows = rng.permutation(self.rows) if self.shuffle else self.rows
        if self.bucketing and not self.shuffle:
            pools = [rows[i:i + self.pool] for i in range(0, len(rows), self.pool)]
            rows = np.concatenate([p[np.argsort(self.lengths[p], kind="stable")] for p in pools]) if pools else rows
        size = self._batch_size(_dist_rank_world()[1])
        return [rows[i:i + size] for i in range(0, len(rows), size)]

    def _batch_size(self, world: int) -> int:
        # evaluation under DDP: smaller batches where needed so that every rank gets one (Lightning
        # refuses an empty loader); exact, since each user is scored on its own
        if self.shuffle or world <= 1:
            return self.batch_size
        return max(1, min(self.batch_size, -(-len(self.rows) // world)))

    def __iter__(self):
        rank, world = _dist_rank_world()
        batches = self.batches()
        n = len(batches)
        if self.shuffle:  # training: equal batch count per rank keeps DDP in step
            n = -(-n // world) * world
            batches = batches + batches[: n - len(batches)]
        for b in range(rank, n, world):
            yield self.epoch, b, batches[b]

    def __len__(self) -> int:
        rank, world = _dist_rank_world()
        nb = -(-len(self.rows) // self._batch_size(world))
        return -(-nb // world) if self.shuffle else len(range(rank, nb, world))


class SeqTrainDataset(Dataset):
    """Next-item training: the last `maxlen` steps of each user's training sequence, left-padded.

    inputs[t] -> target[t] = the item after inputs[t]; one negative per real position. With `pack`,
    each batch also says where every sequence goes when several are packed side by side into rows
    of `maxlen` (`pack_row`, `pack_col`, `pack_rows`): an encoder that keeps sequences apart (SASRec:
    block-diagonal causal attention, per-sequence positions) then computes almost no padding, and
    its loss equals that of the padded batch.
    """

    def __init__(self, train_ptr: np.ndarray, train_items: np.ndarray, num_items: int, maxlen: int, seed: int,
                 pack: bool = True):
        self.ptr, self.items = train_ptr, train_items
        self.num_items, self.maxlen, self.seed, self.pack = num_items, maxlen, seed, pack
        self.seen = SeenItems(train_ptr, train_items, num_items)
        self.lengths = np.minimum(np.maximum(np.diff(train_ptr) - 1, 0), maxlen)

    def __len__(self) -> int:
        return int((self.lengths > 0).sum())

    def __getitem__(self, key) -> dict:
        epoch, b, users = key
        lengths = self.lengths[users]
        ends = self.ptr[users + 1]
        inputs = left_padded_windows(self.ptr, self.items, users, lengths, ends - 1)
        targets = left_padded_windows(self.ptr, self.items, users, lengths, ends)
        rng = np.random.default_rng([self.seed, epoch, b, 1])
        real = targets > 0
        negs = np.zeros_like(targets)
        u = np.broadcast_to(users[:, None], targets.shape)[real]
        negs[real] = sample_negatives(rng, u, self.seen, self.num_items)
        out = {
            "users": torch.from_numpy(users.astype(np.int64)),
            "inputs": torch.from_numpy(inputs),
            "targets": torch.from_numpy(targets),
            "negatives": torch.from_numpy(negs),
        }
        if self.pack:
            row, col, n_rows = pack_rows(lengths, self.maxlen)
            out.update(pack_row=torch.from_numpy(row), pack_col=torch.from_numpy(col), pack_rows=n_rows)
        return out


PAIR_SAMPLING = ("user", "interaction")


class PairTrainDataset(Dataset):
    """(user, positive, negative) triples; an epoch has as many triples as training interactions.

    `sampling="user"` (FreeRec/RecBoard's BPR-MF) draws a user uniformly, then one of the user's
    training items, so every user weighs the same; `"interaction"` walks over all training
    interactions once (repeats included), so active users weigh more.
    """

    def __init__(self, train_ptr: np.ndarray, train_items: np.ndarray, num_items: int, seed: int,
                 sampling: str = "user"):
        if sampling not in PAIR_SAMPLING:
            raise ValueError(f"unknown pair sampling {sampling!r}; expected one of {PAIR_SAMPLING}")
        self.ptr = train_ptr
        self.users = np.repeat(np.arange(len(train_ptr) - 1, dtype=np.int64), np.diff(train_ptr))
        self.active = np.flatnonzero(np.diff(train_ptr) > 0)
        self.items = train_items
        self.num_items, self.seed, self.sampling = num_items, seed, sampling
        self.seen = SeenItems(train_ptr, train_items, num_items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        epoch, b, rows = key
        rng = np.random.default_rng([self.seed, epoch, b, 2])
        if self.sampling == "user":
            users = self.active[rng.integers(0, len(self.active), size=len(rows))]
            lengths = self.ptr[users + 1] - self.ptr[users]
            pos = self.items[self.ptr[users] + (rng.random(len(users)) * lengths).astype(np.int64)]
        else:
            users, pos = self.users[rows], self.items[rows]
        negs = sample_negatives(rng, users, self.seen, self.num_items)
        return {
            "users": torch.from_numpy(users.astype(np.int64)),
            "positives": torch.from_numpy(pos.astype(np.int64)),
            "negatives": torch.from_numpy(negs),
        }


class EvalDataset(Dataset):
    """Full-ranking evaluation: history window, target, and the seen items to remove.

    `hist_ptr`/`hist_items` hold each user's whole history (training part, plus the validation
    item for test). Indexed by an array of users, it returns one batch.
    """

    def __init__(self, hist_ptr: np.ndarray, hist_items: np.ndarray, targets: np.ndarray, maxlen: int):
        self.ptr, self.items, self.targets, self.maxlen = hist_ptr, hist_items, targets, maxlen
        self.lengths = np.minimum(np.diff(hist_ptr), maxlen)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        _, _, users = key
        lengths = self.lengths[users]
        inputs = left_padded_windows(self.ptr, self.items, users, lengths, self.ptr[users + 1])
        full = np.diff(self.ptr)[users]
        seen_rows = np.repeat(np.arange(len(users)), full)
        starts = np.repeat(self.ptr[users], full)
        seen_cols = self.items[starts + np.arange(len(seen_rows)) - np.repeat(np.cumsum(full) - full, full)]
        return {
            "users": torch.from_numpy(users.astype(np.int64)),
            "inputs": torch.from_numpy(inputs),
            "targets": torch.from_numpy(self.targets[users].astype(np.int64)),
            "seen_rows": torch.from_numpy(seen_rows.astype(np.int64)),
            "seen_cols": torch.from_numpy(seen_cols.astype(np.int64)),
        }


def history_with_valid(train_ptr: np.ndarray, train_items: np.ndarray, valid: np.ndarray):
    """Training histories with the validation item appended: the test-time history."""
    n = np.diff(train_ptr)
    ptr = np.zeros_like(train_ptr)
    np.cumsum(n + 1, out=ptr[1:])
    items = np.empty(ptr[-1], dtype=np.int64)
    mask = np.ones(ptr[-1], dtype=bool)
    mask[ptr[1:] - 1] = False
    items[mask] = train_items
    items[ptr[1:] - 1] = valid
    return ptr, items
