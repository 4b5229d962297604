"""Matrix factorisation trained with BPR: user and item vectors, dot-product scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embfreq.models.base import NOT_HPARAMS, RankingModel
from embfreq.nn.item_table import ItemTable


class MFBPR(RankingModel):
    """User vectors dotted with the item table's vectors; BPR over (user, positive, negative) triples."""

    def __init__(self, num_users: int, item_table: ItemTable, init_std: float = 1e-4, optimizer=None,
                 scheduler=None, ks: tuple[int, ...] = (1, 5, 10, 20, 50), remove_seen: bool = True,
                 repeat_target: str = "rank"):
        if not init_std > 0:
            raise ValueError(f"init_std must be > 0, got {init_std}")
        users = nn.Embedding(num_users, item_table.embedding_dim)
        super().__init__(item_table, optimizer, scheduler, ks, remove_seen, repeat_target)
        self.save_hyperparameters(ignore=NOT_HPARAMS)
        self.hparams["item_table"] = item_table.spec()
        self.users, self.items = users, item_table
        nn.init.normal_(self.users.weight, std=init_std)
        self.items.init_from_full_table_(lambda t: nn.init.normal_(t, std=init_std))

    def training_loss(self, batch: dict) -> torch.Tensor:
        return self.dense_loss(self.items.weight, *self.step_inputs(batch))

    def step_inputs(self, batch: dict) -> tuple:
        return batch["users"], batch["positives"], batch["negatives"]

    def dense_loss(self, table: torch.Tensor, users: torch.Tensor, positives: torch.Tensor,
                   negatives: torch.Tensor) -> torch.Tensor:
        u = self.users(users)  # (B, D)
        # one gather for positives and negatives: one gradient scatter into the table, not two
        ids = torch.cat([positives, negatives])
        pos, neg = (table.index_select(0, ids).view(2, *u.shape) * u).sum(-1)
        return F.softplus(neg - pos).mean()

    def user_vectors(self, batch: dict, table: torch.Tensor) -> torch.Tensor:
        return self.users(batch["users"])
