"""Full-ranking evaluation with exactly one held-out target per user.

Every metric is a per-user value averaged over users; states are float64 sums plus a count
with ``dist_reduce_fx="sum"``, so a DDP all-reduce gives exactly the single-process result
(up to float64 summation order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchmetrics
from torch import Tensor

METRIC_NAMES = ("hr", "recall", "precision", "ndcg", "mrr")


def target_ranks(scores: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """1-based rank of each user's target among that user's non-excluded items.

    rank = 1 + number of *other* non-excluded items whose score is >= the target's score, so
    ties never favour the target: if every item scores the same (e.g. all-zero vectors) the
    target gets the worst rank, the number of non-excluded items.

    scores: (B, N) float; targets: (B,) long in [0, N); mask: (B, N) bool, True = excluded
    (seen items, padding column 0). The mask is never applied to the target itself, so a
    target the user has already seen (a repeat) is still ranked. Column 0 is not excluded
    automatically: pass it in ``mask`` (or score it -inf).

    NaN scores count as -inf: a NaN item never beats a finite target, and a NaN target ties
    with (so ranks below) every other -inf/NaN item, i.e. a broken score is never rewarded.

    Returns (B,) long. Memory is O(B * N); callers chunk the users if that is too much.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, N), got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be floating point, got {scores.dtype}")
    b, n = scores.shape
    if targets.dim() != 1 or targets.shape[0] != b:
        raise ValueError(f"targets must be ({b},), got shape {tuple(targets.shape)}")
    if targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"targets must be an integer tensor, got {targets.dtype}")
    if mask is not None:
        if mask.shape != scores.shape:
            raise ValueError(f"mask must have the shape of scores {tuple(scores.shape)}, got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool, got {mask.dtype}")
    if b == 0:
        return torch.zeros(0, dtype=torch.long, device=scores.device)
    targets = targets.long()
    # One device sync for the range check; an out-of-range gather would fail opaquely on GPU.
    if bool(((targets < 0) | (targets >= n)).any()):
        raise ValueError(f"targets must lie in [0, {n}), got min {int(targets.min())}, max {int(targets.max())}")

    scores = scores.detach()
    scores = torch.where(torch.isnan(scores), torch.full_like(scores, float("-inf")), scores)
    idx = targets.unsqueeze(1)
    target_score = scores.gather(1, idx)
    beats = scores >= target_score
    if mask is not None:
        beats &= ~mask
    # Drop the target's own comparison (always True) whatever the mask said.
    beats.scatter_(1, idx, False)
    return beats.sum(dim=1) + 1


def _check_ranks(ranks: Tensor) -> Tensor:
    if ranks.dim() != 1:
        raise ValueError(f"ranks must be 1-D, got shape {tuple(ranks.shape)}")
    if ranks.is_floating_point() or ranks.is_complex() or ranks.dtype == torch.bool:
        raise ValueError(f"ranks must be an integer tensor, got {ranks.dtype}")
    if ranks.numel() and bool((ranks < 1).any()):
        raise ValueError("ranks are 1-based; got a rank < 1")
    return ranks.long()


def hit_and_ndcg(ranks: Tensor, k) -> tuple[Tensor, Tensor]:
    """HR@k and NDCG@k of float64 1-based ranks with one target each: 1[rank <= k] and
    1[rank <= k] / log2(rank + 1); `k` a number or a tensor that broadcasts against `ranks`.
    (`embfreq.analysis.per_run.per_user.per_user_metric` is the same in numpy, for run outputs.)"""
    hit = (ranks <= k).to(torch.float64)
    return hit, hit / torch.log2(ranks + 1.0)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must not be empty")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"every k must be a positive int, got {k!r}")
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks must be distinct, got {ks}")
    return ks


