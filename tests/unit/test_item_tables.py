"""Item-table strategies for band items (embfreq.nn.item_tables): sizes, values and gradients against
hand-built dense tables, band edge cases, spec errors, and each strategy inside the three models."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from functools import partial

from embfreq.models import GRU4Rec, MFBPR, SASRec
from embfreq.nn.gru4rec import GRU4RecEncoder
from embfreq.nn.sasrec import SASRecEncoder
from embfreq.nn.substitutes import item_hash
from tests.conftest import build_table as build_item_table
from embfreq.nn.smoothed_embedding import SmoothedItemEmbedding

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state",
                                        "ignore:.*does not have many workers", "ignore:.*val_dataloader",
                                        "ignore:.*LeafSpec.*")

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors here are tiny: a second thread only adds start-up and contention (100x on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


N, D = 30, 6  # rows (padding included) and width of the module-level problems
SPECS = {
    "shared": {"name": "shared"},
    "hashed": {"name": "hashed", "buckets": 5},
    "mixed_dim": {"name": "mixed_dim", "band_dim": 2},
    "qr": {"name": "qr", "buckets": 4},
}


def problem(seed=0, n=N):
    """Frequencies 0..9 (padding 0) and a row-normalised random sparse operator without padding."""
    g = torch.Generator().manual_seed(seed)
    freq = torch.randint(0, 10, (n,), generator=g)
    freq[0] = 0
    a = torch.rand(n, n, generator=g, dtype=torch.float64) * (torch.rand(n, n, generator=g) < 0.3)
    a[0], a[:, 0] = 0, 0
    s = a.sum(1, keepdim=True)
    return freq, torch.where(s > 0, a / torch.where(s > 0, s, 1.0), 0.0).to_sparse_csr()


def build(name, lo=0, hi=4, seed=0, pad=0, n=N, d=D):
    freq, op = problem(seed, n)
    torch.manual_seed(seed)
    return build_item_table(SPECS[name], n, d, freq, op, lower_freq=lo, upper_freq=hi, padding_idx=pad,
                            dtype=torch.float64)


def fmix32(h: int) -> int:
    """murmur3's 32-bit finaliser in Python ints: the reference for `item_hash`."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def dense_reference(m, params):
    """The effective table row by row from (copies of) the module's parameters, plain torch."""
    own = [int(i) for i in torch.nonzero(~m.in_band).flatten()]
    band = [int(i) for i in torch.nonzero(m.in_band).flatten()]
    rows = {item: params["own_weight"][r] for r, item in enumerate(own)}
    for rank, item in enumerate(band):
        if m.strategy == "shared":
            rows[item] = params["shared"][0]
        elif m.strategy == "hashed":
            rows[item] = params["bucket_weight"][fmix32(item) % m.buckets]
        elif m.strategy == "mixed_dim":
            v, p = params["band_weight"][rank], params["projection"]
            rows[item] = torch.stack([sum(v[k] * p[k, j] for k in range(len(v))) for j in range(p.shape[1])])
        else:
            rows[item] = params["quotient"][rank // m.buckets] + params["remainder"][rank % m.buckets]
    return torch.stack([rows[i] for i in range(m.num_embeddings)])


def allocated(m):
    return sum(p.numel() for p in m.parameters())


# ---- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SPECS, "neighbours/all", "neighbours/outside_band"])
def test_parameter_count_matches_formula(name):
    freq, op = problem()
    spec, mode = (SPECS[name], "all") if name in SPECS else ({"name": "neighbours"}, name.split("/")[1])
    m = build_item_table(spec, N, D, freq, op, lower_freq=0, upper_freq=4, neighbours=mode)
    nb = int(((freq <= 4) & (torch.arange(N) != 0)).sum())
    own = N - nb
    assert 0 < nb < N - 1 and m.num_in_band == nb and int(m.in_band.sum()) == nb
    want = {"shared": own * D + D, "hashed": (own + 5) * D, "mixed_dim": own * D + nb * 2 + 2 * D,
            "qr": (own + 4 + math.ceil(nb / 4)) * D, "neighbours/all": N * D, "neighbours/outside_band": own * D}
    assert allocated(m) == want[name]
    assert m.parameters_saved == N * D - want[name]
    assert m.own_weight.shape[0] == len(m.own_rows)


# ---- values and gradients against the dense reference -----------------------------------------


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("seed,lo,hi,pad", [(0, 0, 4, 0), (1, None, 3, 0), (2, 5, None, None), (3, 2, 6, 7)])
def test_matches_dense_reference(name, seed, lo, hi, pad):
    m = build(name, lo, hi, seed, pad)
    assert m.num_in_band > 0
    params = {k: p.detach().clone().requires_grad_(True) for k, p in m.named_parameters()}
    ref = dense_reference(m, params)
    # mixed_dim's matmul sums in another order than the loop: equal to rounding, not bit for bit
    tol = dict(rtol=1e-13, atol=1e-15) if name == "mixed_dim" else dict(rtol=0, atol=0)
    torch.testing.assert_close(m.weight, ref, **tol)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, N, (7, 5), generator=g)
    ids[0, :2] = 0  # padding ids, and repeats
    out, out_ref = m(ids), F.embedding(ids, ref, pad)
    torch.testing.assert_close(out, out_ref, **tol)
    r = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (out * r).sum().backward()
    (out_ref * r).sum().backward()
    for k, p in m.named_parameters():
        torch.testing.assert_close(p.grad, params[k].grad, msg=k)


