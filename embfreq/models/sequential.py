"""Next-item models over item sequences: SASRec and GRU4Rec share losses and scoring."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from embfreq.models.base import NOT_HPARAMS, RankingModel
from embfreq.nn.item_table import ItemTable

LOSSES = ("bce", "bpr", "ce")


def build_encoder(net) -> tuple[nn.Module, dict | None]:
    """The encoder, and the spec that rebuilds it from a checkpoint (None for a module that does not
    record its `init_args`: load such a checkpoint with `net=` given)."""
    if isinstance(net, Mapping):
        import hydra.utils

        spec = dict(net)
        net = functools.partial(hydra.utils.get_class(spec.pop("_target_")), **spec)
    if isinstance(net, functools.partial):
        net = net()
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be an nn.Module, a partial constructor or a spec dict, got {type(net).__name__}")
    args = getattr(net, "init_args", None)
    return net, None if args is None else {"_target_": f"{type(net).__module__}.{type(net).__qualname__}", **args}


def trim_left_padding(inputs: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Drop the columns that are padding in every row (exact, since padding is masked everywhere)."""
    real_cols = (inputs != 0).any(0)
    first = int(real_cols.to(torch.int8).argmax()) if bool(real_cols.any()) else inputs.shape[1] - 1
    return tuple(t[:, first:] for t in (inputs, *others))


def pack_batch(batch: dict, maxlen: int) -> tuple[torch.Tensor, ...]:
    """The batch's left-padded rows moved into its packed layout (`pack_row`, `pack_col`,
    `pack_rows` from the dataset): inputs, targets, negatives, segments and positions, each
    (pack_rows, maxlen). A segment is named by its start column + 1 (0 = empty slot); a position
    is the slot's position in the sequence's own left-padded window."""
    inputs = batch["inputs"]
    real = inputs != 0
    lengths = real.sum(1)
    rows, cols = real.nonzero(as_tuple=True)
    k = cols - (inputs.shape[1] - lengths[rows])  # index inside the sequence
    prow, pcol = batch["pack_row"][rows], batch["pack_col"][rows]
    at = (prow, pcol + k)
    shape = (int(batch["pack_rows"]), maxlen)
    out = []
    for values in (inputs[rows, cols], batch["targets"][rows, cols], batch["negatives"][rows, cols],
                   pcol + 1, maxlen - lengths[rows] + k):
        out.append(inputs.new_zeros(shape).index_put_(at, values))
    return tuple(out)


class SequentialModel(RankingModel):
    """Next-item training and scoring for an encoder (`net`) that maps the item vectors of a
    left-padded sequence to one hidden state per position.

    `net` is an `nn.Module`, a `_partial_` constructor (what the config gives: it is called after the
    item table is built, so the random initialisation keeps the order of the published runs), or
    the spec a checkpoint keeps (`{"_target_": class path, **init_args}`).
    """

    def __init__(self, net, item_table: ItemTable, loss: str = "bce", optimizer=None, scheduler=None,
                 ks: tuple[int, ...] = (1, 5, 10, 20, 50), remove_seen: bool = True, repeat_target: str = "rank"):
        super().__init__(item_table, optimizer, scheduler, ks, remove_seen, repeat_target)
        loss = loss.lower()
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
        self.loss_name = loss
        self.save_hyperparameters(ignore=NOT_HPARAMS + ["net"])
        self.hparams["item_table"] = item_table.spec()
        self.items = item_table
        self.encoder, self.hparams["net"] = build_encoder(net)  # after the table: the published runs' draw order
        dim = item_table.embedding_dim
        if getattr(self.encoder, "dim", dim) != dim:
            raise ValueError(f"the encoder's embedding_dim ({self.encoder.dim}) differs from the item table's ({dim})")
        self.packs = bool(getattr(self.encoder, "packs", False))  # takes packed rows (segments, positions)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal item table as in the study (padding row zero); encoders initialise themselves."""
        self.items.init_from_full_table_(nn.init.xavier_normal_)  # the full table's scale in every mode

    def hidden(self, inputs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        real = inputs != 0
        return self.encoder(table[inputs], real)  # (B, L, D)

    def training_loss(self, batch: dict) -> torch.Tensor:
        """Mean over the batch's real positions, as for the padded batch. When the batch carries a
        packing (`pack_row`) and the encoder supports it, sequences are packed side by side
        (`pack_batch`) so almost no padding is computed; the loss is the same."""
        table = self.items.weight
        if self.packs and "pack_row" in batch:
            inputs, targets, negatives, segments, positions = pack_batch(batch, self.encoder.maxlen)
            real = inputs != 0
            h = self.encoder(table[inputs], real, segments, positions)
        else:
            inputs, targets, negatives = trim_left_padding(batch["inputs"], batch["targets"], batch["negatives"])
            h = self.hidden(inputs, table)
        real = targets != 0
        h = h[real]  # (M, D)
        pos, neg = targets[real], negatives[real]
        m = max(len(pos), 1)
        if self.loss_name == "ce":
            logits = h @ table.T  # (M, N + 1)
            logits[:, 0] = float("-inf")
            return F.cross_entropy(logits, pos, reduction="sum") / m
        pos_logit = (h * table[pos]).sum(-1)
        neg_logit = (h * table[neg]).sum(-1)
        if self.loss_name == "bce":
            return (F.softplus(-pos_logit).sum() + F.softplus(neg_logit).sum()) / m
        return F.softplus(neg_logit - pos_logit).sum() / m

    def step_inputs(self, batch: dict) -> tuple:
        if self.packs and "pack_row" in batch:
            return pack_batch(batch, self.encoder.maxlen)  # inputs, targets, negatives, segments, positions
        return (*trim_left_padding(batch["inputs"], batch["targets"], batch["negatives"]), None, None)

    def dense_loss(self, table: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor,
                   segments: torch.Tensor | None = None, positions: torch.Tensor | None = None) -> torch.Tensor:
        """`training_loss` over every position, padding weighted 0 instead of cut out: no shape
        depends on the data, so one graph serves every batch (the packed rows are ~98% real)."""
        real = inputs != 0
        if segments is None:
            h = self.encoder(table[inputs], real)
        else:
            h = self.encoder(table[inputs], real, segments, positions)
        keep = targets != 0
        m = keep.sum().clamp(min=1)
        zero = h.new_zeros(())
        if self.loss_name == "ce":
            logits = (h @ table.T).flatten(0, 1)  # (B * L, N + 1)
            logits = logits.index_fill(1, targets.new_zeros(1), float("-inf"))
            ce = F.cross_entropy(logits, targets.flatten(), reduction="none")
            return torch.where(keep.flatten(), ce, zero).sum() / m
        pos_logit = (h * table[targets]).sum(-1)
        neg_logit = (h * table[negatives]).sum(-1)
        if self.loss_name == "bce":
            per = F.softplus(-pos_logit) + F.softplus(neg_logit)
        else:
            per = F.softplus(neg_logit - pos_logit)
        return torch.where(keep, per, zero).sum() / m

    def user_vectors(self, batch: dict, table: torch.Tensor) -> torch.Tensor:
        (inputs,) = trim_left_padding(batch["inputs"])
        return self.hidden(inputs, table)[:, -1]  # (B, D): the last position holds the latest item


class SASRec(SequentialModel):
    """SASRec (Kang & McAuley 2018): `net` is an `embfreq.nn.sasrec.SASRecEncoder`."""


class GRU4Rec(SequentialModel):
    """GRU4Rec (Hidasi et al. 2016): `net` is an `embfreq.nn.gru4rec.GRU4RecEncoder`."""
