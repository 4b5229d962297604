"""Models, full-ranking evaluation and the training entry point, on tiny data."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from embfreq.nn import SmoothedItemEmbedding
from tests.conftest import make_model
from hydra import compose, initialize_config_dir

from embfreq.data.datamodule import RecDataModule
from embfreq.models import GRU4Rec, MFBPR, SASRec
from embfreq.nn.gru4rec import GRU4RecEncoder
from embfreq.nn.sasrec import SASRecEncoder
from embfreq.models.sequential import trim_left_padding
from embfreq.training.train import train
from tests.conftest import CONF, ROOT, synthetic_seqs, write_seq


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    path = write_seq(d / "tiny.txt", synthetic_seqs(num_users=80, num_items=50))
    return path, d / "cache"


def tiny_cfg(path, cache, overrides=()):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[
            "data=custom", f"data.path={path}", "data.min_user_interactions=0", "data.min_item_interactions=0",
            f"cache_dir={cache}", "trainer.max_epochs=2", "eval_every=1", "data.batch_size=16", "data.eval_batch_size=32",
            "trainer=cpu", "analysis=false", *overrides])


@pytest.mark.parametrize("overrides", [
    ["model=sasrec", "model.loss=bce"],
    ["model=sasrec", "model.loss=bpr"],
    ["model=sasrec", "model.loss=ce"],
    ["model=sasrec", "item_table.neighbours=outside_band"],
    ["model=gru4rec"],
    ["model=mf_bpr"],
    ["model=mf_bpr", "lower_freq=null", "upper_freq=null"],
])
def test_train_each_model_and_loss_writes_metrics(tiny, tmp_path, overrides):
    path, cache = tiny
    cfg = tiny_cfg(path, cache, overrides)
    result = train(cfg, tmp_path)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == "ok" and m["test"] == result["test"]
    for k in ("hr", "recall", "precision", "ndcg", "mrr"):
        for cut in (1, 5, 10, 20, 50):
            v = m["test"][f"test/{k}@{cut}"]
            assert 0.0 <= v <= 1.0
    assert m["test"]["test/hr@10"] >= m["test"]["test/hr@5"]
    assert m["best_epoch"] in (0, 1) and m["epochs_trained"] == 2
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "tb").glob("events.out.tfevents*"))
    if "item_table.neighbours=outside_band" in overrides:
        assert m["embedding_params_saved"] == m["items_in_band"] * 64 > 0
    if "lower_freq=null" in overrides:
        assert m["items_in_band"] == 0


def encoder(cls, maxlen, **kw):
    """The model's encoder at the tests' width."""
    if cls is SASRec:
        return SASRecEncoder(maxlen=maxlen, embedding_dim=64, **kw)
    return GRU4RecEncoder(embedding_dim=64, **kw)


def _dm(path, cache, sampling="seq", maxlen=8):
    dm = RecDataModule(path=str(path), cache_dir=str(cache), sampling=sampling, maxlen=maxlen,
                       batch_size=16, eval_batch_size=7, seed=0)
    dm.setup()
    return dm


def naive_ranks(scores, targets, seen_rows, seen_cols):
    """Per-user loop: rank among all items except padding and seen items (never the target)."""
    out = []
    for r in range(scores.shape[0]):
        t = int(targets[r])
        excl = {0} | {int(c) for rr, c in zip(seen_rows.tolist(), seen_cols.tolist()) if rr == r}
        excl.discard(t)
        s = scores[r]
        out.append(1 + sum(1 for j in range(len(s)) if j != t and j not in excl and s[j] >= s[t]))
    return out


@pytest.mark.parametrize("kind", ["sasrec", "gru4rec", "mf"])
def test_ranks_equal_naive_loop(tiny, kind):
    path, cache = tiny
    dm = _dm(path, cache, "pair" if kind == "mf" else "seq")
    common = dict(num_items=dm.num_items, item_freq=dm.item_freq, operator=dm.operator, lower_freq=0, upper_freq=3)
    model = {"sasrec": lambda: make_model(SASRec, SASRecEncoder(maxlen=8, embedding_dim=64), **common),
             "gru4rec": lambda: make_model(GRU4Rec, GRU4RecEncoder(embedding_dim=64), **common),
             "mf": lambda: make_model(MFBPR, num_users=dm.num_users, **common)}[kind]().eval()
    with torch.no_grad():
        for b in dm.test_dataloader():
            scores = model.score(b)
            # integer-rounded scores force ties
            scores = torch.round(scores * 2)
            got = __import__("embfreq.metrics", fromlist=["x"]).ranks_excluding(
                scores.clone(), b["targets"], b["seen_rows"], b["seen_cols"])
            assert got.tolist() == naive_ranks(scores, b["targets"], b["seen_rows"], b["seen_cols"])


def test_zero_vectors_do_not_earn_perfect_ranks(tiny):
    path, cache = tiny
    dm = _dm(path, cache, "pair")
    model = make_model(MFBPR, num_users=dm.num_users, num_items=dm.num_items, item_freq=dm.item_freq, operator=dm.operator,
                  lower_freq=None, upper_freq=None).eval()
    with torch.no_grad():
        model.users.weight.zero_()  # every score is 0: every target ties with every candidate
        b = next(iter(dm.val_dataloader()))
        r = model.ranks(b)
    n_seen = torch.bincount(b["seen_rows"], minlength=len(r))
    # targets rank behind all other unseen items
    for row in range(len(r)):
        seen = set(b["seen_cols"][b["seen_rows"] == row].tolist()) - {int(b["targets"][row])}
        assert int(r[row]) == dm.num_items - len(seen)
    assert (r > 1).all() and n_seen.sum() > 0


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_trimming_shared_left_padding_is_exact(tiny, cls):
    path, cache = tiny
    dm = _dm(path, cache, maxlen=20)
    model = make_model(cls, encoder(cls, 20), num_items=dm.num_items, item_freq=dm.item_freq, operator=dm.operator).eval()
    b = next(iter(dm.val_dataloader()))
    table = model.items.weight
    with torch.no_grad():
        (trimmed,) = trim_left_padding(b["inputs"])
        assert trimmed.shape[1] < 20 or (b["inputs"][:, 0] != 0).any()
        padded = torch.cat([torch.zeros(len(b["inputs"]), 20 - trimmed.shape[1], dtype=torch.long), trimmed], 1)
        h_trim = model.hidden(trimmed, table)[:, -1]
        h_pad = model.hidden(padded, table)[:, -1]
    torch.testing.assert_close(h_trim, h_pad, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(h_pad).all()


def test_training_is_reproducible_and_seed_sensitive(tiny, tmp_path):
    path, cache = tiny
    a = train(tiny_cfg(path, cache, ["seed=3"]), tmp_path / "a")["test"]
    b = train(tiny_cfg(path, cache, ["seed=3"]), tmp_path / "b")["test"]
    c = train(tiny_cfg(path, cache, ["seed=4"]), tmp_path / "c")["test"]
    assert a == b
    assert a != c


def _env(cache):
    return {**os.environ, "EMBFREQ_CACHE": str(cache), "PYTHONPATH": str(ROOT)}


@pytest.mark.slow  # a subprocess run: CI runs it with -m slow
def test_cli_tiny_run_writes_valid_metrics(tiny, tmp_path):
    path, cache = tiny
    out = subprocess.run(
        [sys.executable, "-m", "embfreq.train", "data=custom", f"data.path={path}", "data.min_user_interactions=0",
         "data.min_item_interactions=0", "trainer.max_epochs=1", "eval_every=1", "data.batch_size=32",
         "trainer=cpu", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, env=_env(cache), cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"run dir: {tmp_path}" in out.stdout and "NDCG@10=" in out.stdout
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == "ok" and m["lower_freq"] == 0 and m["upper_freq"] == 5
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "items.csv").is_file()
    said = out.stdout + out.stderr
    for noise in ("GPU available", "Tip:", "Sparse CSR tensor support", "is deprecated", "logging interval"):
        assert noise not in said, noise  # library chatter is silenced in the CLI
    # stdout is a pipe here: no bar, one progress line per epoch with the latest validation NDCG@10
    assert [line.split("  ")[:1] for line in out.stdout.splitlines() if line.startswith("epoch ")] == [["epoch 1/1"]]
    assert "val/ndcg@10 0." in out.stdout and "\r" not in out.stdout
    # TensorBoard: val/* curves start at the first validation, not at a false step-0 point
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert all(e.step > 0 for e in acc.Scalars("val/ndcg@10")) and all(e.step > 0 for e in acc.Scalars("test/ndcg@10"))
    assert "hp/test_ndcg@10" in acc.Tags()["scalars"]


def test_progress_bar_shows_validation_and_time_left(monkeypatch):
    import time
    from types import SimpleNamespace

    from pytorch_lightning.callbacks import TQDMProgressBar

    from embfreq.training.callbacks import RunProgressBar

    monkeypatch.setattr(TQDMProgressBar, "get_metrics", lambda self, t, m: {"v_num": 0, "train/loss": "0.5"})
    bar = RunProgressBar()
    bar._t0, bar._epoch0 = time.monotonic() - 100.0, 0  # 100 s for 10 epochs
    trainer = SimpleNamespace(current_epoch=10, max_epochs=40)
    items = bar.get_metrics(trainer, SimpleNamespace(last_val={"val/ndcg@10": 0.04321}))
    assert items["val_ndcg@10"] == "0.0432" and "v_num" not in items and items["train/loss"] == "0.5"
    assert items["eta"] in ("4m59s", "5m00s")  # 30 epochs left at 10 s each


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tiny, tmp_path):
    """Train with DDP (2 CPU processes, gloo), then evaluate the best checkpoint in one process."""
    import pytorch_lightning as pl

    from embfreq.training.run_dir import restore

    path, cache = tiny
    out = subprocess.run(
        [sys.executable, "-m", "embfreq.train", "data=custom", f"data.path={path}", "data.min_user_interactions=0",
         "data.min_item_interactions=0", "trainer.max_epochs=1", "eval_every=1", "data.batch_size=16",
         "data.eval_batch_size=8", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "analysis=false",
         f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, env=_env(cache), cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    ddp = json.loads((tmp_path / "metrics.json").read_text())["test"]
    assert sorted(p.name for p in tmp_path.parent.iterdir() if p.name.startswith(tmp_path.name)) == [tmp_path.name]
    os.environ["EMBFREQ_CACHE"] = str(cache)
    _, dm, model = restore(tmp_path)
    pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False).test(model, datamodule=dm,
                                                                                          verbose=False)
    for k, v in ddp.items():
        assert model.last_test[k] == pytest.approx(v, abs=1e-12), k


@pytest.mark.parametrize("cls,kw", [
    (SASRec, {"loss": "bce"}), (SASRec, {"loss": "bpr"}), (SASRec, {"loss": "ce"}),
    (SASRec, {"loss": "bce", "attend_padding": False}), (GRU4Rec, {"loss": "bce"}),
])
def test_packed_loss_and_gradient_equal_the_padded_random_batch(tiny, cls, kw):
    """The training loss (SASRec: sequences packed side by side), and its gradient, equal the
    per-position mean of the whole random batch padded to maxlen, computed naively in one pass."""
    import torch.nn.functional as F

    path, cache = tiny
    dm = _dm(path, cache, maxlen=8)
    torch.manual_seed(0)
    net_kw = {"attend_padding": kw.pop("attend_padding")} if "attend_padding" in kw else {}
    model = make_model(cls, encoder(cls, 8, dropout=0.0, **net_kw), num_items=dm.num_items, item_freq=dm.item_freq,
                operator=dm.operator, lower_freq=0, upper_freq=3, **kw).double()
    b = next(iter(dm.train_dataloader()))
    assert b["pack_rows"] < len(b["users"])  # several sequences really share a row

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    got, got_g = grads(model.training_loss(b))
    table = model.items.weight
    h = model.encoder(table[b["inputs"]], b["inputs"] != 0)
    real = b["targets"] != 0
    h, pos = h[real], b["targets"][real]
    if kw["loss"] == "ce":
        logits = h @ table.T
        logits[:, 0] = float("-inf")
        ref = F.cross_entropy(logits, pos)
    else:
        p_logit = (h * table[pos]).sum(-1)
        n_logit = (h * table[b["negatives"][real]]).sum(-1)
        ref = (torch.cat([F.softplus(-p_logit), F.softplus(n_logit)]).sum() / len(pos) if kw["loss"] == "bce"
               else F.softplus(n_logit - p_logit).mean())
    ref, ref_g = grads(ref)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    assert len(got_g) == len(ref_g)
    for g, r in zip(got_g, ref_g):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)


def test_training_batches_are_uniformly_shuffled_rows(tiny):
    """Training batches are consecutive slices of one permutation of the users per epoch (the study's
    composition), not length-sorted pools; every user with a target is in exactly one batch."""
    path, cache = tiny
    dm = _dm(path, cache, maxlen=8)
    loader = dm.train_dataloader()
    sampler = loader.sampler
    rows = sampler.rows
    expected = np.random.default_rng([sampler.seed, 0]).permutation(rows)
    got = [key[2] for key in sampler]
    assert np.array_equal(np.concatenate(got), expected)
    assert [len(g) for g in got[:-1]] == [sampler.batch_size] * (len(got) - 1)
    sampler.set_epoch(1)
    assert not np.array_equal(np.concatenate([key[2] for key in sampler]), expected)


def test_pack_rows_places_every_sequence_once_without_overlap():
    from embfreq.data.batches import pack_rows

    rng = np.random.default_rng(0)
    for _ in range(20):
        width = int(rng.integers(1, 12))
        lengths = rng.integers(1, width + 1, size=int(rng.integers(1, 40)))
        row, col, n_rows = pack_rows(lengths, width)
        grid = np.zeros((n_rows, width), dtype=int)
        for r, c, n in zip(row, col, lengths):
            assert 0 <= c and c + n <= width
            grid[r, c:c + n] += 1
        assert grid.max() == 1 and grid.sum() == lengths.sum()
        assert n_rows <= 2 * -(-lengths.sum() // width)  # first fit never wastes half a row on average


def test_sasrec_initialisation_follows_the_study():
    """FreeRec's SASRec: xavier-uniform stacked QKV (zero bias), xavier-normal output projection and
    positions, Conv1d-default feed-forward (U(+-1/sqrt(D)) weights and biases)."""
    from embfreq.nn.sasrec import SASRecEncoder

    d = 64
    torch.manual_seed(0)
    enc = SASRecEncoder(maxlen=50, embedding_dim=d, num_blocks=2)
    qkv_bound = (6 / (4 * d)) ** 0.5  # fan_in d, fan_out 3d
    ffn_bound = 1 / d**0.5
    for attn in enc.attns:
        w = torch.cat([attn.q.weight, attn.k.weight, attn.v.weight])
        assert float(w.abs().max()) <= qkv_bound
        assert float(w.std()) == pytest.approx(qkv_bound / 3**0.5, rel=0.05)
        for lin in (attn.q, attn.k, attn.v, attn.out):
            assert torch.count_nonzero(lin.bias) == 0
        assert float(attn.out.weight.std()) == pytest.approx((2 / (2 * d)) ** 0.5, rel=0.1)
    for ffn in enc.ffns:
        for lin in (ffn.fc1, ffn.fc2):
            assert float(lin.weight.abs().max()) <= ffn_bound
            assert float(lin.bias.abs().max()) <= ffn_bound
            assert torch.count_nonzero(lin.bias) == d
    assert float(enc.positions.weight.std()) == pytest.approx((2 / (50 + d)) ** 0.5, rel=0.1)


def _study_attention_reference(enc, seq_vecs, real):
    """The study's SASRec forward (eval mode): causal mask only, so real positions also attend to
    the zero padding vectors; written out head by head."""
    b, l, d = seq_vecs.shape
    h = enc.attns[0].h
    keep = real.unsqueeze(-1).to(seq_vecs.dtype)
    x = (seq_vecs * d**0.5 + enc.positions(torch.arange(enc.maxlen - l, enc.maxlen))[None]) * keep
    causal = torch.ones(l, l, dtype=torch.bool).tril()
    for norm_a, attn, norm_f, ffn in zip(enc.attn_norms, enc.attns, enc.ffn_norms, enc.ffns):
        qn = norm_a(x)
        q, k, v = attn.q(qn), attn.k(x), attn.v(x)
        out = []
        for i in range(h):
            sl = slice(i * d // h, (i + 1) * d // h)
            logits = q[..., sl] @ k[..., sl].transpose(-1, -2) / (d // h) ** 0.5
            out.append(torch.softmax(logits.masked_fill(~causal, float("-inf")), -1) @ v[..., sl])
        x = attn.out(torch.cat(out, -1)) + x
        x = ffn(norm_f(x)) * keep
    return enc.last_norm(x)


@pytest.mark.parametrize("fused", [True, False])
def test_attend_padding_equals_the_study_attention_and_survives_trimming(fused):
    """Both attention paths (the fused kernel with an extra key, and the explicit one) equal the
    study's attention over the full left-padded window."""
    from embfreq.nn.sasrec import SASRecEncoder

    torch.manual_seed(0)
    enc = SASRecEncoder(maxlen=12, embedding_dim=8, num_blocks=2, num_heads=2, attend_padding=True).double().eval()
    for attn in enc.attns:  # non-zero biases, so the padding keys and values matter
        attn.fused = fused
        for lin in (attn.q, attn.k, attn.v):
            torch.nn.init.normal_(lin.bias)
    lengths = torch.tensor([12, 5, 1, 3])
    real = torch.arange(12)[None] >= 12 - lengths[:, None]
    seq = torch.randn(4, 12, 8, dtype=torch.float64) * real[..., None]
    with torch.no_grad():
        ref = _study_attention_reference(enc, seq, real)
        got = enc(seq, real)
        torch.testing.assert_close(got[real], ref[real], rtol=1e-10, atol=1e-10)
        # rows without the full row: trimming the shared padding changes nothing
        short = real[1:, 7:]
        torch.testing.assert_close(enc(seq[1:, 7:], short)[short], ref[1:][real[1:]], rtol=1e-10, atol=1e-10)
        enc.attend_padding = False
        masked = enc(seq, real)
    assert not torch.allclose(masked[real], ref[real])  # the padding really takes attention