def test_hash_is_murmur3_finaliser():
    ids = torch.tensor([1, 2, 3, 2**31 + 5, 12345])
    assert item_hash(ids).tolist() == [fmix32(int(i)) for i in ids]
    assert item_hash(torch.tensor([1])).item() == 0x514E28B7  # murmur3 fmix32(1): fixed across versions


# ---- band edge cases --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPECS)
def test_no_band_is_a_plain_embedding(name):
    m = build(name, None, None)
    assert m.num_in_band == 0 and [k for k, _ in m.named_parameters()] == ["own_weight"]
    assert m.own_weight.shape == (N, D) and m.parameters_saved == 0
    plain = nn.Embedding(N, D, padding_idx=0, dtype=torch.float64)
    with torch.no_grad():
        plain.weight.copy_(m.own_weight)
    ids = torch.tensor([[0, 3, 3, 29], [1, 0, 2, 2]])
    assert torch.equal(m(ids), plain(ids)) and m.weight is m.own_weight
    m(ids).pow(2).sum().backward()
    plain(ids).pow(2).sum().backward()
    assert torch.equal(m.own_weight.grad, plain.weight.grad)


@pytest.mark.parametrize("name", SPECS)
def test_every_item_in_band(name):
    m = build(name, 0, None)  # every frequency is >= 0; only the padding row stays own
    assert m.num_in_band == N - 1 and m.own_weight.shape == (1, D)
    assert torch.count_nonzero(m.own_weight) == 0
    table = m.weight
    assert torch.count_nonzero(table[0]) == 0 and bool((table[1:].abs().sum(1) > 0).all())
    m(torch.arange(N)).sum().backward()
    assert torch.count_nonzero(m.own_weight.grad) == 0


@pytest.mark.parametrize("name", SPECS)
def test_padding_row_zero_and_without_gradient(name):
    m = build(name, 2, 6, pad=0)
    m.init_from_full_table_(nn.init.xavier_normal_)
    assert torch.count_nonzero(m.weight[0]) == 0
    m(torch.tensor([0, 0, 1, 5, 9])).sum().backward()
    assert torch.count_nonzero(m.own_weight.grad[0]) == 0 and torch.count_nonzero(m.own_weight.grad) > 0


@pytest.mark.parametrize("name", SPECS)
def test_band_parameters_start_at_the_full_table_scale(name):
    """Band rows start with the scale of a row of the full table drawn by the same initialiser."""
    n, d = 400, 64
    freq = torch.arange(n) % 10
    m = build_item_table(SPECS[name], n, d, freq, None, lower_freq=0, upper_freq=4)
    m.init_from_full_table_(lambda t: nn.init.normal_(t, std=0.1))
    band = m.weight[m.in_band].detach()
    assert float(band.std()) == pytest.approx(0.1, rel=0.3)
    assert float(m.own_weight[1:].detach().std()) == pytest.approx(0.1, rel=0.1)


# ---- bad specs --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, match", [
    ({"name": "hashed", "buckets": 0}, "buckets"),
    ({"name": "hashed", "buckets": True}, "buckets"),
    ({"name": "hashed", "buckets": 10**9}, "at most the table's"),
    ({"name": "qr", "buckets": 2.5}, "buckets"),
    ({"name": "qr", "buckets": 10**9}, "at most the table's"),
    ({"name": "mixed_dim", "band_dim": 0}, "band_dim"),
    ({"name": "mixed_dim", "band_dim": D}, "band_dim"),
])
def test_bad_options_raise_value_error_naming_the_option(spec, match):
    freq, op = problem()
    with pytest.raises(ValueError, match=match):
        build_item_table(spec, N, D, freq, op, lower_freq=0, upper_freq=4)


