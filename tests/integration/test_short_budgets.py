"""Short budgets (issue 32): the last epoch always validates whatever eval_every, so max_epochs=1
gives a best checkpoint and a test; fast_dev_run and limit_*_batches finish, record a partial
evaluation as partial and skip the per-user and per-item analysis."""

import json

import pytest
from hydra import compose, initialize_config_dir

from embfreq.training.train import run_job
from tests.conftest import CONF, synthetic_seqs, write_seq


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("short")
    return write_seq(d / "tiny.txt", synthetic_seqs(num_users=60, num_items=40)), d / "cache"


def cfg(data, *overrides):
    path, cache = data
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[
            "data=custom", f"data.path={path}", "data.min_user_interactions=0", "data.min_item_interactions=0",
            f"cache_dir={cache}", "data.batch_size=16", "data.eval_batch_size=16", "trainer=cpu", "threads=1",
            "~logger", *overrides])


@pytest.mark.parametrize("epochs, every, validated", [(1, 5, [0]), (3, 2, [1, 2]), (2, 1, [0, 1])])
def test_last_epoch_always_validates(data, tmp_path, epochs, every, validated):
    from embfreq.training.run_dir import load_checkpoint

    m = run_job(cfg(data, f"trainer.max_epochs={epochs}", f"eval_every={every}", "analysis=false"), tmp_path)
    assert m["status"] == "ok" and m["epochs_trained"] == epochs and "partial" not in m
    assert m["best_epoch"] in validated and set(m["test"]) >= {"test/ndcg@10", "test/hr@10"}
    assert load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")["epoch"] == m["best_epoch"]
    assert (tmp_path / "test_users.npz").is_file()
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["status"] == "ok" and on_disk["best_epoch"] == m["best_epoch"]


@pytest.mark.parametrize("overrides, partial", [
    (["+trainer.fast_dev_run=true"], {"fit", "val", "test"}),
    (["+trainer.limit_test_batches=1"], {"test"}),
    (["+trainer.limit_val_batches=1", "+trainer.limit_train_batches=1"], {"val"}),
])
def test_partial_evaluation_is_recorded_and_skips_the_analysis(data, tmp_path, overrides, partial, capsys):
    m = run_job(cfg(data, "trainer.max_epochs=1", "analysis=true", *overrides), tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == on_disk["status"] == "partial"
    assert set(on_disk["partial"]) == partial and "not comparable" in on_disk["reason"]
    assert "analysis" not in on_disk and 0 <= on_disk["test"]["test/ndcg@10"] <= 1
    assert not (tmp_path / "test_users.npz").exists() or "test" not in partial
    assert not (tmp_path / "items.csv").exists()
    assert "partial evaluation" in capsys.readouterr().out


def test_full_run_prints_dataset_summary_and_metric_table(data, tmp_path, capsys):
    m = run_job(cfg(data, "trainer.max_epochs=2", "eval_every=1", "analysis=false"), tmp_path)
    out = capsys.readouterr().out
    assert "embfreq: data custom: 60 users, 40 items" in out and f"{m['items_in_band']} items in band" in out
    table = [line for line in out.splitlines() if line.startswith("test ")]
    assert [line.split()[1] for line in table] == ["HR", "NDCG", "MRR"]
    ndcg = [float(x) for x in table[1].split()[2:]]
    assert ndcg == [round(m["test"][f"test/ndcg@{k}"], 4) for k in (5, 10, 20)]
    assert f"best epoch {m['best_epoch'] + 1} of 2" in out
    # stdout is not a terminal here: one progress line per epoch, no bar
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["1/2", "2/2"]
