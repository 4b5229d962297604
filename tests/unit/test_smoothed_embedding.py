import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from embfreq.nn.smoothed_embedding import SmoothedItemEmbedding

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")

TOL = dict(rtol=1e-10, atol=1e-10)


def random_problem(seed, n=40, density=0.15, pad=True, empty_rows=(3, 7, 11)):
    """Item frequencies and a left-normalised random sparse P (some rows empty, padding column empty)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, n, generator=g, dtype=torch.float64)
    a = a * (torch.rand(n, n, generator=g) < density)
    a[list(empty_rows)] = 0
    if pad:
        a[0] = 0
        a[:, 0] = 0
    s = a.sum(1, keepdim=True)
    p = torch.where(s > 0, a / torch.where(s > 0, s, 1.0), 0.0)
    freq = torch.randint(0, 30, (n,), generator=g)
    if pad:
        freq[0] = 0
    return freq, p


def random_band(seed):
    g = torch.Generator().manual_seed(1000 + seed)
    lo, hi = sorted(torch.randint(0, 30, (2,), generator=g).tolist())
    return [(lo, hi), (None, hi), (lo, None)][seed % 3]


def band_mask(freq, lo, hi, pad):
    m = torch.ones(len(freq), dtype=torch.bool)
    if lo is not None:
        m &= freq >= lo
    if hi is not None:
        m &= freq <= hi
    if pad is not None:
        m[pad] = False
    return m


def dense_reference(weight, p, in_band, pad, neighbours):
    """The study's formula with dense float64 matrices; ``weight`` may need grad."""
    n = len(in_band)
    p = p.clone()
    if pad is not None:
        p[:, pad] = 0  # the padding row is never a neighbour
    t = in_band.to(torch.float64).unsqueeze(1)
    if neighbours == "all":
        return weight * (1 - t) + (p @ weight) * t
    out = torch.nonzero(~in_band).flatten()
    select = torch.zeros(n, len(out), dtype=torch.float64)
    select[out, torch.arange(len(out))] = 1.0
    pr = p[:, out]
    s = pr.sum(1, keepdim=True)
    pr = torch.where(s > 0, pr / torch.where(s > 0, s, 1.0), 0.0)
    return (select @ weight) * (1 - t) + (pr @ weight) * t


def check_against_reference(m, p, in_band, pad, ids):
    w_ref = m.own_weight.detach().clone().requires_grad_(True)
    table_ref = dense_reference(w_ref, p, in_band, pad, m.neighbours)
    r = torch.randn(*ids.shape, m.embedding_dim, dtype=torch.float64)
    out = m(ids)
    out_ref = F.embedding(ids, table_ref, pad)
    torch.testing.assert_close(out, out_ref, **TOL)
    torch.testing.assert_close(m.weight, table_ref, **TOL)
    m.zero_grad()
    (out * r).sum().backward()
    (out_ref * r).sum().backward()
    torch.testing.assert_close(m.own_weight.grad, w_ref.grad, **TOL)


# ---- hand-checked example ---------------------------------------------------------------------

HAND_P = torch.tensor(
    [
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.5, 0.5, 0.0],
        [0.0, 0.25, 0.25, 0.5],
        [0.0, 0.0, 1.0, 0.0],
    ],
    dtype=torch.float64,
)
HAND_FREQ = torch.tensor([0, 10, 2, 1])


def test_hand_checked_all_neighbours():
    m = SmoothedItemEmbedding(4, 2, HAND_FREQ, HAND_P.to_sparse_csr(), upper_freq=2, padding_idx=0, dtype=torch.float64)
    assert m.in_band.tolist() == [False, False, True, True]
    assert m.band_idx.tolist() == [2, 3] and m.num_in_band == 2
    with torch.no_grad():
        m.own_weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    # item 2: .25*[1,2] + .25*[3,4] + .5*[5,6]; item 3: its only neighbour, item 2
    expected = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.5, 4.5], [3.0, 4.0]], dtype=torch.float64)
    assert torch.equal(m.weight, expected)
    m(torch.arange(4)).sum().backward()
    # W1: own row + .25 via item 2; W2: .25 via item 2 + 1 via item 3; W3: .5 via item 2; padding: none
    assert m.own_weight.grad[:, 0].tolist() == [0.0, 1.25, 1.25, 0.5]
    assert m.parameters_saved == 0
    assert m.band_nnz == 4  # row 2: three entries, row 3: one


