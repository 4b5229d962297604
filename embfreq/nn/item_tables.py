"""Item tables whose items in a training-frequency band get no own full-size vector, one class per strategy.

Every table has the surface the models and the analysis use (that of `SmoothedItemEmbedding`, the
``neighbours`` strategy and the default): ``forward(ids)``, ``effective_weight()`` (the table every
item uses), ``in_band``, ``num_in_band``, ``own_rows`` and ``weight`` (the own rows: items outside the
band, in item order), ``parameters_saved``, ``init_from_full_table_`` and ``zero_padding_row``. Each
allocates only the parameters it uses; an empty band leaves a plain table.

- ``shared``: one learned vector for the whole band.
- ``hashed``: ``buckets`` shared rows; band item ``i`` uses row ``hash(i) mod buckets`` (frequency-based
  hashing, Zhang et al., RecSys 2020).
- ``mixed_dim``: an own ``band_dim``-dim vector per band item and one learned ``band_dim x dim``
  projection (mixed dimension embeddings, Ginart et al. 2019).
- ``qr``: band item of band rank ``r`` uses ``quotient[r // buckets] + remainder[r % buckets]``
  (quotient-remainder compositional embeddings, Shi et al., KDD 2020, with the sum as operation).

`build_item_table` builds any of them from a plain-dict spec (``{"name": "hashed", "buckets": 512}``).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import zlib
from collections.abc import Mapping
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embfreq.nn.smoothed_embedding import NEIGHBOURS, BandRows, SmoothedItemEmbedding, band_mask, check_band_arguments


def _check_int(name: str, value, low: int, high: Optional[int] = None) -> int:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= low
    if not ok or (high is not None and value > high):
        bound = f"{low} <= {name} <= {high}" if high is not None else f"{name} >= {low}"
        raise ValueError(f"{name} must be an int with {bound}, got {value!r}")
    return int(value)


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


class BandItemTable(BandRows, nn.Module):
    """Own rows (``weight``) for the items outside the band, padding included; a subclass gives the
    band items rows: ``_extra_rows()`` (k, dim) and, per band item, which of them (``band_row``)."""

    strategy = ""  # the spec's name

    def __init__(self, num_embeddings: int, embedding_dim: int, item_freq, lower_freq: Optional[float] = None,
                 upper_freq: Optional[float] = None, padding_idx: Optional[int] = None, device=None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        n = _check_int("num_embeddings", num_embeddings, 1)
        _check_int("embedding_dim", embedding_dim, 1)
        freq, lower_freq, upper_freq, padding_idx = check_band_arguments(n, item_freq, lower_freq, upper_freq,
                                                                         padding_idx)

        self.num_embeddings, self.embedding_dim = n, embedding_dim
        self.lower_freq, self.upper_freq, self.padding_idx = lower_freq, upper_freq, padding_idx
        self.neighbours = self.strategy  # what figure titles print after "neighbours=" (analysis.run_analysis.run_title)
        self._factory = {"device": device, "dtype": dtype}
        wdevice = torch.empty(0, device=device).device

        freq = freq.to(wdevice)
        in_band = band_mask(freq, lower_freq, upper_freq, padding_idx)
        # State like SmoothedItemEmbedding's: `RankingModel.load_from_checkpoint` rebuilds from item_freq
        self.register_buffer("item_freq", freq.clone())
        self.register_buffer("in_band", in_band)
        self.register_buffer("band_idx", torch.nonzero(in_band).flatten())
        own = torch.nonzero(~in_band).flatten()
        self.weight = nn.Parameter(torch.empty((own.numel(), embedding_dim), **self._factory))
        self._weight_padding_row = None if padding_idx is None else int((~in_band)[:padding_idx].sum())

    def _finish(self, band_row: torch.Tensor) -> None:
        """Called by subclasses once their parameters exist: the row of every item in
        ``cat([weight, _extra_rows()])``, saved so that a checkpoint keeps its assignment."""
        own = ~self.in_band
        row_of = torch.cumsum(own.to(torch.int64), 0) - 1
        row_of[self.band_idx] = self.weight.shape[0] + band_row.to(row_of.device, torch.int64)
        self.register_buffer("row_of", row_of)
        self.reset_parameters()

    # -- the strategy ------------------------------------------------------------------------
    def _extra_rows(self) -> torch.Tensor:
        raise NotImplementedError

    def _init_extra_(self, draw) -> None:
        """Initialise the band parameters; ``draw(k)`` gives k rows distributed as rows of the full table."""
        raise NotImplementedError

    # -- shared surface ------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Normal(0, 1) like ``nn.Embedding``, padding row zeroed."""
        self.init_from_full_table_(nn.init.normal_)

    @property
    def own_rows(self) -> torch.Tensor:
        """The items whose rows ``weight`` holds, in weight-row order: those outside the band."""
        return torch.nonzero(~self.in_band).flatten()

    def init_from_full_table_(self, init_fn) -> None:
        """``weight`` as the own rows of a full ``num_embeddings x embedding_dim`` table drawn by
        ``init_fn``, exactly as `SmoothedItemEmbedding` does (the same seed gives every own row the same
        start in every strategy); band parameters are then drawn by `_init_extra_` from a private
        generator (`_private_rng`), so the global random stream moves as for the plain table."""
        n, d = self.num_embeddings, self.embedding_dim
        full = torch.empty(n, d, dtype=self.weight.dtype, device=self.weight.device)
        init_fn(full)
        with torch.no_grad():
            self.weight.copy_(full[self.own_rows])
            if self.num_in_band:
                with _private_rng(full):
                    self._init_extra_(lambda k: _draw_rows(init_fn, k, n, d, self.weight.dtype))
        self.zero_padding_row()

    @property
    def band_nnz(self) -> int:
        return 0  # no neighbour graph

    @property
    def parameters_saved(self) -> int:
        return self.num_embeddings * self.embedding_dim - sum(p.numel() for p in self.parameters())

    def effective_weight(self) -> torch.Tensor:
        """The full ``num_embeddings x embedding_dim`` table (differentiable): one gather from the
        own rows followed by the band rows."""
        if self.num_in_band == 0:
            return self.weight
        return F.embedding(self.row_of, torch.cat([self.weight, self._extra_rows()]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.effective_weight(), self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s + f", band=[{self.lower_freq}, {self.upper_freq}], num_in_band={self.num_in_band}"


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

    def __init__(self, num_embeddings, embedding_dim, item_freq, lower_freq=None, upper_freq=None,
                 padding_idx=None, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, item_freq, lower_freq, upper_freq, padding_idx, device, dtype)
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

    def __init__(self, num_embeddings, embedding_dim, item_freq, lower_freq=None, upper_freq=None,
                 padding_idx=None, buckets: int = 256, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, item_freq, lower_freq, upper_freq, padding_idx, device, dtype)
        self.buckets = _check_int("buckets", buckets, 1)
        nb = self.num_in_band
        self.bucket_weight = nn.Parameter(torch.empty(self.buckets, embedding_dim, **self._factory)) if nb else None
        self._finish(item_hash(self.band_idx) % self.buckets)

    def _extra_rows(self):
        return self.bucket_weight

    def _init_extra_(self, draw):
        self.bucket_weight.copy_(draw(self.buckets))  # each bucket a row of the full table's distribution

    def extra_repr(self):
        return super().extra_repr() + f", buckets={self.buckets}"


class MixedDimItemEmbedding(BandItemTable):
    """Band items own a ``band_dim``-dim vector, mapped to ``embedding_dim`` by one learned projection."""

    strategy = "mixed_dim"

    def __init__(self, num_embeddings, embedding_dim, item_freq, lower_freq=None, upper_freq=None,
                 padding_idx=None, band_dim: int = 8, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, item_freq, lower_freq, upper_freq, padding_idx, device, dtype)
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

    def extra_repr(self):
        return super().extra_repr() + f", band_dim={self.band_dim}"


class QRItemEmbedding(BandItemTable):
    """The band item of band rank ``r`` uses ``quotient[r // buckets] + remainder[r % buckets]``: a
    distinct vector per band item from ``buckets + ceil(num_in_band / buckets)`` rows."""

    strategy = "qr"

    def __init__(self, num_embeddings, embedding_dim, item_freq, lower_freq=None, upper_freq=None,
                 padding_idx=None, buckets: int = 64, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, item_freq, lower_freq, upper_freq, padding_idx, device, dtype)
        self.buckets = _check_int("buckets", buckets, 1)
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

    def extra_repr(self):
        return super().extra_repr() + f", buckets={self.buckets}"


TABLES = {"shared": SharedItemEmbedding, "hashed": HashedItemEmbedding, "mixed_dim": MixedDimItemEmbedding,
          "qr": QRItemEmbedding}
OPTIONS = {"neighbours": (), "shared": (), "hashed": ("buckets",), "mixed_dim": ("band_dim",), "qr": ("buckets",)}
STRATEGIES = tuple(OPTIONS)


def parse_spec(spec) -> tuple[str, dict]:
    """(name, options) of an item-table spec: None (neighbours) or a mapping with ``name`` and that
    strategy's options. Only the keys are checked here; the values by the table's constructor."""
    if spec is None:
        return "neighbours", {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"item_table must be null or a mapping with a 'name', got {spec!r}")
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in OPTIONS:
        raise ValueError(f"item_table.name must be one of {STRATEGIES}, got {name!r}")
    unknown = sorted(set(spec) - set(OPTIONS[name]), key=str)
    if unknown:
        raise ValueError(f"item_table: unknown key {unknown[0]!r} for name={name!r}; "
                         f"expected {list(OPTIONS[name]) or 'no other key'}")
    return name, spec


def build_item_table(spec, num_embeddings: int, embedding_dim: int, item_freq, operator, *,
                     lower_freq: Optional[float], upper_freq: Optional[float], padding_idx: Optional[int] = 0,
                     neighbours: str = "all", device=None, dtype=None) -> nn.Module:
    """The item table named by ``spec``; ``operator`` and ``neighbours`` apply to ``neighbours`` only."""
    name, options = parse_spec(spec)
    if name == "neighbours":
        return SmoothedItemEmbedding(num_embeddings, embedding_dim, item_freq, operator, lower_freq=lower_freq,
                                     upper_freq=upper_freq, padding_idx=padding_idx, neighbours=neighbours,
                                     device=device, dtype=dtype)
    if neighbours != "all":  # the default "all" is ignored; anything else would be silently dropped
        raise ValueError(f"neighbours={neighbours!r} applies to item_table.name='neighbours' only, not {name!r}"
                         if neighbours in NEIGHBOURS else f"unknown neighbours {neighbours!r}; expected one of {NEIGHBOURS}")
    try:
        return TABLES[name](num_embeddings, embedding_dim, item_freq, lower_freq, upper_freq, padding_idx,
                            **options, device=device, dtype=dtype)
    except ValueError as e:
        if any(str(e).startswith(k) for k in options):  # name the config key
            raise ValueError(f"item_table.{e}") from None
        raise