def test_evaluation_score_buffer_is_reused_and_exact(tiny):
    """model.ranks reuses one score matrix across batches of different sizes; ranks equal the naive
    loop on freshly computed scores, and the buffer is dropped at the end of a test epoch."""
    path, cache = tiny
    dm = _dm(path, cache)
    model = make_model(SASRec, SASRecEncoder(maxlen=20, embedding_dim=64), num_items=dm.num_items, item_freq=dm.item_freq,
                   operator=dm.operator).eval()
    batches = list(dm.test_dataloader())
    big = max(batches, key=lambda b: len(b["users"]))
    small = {k: v[:3] if k in ("users", "inputs", "targets") else v for k, v in big.items()}
    keep = small["seen_rows"] < 3
    small["seen_rows"], small["seen_cols"] = small["seen_rows"][keep], small["seen_cols"][keep]
    with torch.no_grad():
        for b in (big, small, big):
            got = model.ranks(b)
            scores = model.score(b)
            assert got.tolist() == naive_ranks(scores, b["targets"], b["seen_rows"], b["seen_cols"])
        assert model._score_buf.numel() == len(big["users"]) * (dm.num_items + 1)
    model.on_test_epoch_end()
    assert model._score_buf is None


def test_scores_stay_float32_under_bf16_autocast(tiny):
    """Full-ranking scores are computed in float32 inside a bf16 autocast region (mixed precision),
    so the ranks equal those of a float32 run; a bf16 product would tie many items with the target."""
    path, cache = tiny
    dm = _dm(path, cache)
    torch.manual_seed(0)
    model = make_model(SASRec, SASRecEncoder(maxlen=20, embedding_dim=64), num_items=dm.num_items, item_freq=dm.item_freq,
                   operator=dm.operator).eval()
    b = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        table = model.items.weight
        with torch.autocast("cpu", dtype=torch.bfloat16):
            u = model.user_vectors(b, table)
            got = model.score(b)
            got_buf = model.score(b, reuse_buffer=True).clone()
            plain = u @ table.T  # what an unguarded product gives in this region
        want = u.float() @ table.T
        want_buf = (table @ u.float().T).T  # the reused buffer is filled as (N, B): another BLAS layout
    assert plain.dtype == torch.bfloat16 and not torch.equal(plain.float(), want)
    assert got.dtype == torch.float32 and torch.equal(got, want) and torch.equal(got_buf, want_buf)
    assert torch.allclose(got_buf, want, rtol=1e-5, atol=1e-6)  # the two layouts differ in the last bits at most
    with torch.no_grad():  # a float64 model keeps float64 scores
        assert model.double().score(b).dtype == model.score(b, reuse_buffer=True).dtype == torch.float64


