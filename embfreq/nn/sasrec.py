"""SASRec encoder (pre-LN, causal self-attention), as in the study; no Lightning here."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with a uniform mask: the same distribution as F.dropout, about twice as fast on CPU.

    The mask is built in place in the uniform draw (1.0 or 0.0, then the scale): the same values as
    a bool mask cast to float, without its two extra (B, L, D) tensors (0.39 against 0.54 ms on a
    30 x 50 x 64 batch here). Compiled for a CPU, the same mask comes from `keep_mask` instead."""
    if not training or p == 0.0:
        return x
    u = torch.rand_like(x)
    keep = keep_mask(u, p) if _compiling_for_cpu(x) else u.ge_(p)
    return x * keep.mul_(1.0 / (1.0 - p))


def _compiling_for_cpu(x: torch.Tensor) -> bool:
    # only inductor's CPU kernels store bool masks slowly; on CUDA the 1-byte mask is the cheaper one to keep
    return torch.compiler.is_compiling() and x.device.type == "cpu"


def keep_mask(u: torch.Tensor, p: float) -> torch.Tensor:
    """``(u >= p)`` as 1.0/0.0 floats by arithmetic, for u in [0, 1) and p in (0, 1): ``u - p`` is 0
    only for u == p and lies in (-1, 1), so ``floor(u - p) + 1`` is 0 below p and 1 from p on.

    Why: compiled on CPU, a comparison's bool mask kept for the backward is stored by inductor's AVX2
    kernels with scalar loops, 5-50x slower than eager (benchmarks/inductor_cpu_kernels.py); a float
    mask is stored vectorised."""
    return (u - p).floor_().add_(1.0)


def relu(x: torch.Tensor) -> torch.Tensor:
    """``F.relu``; compiled for a CPU, ``(x + |x|) / 2``: the same values, and a backward that keeps no
    bool mask (see `keep_mask`). Its gradient differs only at x == 0 exactly (1/2 instead of 0)."""
    return (x + x.abs()) * 0.5 if _compiling_for_cpu(x) else F.relu(x)


class Dropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class PointWiseFeedForward(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.drop1, self.drop2 = Dropout(dropout), Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        return self.drop2(self.fc2(self.drop1(relu(self.fc1(x))))) + x


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding_dim {dim} is not divisible by num_heads {num_heads}")
        self.h, self.dropout = num_heads, dropout
        self.fused: bool | None = None  # None: by device (below); True/False force a path (tests)
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, query: torch.Tensor, x: torch.Tensor, allowed: torch.Tensor,
                pad_log_count: torch.Tensor | None = None) -> torch.Tensor:
        """`allowed` (B, 1, L, L) masks keys. `pad_log_count` (B, L), log of the number of padding
        positions of each query's sequence (-inf for none), adds the study's attention to padding:
        every padding key is the zero vector projected (the K bias) with the V bias as value, so the
        padding acts as one extra key whose logit carries log(count)."""
        b, l, d = x.shape
        hd = d // self.h

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, H, L, D/H)
            return t.view(b, l, self.h, hd).transpose(1, 2)

        q, k, v = heads(self.q(query)), heads(self.k(x)), heads(self.v(x))
        p = self.dropout if self.training else 0.0
        # CUDA: the fused kernel, with the padding as a real extra key and an additive mask. CPU:
        # measured faster explicit (a one-off timing; no benchmark script kept), except masked-only inference.
        fused = self.fused if self.fused is not None else x.is_cuda or (pad_log_count is None and p == 0.0)
        if fused:
            mask = allowed
            if pad_log_count is not None:
                k_pad = self.k.bias.view(1, self.h, 1, hd).expand(b, -1, 1, -1)
                v_pad = self.v.bias.view(1, self.h, 1, hd).expand(b, -1, 1, -1)
                k, v = torch.cat([k, k_pad], 2), torch.cat([v, v_pad], 2)
                real_logit = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill(~allowed, float("-inf"))
                pad_logit = pad_log_count.to(q.dtype).view(b, 1, l, 1)
                mask = torch.cat([real_logit, pad_logit], -1)  # (B, 1, L, L + 1)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            scale = hd ** -0.5
            logits = ((q @ k.transpose(-1, -2)) * scale).masked_fill(~allowed, float("-inf"))
            if pad_log_count is not None:
                k_pad = self.k.bias.view(1, self.h, 1, hd)
                pad_logit = (q * k_pad).sum(-1, keepdim=True) * scale + pad_log_count.view(b, 1, l, 1)
                logits = torch.cat([logits, pad_logit], -1)
            probs = dropout(torch.softmax(logits, dim=-1), p, self.training)
            y = probs[..., :l] @ v
            if pad_log_count is not None:
                y = y + probs[..., l:] * self.v.bias.view(1, self.h, 1, hd)
        return self.out(y.transpose(1, 2).reshape(b, l, d))