@pytest.mark.parametrize("spec", [{"name": "hashed", "bucket": 4}, {"name": "shared", "buckets": 4},
                                  {"name": "neighbours", "band_dim": 4}, {"name": "qr", "neighbours": "all"}])
def test_an_option_of_another_table_is_refused(spec):
    freq, op = problem()
    with pytest.raises(TypeError, match="unexpected keyword"):
        build_item_table(spec, N, D, freq, op, lower_freq=0, upper_freq=4)


# ---- inside the models ------------------------------------------------------------------------

ITEMS, USERS, DIM = 24, 6, 8
MODEL_SPECS = [None, *SPECS.values()]


def model_data():
    freq = torch.cat([torch.zeros(1), torch.arange(1, ITEMS + 1, dtype=torch.float32) % 7])
    _, op = problem(5, ITEMS + 1)
    return freq, op


def seq_batch(seed=0, b=4, length=5):
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, ITEMS + 1, (b, length + 1), generator=g)
    items[0, :3] = 0  # left padding
    return {"users": torch.arange(b), "inputs": items[:, :-1], "targets": items[:, 1:] * (items[:, :-1] != 0),
            "negatives": torch.randint(1, ITEMS + 1, (b, length), generator=g)}


def pair_batch(seed=0, b=6):
    g = torch.Generator().manual_seed(seed)
    return {"users": torch.arange(b) % USERS, "positives": torch.randint(1, ITEMS + 1, (b,), generator=g),
            "negatives": torch.randint(1, ITEMS + 1, (b,), generator=g)}


ENCODERS = {SASRec: partial(SASRecEncoder, maxlen=5, embedding_dim=DIM), GRU4Rec: partial(GRU4RecEncoder, embedding_dim=DIM)}


def make(cls, spec, seed=0, **kw):
    freq, op = model_data()
    torch.manual_seed(seed)
    table = build_item_table(spec, ITEMS + 1, DIM, freq, op, lower_freq=0, upper_freq=3)
    return MFBPR(num_users=USERS, item_table=table, **kw) if cls is MFBPR else cls(ENCODERS[cls](), table, **kw)


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec, MFBPR])
@pytest.mark.parametrize("spec", MODEL_SPECS, ids=lambda s: "neighbours" if s is None else s["name"])
def test_strategy_trains_and_reloads_in_each_model(cls, spec, tmp_path):
    import pytorch_lightning as pl

    model = make(cls, spec)
    name = "neighbours" if spec is None else spec["name"]
    assert type(model.items) is SmoothedItemEmbedding if spec is None else model.items.strategy == name
    batch = pair_batch() if cls is MFBPR else seq_batch()
    model.training_loss(batch).backward()
    for k, p in model.items.named_parameters():  # every allocated item parameter is used
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, k
    model.zero_grad()
    loader = torch.utils.data.DataLoader([batch, batch], batch_size=None)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=loader)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    loaded = cls.load_from_checkpoint(ckpt).eval()
    model.eval()
    assert loaded.hparams.item_table == model.items.spec() and type(loaded.items) is type(model.items)
    with torch.no_grad():
        torch.testing.assert_close(loaded.items.weight, model.items.weight, rtol=0, atol=0)
        eval_batch = pair_batch(1) if cls is MFBPR else seq_batch(1)
        torch.testing.assert_close(loaded.score(eval_batch), model.score(eval_batch), rtol=0, atol=0)


@pytest.mark.parametrize("cls", [SASRec, MFBPR])
def test_own_rows_and_encoder_start_equal_across_strategies(cls):
    """The same seed gives every out-of-band item the same own row, and every other parameter the
    same start, in every strategy: band parameters come from a private generator."""
    ref = make(cls, {"name": "neighbours"}, seed=3)
    full = ref.items.own_weight.detach()
    rest = {k: v for k, v in ref.state_dict().items() if not k.startswith("items.")}
    for spec in SPECS.values():
        m = make(cls, spec, seed=3)
        torch.testing.assert_close(m.items.own_weight.detach(), full[m.items.own_rows], rtol=0, atol=0)
        for k, v in m.state_dict().items():
            if not k.startswith("items."):
                torch.testing.assert_close(v, rest[k], rtol=0, atol=0, msg=k)
