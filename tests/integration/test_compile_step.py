"""torch.compile of the training step: the compiled loss and its gradients equal the eager step,
one compile per run (no recompiles in a later epoch), the setting and its failures."""

import pytest
import torch
from hydra import compose, initialize_config_dir

from embfreq.training import compile_step
from embfreq.data.datamodule import RecDataModule
from embfreq.errors import ConfigError
from embfreq.models import GRU4Rec, MFBPR, SASRec
from embfreq.nn.gru4rec import GRU4RecEncoder
from embfreq.nn.sasrec import SASRecEncoder
from tests.conftest import CONF, make_model, synthetic_seqs, write_seq


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("compile")
    return write_seq(d / "tiny.txt", synthetic_seqs(num_users=80, num_items=50)), d / "cache"


def build(tiny, kind, dropout=0.0):
    path, cache = tiny
    sampling = "pair" if kind == "mf_bpr" else "seq"
    dm = RecDataModule(path=str(path), cache_dir=str(cache), sampling=sampling, maxlen=8, batch_size=16,
                       eval_batch_size=7, seed=0)
    dm.setup()
    torch.manual_seed(0)
    common = dict(num_items=dm.num_items, item_freq=dm.item_freq, operator=dm.operator, lower_freq=0, upper_freq=3)
    if kind.startswith("sasrec"):
        model = make_model(SASRec, SASRecEncoder(maxlen=8, embedding_dim=64, dropout=dropout), loss=kind.split("_")[1],
                           **common)
    elif kind == "gru4rec":
        model = make_model(GRU4Rec, GRU4RecEncoder(embedding_dim=64, dropout=dropout), **common)
    else:
        model = make_model(MFBPR, dm.num_users, **common)
    return model, dm


def loss_and_grads(model, loss):
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def assert_compiled_equals_eager(model, dm, epochs=2, seed=None):
    """Every batch of `epochs` epochs: compiled loss and gradients equal the eager step's; the graphs
    are all made in the first epoch (a later epoch, other batch shapes included, compiles nothing)."""
    graphs = []
    for epoch in range(epochs):
        loader = dm.train_dataloader()
        loader.batch_sampler.set_epoch(epoch) if hasattr(loader.batch_sampler, "set_epoch") else None
        for b in loader:
            if seed is not None:
                torch.manual_seed(seed)
            eager, ge = loss_and_grads(model, model.training_loss(b))
            if seed is not None:
                torch.manual_seed(seed)
            comp, gc = loss_and_grads(model, model.compiled_loss(b))
            torch.testing.assert_close(comp, eager, rtol=1e-5, atol=1e-6)
            for a, c in zip(ge, gc):
                torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-6)
        graphs.append(model.compiled_step.graphs)
    assert graphs[0] >= 1 and graphs[-1] == graphs[0], graphs  # no recompile after the first epoch
    return graphs[0]


@pytest.mark.parametrize("kind", ["sasrec_bce", pytest.param("sasrec_ce", marks=pytest.mark.slow), "gru4rec", "mf_bpr"])
def test_compiled_step_equals_eager_without_recompiles(tiny, kind):
    """Traced and compiled graphs (aot_eager: the same graph capture, decomposition and dynamic shapes
    as inductor, without its C++ build, which takes minutes here; the slow test below builds it)."""
    torch._dynamo.reset()
    model, dm = build(tiny, kind)
    model.compile_step(backend="aot_eager")
    assert_compiled_equals_eager(model, dm)
    rec = model.compiled_step.record()
    assert rec["enabled"] and rec["seconds"] > 0 and rec["compiling_calls"] >= 1
    if kind != "gru4rec":  # the GRU's packed sequence breaks the graph (its lengths go to the CPU)
        assert rec["graphs"] == 1 and rec["compiling_calls"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sasrec_bce", "gru4rec", "mf_bpr"])
def test_inductor_step_equals_eager_with_dropout(tiny, kind):
    """The inductor build, with dropout: `fallback_random` makes it draw the eager random numbers."""
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    model, dm = build(tiny, kind, dropout=0.2)
    model.train()
    with inductor_config.patch(fallback_random=True):
        model.compile_step(backend="inductor")
        assert_compiled_equals_eager(model, dm, seed=123)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.1, 1e-3, 0.9, 1 / 3])