class SASRecEncoder(nn.Module):
    """Item vectors of a left-padded sequence -> one hidden state per position.

    Blocks: x = MHA(LN(x), x, x) + x;  x = FFN(LN(x)) + LN(x); padding zeroed; final LayerNorm.
    Padding is masked as attention key too, so a shared left padding can be trimmed without
    changing any real position: positions are counted from the right end (the last item always
    gets position maxlen - 1).

    `attend_padding=True` (the default) is what the study's code does (torch MultiheadAttention
    with a causal mask only): real positions also attend to the maxlen - length padding positions.
    It is computed exactly, as one extra key per row (see `SelfAttention`), so trimming stays exact;
    only attention dropout differs (one draw for the padding's total weight, not one per position).
    `attend_padding=False` masks padding keys (RecBole, SASRec.pytorch's later versions).
    """

    packs = True  # forward takes packed rows (segments, positions): see `forward`

    def __init__(self, maxlen: int, embedding_dim: int, num_blocks: int = 2, num_heads: int = 1,
                 dropout: float = 0.2, attend_padding: bool = True):
        super().__init__()
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {maxlen}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")  # 1 would zero every vector
        if not isinstance(attend_padding, bool):
            raise ValueError(f"attend_padding must be true or false, got {attend_padding!r}")
        self.maxlen, self.dim, self.attend_padding = maxlen, embedding_dim, attend_padding
        # what a checkpoint keeps to rebuild this encoder (the model's hparams hold no modules)
        self.init_args = dict(maxlen=maxlen, embedding_dim=embedding_dim, num_blocks=num_blocks,
                              num_heads=num_heads, dropout=dropout, attend_padding=attend_padding)
        self.positions = nn.Embedding(maxlen, embedding_dim)
        self.emb_dropout = Dropout(dropout)
        self.attn_norms = nn.ModuleList(nn.LayerNorm(embedding_dim, eps=1e-8) for _ in range(num_blocks))
        self.attns = nn.ModuleList(SelfAttention(embedding_dim, num_heads, dropout) for _ in range(num_blocks))
        self.ffn_norms = nn.ModuleList(nn.LayerNorm(embedding_dim, eps=1e-8) for _ in range(num_blocks))
        self.ffns = nn.ModuleList(PointWiseFeedForward(embedding_dim, dropout) for _ in range(num_blocks))
        self.last_norm = nn.LayerNorm(embedding_dim, eps=1e-8)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation of the study's code (FreeRec's SASRec on torch.nn.MultiheadAttention).

        Positions and the attention output projection: xavier normal, zero bias. Q, K and V: xavier
        uniform over the stacked (3D, D) in-projection, zero bias. The feed-forward layers (Conv1d
        there) keep PyTorch's default init, which nn.Linear shares.
        """
        nn.init.xavier_normal_(self.positions.weight)
        for attn in self.attns:
            stacked = torch.empty(3 * self.dim, self.dim)
            nn.init.xavier_uniform_(stacked)
            with torch.no_grad():
                for lin, w in zip((attn.q, attn.k, attn.v), stacked.chunk(3)):
                    lin.weight.copy_(w)
                    nn.init.zeros_(lin.bias)
            nn.init.xavier_normal_(attn.out.weight)
            nn.init.zeros_(attn.out.bias)
        for ffn in self.ffns:
            ffn.fc1.reset_parameters()
            ffn.fc2.reset_parameters()

    def forward(self, seq_vecs: torch.Tensor, real: torch.Tensor, segments: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """seq_vecs (B, L, D) item vectors, real (B, L) bool for non-padding; L <= maxlen.

        Left-padded rows by default. Packed rows (several sequences side by side, see
        `embfreq.data.batches.pack_rows`) pass `segments` (B, L), the sequence id of each slot
        (0 = empty), and `positions` (B, L), each slot's position in its own left-padded window
        (maxlen - length + index): attention then stays inside each sequence, and every sequence
        is computed exactly as alone in its own row.
        """
        b, l, _ = seq_vecs.shape
        if positions is None:
            positions = torch.arange(self.maxlen - l, self.maxlen, device=seq_vecs.device).expand(b, l)
        x = seq_vecs * self.dim**0.5 + self.positions(positions)
        keep = real.unsqueeze(-1).to(x.dtype)
        x = self.emb_dropout(x) * keep
        eye = torch.eye(l, dtype=torch.bool, device=x.device)
        causal = torch.ones(l, l, dtype=torch.bool, device=x.device).tril()
        allowed = causal[None] & real[:, None, :]
        if segments is not None:
            allowed = allowed & (segments[:, :, None] == segments[:, None, :])
        # a padding query attends to itself only, so no row is fully masked (no NaN)
        allowed = (allowed | eye[None]).unsqueeze(1)  # (B, 1, L, L)
        pad_log_count = None
        if self.attend_padding:
            if segments is None:
                pad_count = (self.maxlen - real.sum(1, keepdim=True)).expand(b, l)
            else:  # the first slot of a sequence sits at position maxlen - length = its padding count
                first = positions.masked_fill(~real, self.maxlen)
                seg_pad = torch.full((b, l + 1), self.maxlen, dtype=positions.dtype, device=x.device)
                seg_pad = seg_pad.scatter_reduce(1, segments.masked_fill(~real, 0), first, "amin")
                pad_count = seg_pad.gather(1, segments)
            pad_log_count = torch.log(pad_count.to(x.dtype))  # log 0 = -inf: no padding
        for norm_a, attn, norm_f, ffn in zip(self.attn_norms, self.attns, self.ffn_norms, self.ffns):
            x = attn(norm_a(x), x, allowed, pad_log_count) + x
            x = ffn(norm_f(x)) * keep
        return self.last_norm(x)