class RankingMetrics(torchmetrics.Metric):
    """HR, Recall, Precision, NDCG and MRR at several cut-offs from one target rank per user.

    With a single target: hr@k = recall@k = 1[rank <= k], precision@k = hr@k / k,
    ndcg@k = 1/log2(rank + 1) and mrr@k = 1/rank when rank <= k (else 0). compute() averages
    over users and returns NaN for every key when no user was seen.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, ks: Sequence[int] = (1, 5, 10, 20, 50), prefix: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks = _check_ks(ks)
        self.prefix = prefix
        # Row per metric name, column per k; float64 so large sums stay exact enough.
        self.add_state(
            "sums",
            default=torch.zeros(len(METRIC_NAMES), len(self.ks), dtype=torch.float64),
            dist_reduce_fx="sum",
        )
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, ranks: Tensor) -> None:
        ranks = _check_ranks(ranks)
        r = ranks.to(device=self.sums.device, dtype=torch.float64).unsqueeze(1)
        k = torch.tensor(self.ks, dtype=torch.float64, device=r.device).unsqueeze(0)
        hit, gain = hit_and_ndcg(r, k)  # (B, K)
        hr = hit.sum(0)
        ndcg = gain.sum(0)
        mrr = (hit / r).sum(0)
        # Same order as METRIC_NAMES.
        self.sums += torch.stack([hr, hr, hr / k.squeeze(0), ndcg, mrr])
        self.count += ranks.numel()

    def compute(self) -> dict[str, Tensor]:
        n = self.count.to(torch.float64)
        means = self.sums / n if int(self.count) > 0 else torch.full_like(self.sums, float("nan"))
        return {
            f"{self.prefix}{name}@{k}": means[i, j]
            for i, name in enumerate(METRIC_NAMES)
            for j, k in enumerate(self.ks)
        }


class PerItemMetrics(torchmetrics.Metric):
    """Per target item: number of test cases and mean HR/Recall/NDCG at one cut-off k.

    compute() returns "count" (long, per item) and "hr", "recall", "ndcg" (float64 per-item
    means over that item's test cases; 0 where the item has no test case).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_items: int, k: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(num_items, bool) or not isinstance(num_items, int) or num_items < 1:
            raise ValueError(f"num_items must be a positive int, got {num_items!r}")
        self.num_items = num_items
        self.k = _check_ks((k,))[0]
        self.add_state("count", default=torch.zeros(num_items, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("hit_sum", default=torch.zeros(num_items, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("ndcg_sum", default=torch.zeros(num_items, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, targets: Tensor, ranks: Tensor) -> None:
        ranks = _check_ranks(ranks)
        if targets.dim() != 1 or targets.shape != ranks.shape:
            raise ValueError(f"targets must be 1-D like ranks {tuple(ranks.shape)}, got {tuple(targets.shape)}")
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise ValueError(f"targets must be an integer tensor, got {targets.dtype}")
        if targets.numel() == 0:
            return
        dev = self.count.device
        targets = targets.to(device=dev, dtype=torch.long)
        if bool(((targets < 0) | (targets >= self.num_items)).any()):
            raise ValueError(f"targets must lie in [0, {self.num_items})")
        r = ranks.to(device=dev, dtype=torch.float64)
        hit, gain = hit_and_ndcg(r, self.k)
        self.count.index_add_(0, targets, torch.ones_like(targets))
        self.hit_sum.index_add_(0, targets, hit)
        self.ndcg_sum.index_add_(0, targets, gain)

    def compute(self) -> dict[str, Tensor]:
        # clamp(min=1) turns 0/0 into 0/1 = 0 for items without test cases.
        denom = self.count.clamp(min=1).to(torch.float64)
        hr = self.hit_sum / denom
        return {"count": self.count.clone(), "hr": hr, "recall": hr.clone(), "ndcg": self.ndcg_sum / denom}


# the largest count a float row sum of 0/1 entries still gives exactly (2^mantissa bits)
_EXACT_COUNT = {torch.float32: 2**24, torch.float64: 2**53}


def ranks_excluding(scores: Tensor, targets: Tensor, excl_rows: Tensor | None = None,
                    excl_cols: Tensor | None = None, exclude_padding: bool = True) -> Tensor:
    """`target_ranks` for a score matrix the caller no longer needs, without a (B, N) mask.

    Excluded entries (the (row, col) pairs, and column 0 when `exclude_padding`) are overwritten
    with NaN in place, so they never compare >= the target; the target is never excluded.
    Same ranks as `target_ranks(scores, targets, mask)` with the equivalent mask, NaN scores included.
    """
    targets = targets.long()
    idx = targets.unsqueeze(1)
    # NaN scores count as -inf, as in target_ranks: a NaN target ties with (so ranks below) every
    # other non-excluded item; the NaNs written below then mark exclusions only
    torch.nan_to_num_(scores, nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))
    t = scores.gather(1, idx)
    if exclude_padding:
        scores[:, 0] = float("nan")
    if excl_rows is not None and excl_rows.numel():
        scores[excl_rows, excl_cols] = float("nan")
    scores.scatter_(1, idx, float("nan"))  # the target does not count itself
    if scores.shape[1] <= _EXACT_COUNT.get(scores.dtype, 0):
        # in place: each entry becomes 1.0 or 0.0, and a float row sum of them is exact below
        # 2^mantissa; the (B, N) bool mask and the int copy a sum makes of it cost 13x more here
        # (24 MiB of fresh pages per Beauty batch; docs/performance.md)
        return scores.ge_(t).sum(1).long() + 1
    return (scores >= t).sum(1, dtype=torch.int32).long() + 1