def test_keep_mask_is_the_comparison_exactly(p):
    """The compiled dropout's float mask equals (u >= p) for every u, the neighbours of p included."""
    from embfreq.nn.sasrec import keep_mask

    p32 = torch.tensor(p, dtype=torch.float32)
    near = [p32]
    for direction in (0.0, 1.0):  # the 50 floats on each side of p
        x = p32
        for _ in range(50):
            x = torch.nextafter(x, torch.tensor(direction))
            near.append(x)
    edges = torch.tensor([0.0, float(torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)))])
    u = torch.cat([torch.stack(near), edges, torch.rand(100_000, generator=torch.Generator().manual_seed(0))])
    assert torch.equal(keep_mask(u, p), u.ge(p).to(u.dtype))


def test_compiled_dropout_and_relu_keep_eager_values_without_bool_masks():
    """Under torch.compile the encoder's dropout and relu take the mask-free forms (the traced graph
    has no comparison and no relu), with exactly eager's values: the same draws give the same mask."""
    from embfreq.nn.sasrec import dropout, relu

    graphs = []

    def capture(gm, example_inputs):
        graphs.append({getattr(n.target, "__name__", str(n.target)) for n in gm.graph.nodes
                       if n.op in ("call_function", "call_method")})
        return gm.forward

    def f(x):
        return dropout(relu(x), 0.2, True)

    torch._dynamo.reset()
    compiled = torch.compile(f, backend=capture)
    x = torch.randn(4, 50, 64)
    x[0, 0, :8] = 0.0
    torch.manual_seed(11)
    got = compiled(x)
    torch.manual_seed(11)
    want = f(x)
    assert torch.equal(got, want)
    assert len(graphs) == 1, graphs
    assert {"floor_", "abs"} <= graphs[0] and not {"relu", "ge", "ge_"} & graphs[0], graphs[0]


def test_compile_setting_by_device():
    assert not compile_step.wanted("auto", "cpu") and compile_step.wanted("auto", "cuda")
    assert compile_step.wanted(True, "cpu") and not compile_step.wanted(False, "cuda")
    with pytest.raises(ConfigError, match="compile must be one of"):
        compile_step.wanted("yes", "cpu")


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=["trainer=cpu", *overrides])


def test_compile_true_without_a_cpu_compiler_is_one_line(tmp_path, monkeypatch, tiny):
    monkeypatch.setattr(compile_step, "cpu_compiler_problem", lambda: "no C++ compiler for torch.compile on CPU "
                        "('g++' not found; set CXX or install g++)")
    model, _ = build(tiny, "mf_bpr")
    with pytest.raises(ConfigError, match=r"^compile=true: no C\+\+ compiler .*; set compile=false$"):
        compile_step.configure(model, _cfg(tmp_path, "compile=true"))
    compile_step.configure(model, _cfg(tmp_path))  # auto on CPU: eager, nothing checked
    assert getattr(model, "compiled_step", None) is None
    assert compile_step.record(model, _cfg(tmp_path)) == {"setting": "auto", "enabled": False}


def test_a_failing_compiler_falls_back_or_fails_in_one_line(tiny):
    def broken(gm, example_inputs):
        raise RuntimeError("the C++ build failed")

    torch._dynamo.reset()
    model, dm = build(tiny, "mf_bpr")
    b = next(iter(dm.train_dataloader()))
    model.compile_step(backend=broken, fallback=True)
    torch.testing.assert_close(model.compiled_loss(b), model.training_loss(b))  # eager, and said so
    rec = model.compiled_step.record()
    assert not rec["enabled"] and "the C++ build failed" in rec["failed"]
    torch._dynamo.reset()
    model.compile_step(backend=broken, fallback=False)
    with pytest.raises(ConfigError, match=r"compile=true: torch.compile of the training step failed .*set compile=false"):
        model.compiled_loss(b)


def test_cpu_compiler_found_here_or_named():
    problem = compile_step.cpu_compiler_problem()
    assert problem is None or problem.startswith("no C++ compiler")
