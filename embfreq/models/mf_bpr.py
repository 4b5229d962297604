"""Matrix factorisation trained with BPR: user and item vectors, dot-product scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embfreq.models.base import NOT_HPARAMS, RankingModel
from embfreq.nn.item_tables import build_item_table


class MFBPR(RankingModel):
    def __init__(self, num_users: int, num_items: int, item_freq: torch.Tensor, operator: torch.Tensor,
                 embedding_dim: int = 64, lower_freq: float | None = 0, upper_freq: float | None = 5,
                 neighbours: str = "all", init_std: float = 1e-4, optimizer=None, scheduler=None,
                 ks: tuple[int, ...] = (1, 5, 10, 20, 50), remove_seen: bool = True, repeat_target: str = "rank",
                 item_table: dict | None = None):
        super().__init__(num_items, optimizer, scheduler, ks, remove_seen, repeat_target)
        if not init_std > 0:
            raise ValueError(f"init_std must be > 0, got {init_std}")
        self.save_hyperparameters(ignore=NOT_HPARAMS)
        self.users = nn.Embedding(num_users, embedding_dim)
        # item_table: a plain-dict spec (embfreq.nn.item_tables); None keeps the neighbour average
        self.items = build_item_table(item_table, num_items + 1, embedding_dim, item_freq, operator,
                                      lower_freq=lower_freq, upper_freq=upper_freq, padding_idx=0,
                                      neighbours=neighbours)
        nn.init.normal_(self.users.weight, std=init_std)
        self.items.init_from_full_table_(lambda t: nn.init.normal_(t, std=init_std))

    def training_loss(self, batch: dict) -> torch.Tensor:
        u = self.users(batch["users"])  # (B, D)
        # one gather for positives and negatives: one gradient scatter into the table, not two
        ids = torch.cat([batch["positives"], batch["negatives"]])
        pos, neg = (self.items.effective_weight().index_select(0, ids).view(2, *u.shape) * u).sum(-1)
        return F.softplus(neg - pos).mean()

    def user_vectors(self, batch: dict, table: torch.Tensor) -> torch.Tensor:
        return self.users(batch["users"])
