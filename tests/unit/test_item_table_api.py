"""The public item-table API (issue 31): `.weight` is the effective table for every table and both
neighbour modes, `from_interactions` builds what the DataModule builds, any operator format gives the
same module, the table is computed once per step, and `Band` owns the bounds."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from embfreq import SmoothedItemEmbedding
from embfreq.band import Band, BandError, band_label
from embfreq.errors import ConfigError
from embfreq.nn import ITEM_TABLES, ItemTable, interaction_statistics

N, D = 30, 6
OPTIONS = {"neighbours": {}, "outside_band": {"neighbours": "outside_band"}, "shared": {},
           "hashed": {"buckets": 5}, "mixed_dim": {"band_dim": 2}, "qr": {"buckets": 4}}


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def interactions(seed=0, users=40, n=N):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, users, 300)
    i = rng.zipf(1.5, 300) % (n - 1) + 1  # skewed, item 0 is padding
    return u, i


def table(name, seed=0, lo=0, hi=3, **kw):
    u, i = interactions(seed)
    cls = ITEM_TABLES["neighbours" if name == "outside_band" else name]
    torch.manual_seed(seed)
    return cls.from_interactions(u, i, N, D, lower_freq=lo, upper_freq=hi, padding_idx=0, **OPTIONS[name], **kw)


@pytest.mark.parametrize("name", OPTIONS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_weight_is_what_forward_reads_with_the_same_gradients(name, mode):
    a, b = table(name, dtype=torch.float64), table(name, dtype=torch.float64)
    a.train(mode == "train"), b.train(mode == "train")
    assert a.num_in_band > 0 and a.weight.shape == (N, D)
    ids = torch.tensor([[1, 2, 3, 29], [4, 5, 5, 7]])
    r = torch.randn(2, 4, D, dtype=torch.float64)
    out_forward, out_weight = a(ids), b.weight[ids]
    assert torch.equal(out_forward, out_weight)
    (out_forward * r).sum().backward()
    (out_weight * r).sum().backward()
    for (k, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert pa.grad is not None and torch.equal(pa.grad, pb.grad), k
    assert torch.count_nonzero(a.weight[0]) == 0  # padding row
    assert "weight" not in dict(a.named_parameters())  # the learnable vectors live under another name


def test_neighbours_weight_equals_the_dense_float64_formula():
    """W' = W * (1 - t) + (P @ W) * t with P the left-normalised co-occurrence, padding column dropped."""
    u, i = interactions(3)
    freq, op = interaction_statistics(u, i, N, padding_idx=0)
    m = SmoothedItemEmbedding(N, D, freq, op, 0, 3, padding_idx=0, dtype=torch.float64)
    w = m.own_weight.detach().clone().requires_grad_(True)
    p = torch.from_numpy(op.toarray()).double()
    p[:, 0] = 0
    t = m.in_band.double().unsqueeze(1)
    ref = w * (1 - t) + (p @ w) * t
    torch.testing.assert_close(m.weight, ref, rtol=1e-12, atol=1e-12)
    r = torch.randn(N, D, dtype=torch.float64)
    (m.weight * r).sum().backward()
    (ref * r).sum().backward()
    torch.testing.assert_close(m.own_weight.grad, w.grad, rtol=1e-12, atol=1e-12)


def test_from_interactions_equals_the_datamodule_on_bundled_beauty(tmp_path):
    from embfreq.data.datamodule import RecDataModule

    dm = RecDataModule(bundled="Beauty.txt.gz", format="seq", min_user_interactions=5, min_item_interactions=5,
                       cache_dir=str(tmp_path))
    dm.setup("fit")
    split = dm._load().split
    n = dm.num_items + 1
    freq, op = interaction_statistics(split.train_users, split.train_items, n, padding_idx=0)
    assert torch.equal(freq, dm.item_freq)
    mine, theirs = sp.csr_matrix(op), dm._load().operator.tocsr()
    assert mine.shape == theirs.shape and mine.nnz == theirs.nnz > 0
    assert np.array_equal(mine.indptr, theirs.indptr) and np.array_equal(mine.indices, theirs.indices)
    assert np.array_equal(mine.data, theirs.data)  # every entry, bit for bit
    a = SmoothedItemEmbedding.from_interactions(split.train_users, split.train_items, n, 8, lower_freq=0,
                                                upper_freq=5, padding_idx=0)
    b = SmoothedItemEmbedding(n, 8, dm.item_freq, dm.operator, 0, 5, padding_idx=0)
    for k, v in b.named_buffers():
        assert torch.equal(getattr(a, k), v), k


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil", "dense-numpy", "torch-coo", "torch-csr", "torch-csc"])
@pytest.mark.parametrize("neighbours", ["all", "outside_band"])
def test_every_operator_format_gives_the_same_module(fmt, neighbours):
    u, i = interactions(5)
    freq, op = interaction_statistics(u, i, N, padding_idx=0)
    ref = SmoothedItemEmbedding(N, D, freq, op, 0, 3, padding_idx=0, neighbours=neighbours)
    dense = op.toarray()
    given = {"csr": lambda: sp.csr_matrix(dense), "csc": lambda: sp.csc_matrix(dense),
             "coo": lambda: sp.coo_matrix(dense), "lil": lambda: sp.lil_matrix(dense), "dense-numpy": lambda: dense,
             "torch-coo": lambda: torch.from_numpy(dense).to_sparse(),
             "torch-csr": lambda: torch.from_numpy(dense).to_sparse_csr(),
             "torch-csc": lambda: torch.from_numpy(dense).to_sparse_csc()}[fmt]()
    m = SmoothedItemEmbedding(N, D, freq, given, 0, 3, padding_idx=0, neighbours=neighbours)
    for k, v in ref.named_buffers():
        assert torch.equal(getattr(m, k), v), k


