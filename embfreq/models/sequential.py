"""Next-item models over item sequences: SASRec and GRU4Rec share losses and scoring."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embfreq.models.base import RankingModel
from embfreq.nn.gru4rec import GRU4RecEncoder
from embfreq.nn.sasrec import SASRecEncoder
from embfreq.nn.smoothed_embedding import SmoothedItemEmbedding

LOSSES = ("bce", "bpr", "ce")


def trim_left_padding(inputs: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Drop the columns that are padding in every row (exact, since padding is masked everywhere)."""
    real_cols = (inputs != 0).any(0)
    first = int(real_cols.to(torch.int8).argmax()) if bool(real_cols.any()) else inputs.shape[1] - 1
    return tuple(t[:, first:] for t in (inputs, *others))


class SequentialModel(RankingModel):
    """Shared training for encoders that map a left-padded item sequence to hidden states."""

    encoder: nn.Module

    def __init__(self, num_items: int, item_freq: torch.Tensor, operator: torch.Tensor,
                 embedding_dim: int = 64, loss: str = "bce", lower_freq: float | None = 0,
                 upper_freq: float | None = 5, neighbours: str = "all", lr: float = 1e-3,
                 weight_decay: float = 0.0, optimizer: str = "adam", ks: tuple[int, ...] = (1, 5, 10, 20, 50),
                 remove_seen: bool = True):
        super().__init__(num_items, lr, weight_decay, optimizer, ks, remove_seen)
        loss = loss.lower()
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
        self.loss_name = loss
        self.items = SmoothedItemEmbedding(num_items + 1, embedding_dim, item_freq, operator,
                                           lower_freq=lower_freq, upper_freq=upper_freq, padding_idx=0,
                                           neighbours=neighbours)

    def reset_parameters(self) -> None:
        """Xavier-normal item table as in the study (padding row zero); encoders initialise themselves."""
        nn.init.xavier_normal_(self.items.weight)
        self.items.zero_padding_row()

    def hidden(self, inputs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        real = inputs != 0
        return self.encoder(table[inputs], real)  # (B, L, D)

    def training_loss(self, batch: dict) -> torch.Tensor:
        inputs, targets, negatives = trim_left_padding(batch["inputs"], batch["targets"], batch["negatives"])
        table = self.items.effective_weight()
        h = self.hidden(inputs, table)
        real = targets != 0
        h = h[real]  # (M, D)
        pos = targets[real]
        # sum / average positions per batch: each position weighs the same in every batch (see batches.py)
        norm = batch["loss_norm"] if "loss_norm" in batch else h.new_tensor(float(max(len(h), 1)))
        if self.loss_name == "ce":
            logits = h @ table.T  # (M, N + 1)
            logits[:, 0] = float("-inf")
            return F.cross_entropy(logits, pos, reduction="sum") / norm
        pos_logit = (h * table[pos]).sum(-1)
        neg_logit = (h * table[negatives[real]]).sum(-1)
        if self.loss_name == "bce":
            return (F.softplus(-pos_logit).sum() + F.softplus(neg_logit).sum()) / norm
        return F.softplus(neg_logit - pos_logit).sum() / norm

    def user_vectors(self, batch: dict, table: torch.Tensor) -> torch.Tensor:
        (inputs,) = trim_left_padding(batch["inputs"])
        return self.hidden(inputs, table)[:, -1]  # (B, D): the last position holds the latest item


class SASRec(SequentialModel):
    def __init__(self, num_items: int, item_freq: torch.Tensor, operator: torch.Tensor, maxlen: int = 50,
                 embedding_dim: int = 64, num_blocks: int = 2, num_heads: int = 1, dropout: float = 0.2,
                 attend_padding: bool = False, **kwargs):
        super().__init__(num_items, item_freq, operator, embedding_dim=embedding_dim, **kwargs)
        self.save_hyperparameters(ignore=["item_freq", "operator"])
        self.encoder = SASRecEncoder(maxlen, embedding_dim, num_blocks, num_heads, dropout, attend_padding)
        self.reset_parameters()


class GRU4Rec(SequentialModel):
    def __init__(self, num_items: int, item_freq: torch.Tensor, operator: torch.Tensor, maxlen: int = 50,
                 embedding_dim: int = 64, hidden_dim: int | None = None, num_layers: int = 1,
                 dropout: float = 0.2, **kwargs):
        super().__init__(num_items, item_freq, operator, embedding_dim=embedding_dim, **kwargs)
        self.save_hyperparameters(ignore=["item_freq", "operator"])
        self.encoder = GRU4RecEncoder(embedding_dim, hidden_dim, num_layers, dropout)
        self.reset_parameters()
