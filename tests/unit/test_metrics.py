import math

import pytest
import torch

from embfreq.metrics import METRIC_NAMES, PerItemMetrics, RankingMetrics, target_ranks

KS = (1, 3, 5, 10)


def naive_ranks(scores, targets, mask):
    out = []
    for u in range(scores.shape[0]):
        t = int(targets[u])
        s_t = float(scores[u, t])
        s_t = -math.inf if math.isnan(s_t) else s_t
        r = 1
        for i in range(scores.shape[1]):
            if i == t or (mask is not None and bool(mask[u, i])):
                continue
            s = float(scores[u, i])
            s = -math.inf if math.isnan(s) else s
            if s >= s_t:
                r += 1
        out.append(r)
    return torch.tensor(out)


def naive_metrics(ranks, ks):
    vals = {f"{n}@{k}": 0.0 for n in METRIC_NAMES for k in ks}
    for r in ranks.tolist():
        for k in ks:
            hit = r <= k
            vals[f"hr@{k}"] += hit
            vals[f"recall@{k}"] += hit
            vals[f"precision@{k}"] += hit / k
            vals[f"ndcg@{k}"] += 1 / math.log2(r + 1) if hit else 0.0
            vals[f"mrr@{k}"] += 1 / r if hit else 0.0
    return {key: v / len(ranks) for key, v in vals.items()}


def random_case(seed, b=37, n=23, integer=True):
    g = torch.Generator().manual_seed(seed)
    if integer:  # small integer scores force many ties
        scores = torch.randint(0, 4, (b, n), generator=g).float()
    else:
        scores = torch.randn(b, n, generator=g)
    targets = torch.randint(1, n, (b,), generator=g)
    mask = torch.rand(b, n, generator=g) < 0.3
    mask[:, 0] = True
    # Some targets repeat a seen item: the mask must not hide them.
    mask[torch.arange(0, b, 3), targets[torch.arange(0, b, 3)]] = True
    return scores, targets, mask


@pytest.mark.parametrize("seed,integer", [(0, True), (1, True), (2, False)])
def test_ranks_match_naive(seed, integer):
    scores, targets, mask = random_case(seed, integer=integer)
    assert torch.equal(target_ranks(scores, targets, mask), naive_ranks(scores, targets, mask))
    assert torch.equal(target_ranks(scores, targets), naive_ranks(scores, targets, None))
    assert target_ranks(scores, targets, mask).dtype == torch.long


def test_ranks_hand_example():
    scores = torch.tensor([[9.0, 0.5, 0.9, 0.7, 0.7, 0.1]])
    mask = torch.tensor([[True, False, False, False, False, False]])
    # target item 3 (0.7): item 2 (0.9) and tied item 4 (0.7) rank ahead; padding 0 is masked.
    assert target_ranks(scores, torch.tensor([3]), mask).tolist() == [3]
    mask2 = mask.clone()
    mask2[0, 2] = True  # seen item no longer competes
    assert target_ranks(scores, torch.tensor([3]), mask2).tolist() == [2]
    # Target masked itself (a repeat) is still ranked.
    mask3 = mask.clone()
    mask3[0, 3] = True
    assert target_ranks(scores, torch.tensor([3]), mask3).tolist() == [3]


def test_all_equal_scores_get_worst_rank():
    scores = torch.zeros(4, 10)
    mask = torch.zeros(4, 10, dtype=torch.bool)
    mask[:, 0] = True
    mask[1, 5:] = True
    ranks = target_ranks(scores, torch.tensor([1, 2, 9, 4]), mask)
    assert ranks.tolist() == [9, 4, 9, 9]
    m = RankingMetrics(ks=(1,))
    m.update(ranks)
    assert float(m.compute()["hr@1"]) == 0.0


def test_nan_scores_count_as_minus_inf():
    scores = torch.tensor([[0.0, float("nan"), 1.0, 2.0], [0.0, float("nan"), float("nan"), 2.0]])
    mask = torch.tensor([[True, False, False, False]] * 2)
    # NaN non-target never beats a finite target; a NaN target ties with every other NaN.
    assert target_ranks(scores, torch.tensor([2, 1]), mask).tolist() == [2, 3]