def test_nan_loss_fails_the_run(tiny, tmp_path, monkeypatch):
    """A NaN training loss ends the run as failed with the reason; no ok result from NaN scores."""
    from embfreq.errors import TrainingDiverged
    from embfreq.training.train import run_job

    path, cache = tiny
    calls = {"n": 0}
    real = SASRec.training_loss

    def diverging(self, batch):
        calls["n"] += 1
        loss = real(self, batch)
        return loss * float("nan") if calls["n"] >= 3 else loss

    monkeypatch.setattr(SASRec, "training_loss", diverging)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="training diverged: loss nan at epoch 0, batch 2"):
        run_job(tiny_cfg(path, cache), run_dir)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "failed" and "diverged" in m["error"] and "test" not in m


@pytest.mark.parametrize("cls,extra", [(SASRec, {}), (MFBPR, {"num_users": None}), (GRU4Rec, {})])
@pytest.mark.parametrize("neighbours", ["all", "outside_band"])
def test_load_from_checkpoint_without_the_graph(tiny, tmp_path, cls, extra, neighbours):
    """`Model.load_from_checkpoint(path)` alone rebuilds the model, band table included: the same
    effective item table and the same scores as the saved model."""
    import pytorch_lightning as pl

    path, cache = tiny
    dm = _dm(path, cache, sampling="pair" if cls is MFBPR else "seq")
    kw = {"num_users": dm.num_users} if "num_users" in extra else {"net": encoder(cls, 8)}
    torch.manual_seed(0)
    model = make_model(cls, num_items=dm.num_items, item_freq=dm.item_freq, operator=dm.operator, lower_freq=0, upper_freq=3,
                neighbours=neighbours, **kw)
    assert model.items.band_nnz > 0
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    loaded = cls.load_from_checkpoint(ckpt).eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.items.weight, model.items.weight, rtol=0, atol=0)
        b = next(iter(dm.test_dataloader()))
        torch.testing.assert_close(loaded.score(b), model.score(b), rtol=0, atol=0)


