"""`ItemTable`: what every item table shares, whatever its band items use instead of an own vector.

A table is an ``nn.Embedding`` look-alike with a frequency band. Items whose training frequency lies
in the band get no own learnable vector; a subclass says what they use instead. Every table has:

- ``weight``: the **effective** ``num_embeddings x embedding_dim`` table, the one ``forward`` reads
  (``emb(ids)`` equals ``emb.weight[ids]``), differentiable. Score with it, tie it to an output layer.
- ``own_weight``: the learnable own vectors (items outside the band; every item for ``neighbours``
  with ``neighbours="all"``), in item order.
- ``in_band``, ``num_in_band``, ``band`` (a `embfreq.band.Band`), ``parameters_saved``.
- one constructor shape, ``(num_embeddings, embedding_dim, item_freq, operator=None, lower_freq=None,
  upper_freq=None, *, padding_idx=None, <options>)``, and ``from_interactions`` to build it from raw interactions.
"""

from __future__ import annotations

import numbers
import weakref
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embfreq.band import Band


def check_positive_int(name: str, value, high: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1 or (high and value > high):
        bound = f"1 <= {name} <= {high}" if high else f"{name} >= 1"
        raise ValueError(f"{name} must be an int with {bound}, got {value!r}")
    return int(value)


def _ids(name: str, values, bound: Optional[int] = None) -> np.ndarray:
    """A 1-D int64 array of ids >= 0 (and < bound) from a numpy array, a tensor or a list, or ValueError."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one id per interaction), got shape {a.shape}")
    if a.size and a.dtype.kind not in "iu":
        if a.dtype.kind != "f" or not np.all(np.isfinite(a)) or not np.array_equal(a, np.floor(a)):
            raise ValueError(f"{name} must hold integer ids, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and a.min() < 0:
        raise ValueError(f"{name} must be ids >= 0, got {int(a.min())}")
    if bound is not None and a.size and a.max() >= bound:
        raise ValueError(f"{name} holds id {int(a.max())}, outside a table of num_embeddings={bound}")
    return a


def interaction_statistics(users, items, num_embeddings: int, padding_idx: Optional[int] = None):
    """(item_freq, operator) of training interactions, exactly as `embfreq.data.RecDataModule` builds
    them: float32 counts per item (repeats count) and the left-normalised item-item co-occurrence
    ``D^-1 R^T R`` (diagonal kept), a float32 ``scipy.sparse`` CSR matrix."""
    from embfreq.data.graph import build_operator, item_frequency

    n = check_positive_int("num_embeddings", num_embeddings)
    items = _ids("items", items, n)
    users = _ids("users", users)
    if len(users) != len(items):
        raise ValueError(f"users and items must have one entry per interaction, got {len(users)} and {len(items)}")
    if padding_idx is not None and np.any(items == padding_idx % n):
        raise ValueError(f"items holds padding_idx={padding_idx}: the padding row is not an item")
    freq = torch.from_numpy(item_frequency(items, n).astype(np.float32))
    num_users = int(users.max()) + 1 if len(users) else 0
    operator = build_operator(users, items, num_users, n, "left").astype(np.float32)  # as the DataModule caches it
    return freq, operator


def _forget(module_ref, token) -> None:
    """Drop a table's kept effective table if it is still the one `token` names."""
    m = module_ref()
    if m is not None and m._cache is not None and m._cache[3] is token:
        m._cache = None


class ItemTable(nn.Module):
    """Base of every item table: band, own rows, the effective table and its cache.

    A subclass sets ``strategy`` (its config name) and ``options`` (its extra constructor arguments),
    calls ``_init_band`` then allocates ``own_weight`` and its band parameters, and implements
    ``_compute_table`` (the full table from the parameters) and ``init_from_full_table_``.
    """

    strategy = ""
    options: tuple = ()
    uses_operator = False  # True: `from_interactions` also builds the co-occurrence operator

    def _init_band(self, num_embeddings, embedding_dim, item_freq, lower_freq, upper_freq, padding_idx, device):
        n = check_positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral) or not -n <= padding_idx < n:
                raise ValueError(f"padding_idx must be an int in [{-n}, {n - 1}] or None, got {padding_idx!r}")
            padding_idx = int(padding_idx) % n
        try:
            freq = torch.as_tensor(item_freq)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"item_freq must be a 1-D tensor of length {n}: {exc}") from None
        if freq.dim() != 1 or freq.shape[0] != n:
            raise ValueError(f"item_freq must be a 1-D tensor of length num_embeddings={n}, got shape {tuple(freq.shape)}")
        self.num_embeddings, self.padding_idx = n, padding_idx
        self.band = Band(lower_freq, upper_freq)
        freq = freq.to(torch.empty(0, device=device).device)
        in_band = self.band.mask(freq, padding_idx)
        self.register_buffer("item_freq", freq.clone())
        self.register_buffer("in_band", in_band)
        self.register_buffer("band_idx", torch.nonzero(in_band).flatten())
        self._cache: Optional[tuple] = None
        return freq, in_band

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def from_interactions(cls, users, items, num_embeddings: int, embedding_dim: int, *, lower_freq=None,
                          upper_freq=None, padding_idx: Optional[int] = None, **options):
        """The table for training interactions given as parallel arrays of user and item ids (numpy
        arrays, tensors or lists): item frequencies and, for ``neighbours``, the co-occurrence operator
        are built exactly as the DataModule builds them (`interaction_statistics`)."""
        freq, operator = interaction_statistics(users, items, num_embeddings, padding_idx)
        return cls(num_embeddings, embedding_dim, freq, operator if cls.uses_operator else None,
                   lower_freq=lower_freq, upper_freq=upper_freq, padding_idx=padding_idx, **options)

    def spec(self) -> dict:
        """What rebuilds this table's shape from a checkpoint (with its ``item_freq`` buffer)."""
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}",
                "num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "lower_freq": self.band.lower, "upper_freq": self.band.upper, "padding_idx": self.padding_idx,
                **{k: getattr(self, k) for k in self.options}}

    # -- the band -----------------------------------------------------------------------------
    @property
    def lower_freq(self):
        return self.band.lower

    @property
    def upper_freq(self):
        return self.band.upper

    @property
    def num_in_band(self) -> int:
        return int(self.band_idx.numel())

    @property
    def own_rows(self) -> torch.Tensor:
        """The items whose own vectors ``own_weight`` holds, in row order."""
        if self.own_weight.shape[0] == self.num_embeddings:
            return torch.arange(self.num_embeddings, device=self.in_band.device)
        return torch.nonzero(~self.in_band).flatten()

    @property
    def parameters_saved(self) -> int:
        """Parameters of a plain ``num_embeddings x embedding_dim`` table minus those allocated here."""
        return self.num_embeddings * self.embedding_dim - sum(p.numel() for p in self.parameters())

    # -- initialisation -----------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Normal(0, 1) like ``nn.Embedding``, padding row zeroed."""
        self.init_from_full_table_(nn.init.normal_)

    def init_from_full_table_(self, init_fn) -> None:
        """Initialise ``own_weight`` as its rows of a full table drawn by ``init_fn`` (e.g.
        ``nn.init.xavier_normal_``): an item's own vector starts the same in every strategy, at the full
        table's scale. Subclasses with band parameters draw them too."""
        full = torch.empty(self.num_embeddings, self.embedding_dim, dtype=self.own_weight.dtype,
                           device=self.own_weight.device)
        init_fn(full)
        with torch.no_grad():
            self.own_weight.copy_(full[self.own_rows])
            self._init_band_parameters_(full, init_fn)
        self.zero_padding_row()

    def _init_band_parameters_(self, full: torch.Tensor, init_fn) -> None:
        pass

    def zero_padding_row(self) -> None:
        """Zero the padding row again, e.g. after a custom initialisation of ``own_weight``."""
        if self.padding_idx is not None and not bool(self.in_band[self.padding_idx]):
            row = int((~self.in_band[: self.padding_idx]).sum()) if self.own_weight.shape[0] < self.num_embeddings \
                else self.padding_idx
            with torch.no_grad():
                self.own_weight[row].fill_(0)
        self._cache = None

    # -- the effective table ------------------------------------------------------------------
    def _compute_table(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def weight(self) -> torch.Tensor:
        """The effective ``num_embeddings x embedding_dim`` table that ``forward`` uses (differentiable).

        Computed once per training step and shared by every use in it (``forward``, ``.weight``): the
        result is kept until the backward pass goes through it or a parameter changes. Without grad,
        it is kept until a parameter or buffer changes. Do not modify it in place.
        """
        if self.num_in_band == 0 and self.own_weight.shape[0] == self.num_embeddings:
            return self.own_weight  # no band: the own table itself, as nn.Embedding's weight
        key = self._cache_key()
        cached = self._cache
        if cached is not None and cached[1]._version != cached[2]:
            self._cache = None
            raise RuntimeError(f"{type(self).__name__}.weight was modified in place: it is computed from the "
                               "own vectors, so the change was lost; write to own_weight instead")
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        table = self._compute_table()
        if table.is_inference():  # no version counter: nothing to check a kept table against
            key = None
        token = object()
        self._cache = None if key is None else (key, table, table._version, token)
        if key is not None and table.requires_grad:
            # backward frees the graph behind `table`: the next use must build a new one. The hook
            # holds neither the table nor the module (a cycle through the graph is never freed).
            module = weakref.ref(self)
            table.register_hook(lambda grad: _forget(module, token))
        return table

    def _cache_key(self):
        try:
            tensors = [*self.parameters(), *self.buffers()]
            return (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), torch.is_autocast_enabled(),
                    *((id(t), t._version, t.data_ptr(), t.device, t.dtype) for t in tensors))
        except RuntimeError:  # e.g. inference tensors have no version counter
            return None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight, self.padding_idx)

    def _apply(self, fn, *args, **kwargs):
        self._cache = None  # .to(), .half(): the kept table belongs to the old tensors
        return super()._apply(fn, *args, **kwargs)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        s += f", band={self.band.label}, num_in_band={self.num_in_band}"
        return s + "".join(f", {k}={getattr(self, k)!r}" for k in self.options)