def test_ranks_bad_input():
    s = torch.zeros(3, 5)
    with pytest.raises(ValueError):
        target_ranks(s, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError):
        target_ranks(s, torch.zeros(3, dtype=torch.long), torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError):
        target_ranks(s, torch.zeros(3, dtype=torch.long), torch.zeros(3, 5))
    with pytest.raises(ValueError):
        target_ranks(s[0], torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        target_ranks(s, torch.tensor([0, 1, 5]))
    with pytest.raises(ValueError):
        target_ranks(s, torch.zeros(3))
    with pytest.raises(ValueError):
        RankingMetrics().update(torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        RankingMetrics().update(torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        RankingMetrics(ks=(0, 5))
    with pytest.raises(ValueError):
        PerItemMetrics(5).update(torch.tensor([1, 2]), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError):
        PerItemMetrics(5).update(torch.tensor([1, 5]), torch.tensor([1, 2]))


def test_ranking_metrics_hand_example():
    m = RankingMetrics(ks=(1, 5), prefix="val/")
    m.update(torch.tensor([3, 1]))
    m.update(torch.tensor([7]))
    out = m.compute()
    assert set(out) == {f"val/{n}@{k}" for n in METRIC_NAMES for k in (1, 5)}
    assert out["val/hr@1"].item() == pytest.approx(1 / 3)
    assert out["val/hr@5"].item() == pytest.approx(2 / 3)
    assert out["val/recall@5"].item() == pytest.approx(2 / 3)
    assert out["val/precision@5"].item() == pytest.approx(2 / 15)
    # ndcg@5: rank 3 -> 1/log2(4) = 0.5, rank 1 -> 1, rank 7 -> 0.
    assert out["val/ndcg@5"].item() == pytest.approx(1.5 / 3)
    assert out["val/mrr@5"].item() == pytest.approx((1 / 3 + 1) / 3)
    assert out["val/mrr@1"].item() == pytest.approx(1 / 3)
    assert out["val/ndcg@1"].dtype == torch.float64


def test_ranking_metrics_match_naive():
    scores, targets, mask = random_case(5, b=200, n=40)
    ranks = target_ranks(scores, targets, mask)
    m = RankingMetrics(ks=KS)
    for chunk in ranks.split(17):
        m.update(chunk)
    out = m.compute()
    for key, v in naive_metrics(ranks, KS).items():
        assert out[key].item() == pytest.approx(v, abs=1e-12), key


def test_empty_compute_is_nan():
    with pytest.warns(UserWarning):  # torchmetrics warns on compute before update
        out = RankingMetrics(ks=(1,)).compute()
    assert math.isnan(out["hr@1"].item())


def test_merge_states_like_ddp():
    scores, targets, mask = random_case(7, b=101, n=30)
    ranks = target_ranks(scores, targets, mask)
    full, a, b = RankingMetrics(ks=KS), RankingMetrics(ks=KS), RankingMetrics(ks=KS)
    full.update(ranks)
    a.update(ranks[:50])
    b.update(ranks[50:])
    # Manual sum of states, as the "sum" all-reduce does.
    c = RankingMetrics(ks=KS)
    c.update(ranks[:0])
    c.sums = a.sums + b.sums
    c.count = a.count + b.count
    a.merge_state(b)
    for key, v in full.compute().items():
        assert a.compute()[key].item() == pytest.approx(v.item(), abs=1e-12)
        assert c.compute()[key].item() == pytest.approx(v.item(), abs=1e-12)

    items = PerItemMetrics(30, k=5)
    pa, pb = PerItemMetrics(30, k=5), PerItemMetrics(30, k=5)
    items.update(targets, ranks)
    pa.update(targets[:50], ranks[:50])
    pb.update(targets[50:], ranks[50:])
    pa.merge_state(pb)
    for key, v in items.compute().items():
        assert torch.allclose(pa.compute()[key], v), key


def test_per_item_matches_naive():
    scores, targets, mask = random_case(11, b=300, n=25)
    ranks = target_ranks(scores, targets, mask)
    m = PerItemMetrics(25, k=5)
    m.update(targets[:100], ranks[:100])
    m.update(targets[100:], ranks[100:])
    out = m.compute()
    assert out["count"].dtype == torch.long and out["ndcg"].dtype == torch.float64
    for i in range(25):
        rs = [int(r) for t, r in zip(targets, ranks) if int(t) == i]
        assert int(out["count"][i]) == len(rs)
        hr = sum(r <= 5 for r in rs) / len(rs) if rs else 0.0
        nd = sum(1 / math.log2(r + 1) for r in rs if r <= 5) / len(rs) if rs else 0.0
        assert out["hr"][i].item() == pytest.approx(hr)
        assert out["recall"][i].item() == pytest.approx(hr)
        assert out["ndcg"][i].item() == pytest.approx(nd)
    assert int(out["count"][0]) == 0 and out["hr"][0].item() == 0.0  # padding never a target here


def test_ranks_excluding_equals_target_ranks_with_mask():
    from embfreq.metrics import ranks_excluding

    g = torch.Generator().manual_seed(5)
    for trial in range(20):
        b, n = 17, 30
        scores = torch.randint(-3, 4, (b, n), generator=g).float()  # many ties
        if trial % 3 == 0:
            scores[0, 5] = float("nan")
            scores[1, 2] = float("-inf")
        targets = torch.randint(1, n, (b,), generator=g)
        mask = torch.rand(b, n, generator=g) < 0.3
        mask[:, 0] = True
        rows, cols = mask.nonzero(as_tuple=True)
        keep = cols != 0
        if trial % 3 == 1:
            scores[2, targets[2]] = float("nan")  # a NaN target
            scores[3] = float("nan")
        expected = target_ranks(scores.clone(), targets, mask)
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):  # in-place count, and the mask path
            got = ranks_excluding(scores.to(dtype, copy=True), targets, rows[keep], cols[keep])
            assert torch.equal(got, expected), dtype


def test_ranks_excluding_counts_exactly_past_float16_precision():
    """float16 has 11 mantissa bits: a 0/1 row sum of it stops being exact past 2048, so the count
    goes through the bool mask there; float32 counts in place (exact to 2^24)."""
    from embfreq.metrics import ranks_excluding

    n = 5000
    for dtype in (torch.float16, torch.float32):
        scores = torch.ones(2, n, dtype=dtype)  # every item ties with the target, which ranks below all
        scores[1, 1:4001] = 2.0  # row 1: 4000 items above, 998 tied below the target
        got = ranks_excluding(scores, torch.tensor([4500, 4500]))
        assert got.tolist() == [n - 1, n - 1], dtype  # items 1..n-1 but the target: n - 2 ahead, rank n - 1


def test_all_nan_scores_rank_every_target_last():
    """A diverged model (every score NaN) earns the worst rank, never rank 1 (HR@10 = 1.0 before)."""
    from embfreq.metrics import ranks_excluding

    scores = torch.full((4, 30), float("nan"))
    targets = torch.tensor([1, 5, 7, 29])
    seen_rows, seen_cols = torch.tensor([0, 0, 2]), torch.tensor([2, 3, 9])
    got = ranks_excluding(scores, targets, seen_rows, seen_cols)
    # 29 real items (column 0 is padding), minus the user's seen ones
    assert got.tolist() == [27, 29, 28, 29]
