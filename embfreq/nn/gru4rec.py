"""GRU4Rec encoder: a GRU over the real items of a left-padded sequence; no Lightning here."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class GRU4RecEncoder(nn.Module):
    def __init__(self, embedding_dim: int, hidden_dim: int | None = None, num_layers: int = 1, dropout: float = 0.2):
        super().__init__()
        # what a checkpoint keeps to rebuild this encoder (the model's hparams hold no modules)
        self.init_args = dict(embedding_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout)
        self.dim = embedding_dim
        hidden_dim = hidden_dim or embedding_dim
        self.emb_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(embedding_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.proj = nn.Linear(hidden_dim, embedding_dim) if hidden_dim != embedding_dim else nn.Identity()

    def forward(self, seq_vecs: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """seq_vecs (B, L, D), real (B, L) bool with padding on the left -> (B, L, D), padding zeroed."""
        b, l, _ = seq_vecs.shape
        lengths = real.sum(1)
        # left-aligned copy so the GRU never steps over padding
        shift = (l - lengths)[:, None]
        idx = (torch.arange(l, device=real.device)[None] + shift) % l
        x = torch.gather(self.emb_dropout(seq_vecs), 1, idx[..., None].expand_as(seq_vecs))
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=l)
        back = (torch.arange(l, device=real.device)[None] - shift) % l
        out = torch.gather(out, 1, back[..., None].expand(b, l, out.shape[-1]))
        return self.proj(out) * real[..., None].to(out.dtype)