def test_hand_checked_outside_band():
    m = SmoothedItemEmbedding(
        4, 2, HAND_FREQ, HAND_P.to_sparse(), upper_freq=2, padding_idx=0, neighbours="outside_band", dtype=torch.float64
    )
    assert m.own_weight.shape == (2, 2)  # rows of items 0 and 1
    assert m.parameters_saved == 4
    with torch.no_grad():
        m.own_weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0]]))
    # item 2: only out-of-band neighbour is item 1 (weight .25 -> 1); item 3 has none -> zero
    expected = torch.tensor([[0.0, 0.0], [1.0, 2.0], [1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(m.weight, expected)
    assert m.band_nnz == 1  # only (2, 1) survives
    m(torch.tensor([1, 2, 2, 3])).sum().backward()
    assert m.own_weight.grad.tolist() == [[0.0, 0.0], [3.0, 3.0]]  # item 1 once, item 2 twice via weight 1


# ---- random problems against the dense reference ----------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("neighbours", ["all", "outside_band"])
@pytest.mark.parametrize("pad", [None, 0])
def test_random_matches_dense_reference(seed, neighbours, pad):
    freq, p = random_problem(seed, pad=pad is not None)
    lo, hi = random_band(seed)
    torch.manual_seed(seed)
    layout = p.to_sparse_csr() if seed % 2 else p.to_sparse()
    m = SmoothedItemEmbedding(40, 5, freq, layout, lo, hi, padding_idx=pad, neighbours=neighbours, dtype=torch.float64)
    in_band = band_mask(freq, lo, hi, pad)
    assert torch.equal(m.in_band, in_band)
    ids = torch.randint(0, 40, (4, 9))
    check_against_reference(m, p, in_band, pad, ids)


@pytest.mark.parametrize("seed", range(3))
def test_double_converts_weight_and_operator_values(seed):
    # values are stored in the weight dtype at construction, so use a float32 P to compare exactly
    freq, p = random_problem(seed)
    p = p.float().double()
    lo, hi = random_band(seed)
    m = SmoothedItemEmbedding(40, 5, freq, p.float().to_sparse_csr(), lo, hi, padding_idx=0)
    assert m.own_weight.dtype == torch.float32 and m.q_values.dtype == torch.float32
    m = m.double()
    assert m.own_weight.dtype == torch.float64
    assert m.q_values.dtype == torch.float64 and m.q_t_values.dtype == torch.float64
    check_against_reference(m, p, band_mask(freq, lo, hi, 0), 0, torch.randint(0, 40, (4, 9)))


@pytest.mark.parametrize("neighbours", ["all", "outside_band"])
def test_empty_band(neighbours):
    freq, p = random_problem(0)
    m = SmoothedItemEmbedding(40, 4, freq, p.to_sparse_csr(), 100, 200, padding_idx=0, neighbours=neighbours)
    assert m.num_in_band == 0 and m.parameters_saved == 0
    assert m.weight is m.own_weight
    assert m.band_nnz == 0 and m.q_col.numel() == 0  # no operator is kept (checkpoints stay small)


@pytest.mark.parametrize("neighbours", ["all", "outside_band"])
def test_band_covers_every_item(neighbours):
    freq, p = random_problem(1)
    m = SmoothedItemEmbedding(40, 4, freq, p.to_sparse_csr(), 0, None, padding_idx=0, neighbours=neighbours,
                              dtype=torch.float64)
    assert m.num_in_band == 39 and not m.in_band[0]
    if neighbours == "outside_band":
        assert m.own_weight.shape == (1, 4)  # only the padding row
        assert torch.equal(m.weight, torch.zeros(40, 4, dtype=torch.float64))
    check_against_reference(m, p, m.in_band.clone(), 0, torch.randint(0, 40, (3, 5)))


def test_isolated_band_items_get_zero_vector():
    freq, p = random_problem(2, empty_rows=(3, 7))
    freq[3], freq[7] = 1, 1
    m = SmoothedItemEmbedding(40, 4, freq, p.to_sparse_csr(), 0, 1, padding_idx=0, dtype=torch.float64)
    table = m.weight
    assert m.in_band[3] and m.in_band[7]
    assert torch.equal(table[[3, 7]], torch.zeros(2, 4, dtype=torch.float64))


def test_bounds_are_inclusive():
    freq = torch.tensor([0, 1, 2, 3, 4, 5])
    p = torch.eye(6).to_sparse_csr()
    m = SmoothedItemEmbedding(6, 2, freq, p, 2, 4)
    assert m.band_idx.tolist() == [2, 3, 4]
    m = SmoothedItemEmbedding(6, 2, freq.double(), p, 2.0, 2.0)
    assert m.band_idx.tolist() == [2]


def test_padding_column_of_operator_is_ignored():
    freq, p = random_problem(3)
    p[:, 0] = 0.3  # the padding row shows up as a neighbour of everybody
    torch.manual_seed(0)
    m = SmoothedItemEmbedding(40, 4, freq, p.to_sparse_csr(), 0, 10, padding_idx=0, dtype=torch.float64)
    check_against_reference(m, p, m.in_band.clone(), 0, torch.randint(0, 40, (6,)))
    assert torch.equal(m.own_weight.grad[0], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(m.weight[0], torch.zeros(4, dtype=torch.float64))


def test_negative_padding_idx_is_normalised():
    freq, p = random_problem(0, pad=False)
    m = SmoothedItemEmbedding(40, 4, freq, p.to_sparse_csr(), 0, 10, padding_idx=-1)
    assert m.padding_idx == 39 and not m.in_band[39]
    assert torch.equal(m.own_weight[39], torch.zeros(4))


# ---- no band is nn.Embedding -----------------------------------------------------------------


@pytest.mark.parametrize("pad", [None, 0, 3])
def test_no_band_equals_nn_embedding(pad):
    freq, p = random_problem(4, pad=False)
    torch.manual_seed(7)
    ref = nn.Embedding(40, 6, padding_idx=pad)
    torch.manual_seed(7)
    m = SmoothedItemEmbedding(40, 6, freq, p.to_sparse_csr(), padding_idx=pad)
    assert m.num_in_band == 0
    assert m.weight is m.own_weight  # no band: the own table itself, a Parameter as nn.Embedding's
    assert torch.equal(m.own_weight, ref.weight)
    ids = torch.randint(0, 40, (5, 7))
    ids[0, :3] = 0
    r = torch.randn(5, 7, 6)
    out, out_ref = m(ids), ref(ids)
    assert torch.equal(out, out_ref)
    (out * r).sum().backward()
    (out_ref * r).sum().backward()
    assert torch.equal(m.own_weight.grad, ref.weight.grad)


# ---- outside_band specifics -------------------------------------------------------------------


def test_outside_band_parameter_count():
    freq, p = random_problem(5)
    m = SmoothedItemEmbedding(40, 8, freq, p.to_sparse_csr(), 5, 20, padding_idx=0, neighbours="outside_band")
    assert sum(x.numel() for x in m.parameters()) == (40 - m.num_in_band) * 8
    assert m.parameters_saved == m.num_in_band * 8
    full = SmoothedItemEmbedding(40, 8, freq, p.to_sparse_csr(), 5, 20, padding_idx=0)
    assert full.own_weight.shape == (40, 8) and full.parameters_saved == 0


def test_outside_band_item_with_only_band_neighbours_is_zero():
    freq = torch.tensor([0, 10, 1, 1, 10])
    dense = torch.tensor(
        [[0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0.5, 0.5, 0], [0, 0.2, 0, 0.4, 0.4], [0, 0, 0, 0, 1]],
        dtype=torch.float64,
    )
    m = SmoothedItemEmbedding(5, 3, freq, dense.to_sparse_csr(), 0, 1, padding_idx=0, neighbours="outside_band",
                              dtype=torch.float64)
    table = m.weight
    w = m.own_weight.detach()  # rows of items 0, 1, 4
    assert torch.equal(table[2], torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(table[3], (0.2 * w[1] + 0.4 * w[2]) / 0.6, **TOL)


# ---- eval cache --------------------------------------------------------------------------------


def test_eval_cache_reused_and_invalidated_by_optimizer_step():
    freq, p = random_problem(0)
    m = SmoothedItemEmbedding(40, 4, freq, p.to_sparse_csr(), 0, 10, padding_idx=0)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m.eval()
    with torch.no_grad():
        t1 = m.weight
        assert m.weight is t1
        assert torch.equal(m(torch.tensor([1, 2])), t1[[1, 2]])
    assert m.weight is not t1  # grad enabled: a table with a graph, not the no-grad one
    m.train()
    assert m.weight.requires_grad
    m(torch.arange(40)).pow(2).sum().backward()
    opt.step()
    m.eval()
    with torch.no_grad():
        t2 = m.weight
        assert t2 is not t1 and not torch.equal(t1, t2)
        m.train()
        assert m.weight is t2  # the same parameters: kept, whatever the mode


def test_eval_cache_invalidated_by_load_state_dict_and_dtype():
    freq, p = random_problem(1)
    m = SmoothedItemEmbedding(40, 4, freq, p.to_sparse_csr(), 0, 10, padding_idx=0).eval()
    with torch.no_grad():
        t1 = m.weight
        sd = {k: v.clone() for k, v in m.state_dict().items()}
        sd["own_weight"] += 1
        m.load_state_dict(sd)
        t2 = m.weight
        assert not torch.equal(t1, t2)
        m.double()
        assert m.weight.dtype == torch.float64


# ---- state dict --------------------------------------------------------------------------------


@pytest.mark.parametrize("neighbours", ["all", "outside_band"])
def test_state_dict_round_trip(tmp_path, neighbours):
    freq, p = random_problem(2)
    args = (40, 4, freq, p.to_sparse_csr(), 0, 10)
    torch.manual_seed(0)
    m = SmoothedItemEmbedding(*args, padding_idx=0, neighbours=neighbours)
    with torch.no_grad():
        m.own_weight.add_(torch.randn_like(m.own_weight))
    path = tmp_path / "emb.pt"
    torch.save(m.state_dict(), path)
    torch.manual_seed(1)
    m2 = SmoothedItemEmbedding(*args, padding_idx=0, neighbours=neighbours)
    m2.load_state_dict(torch.load(path, weights_only=True))
    ids = torch.randint(0, 40, (3, 4))
    assert torch.equal(m(ids), m2(ids))
    # a whole-model buffer round trip through an in-memory checkpoint too
    buf = io.BytesIO()
    torch.save({"model": m.state_dict()}, buf)
    buf.seek(0)
    m3 = SmoothedItemEmbedding(*args, padding_idx=0, neighbours=neighbours)
    m3.load_state_dict(torch.load(buf, weights_only=True)["model"])
    assert torch.equal(m.weight, m3.weight)


# ---- errors ------------------------------------------------------------------------------------


def _ok_args():
    freq, p = random_problem(0, n=6, empty_rows=())
    return dict(num_embeddings=6, embedding_dim=2, item_freq=freq, operator=p.to_sparse_csr())


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(lower_freq=5, upper_freq=2), "lower_freq"),
        (dict(lower_freq=-1), "lower_freq"),
        (dict(upper_freq=-0.5), "upper_freq"),
        (dict(item_freq=torch.zeros(5)), "item_freq"),
        (dict(item_freq=torch.zeros(6, 1)), "item_freq"),
        (dict(operator=lambda: "P"), "operator must be"),
        (dict(operator=None), "operator is required"),
        (dict(operator=lambda: torch.full((6, 6), float("nan")).to_sparse()), "finite"),
        (dict(operator=lambda: torch.eye(5).to_sparse_csr()), r"shape \(6, 6\)"),
        (dict(operator=lambda: torch.ones(6, 6, 2).to_sparse()), r"shape \(6, 6\)"),
        (dict(padding_idx=6), "padding_idx"),
        (dict(padding_idx=-7), "padding_idx"),
        (dict(neighbours="in_band"), "neighbours"),
        (dict(embedding_dim=0), "embedding_dim"),
    ],
)
def test_value_errors(change, match):
    # operators are built lazily so that collection does not create sparse tensors
    kwargs = {**_ok_args(), **{k: v() if callable(v) else v for k, v in change.items()}}
    with pytest.raises(ValueError, match=match):
        SmoothedItemEmbedding(**kwargs)


def test_extra_repr():
    m = SmoothedItemEmbedding(**_ok_args(), lower_freq=1, upper_freq=3, padding_idx=0)
    s = repr(m)
    assert "padding_idx=0" in s and "num_in_band=" in s and "neighbours='all'" in s


# ---- CUDA --------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("neighbours", ["all", "outside_band"])
def test_cuda_matches_cpu(neighbours):
    freq, p = random_problem(3)
    args = (40, 4, freq, p.to_sparse_csr(), 0, 12)
    torch.manual_seed(0)
    m = SmoothedItemEmbedding(*args, padding_idx=0, neighbours=neighbours, dtype=torch.float64)
    moved = copy.deepcopy(m).cuda()  # .to(device) path
    built = SmoothedItemEmbedding(*args, padding_idx=0, neighbours=neighbours, dtype=torch.float64, device="cuda")
    built.load_state_dict(m.state_dict())
    ids = torch.randint(0, 40, (3, 6))
    out = m(ids)
    out.sum().backward()
    for mc in (moved, built):
        assert mc.q_col.is_cuda and mc.q_values.is_cuda and mc.in_band.is_cuda
        out_c = mc(ids.cuda())
        torch.testing.assert_close(out_c.cpu(), out, **TOL)
        out_c.sum().backward()
        torch.testing.assert_close(mc.own_weight.grad.cpu(), m.own_weight.grad, **TOL)
        mc.eval()
        with torch.no_grad():
            assert mc.weight is mc.weight


def test_lookup_rejects_ids_out_of_range():
    freq, p = random_problem(0)
    for neighbours in ("all", "outside_band"):
        m = SmoothedItemEmbedding(40, 4, freq, p.to_sparse_csr(), 0, 10, padding_idx=0, neighbours=neighbours)
        for bad in (torch.tensor([3, 40]), torch.tensor([-1, 2])):
            with pytest.raises(IndexError):
                m(bad)


@pytest.mark.parametrize("cls", ["sasrec", "mf_bpr"])
def test_own_rows_start_equal_in_both_neighbour_modes(cls):
    """With the same seed, every out-of-band item's own row starts with the same value in `all` and
    `outside_band` (the full table's initialiser, not one fitted to the smaller table's shape)."""
    from functools import partial

    from embfreq.models import MFBPR, SASRec
    from embfreq.nn.sasrec import SASRecEncoder

    n, d = 40, 8
    freq = torch.cat([torch.zeros(1), torch.arange(1, n + 1, dtype=torch.float32) % 9])
    op = torch.eye(n + 1).to_sparse_csr()
    tables = {}
    for mode in ("all", "outside_band"):
        torch.manual_seed(3)
        table = SmoothedItemEmbedding(n + 1, d, freq, op, 0, 5, padding_idx=0, neighbours=mode)
        model = (SASRec(partial(SASRecEncoder, maxlen=5, embedding_dim=d), table) if cls == "sasrec"
                 else MFBPR(num_users=7, item_table=table))
        tables[mode] = (model.items.own_weight.detach(), model.items.own_rows)
    full, _ = tables["all"]
    small, rows = tables["outside_band"]
    assert len(rows) < n + 1 and small.shape[0] == len(rows)
    torch.testing.assert_close(small, full[rows], rtol=0, atol=0)
    if cls == "sasrec":  # xavier normal of the full (N + 1, D) table
        std = float(full[1:].std())
        assert std == pytest.approx((2 / (n + 1 + d)) ** 0.5, rel=0.15)
