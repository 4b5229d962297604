"""Item embedding whose rows for a frequency band are replaced by an average of neighbour rows.

The effective table is ``W' = W * (1 - t) + (P @ W) * t`` with ``t[i] = 1`` for items whose training
frequency lies in ``[lower_freq, upper_freq]``. It is computed as one sparse product ``W' = Q @ W``: row
``i`` of ``Q`` is a unit vector for an item with its own vector and row ``i`` of ``P`` for a band item, so
only the band rows of ``P @ W`` are ever computed, and forward and backward are one pass each.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

NEIGHBOURS = ("all", "outside_band")


class _CsrMM(torch.autograd.Function):
    """``Y = Q @ W`` from CSR parts; backward uses the precomputed CSR of ``Q^T``.

    Each CSR product is a weighted-sum ``embedding_bag`` (one bag per row), which is 2-3x faster
    than ``torch.sparse.mm`` on CPU and runs on CUDA too. The operator is a constant, so only
    ``W`` gets a gradient.
    """

    @staticmethod
    def forward(ctx, weight, crow, col, val, crow_t, col_t, val_t):
        ctx.save_for_backward(crow_t, col_t, val_t)
        return _csr_matmul(crow, col, val, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        if not ctx.needs_input_grad[0]:
            return (None,) * 7
        crow_t, col_t, val_t = ctx.saved_tensors
        grad_w = _csr_matmul(crow_t, col_t, val_t.to(grad_y.dtype), grad_y.contiguous())
        return (grad_w,) + (None,) * 6


def _csr_matmul(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """(CSR matrix) @ dense, one weighted bag per CSR row; empty rows give zeros."""
    if col.numel() == 0:
        return dense.new_zeros(crow.numel() - 1, dense.shape[1])
    return F.embedding_bag(col, dense, crow, mode="sum", per_sample_weights=val, include_last_offset=True)


def _csr_parts(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, num_rows: int, num_cols: int):
    """CSR (crow, col, values) of COO triplets; entries sorted by row, then column."""
    order = torch.argsort(rows * num_cols + cols, stable=True)
    counts = torch.bincount(rows, minlength=num_rows)
    crow = torch.zeros(num_rows + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.cumsum(counts, 0)
    return crow, cols[order].contiguous(), vals[order].contiguous()


def _coo_triplets(operator: torch.Tensor):
    """Row, column and value of every stored entry of a sparse COO or CSR matrix."""
    if operator.layout == torch.sparse_coo:
        op = operator.coalesce()
        idx = op.indices()
        return idx[0].to(torch.int64), idx[1].to(torch.int64), op.values()
    crow = operator.crow_indices().to(torch.int64)
    rows = torch.repeat_interleave(torch.arange(operator.shape[0], device=crow.device), torch.diff(crow))
    return rows, operator.col_indices().to(torch.int64), operator.values()


def band_mask(freq: torch.Tensor, lower_freq: Optional[float], upper_freq: Optional[float],
              padding_idx: Optional[int]) -> torch.Tensor:
    """(n,) bool: lower_freq <= freq <= upper_freq (None = open side; both None = no band); the
    padding row is never in the band."""
    in_band = torch.zeros(freq.shape[0], dtype=torch.bool, device=freq.device)
    if lower_freq is not None or upper_freq is not None:
        in_band = torch.ones_like(in_band)
        if lower_freq is not None:
            in_band &= freq >= lower_freq
        if upper_freq is not None:
            in_band &= freq <= upper_freq
    if padding_idx is not None:
        in_band[padding_idx] = False
    return in_band


def check_band_arguments(n: int, item_freq, lower_freq, upper_freq, padding_idx):
    """(freq tensor, lower, upper, padding_idx >= 0) of an item table with `n` rows, or ValueError
    naming the bad argument; every item-table strategy checks its band the same way."""
    lower_freq = _check_bound("lower_freq", lower_freq)
    upper_freq = _check_bound("upper_freq", upper_freq)
    if lower_freq is not None and upper_freq is not None and lower_freq > upper_freq:
        raise ValueError(f"lower_freq ({lower_freq}) must be <= upper_freq ({upper_freq})")
    if padding_idx is not None:
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral) or not -n <= padding_idx < n:
            raise ValueError(f"padding_idx must be an int in [{-n}, {n - 1}] or None, got {padding_idx!r}")
        padding_idx = int(padding_idx) + (n if padding_idx < 0 else 0)
    try:
        freq = torch.as_tensor(item_freq)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"item_freq must be a 1-D tensor of length {n}: {exc}") from None
    if freq.dim() != 1 or freq.shape[0] != n:
        raise ValueError(f"item_freq must be a 1-D tensor of length num_embeddings={n}, got shape {tuple(freq.shape)}")
    return freq, lower_freq, upper_freq, padding_idx


def _check_bound(name: str, value) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a non-negative number or None, got {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number or None, got {value!r}")
    return value


class BandRows:
    """What every item table says about its band and its padding row (it holds `band_idx`,
    `weight` and `_weight_padding_row`)."""

    @property
    def num_in_band(self) -> int:
        return int(self.band_idx.numel())

    def zero_padding_row(self) -> None:
        """Zero the padding row again, e.g. after a custom initialisation of ``weight``."""
        if self._weight_padding_row is not None:
            with torch.no_grad():
                self.weight[self._weight_padding_row].fill_(0)


class SmoothedItemEmbedding(BandRows, nn.Module):
    """Embedding table where items in a training-frequency band use the P-weighted average of rows.

    Args:
        num_embeddings: number of items (including the padding row, if any).
        embedding_dim: size of each vector.
        item_freq: 1-D tensor, training frequency of each item.
        operator: sparse (COO or CSR) ``num_embeddings x num_embeddings`` matrix ``P``.
        lower_freq, upper_freq: inclusive band bounds; ``None`` leaves that side open; both ``None``
            means no band (behaves exactly like ``nn.Embedding``).
        padding_idx: as in ``nn.Embedding``; never in band, and never used as a neighbour.
        neighbours: ``"all"`` averages over every neighbour (the study's formula); ``"outside_band"``
            restricts ``P`` to out-of-band columns, renormalises each row to sum to 1, and allocates
            no rows of ``weight`` for band items.
    """

    # 2: the operator is stored as Q (q_* buffers); version 1 stored the band rows of P alone (band_*)
    _version = 2
    _Q_BUFFERS = ("q_crow", "q_col", "q_values", "q_t_crow", "q_t_col", "q_t_values")
    _V1_BUFFERS = ("band_crow", "band_col", "band_values", "band_t_crow", "band_t_col", "band_t_values",
                   "table_index")

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        item_freq,
        operator: torch.Tensor,
        lower_freq: Optional[float] = None,
        upper_freq: Optional[float] = None,
        padding_idx: Optional[int] = None,
        neighbours: str = "all",
        device=None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        n = num_embeddings
        if neighbours not in NEIGHBOURS:
            raise ValueError(f"unknown neighbours {neighbours!r}; expected one of {NEIGHBOURS}")
        freq, lower_freq, upper_freq, padding_idx = check_band_arguments(n, item_freq, lower_freq, upper_freq,
                                                                         padding_idx)
        if not isinstance(operator, torch.Tensor) or operator.layout not in (torch.sparse_coo, torch.sparse_csr):
            got = operator.layout if isinstance(operator, torch.Tensor) else type(operator).__name__
            raise ValueError(f"operator must be a sparse COO or CSR torch tensor, got {got}")
        if tuple(operator.shape) != (n, n):
            raise ValueError(f"operator must have shape ({n}, {n}), got {tuple(operator.shape)}")

        self.num_embeddings = n
        self.embedding_dim = embedding_dim
        self.lower_freq = lower_freq
        self.upper_freq = upper_freq
        self.padding_idx = padding_idx
        self.neighbours = neighbours
        self._cache: Optional[tuple] = None

        factory = {"device": device, "dtype": dtype}
        wdtype = torch.empty(0, **factory).dtype
        wdevice = torch.empty(0, device=device).device

        freq = freq.to(wdevice)
        in_band = band_mask(freq, lower_freq, upper_freq, padding_idx)
        band_idx = torch.nonzero(in_band).flatten()
        out_idx = torch.nonzero(~in_band).flatten()
        restrict = neighbours == "outside_band"
        n_cols = out_idx.numel() if restrict else n

        # Q in float64: band rows of P, columns renumbered to weight rows; a unit row for every other item.
        rows, cols, vals = _coo_triplets(operator.detach())
        rows, cols, vals = rows.to(wdevice), cols.to(wdevice), vals.to(wdevice, torch.float64)
        keep = in_band[rows] & (vals != 0)
        if padding_idx is not None:
            keep &= cols != padding_idx
        if restrict:
            keep &= ~in_band[cols]
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        out_rank = torch.cumsum((~in_band).to(torch.int64), 0) - 1
        unit = out_idx if band_idx.numel() else out_idx[:0]  # without a band the table is weight itself
        own_col = unit
        if restrict:
            cols, own_col = out_rank[cols], out_rank[unit]
            row_sum = torch.zeros(n, dtype=torch.float64, device=wdevice).index_add_(0, rows, vals)
            denom = row_sum[rows]
            vals = torch.where(denom != 0, vals / torch.where(denom != 0, denom, 1.0), 0.0)
        rows = torch.cat([rows, unit])
        cols = torch.cat([cols, own_col])
        vals = torch.cat([vals, torch.ones(unit.numel(), dtype=torch.float64, device=wdevice)])
        crow, col, val = _csr_parts(rows, cols, vals, n, n_cols)
        crow_t, col_t, val_t = _csr_parts(cols, rows, vals, n_cols, n)

        self.register_buffer("item_freq", freq.clone())
        self.register_buffer("in_band", in_band)
        self.register_buffer("band_idx", band_idx)
        for name, t in zip(self._Q_BUFFERS, (crow, col, val.to(wdtype), crow_t, col_t, val_t.to(wdtype))):
            self.register_buffer(name, t)
        if restrict:
            self._weight_padding_row = None if padding_idx is None else int(out_rank[padding_idx])
        else:
            self._weight_padding_row = padding_idx

        self.weight = nn.Parameter(torch.empty((n_cols, embedding_dim), **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 1) like ``nn.Embedding``, padding row zeroed."""
        self.init_from_full_table_(nn.init.normal_)

    @property
    def own_rows(self) -> torch.Tensor:
        """The items (rows of the full table) that ``weight`` holds, in weight-row order: every item,
        or with ``neighbours="outside_band"`` only those outside the band."""
        if self.weight.shape[0] == self.num_embeddings:
            return torch.arange(self.num_embeddings, device=self.in_band.device)
        return torch.nonzero(~self.in_band).flatten()

    def init_from_full_table_(self, init_fn) -> None:
        """Initialise ``weight`` as rows of a full ``num_embeddings x embedding_dim`` table drawn by
        ``init_fn`` (e.g. ``nn.init.xavier_normal_``): every item's own row then gets the same
        initial value in both neighbour modes, and the scale of the full table (an initialiser that
        depends on the shape would otherwise see the smaller table of ``outside_band``)."""
        full = torch.empty(self.num_embeddings, self.embedding_dim, dtype=self.weight.dtype, device=self.weight.device)
        init_fn(full)
        with torch.no_grad():
            self.weight.copy_(full[self.own_rows])
        self.zero_padding_row()

    def zero_padding_row(self) -> None:
        super().zero_padding_row()
        self._cache = None

    @property
    def parameters_saved(self) -> int:
        return (self.num_embeddings - self.weight.shape[0]) * self.embedding_dim

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        if local_metadata.get("version", 1) < 2 and prefix + "band_col" in state_dict:
            # Q derives from the same item_freq and operator the module was built with: keep ours
            for name in self._V1_BUFFERS:
                state_dict.pop(prefix + name, None)
            for name in self._Q_BUFFERS:
                state_dict[prefix + name] = getattr(self, name)
        elif self._same_band(state_dict, prefix):
            # Q is state: a module built without the graph (see `RankingModel.load_from_checkpoint`)
            # takes the saved one, whatever its number of entries
            for name in self._Q_BUFFERS:
                saved = state_dict.get(prefix + name)
                if saved is not None and saved.shape != getattr(self, name).shape:
                    self._buffers[name] = torch.empty_like(saved, device=getattr(self, name).device)
            self._cache = None
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def _same_band(self, state_dict, prefix) -> bool:
        freq, band = state_dict.get(prefix + "item_freq"), state_dict.get(prefix + "in_band")
        return (freq is not None and band is not None and freq.shape == self.item_freq.shape
                and band.shape == self.in_band.shape and bool((band.to(self.in_band.device) == self.in_band).all()))

    @property
    def band_nnz(self) -> int:
        """Stored entries of the band rows of ``P`` (after dropping the padding column and, with
        ``neighbours="outside_band"``, the band columns); the rest of ``Q`` is one entry per other item."""
        if self.num_in_band == 0:
            return 0
        return int(self.q_col.numel()) - (self.num_embeddings - self.num_in_band)

    def _compute_table(self) -> torch.Tensor:
        if self.num_in_band == 0:
            return self.weight
        w = self.weight
        val, val_t = self.q_values, self.q_t_values
        if val.dtype != w.dtype:
            val, val_t = val.to(w.dtype), val_t.to(w.dtype)
        return _CsrMM.apply(w, self.q_crow, self.q_col, val, self.q_t_crow, self.q_t_col, val_t)

    def _cache_key(self):
        try:
            tensors = [self.weight, *self.buffers()]
            return tuple((t._version, t.data_ptr(), t.device, t.dtype) for t in tensors)
        except RuntimeError:  # e.g. inference tensors have no version counter
            return None

    def effective_weight(self) -> torch.Tensor:
        """The full ``num_embeddings x embedding_dim`` table the model uses (differentiable).

        In eval mode with grad disabled the table is cached until the parameters or buffers change;
        do not modify the returned tensor in place.
        """
        if self.training or torch.is_grad_enabled() or self.num_in_band == 0:
            self._cache = None
            return self._compute_table()
        key = self._cache_key()
        if key is not None and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        table = self._compute_table()
        self._cache = None if key is None else (key, table)
        return table

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.effective_weight(), self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        s += (
            f", band=[{self.lower_freq}, {self.upper_freq}], num_in_band={self.num_in_band}"
            f", neighbours={self.neighbours!r}, band_nnz={self.band_nnz}"
        )
        return s
