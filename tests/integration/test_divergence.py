"""Issue 33, item 1: a diverged run ends `failed` with the reason and no test metric, for every model
and item table; healthy runs are untouched (see also tests/integration/test_reference_results.py)."""

import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from embfreq.training.divergence import DivergenceGuard
from embfreq.errors import ConfigError, TrainingDiverged
from embfreq.training.train import run_job
from tests.conftest import CONF

BASE = ["data=custom", "data.min_user_interactions=0", "data.min_item_interactions=0", "trainer.max_epochs=3",
        "eval_every=1", "data.batch_size=32", "model.embedding_dim=16", "trainer=cpu", "analysis=false",
        "threads=1", "+trainer.enable_progress_bar=false"]


def cfg(tiny, *overrides):
    path, cache = tiny
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[*BASE, f"data.path={path}", f"cache_dir={cache}", *overrides])


def diverges(c, run_dir, match):
    """run_job ends in TrainingDiverged; metrics.json says failed with that one line, and holds no test
    metric; no per-user test file is written."""
    with pytest.raises(TrainingDiverged) as e:
        run_job(c, run_dir)
    msg = str(e.value)
    assert "\n" not in msg and re.search(match, msg), msg
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "failed" and m["error"] == msg
    assert "test" not in m and "val" not in m
    assert not (run_dir / "test_users.npz").exists()
    return msg


# -- every model and item table, at a learning rate that blows up ---------------------------------
@pytest.mark.parametrize("model,table", [
    ("mf_bpr", "neighbours"), ("gru4rec", "neighbours"), ("sasrec", "neighbours"),
    ("mf_bpr", "hashed"), ("mf_bpr", "qr"), ("gru4rec", "mixed_dim"), ("sasrec", "shared"), ("sasrec", "qr"),
])
def test_huge_learning_rate_fails_every_model_and_item_table(tiny, tmp_path, model, table):
    msg = diverges(cfg(tiny, f"model={model}", f"item_table={table}", "model.optimizer.lr=1000"), tmp_path / "run",
                   r"^training diverged: .*\(limit callbacks\.divergence\.\w+=[\d.e+]+\); "
                   r"try a lower model\.optimizer\.lr$|^training diverged: loss nan")
    assert "epoch 0" in msg


def test_a_limit_from_the_config_reaches_the_guard(tiny, tmp_path):
    """A healthy tiny MF-BPR run with max_abs_param=1e-3 (its init is 1e-4): failed after epoch 0,
    naming the parameter and the setting."""
    diverges(cfg(tiny, "model=mf_bpr", "callbacks.divergence.max_abs_param=1e-3"), tmp_path / "run",
             r"^training diverged: parameter (users\.weight|items\.\S+) has max \|value\| [\d.e+-]+ after "
             r"epoch 0 \(limit callbacks\.divergence\.max_abs_param=0\.001\)")
    assert not (tmp_path / "run" / "checkpoints").exists()  # the guard runs before any checkpoint of the epoch


def test_analyze_refuses_a_diverged_run(tiny, tmp_path):
    """A run that diverged after saving checkpoints (here: a healthy run given the failed record train.py
    writes) has no result: analyze writes no items.csv from its checkpoint."""
    from embfreq.cli.analyze import analyze
    from embfreq.errors import UserError

    run = tmp_path / "run"
    run_job(cfg(tiny, "model=mf_bpr"), run)
    error = "training diverged: mean loss 17.63 in epoch 1 is 12.7x the first batch's 1.387 (limit ...)"
    (run / "metrics.json").write_text(json.dumps({"status": "failed", "error": error}))
    with pytest.raises(UserError, match=r"/run: the run failed \(training diverged: mean loss 17\.63 .*\); its "
                                        r"checkpoints are no result to analyze$"):
        analyze(run, accelerator="cpu")
    assert not (run / "items.csv").exists()


def test_guard_off_and_healthy_run_ok(tiny, tmp_path):
    """callbacks.divergence=null removes the guard; with it (default), the healthy run is ok with the
    same numbers: the guard changes nothing it does not stop."""
    with_guard = run_job(cfg(tiny, "model=sasrec"), tmp_path / "a")
    without = run_job(cfg(tiny, "model=sasrec", "callbacks.divergence=null"), tmp_path / "b")
    assert with_guard["status"] == without["status"] == "ok"
    assert with_guard["test"] == without["test"] and with_guard["val"] == without["val"]
    ck = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = [v for k, v in ck["callbacks"].items() if k.startswith("DivergenceGuard")]
    assert state["first_loss"] > 0  # the reference a resume continues with


def test_bad_setting_is_one_config_line(tiny, tmp_path):
    with pytest.raises(ConfigError, match=r"^callbacks\.divergence: ValueError: loss_factor must be > 1"):
        run_job(cfg(tiny, "callbacks.divergence.loss_factor=0.5"), tmp_path / "run")


# -- each rule on hand-made numbers ---------------------------------------------------------------
class Net(nn.Module):
    def __init__(self, value=1.0, scores=(1.0, -2.0)):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([value, -0.5]))
        self.scores = torch.tensor([scores])
        self.last_val = {}

    def score(self, batch):
        return self.scores


