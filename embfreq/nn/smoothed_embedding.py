"""Item embedding whose rows for a frequency band are replaced by an average of neighbour rows.

The effective table is ``W' = W * (1 - t) + (P @ W) * t`` with ``t[i] = 1`` for items whose training
frequency lies in ``[lower_freq, upper_freq]``. It is computed as one sparse product ``W' = Q @ W``: row
``i`` of ``Q`` is a unit vector for an item with its own vector and row ``i`` of ``P`` for a band item, so
only the band rows of ``P @ W`` are ever computed, and forward and backward are one pass each.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from embfreq.nn.item_table import ItemTable

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


def _coo_triplets(operator, n: int):
    """Row, column and value of every stored entry of the operator: a torch sparse tensor (COO, CSR,
    CSC, ...), any ``scipy.sparse`` matrix, or a dense array; ValueError for anything else."""
    if hasattr(operator, "tocoo") and hasattr(operator, "nnz"):  # scipy.sparse, any format
        shape = tuple(operator.shape)
        coo = operator.tocoo()
        coo.sum_duplicates()
        triplets = (torch.from_numpy(coo.row.astype("int64")), torch.from_numpy(coo.col.astype("int64")),
                    torch.from_numpy(coo.data.astype("float64")))
    else:
        if not isinstance(operator, torch.Tensor):
            try:
                operator = torch.as_tensor(operator)
            except (TypeError, ValueError, RuntimeError):
                raise ValueError("operator must be a torch sparse tensor, a scipy.sparse matrix or a dense "
                                 f"array, got {type(operator).__name__}") from None
        operator = operator.detach()
        shape = tuple(operator.shape)
        if operator.layout == torch.sparse_csr:
            crow = operator.crow_indices().to(torch.int64)
            rows = torch.repeat_interleave(torch.arange(shape[0], device=crow.device), torch.diff(crow))
            triplets = (rows, operator.col_indices().to(torch.int64), operator.values())
        else:
            op = (operator if operator.layout == torch.sparse_coo else operator.to_sparse_coo()).coalesce()
            idx = op.indices()
            triplets = (idx[0].to(torch.int64), idx[1].to(torch.int64), op.values())
    if shape != (n, n):
        raise ValueError(f"operator must have shape ({n}, {n}), got {shape}")
    if triplets[2].is_complex() or not bool(torch.isfinite(triplets[2]).all()):
        raise ValueError("operator values must be finite real numbers")
    return triplets


class SmoothedItemEmbedding(ItemTable):
    """Embedding table whose items in a training-frequency band use the average of their neighbours.

    Band item ``i``'s vector is row ``i`` of ``P @ W``: the ``P``-weighted average of the own vectors
    ``W`` of its neighbours in the item-item co-occurrence graph. Every other item uses its own vector.
    ``weight`` is that effective table, ``own_weight`` holds ``W``.

    Args:
        num_embeddings: number of items (including the padding row, if any).
        embedding_dim: size of each vector.
        item_freq: 1-D tensor, training frequency of each item.
        operator: the ``num_embeddings x num_embeddings`` matrix ``P`` (rows sum to 1): a torch sparse
            tensor (COO, CSR, ...), any ``scipy.sparse`` matrix, or a dense array.
            `from_interactions` builds it from raw interactions.
        lower_freq, upper_freq: inclusive band bounds (`embfreq.band.Band`); ``None`` leaves that side
            open; both ``None`` means no band (behaves exactly like ``nn.Embedding``).
        padding_idx: as in ``nn.Embedding``; never in band, and never used as a neighbour.
        neighbours: ``"all"`` averages over every neighbour (the study's formula); ``"outside_band"``
            restricts ``P`` to out-of-band columns, renormalises each row to sum to 1, and allocates
            no own vectors for band items.
    """

    strategy = "neighbours"
    options = ("neighbours",)
    uses_operator = True
    _Q_BUFFERS = ("q_crow", "q_col", "q_values", "q_t_crow", "q_t_col", "q_t_values")

    def __init__(self, num_embeddings: int, embedding_dim: int, item_freq, operator,
                 lower_freq: Optional[float] = None, upper_freq: Optional[float] = None, *,
                 padding_idx: Optional[int] = None, neighbours: str = "all", device=None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        if neighbours not in NEIGHBOURS:
            raise ValueError(f"unknown neighbours {neighbours!r}; expected one of {NEIGHBOURS}")
        freq, in_band = self._init_band(num_embeddings, embedding_dim, item_freq, lower_freq, upper_freq,
                                        padding_idx, device)
        if operator is None:
            raise ValueError("operator is required (the item-item co-occurrence matrix); "
                             "SmoothedItemEmbedding.from_interactions builds it from interactions")
        n, padding_idx = self.num_embeddings, self.padding_idx
        self.neighbours = neighbours
        factory = {"device": device, "dtype": dtype}
        wdtype = torch.empty(0, **factory).dtype
        wdevice = freq.device

        band_idx = self.band_idx
        out_idx = torch.nonzero(~in_band).flatten()
        restrict = neighbours == "outside_band"
        n_cols = out_idx.numel() if restrict else n

        # Q in float64: band rows of P, columns renumbered to own rows; a unit row for every other item.
        rows, cols, vals = _coo_triplets(operator, n)
        rows, cols, vals = rows.to(wdevice), cols.to(wdevice), vals.to(wdevice, torch.float64)
        keep = in_band[rows] & (vals != 0)
        if padding_idx is not None:
            keep &= cols != padding_idx
        if restrict:
            keep &= ~in_band[cols]
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        out_rank = torch.cumsum((~in_band).to(torch.int64), 0) - 1
        unit = out_idx if band_idx.numel() else out_idx[:0]  # without a band the table is own_weight itself
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
        for name, t in zip(self._Q_BUFFERS, (crow, col, val.to(wdtype), crow_t, col_t, val_t.to(wdtype))):
            self.register_buffer(name, t)

        self.own_weight = nn.Parameter(torch.empty((n_cols, embedding_dim), **factory))
        self.reset_parameters()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        if self._same_band(state_dict, prefix):
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
        w = self.own_weight
        if self.num_in_band == 0:
            return w
        val, val_t = self.q_values, self.q_t_values
        if val.dtype != w.dtype:
            val, val_t = val.to(w.dtype), val_t.to(w.dtype)
        return _CsrMM.apply(w, self.q_crow, self.q_col, val, self.q_t_crow, self.q_t_col, val_t)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", band_nnz={self.band_nnz}"
