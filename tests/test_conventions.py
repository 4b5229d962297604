"""The Lightning + Hydra conventions a user brings: trainer.*, optimizer and scheduler objects,
callbacks and logger groups, the monitored metric, config groups without `+`."""

import functools
import json

import pytest
import torch
from hydra import compose, initialize_config_dir

from embfreq.builders import build_datamodule, build_model
from embfreq.errors import ConfigError
from embfreq.optim import with_fused
from embfreq.train import train
from tests.conftest import CONF, synthetic_seqs, write_seq


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("conventions")
    return write_seq(d / "tiny.txt", synthetic_seqs(num_users=60, num_items=40)), d / "cache"


def cfg(tiny, overrides=()):
    path, cache = tiny
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[
            "data=custom", f"data.path={path}", "data.min_user_interactions=0", "data.min_item_interactions=0",
            f"cache_dir={cache}", "trainer.max_epochs=2", "eval_every=1", "model.batch_size=16",
            "eval.batch_size=32", "trainer=cpu", "analysis=false", "threads=1", *overrides])


def test_band_group_is_selected_without_plus(tiny):
    c = cfg(tiny, ["band=b5_20"])
    assert (c.lower_freq, c.upper_freq) == (5, 20)


def test_trainer_arguments_are_plain_overrides(tiny, tmp_path):
    m = train(cfg(tiny, ["trainer.max_epochs=3", "+trainer.limit_train_batches=1"]), tmp_path)
    assert m["epochs_trained"] == 3


def test_optimizer_object_takes_its_own_arguments_and_fused_where_it_exists(tiny):
    c = cfg(tiny, ["model.optimizer._target_=torch.optim.AdamW", "model.optimizer.lr=0.01",
                   "+model.optimizer.betas=[0.8,0.9]", "+model.optimizer.eps=1e-6"])
    dm = build_datamodule(c)
    dm.setup("fit")
    opt = build_model(c, dm).configure_optimizers()
    group = opt.param_groups[0]
    assert type(opt) is torch.optim.AdamW
    assert (group["lr"], tuple(group["betas"]), group["eps"]) == (0.01, (0.8, 0.9), 1e-6)
    assert group["fused"] is True  # the CPU kernel exists in this torch


def test_fused_is_requested_only_where_it_exists_and_not_set():
    params = [torch.nn.Parameter(torch.zeros(2))]
    plain = functools.partial(torch.optim.Adam, lr=0.1)
    assert with_fused(plain, params)(params).param_groups[0]["fused"] is True
    off = functools.partial(torch.optim.Adam, lr=0.1, fused=False)
    assert with_fused(off, params) is off
    no_fused = functools.partial(torch.optim.Adagrad, lr=0.1)  # takes fused, but its CPU kernel may not exist
    assert isinstance(with_fused(no_fused, params)(params), torch.optim.Adagrad)
    ints = [torch.zeros(2, dtype=torch.long)]
    assert with_fused(plain, ints) is plain  # fused needs floating-point parameters


def test_scheduler_steps_once_per_epoch(tiny, tmp_path):
    c = cfg(tiny, ["trainer.max_epochs=3", "callbacks.early_stopping=null",
                   "model.scheduler={_target_: torch.optim.lr_scheduler.StepLR, _partial_: true, step_size: 1, gamma: 0.5}"])
    train(c, tmp_path)
    ck = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 0.5 ** 3)


def test_csv_logger_and_no_logger(tiny, tmp_path):
    train(cfg(tiny, ["logger=csv"]), tmp_path / "csv_run")
    lines = (tmp_path / "csv_run" / "csv" / "metrics.csv").read_text().splitlines()
    assert "val/ndcg@10" in lines[0] and len(lines) > 1
    assert not (tmp_path / "csv_run" / "tb").exists()
    train(cfg(tiny, ["~logger"]), tmp_path / "quiet")
    assert not (tmp_path / "quiet" / "tb").exists() and (tmp_path / "quiet" / "metrics.json").is_file()


def test_monitored_metric_picks_the_best_checkpoint(tiny, tmp_path):
    m = train(cfg(tiny, ["monitor.metric=val/hr@5", "trainer.max_epochs=3"]), tmp_path)
    ck = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    cb = next(v for k, v in ck["callbacks"].items() if "filename='best'" in k or k.startswith("ModelCheckpoint"))
    assert cb["monitor"] == "val/hr@5"
    assert m["val"]["val/hr@5"] == pytest.approx(float(cb["best_model_score"]))


@pytest.mark.parametrize("overrides, match", [
    (["monitor.metric=val/auc@10"], r"monitor.metric must be val/<hr\|ndcg\|mrr\|recall\|precision>@<k>"),
    (["monitor.metric=val/ndcg@7"], r"with k in eval.ks"),
    (["monitor.mode=min"], r"monitor.mode must be one of \('max',\)"),
    (["callbacks.model_checkpoint=null"], r"callbacks.model_checkpoint is required"),
    (["+callbacks.extra={_target_: pytorch_lightning.callbacks.Nope}"], r"callbacks.extra: "),
])
def test_bad_callback_and_monitor_settings_give_one_line(tiny, tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        train(cfg(tiny, overrides), tmp_path)


def test_no_early_stopping_trains_to_max_epochs(tiny, tmp_path):
    m = train(cfg(tiny, ["callbacks.early_stopping=null", "patience=1", "trainer.max_epochs=4"]), tmp_path)
    assert m["epochs_trained"] == 4
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "ok"


def test_help_names_every_group_and_top_level_key():
    import subprocess
    import sys

    from omegaconf import OmegaConf

    out = subprocess.run([sys.executable, "-m", "embfreq.train", "--help"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    listed = out.split("== Current config")[0]
    groups = [p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"]
    keys = [k for k in OmegaConf.load(CONF / "train.yaml") if k not in ("defaults", "hydra")]
    missing = [x for x in groups + keys if f"  {x} " not in listed and f" {x}," not in listed and f", {x} " not in listed]
    assert not missing, missing