def trainer(epoch=0, users=100):
    data = SimpleNamespace(split=SimpleNamespace(valid=np.zeros(users)))
    return SimpleNamespace(current_epoch=epoch, sanity_checking=False,
                           datamodule=SimpleNamespace(data_processed=lambda: data))


def epoch_of(guard, losses, epoch=0, net=None):
    t, net = trainer(epoch), net or Net()
    guard.on_train_epoch_start(t, net)
    for i, x in enumerate(losses):
        guard.on_train_batch_end(t, net, {"loss": torch.tensor(x)}, None, i)
    guard.on_train_epoch_end(t, net)


def test_loss_rule_is_relative_to_the_first_batch():
    g = DivergenceGuard()
    epoch_of(g, [0.5, 0.1])  # first batch 0.5
    epoch_of(g, [1.0, 2.0], epoch=1)  # mean 1.5 = 3x: at the limit, not over it
    with pytest.raises(TrainingDiverged, match=r"^training diverged: mean loss 1\.6 in epoch 2 is 3\.2x the first "
                                               r"batch's 0\.5 \(limit callbacks\.divergence\.loss_factor=3\)"):
        epoch_of(g, [1.0, 2.2], epoch=2)
    with pytest.raises(TrainingDiverged, match=r"mean loss 11 in epoch 0 is 22x .*\.loss_factor=10\)"):
        epoch_of(DivergenceGuard(loss_factor=10), [0.5, 21.5])
    epoch_of(DivergenceGuard(loss_factor=None), [0.5, 1e30])  # off


def test_parameter_rule():
    epoch_of(DivergenceGuard(), [1.0], net=Net(1e4))  # at the limit
    with pytest.raises(TrainingDiverged, match=r"parameter w has max \|value\| 10001 after epoch 0"):
        epoch_of(DivergenceGuard(), [1.0], net=Net(10001.0))
    with pytest.raises(TrainingDiverged, match=r"parameter w has max \|value\| nan"):
        epoch_of(DivergenceGuard(), [1.0], net=Net(math.nan))
    with pytest.raises(TrainingDiverged, match=r"parameter w has max \|value\| inf"):
        epoch_of(DivergenceGuard(), [1.0], net=Net(-math.inf))
    epoch_of(DivergenceGuard(max_abs_param=None), [1.0], net=Net(math.inf))  # off


@pytest.mark.parametrize("scores,match", [((1.0, -1e6), None), ((1.0, -1000001.0), r"scores reach \|1e\+06\|"),
                                          ((math.nan, 0.0), r"scores reach \|nan\|"),
                                          ((0.0, math.inf), r"scores reach \|inf\|")])
def test_score_rule_on_the_first_validation_batch(scores, match):
    g, t, net = DivergenceGuard(), trainer(4), Net(scores=scores)
    g.on_validation_batch_end(t, net, None, {}, 1)  # only batch 0 is checked
    if match is None:
        g.on_validation_batch_end(t, net, None, {}, 0)
        return
    with pytest.raises(TrainingDiverged, match=r"^training diverged: validation " + match + r" at epoch 4"):
        g.on_validation_batch_end(t, net, None, {}, 0)


def validate(g, epoch, ndcg, hr, users=100):
    net = Net()
    net.last_val = {"val/ndcg@10": ndcg, "val/hr@10": hr}
    g.on_validation_end(trainer(epoch, users), net)


def test_validation_collapse_after_a_healthy_best():
    g = DivergenceGuard()
    validate(g, 4, 0.10, 0.20)  # 20 hits of 100 users: a best with evidence
    validate(g, 9, 0.05, 0.10)
    validate(g, 14, 0.0101, 0.02)  # just above 10% of the best
    with pytest.raises(TrainingDiverged, match=r"^training diverged: val/ndcg@10 collapsed to 0\.0099 at epoch 19 "
                                               r"from 0\.1 at epoch 4 \(below callbacks\.divergence\."
                                               r"collapse_fraction=0\.1 of its best\)"):
        validate(g, 19, 0.0099, 0.02)


def test_no_collapse_from_a_best_with_too_few_hits():
    g = DivergenceGuard()
    validate(g, 4, 0.30, 0.19)  # 19 hits: noise can take them all away
    validate(g, 9, 0.0, 0.0)
    validate(g, 14, 0.0, 0.0, users=10)
    assert g.best is None


def test_non_finite_validation_metric():
    with pytest.raises(TrainingDiverged, match=r"val/ndcg@10 is nan at epoch 3"):
        validate(DivergenceGuard(collapse_fraction=None), 3, math.nan, 0.1)


def test_state_survives_a_checkpoint():
    g = DivergenceGuard()
    epoch_of(g, [0.7, 0.6])
    validate(g, 4, 0.1, 0.3)
    h = DivergenceGuard()
    h.load_state_dict(g.state_dict())
    assert h.state_dict() == {"first_loss": pytest.approx(0.7), "best": 0.1, "best_epoch": 4}
    with pytest.raises(TrainingDiverged, match="collapsed"):
        validate(h, 9, 0.001, 0.0)
