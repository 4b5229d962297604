"""Item tables whose band items share or compress parameters instead of using neighbours, one class
per strategy. Each is an `ItemTable` (same constructor shape, ``from_interactions``, ``weight``,
``forward``, ``in_band``, ``parameters_saved`` as `SmoothedItemEmbedding`), allocates only the
parameters it uses, and with an empty band is a plain table.

- ``shared``: one learned vector for the whole band.
- ``hashed``: ``buckets`` shared rows; band item ``i`` uses row ``hash(i) mod buckets`` (frequency-based
  hashing, Zhang et al., RecSys 2020).
- ``mixed_dim``: an own ``band_dim``-dim vector per band item and one learned ``band_dim x dim``
  projection (mixed dimension embeddings, Ginart et al. 2019).
- ``qr``: band item of band rank ``r`` uses ``quotient[r // buckets] + remainder[r % buckets]``
  (quotient-remainder compositional embeddings, Shi et al., KDD 2020, with the sum as operation).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import zlib
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embfreq.nn.item_table import ItemTable


def _check_int(name: str, value, low: int, high: Optional[int] = None) -> int:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= low
    if not ok or (high is not None and value > high):
        bound = f"{low} <= {name} <= {high}" if high is not None else f"{name} >= {low}"
        raise ValueError(f"{name} must be an int with {bound}, got {value!r}")
    return int(value)


MAX_FREE_BUCKETS = 4096  # allowed on any table, however small: the defaults (256, 64) fit tiny test data


def _check_buckets(buckets, num_embeddings: int) -> int:
    """A bucket count: an int from 1 to the table's size (or MAX_FREE_BUCKETS). More rows than a plain
    table is no saving, and a typo such as 10**9 would try to allocate hundreds of GB."""
    buckets = _check_int("buckets", buckets, 1)
    if buckets > max(num_embeddings, MAX_FREE_BUCKETS):
        raise ValueError(f"buckets must be at most the table's {num_embeddings} rows (or {MAX_FREE_BUCKETS}), "
                         f"got {buckets}: more buckets than items saves nothing")
    return buckets


def item_hash(ids: torch.Tensor) -> torch.Tensor:
    """Fixed 32-bit hash of item ids (murmur3's finaliser), the same on every run and machine;
    computed in numpy uint64, whose products wrap by definition (torch's int64 ones may not)."""
    h = ids.detach().cpu().numpy().astype(np.uint64) & np.uint64(0xFFFFFFFF)
    mask = np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & mask
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & mask
    h ^= h >> np.uint64(16)
    return torch.from_numpy(h.astype(np.int64)).to(ids.device)


@contextlib.contextmanager
def _private_rng(full: torch.Tensor):
    """A CPU generator seeded from the drawn full table, restored afterwards: extra parameters get
    their own values without moving the global stream, so everything drawn later (encoder, own rows
    after a re-initialisation) is the same as with the plain table."""
    seed = zlib.crc32(full.detach().float().cpu().numpy().tobytes())
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


class BandItemTable(ItemTable):
    """Own vectors (``own_weight``) for the items outside the band, padding included; a subclass gives
    the band items rows: ``_extra_rows()`` (k, dim) and, per band item, which of them (``band_row``).
    ``operator`` is accepted for a drop-in signature and not used: these tables need no graph."""

    def __init__(self, num_embeddings: int, embedding_dim: int, item_freq, operator=None,
                 lower_freq: Optional[float] = None, upper_freq: Optional[float] = None, *,
                 padding_idx: Optional[int] = None, device=None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        _, in_band = self._init_band(num_embeddings, embedding_dim, item_freq, lower_freq, upper_freq,
                                     padding_idx, device)
        self._factory = {"device": device, "dtype": dtype}
        own = torch.nonzero(~in_band).flatten()
        self.own_weight = nn.Parameter(torch.empty((own.numel(), embedding_dim), **self._factory))

    def _finish(self, band_row: torch.Tensor) -> None:
        """Called by subclasses once their parameters exist: the row of every item in
        ``cat([own_weight, _extra_rows()])``, saved so that a checkpoint keeps its assignment."""
        own = ~self.in_band
        row_of = torch.cumsum(own.to(torch.int64), 0) - 1
        row_of[self.band_idx] = self.own_weight.shape[0] + band_row.to(row_of.device, torch.int64)
        self.register_buffer("row_of", row_of)
        self.reset_parameters()

    # -- the strategy ------------------------------------------------------------------------
    def _extra_rows(self) -> torch.Tensor:
        raise NotImplementedError

    def _init_extra_(self, draw) -> None:
        """Initialise the band parameters; ``draw(k)`` gives k rows distributed as rows of the full table."""
        raise NotImplementedError

    def _init_band_parameters_(self, full: torch.Tensor, init_fn) -> None:
        """Band parameters are drawn by `_init_extra_` from a private generator (`_private_rng`), so the
        global random stream moves as for the plain table."""
        if self.num_in_band:
            n, d = self.num_embeddings, self.embedding_dim
            with _private_rng(full):
                self._init_extra_(lambda k: _draw_rows(init_fn, k, n, d, self.own_weight.dtype))

    @property
    def band_nnz(self) -> int:
        return 0  # no neighbour graph

    def _compute_table(self) -> torch.Tensor:
        """One gather from the own rows followed by the band rows."""
        if self.num_in_band == 0:
            return self.own_weight
        return F.embedding(self.row_of, torch.cat([self.own_weight, self._extra_rows()]))


def _draw_rows(init_fn, k: int, n: int, d: int, dtype) -> torch.Tensor:
    """k rows (CPU) from as many fresh ``n x d`` tables drawn by ``init_fn`` as needed: the full
    table's distribution, also for initialisers that depend on the shape."""
    tables = []
    for _ in range(max(math.ceil(k / n), 1)):
        t = torch.empty(n, d, dtype=dtype)
        init_fn(t)
        tables.append(t)
    return torch.cat(tables)[:k]


class SharedItemEmbedding(BandItemTable):
    """Every band item uses one learned vector."""

    strategy = "shared"

    def __init__(self, num_embeddings, embedding_dim, item_freq, operator=None, lower_freq=None,
                 upper_freq=None, *, padding_idx=None, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, item_freq, operator, lower_freq=lower_freq,
                         upper_freq=upper_freq, padding_idx=padding_idx, device=device, dtype=dtype)
        nb = self.num_in_band
        self.shared = nn.Parameter(torch.empty(1, embedding_dim, **self._factory)) if nb else None
        self._finish(torch.zeros(nb, dtype=torch.int64))

    def _extra_rows(self):
        return self.shared

    def _init_extra_(self, draw):
        self.shared.copy_(draw(1))  # one row of the full table's distribution


class HashedItemEmbedding(BandItemTable):
    """Band item ``i`` uses row ``item_hash(i) mod buckets`` of a shared table."""

    strategy = "hashed"
    options = ("buckets",)

    def __init__(self, num_embeddings, embedding_dim, item_freq, operator=None, lower_freq=None,
                 upper_freq=None, *, padding_idx=None, buckets: int = 256, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, item_freq, operator, lower_freq=lower_freq,
                         upper_freq=upper_freq, padding_idx=padding_idx, device=device, dtype=dtype)
        self.buckets = _check_buckets(buckets, self.num_embeddings)
        nb = self.num_in_band
        self.bucket_weight = nn.Parameter(torch.empty(self.buckets, embedding_dim, **self._factory)) if nb else None
        self._finish(item_hash(self.band_idx) % self.buckets)

    def _extra_rows(self):
        return self.bucket_weight

    def _init_extra_(self, draw):
        self.bucket_weight.copy_(draw(self.buckets))  # each bucket a row of the full table's distribution


class MixedDimItemEmbedding(BandItemTable):
    """Band items own a ``band_dim``-dim vector, mapped to ``embedding_dim`` by one learned projection."""

    strategy = "mixed_dim"
    options = ("band_dim",)

    def __init__(self, num_embeddings, embedding_dim, item_freq, operator=None, lower_freq=None,
                 upper_freq=None, *, padding_idx=None, band_dim: int = 8, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, item_freq, operator, lower_freq=lower_freq,
                         upper_freq=upper_freq, padding_idx=padding_idx, device=device, dtype=dtype)
        self.band_dim = _check_int("band_dim", band_dim, 1, embedding_dim - 1)
        nb = self.num_in_band
        self.band_weight = nn.Parameter(torch.empty(nb, band_dim, **self._factory)) if nb else None
        self.projection = nn.Parameter(torch.empty(band_dim, embedding_dim, **self._factory)) if nb else None
        self._finish(torch.arange(nb))

    def _extra_rows(self):
        return self.band_weight @ self.projection

    def _init_extra_(self, draw):
        # orthonormal projection rows and band vectors scaled by sqrt(d / d'): each projected vector has
        # the squared norm, and on average the per-coordinate variance, of a full-table row
        d, k = self.embedding_dim, self.band_dim
        self.band_weight.copy_(draw(self.num_in_band)[:, :k] * math.sqrt(d / k))
        self.projection.copy_(nn.init.orthogonal_(torch.empty(k, d, dtype=self.projection.dtype)))


class QRItemEmbedding(BandItemTable):
    """The band item of band rank ``r`` uses ``quotient[r // buckets] + remainder[r % buckets]``: a
    distinct vector per band item from ``buckets + ceil(num_in_band / buckets)`` rows."""

    strategy = "qr"
    options = ("buckets",)

    def __init__(self, num_embeddings, embedding_dim, item_freq, operator=None, lower_freq=None,
                 upper_freq=None, *, padding_idx=None, buckets: int = 64, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, item_freq, operator, lower_freq=lower_freq,
                         upper_freq=upper_freq, padding_idx=padding_idx, device=device, dtype=dtype)
        self.buckets = _check_buckets(buckets, self.num_embeddings)
        nb = self.num_in_band
        rank = torch.arange(nb, device=self.in_band.device)
        self.register_buffer("quotient_of", rank // self.buckets)
        self.register_buffer("remainder_of", rank % self.buckets)
        q = math.ceil(nb / self.buckets)
        self.quotient = nn.Parameter(torch.empty(q, embedding_dim, **self._factory)) if nb else None
        self.remainder = nn.Parameter(torch.empty(self.buckets, embedding_dim, **self._factory)) if nb else None
        self._finish(rank)

    def _extra_rows(self):
        return F.embedding(self.quotient_of, self.quotient) + F.embedding(self.remainder_of, self.remainder)

    def _init_extra_(self, draw):
        # rows of the full table's distribution over sqrt(2): the sum has the variance of a full-table row
        self.quotient.copy_(draw(self.quotient.shape[0]) / math.sqrt(2))
        self.remainder.copy_(draw(self.buckets) / math.sqrt(2))