def test_repeat_target_remove_makes_a_seen_target_a_miss_and_leaves_the_rest():
    n, users = 12, 5
    freq = torch.ones(n + 1)
    empty = torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), [], (n + 1, n + 1))
    torch.manual_seed(0)
    kinds = {}
    for mode in ("rank", "remove"):
        m = MFBPR(users, SmoothedItemEmbedding(n + 1, 4, freq, empty, padding_idx=0), repeat_target=mode)
        m.load_state_dict(kinds["rank"].state_dict()) if kinds else None
        kinds[mode] = m
    # user 1's and user 3's targets are in their histories (repeats); the others are not
    targets = torch.tensor([3, 5, 7, 2, 9])
    seen_rows = torch.tensor([0, 1, 1, 2, 3, 4])
    seen_cols = torch.tensor([4, 5, 6, 1, 2, 10])
    batch = {"users": torch.arange(users), "targets": targets, "seen_rows": seen_rows, "seen_cols": seen_cols}
    with torch.no_grad():
        scores = kinds["rank"].score(batch)
        rank = kinds["rank"].ranks(batch)
        remove = kinds["remove"].ranks(batch)
    assert rank.tolist() == naive_ranks(scores, targets, seen_rows, seen_cols)
    assert remove.tolist() == [r if u not in (1, 3) else n for u, r in enumerate(rank.tolist())]
    with pytest.raises(ValueError, match="needs remove_seen=true"):
        MFBPR(users, SmoothedItemEmbedding(n + 1, 4, freq, empty, padding_idx=0), remove_seen=False,
              repeat_target="remove")


