"""scripts/band_exposure.py: the top-k lists agree with evaluation's ranks, and the counts with a loop."""

import importlib.util

import pytest
import torch

from conftest import ROOT, synthetic_seqs, write_seq
from tests.integration.test_analyze import env_with, run_cli


def module():
    spec = importlib.util.spec_from_file_location("band_exposure", ROOT / "scripts" / "band_exposure.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny MF-BPR run whose hot band [10, inf) is a mixed_dim table (3 epochs)."""
    base = tmp_path_factory.mktemp("exposure")
    data = write_seq(base / "tiny.txt", synthetic_seqs(num_users=80, num_items=30))
    env = env_with(base / "cache")
    run_dir = base / "run"
    p = run_cli(["-m", "embfreq.train", "model=mf_bpr", "data=custom", f"data.path={data}",
                 "data.min_user_interactions=0", "data.min_item_interactions=0", "trainer.max_epochs=3",
                 "eval_every=1", "data.batch_size=32", "trainer=cpu", "threads=1", "analysis=false",
                 "lower_freq=10", "upper_freq=null", "item_table=mixed_dim", "item_table.band_dim=4",
                 f"hydra.run.dir={run_dir}"], env)
    assert p.returncode == 0, p.stderr[-3000:]
    return run_dir, env


def test_top_k_lists_agree_with_the_ranks_evaluation_gives(run, monkeypatch):
    from embfreq.training.run_dir import restore

    run_dir, env = run
    monkeypatch.setenv("EMBFREQ_CACHE", env["EMBFREQ_CACHE"])
    mod = module()
    _, dm, model = restore(run_dir)
    targets, top = mod.top_k_items(model, dm, 5)
    with torch.no_grad():
        ranks = torch.cat([model.ranks(b) for b in dm.test_dataloader()])
    assert len(targets) == len(ranks) == top.shape[0] and top.shape[1] == 5
    assert ((top == targets[:, None]).any(1) == (ranks <= 5)).all()  # a hit iff rank <= 5
    assert (top != 0).all()  # padding never listed
    # seen items (not the target) never listed: dense reference from the batches' seen pairs
    seen = torch.zeros(len(targets), dm.num_items + 1, dtype=torch.bool)
    row0 = 0
    for b in dm.test_dataloader():
        seen[b["seen_rows"] + row0, b["seen_cols"]] = True
        row0 += len(b["targets"])
    seen[torch.arange(len(targets)), targets] = False
    assert not seen.gather(1, top).any()


def test_band_counts_equal_a_loop_over_users(run, monkeypatch):
    from embfreq.training.run_dir import restore

    run_dir, env = run
    monkeypatch.setenv("EMBFREQ_CACHE", env["EMBFREQ_CACHE"])
    mod = module()
    out = mod.exposure(run_dir, 10, None, 5)
    _, dm, model = restore(run_dir)
    targets, top = mod.top_k_items(model, dm, 5)
    freq = dm.item_freq.tolist()
    hot = lambda i: i != 0 and freq[i] >= 10  # noqa: E731
    groups = {True: [], False: []}
    for t, row in zip(targets.tolist(), top.tolist()):
        groups[hot(t)].append(sum(hot(i) for i in row))
    assert out["users"] == len(targets) and out["in_band_users"] == len(groups[True]) > 0
    assert out["in_band_target: band items in top 5"] == pytest.approx(sum(groups[True]) / len(groups[True]))
    assert out["other: band items in top 5"] == pytest.approx(sum(groups[False]) / len(groups[False]))
    assert out["item_table"] == "mixed_dim" and out["band_lower"] == 10


@pytest.mark.parametrize("args, message", [
    (["--band", "ten", "inf"], "--band takes two numbers (or inf), got ten inf"),
    (["--band", "0", "5", "--k", "0"], "--k must be >= 1, got 0"),
])
def test_bad_arguments_give_one_line(tmp_path, capsys, args, message):
    assert module().main([str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"band_exposure: {message}"]


def test_a_dir_without_a_run_gives_one_line(tmp_path, capsys):
    assert module().main([str(tmp_path), "--band", "0", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("band_exposure: ") and "not a run directory" in err[0]
