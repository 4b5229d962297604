"""The Lightning + Hydra conventions a user brings: trainer.*, optimizer and scheduler objects,
callbacks and logger groups, the monitored metric, config groups without `+`."""

import functools
import json

import pytest
import torch
from hydra import compose, initialize_config_dir

from embfreq.training.builders import build_datamodule, build_model
from embfreq.errors import ConfigError
from embfreq.training.optim import with_fused
from embfreq.training.train import train
from tests.conftest import CONF


def cfg(tiny, overrides=()):
    path, cache = tiny
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[
            "data=custom", f"data.path={path}", "data.min_user_interactions=0", "data.min_item_interactions=0",
            f"cache_dir={cache}", "trainer.max_epochs=2", "eval_every=1", "data.batch_size=16",
            "data.eval_batch_size=32", "trainer=cpu", "analysis=false", "threads=1", *overrides])


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


def test_model_and_data_configs_instantiate_the_lightning_objects(tiny):
    """`data` instantiates the DataModule (batch sizes included) and `model` the LightningModule,
    with its encoder under `net`, as in the lightning-hydra-template."""
    import hydra.utils

    from embfreq.data.datamodule import RecDataModule
    from embfreq.models import SASRec
    from embfreq.nn.sasrec import SASRecEncoder

    c = cfg(tiny, ["data.batch_size=12", "data.maxlen=7", "model.net.num_blocks=1"])
    dm = hydra.utils.instantiate(c.data)
    assert isinstance(dm, RecDataModule) and (dm.batch_size, dm.eval_batch_size, dm.maxlen) == (12, 32, 7)
    model = build_model(c, build_datamodule(c))
    assert type(model) is SASRec and isinstance(model.encoder, SASRecEncoder)
    assert model.encoder.maxlen == 7 and len(model.encoder.attns) == 1
    assert model.hparams["net"] == {"_target_": "embfreq.nn.sasrec.SASRecEncoder", "maxlen": 7, "embedding_dim": 64,
                                    "num_blocks": 1, "num_heads": 1, "dropout": 0.2, "attend_padding": True}


@pytest.mark.parametrize("overrides, match", [
    (["model.net.maxlen=9"], "model.net.maxlen=9 differs from data.maxlen=50"),
    (["model.net.embedding_dim=32"], "the encoder's embedding_dim \\(32\\) differs from the item table's \\(64\\)"),
    (["+data.min_users=3"], "data: unknown key\\(s\\) min_users"),
])
def test_inconsistent_model_and_data_settings_give_one_line(tiny, tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        train(cfg(tiny, overrides), tmp_path)


def test_metrics_json_records_the_machine_and_libraries(tiny, tmp_path):
    """Results repeat exactly only on the same CPU kind and software: metrics.json says which."""
    import platform

    import numpy
    import pytorch_lightning

    m = train(cfg(tiny, ["trainer.max_epochs=1"]), tmp_path)
    rec = json.loads((tmp_path / "metrics.json").read_text())["machine"]
    assert rec == m["machine"]
    assert (rec["torch"], rec["numpy"], rec["pytorch_lightning"], rec["python"]) == (
        torch.__version__, numpy.__version__, pytorch_lightning.__version__, platform.python_version())
    assert rec["cpu"] and isinstance(rec["cpu_flags"], list) and rec["cpu_count"] >= 1
    if open("/proc/cpuinfo").read().count(" avx2") if platform.system() == "Linux" else False:
        assert "avx2" in rec["cpu_flags"]