@pytest.mark.parametrize("name", OPTIONS)
def test_same_constructor_shape_and_from_interactions_for_every_table(name):
    u, i = interactions(1)
    freq, op = interaction_statistics(u, i, N, padding_idx=0)
    cls = ITEM_TABLES["neighbours" if name == "outside_band" else name]
    torch.manual_seed(0)
    positional = cls(N, D, freq, op, 0, 3, padding_idx=0, **OPTIONS[name])
    torch.manual_seed(0)
    built = cls.from_interactions(u, i, N, D, lower_freq=0, upper_freq=3, padding_idx=0, **OPTIONS[name])
    assert isinstance(built, ItemTable) and built.band == Band(0, 3)
    for k, v in positional.state_dict().items():
        assert torch.equal(built.state_dict()[k], v), k
    assert built.parameters_saved == N * D - sum(p.numel() for p in built.parameters())
    assert torch.equal(built.in_band, (freq >= 0) & (freq <= 3) & (torch.arange(N) != 0))


@pytest.mark.parametrize("users, items, match", [
    ([0, 1], [1], "one entry per interaction"),
    ([0, 1], [1, N], "outside a table"),
    ([0, -1], [1, 2], "ids >= 0"),
    ([0, 1], [1.5, 2], "integer ids"),
    ([[0, 1]], [[1, 2]], "1-D"),
    ([0, 1], [0, 2], "padding_idx"),
])
def test_from_interactions_refuses_bad_ids(users, items, match):
    with pytest.raises(ValueError, match=match):
        SmoothedItemEmbedding.from_interactions(users, items, N, D, padding_idx=0)


def test_the_table_is_computed_once_per_step_and_again_after_the_update(monkeypatch):
    m = table("neighbours")
    calls = []
    compute = type(m)._compute_table
    monkeypatch.setattr(type(m), "_compute_table", lambda self: calls.append(1) or compute(self))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    ids = torch.tensor([1, 2, 3])
    for step in range(2):  # two accumulated backward passes, then one step
        loss = (m(ids) * m.weight[ids]).sum() + (m.weight @ m.weight.T).sum()
        loss.backward()
    assert len(calls) == 2  # once per forward-backward, whatever the number of reads
    before = m.weight.detach().clone()
    opt.step()
    assert len(calls) == 3 and not torch.equal(m.weight, before)


def test_writing_into_the_computed_table_is_an_error_not_a_silent_loss():
    m = table("neighbours")
    with torch.no_grad():
        m.weight[1].fill_(5.0)
    with pytest.raises(RuntimeError, match="write to own_weight"):
        m.weight
    assert not torch.equal(m.weight[1], torch.full((D,), 5.0))  # the next read is computed afresh
    plain = table("neighbours", lo=None, hi=None)
    assert plain.weight is plain.own_weight  # no band: the parameter itself, written as nn.Embedding's


def test_band_owns_check_label_tag_and_mask():
    assert Band() == Band(None, None) and Band().is_none and Band().label == "baseline" == Band().tag
    assert Band(0, 5).label == "[0, 5]" and Band(0, 5).tag == "b0-5"
    assert Band(100, None).label == "[100, inf)" and Band(100, float("inf")) == Band(100, None)
    assert Band(None, 5).label == "(-inf, 5]" and Band(None, 5).tag == "b-inf-5"
    assert Band(2.5, 7.0).label == "[2.5, 7]" and band_label(10, 5) == "[10, 5]"  # reports label skipped runs
    freq = torch.tensor([0, 0, 3, 5, 9])
    assert Band(0, 5).mask(freq, padding_idx=0).tolist() == [False, True, True, True, False]
    assert Band().mask(freq).tolist() == [False] * 5
    assert sorted([Band(5, 20), Band(), Band(0, None), Band(0, 5)], key=Band.sort_key) == \
        [Band(), Band(0, 5), Band(0, None), Band(5, 20)]
    for lo, hi, match in [(-1, None, "lower_freq"), (None, -0.5, "upper_freq"), (True, None, "lower_freq"),
                          (float("nan"), None, "lower_freq"), ("5", None, "lower_freq"), (5, 2, "empty"),
                          (float("inf"), None, "finite")]:
        with pytest.raises(BandError, match=match) as e:
            Band(lo, hi)
        assert isinstance(e.value, ValueError) and isinstance(e.value, ConfigError)


def test_tables_refuse_a_bad_band_with_the_same_error():
    u, i = interactions()
    for cls in ITEM_TABLES.values():
        with pytest.raises(BandError, match="empty"):
            cls.from_interactions(u, i, N, D, lower_freq=5, upper_freq=2, padding_idx=0)


def test_report_knows_the_options_of_every_table():
    from embfreq.analysis.sweep.sweep_runs import TABLE_OPTIONS

    assert TABLE_OPTIONS == {name: cls.options for name, cls in ITEM_TABLES.items()}


@pytest.mark.parametrize("backward", [True, False])
def test_a_steps_table_and_graph_are_freed_without_the_garbage_collector(backward):
    """The kept table must not hold itself alive through its graph (a hook on it that referenced the
    table or the module made every step's table and graph a leak: +100 MB an epoch on Beauty)."""
    import gc
    import weakref

    m = table("neighbours")
    gc.disable()
    try:
        w = m.weight
        gone = weakref.ref(w)
        loss = (m(torch.tensor([1, 2, 3])) * w[:3]).sum()
        if backward:
            loss.backward()
        else:
            m.weight  # the same parameters: the kept table
        del w, loss
        if not backward:
            m.own_weight.data.add_(0)  # a new key: the next read replaces the kept table
            with torch.no_grad():
                m.own_weight.add_(1.0)
            m.weight
        assert gone() is None
    finally:
        gc.enable()