@pytest.mark.slow
def test_ddp_spawn_starts_and_matches_one_process(tmp_path):
    """ddp_spawn pickles the model, the datamodule and every callback into its workers; the tiny data
    give fewer evaluation batches than processes, so evaluation batches must shrink to one per rank."""
    path = write_seq(tmp_path / "tiny.txt", synthetic_seqs(num_users=30, num_items=20))
    common = ["data=custom", f"data.path={path}", "data.min_user_interactions=0", "data.min_item_interactions=0",
              "trainer.max_epochs=1", "eval_every=1", "model=mf_bpr", "data.batch_size=8", "analysis=false",
              "trainer=cpu", "threads=1"]
    dirs = {}
    for name, extra in (("spawn", ["trainer.strategy=ddp_spawn", "trainer.devices=2"]), ("one", [])):
        dirs[name] = tmp_path / name
        out = subprocess.run([sys.executable, "-m", "embfreq.train", *common, *extra, f"hydra.run.dir={dirs[name]}"],
                             capture_output=True, text=True, env=_env(tmp_path / "cache"), cwd=ROOT, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
    spawn, one = (json.loads((dirs[n] / "metrics.json").read_text()) for n in ("spawn", "one"))
    assert spawn["status"] == "ok" and spawn["test"].keys() == one["test"].keys()
    assert spawn["epochs_trained"] == one["epochs_trained"] == 1 and spawn["best_epoch"] == 0
    assert (dirs["spawn"] / "checkpoints" / "best.ckpt").is_file()
