"""One thread count per phase: training and evaluation each at their own, chosen from the machine
(training 1, evaluation the job's cores), each overridable, threads=N setting both, joblib sweeps
dividing the cores, and the policy applied in the run and recorded in metrics.json."""

import json
import os

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from embfreq.training.builders import run_threads
from embfreq.training.config_checks import check_config
from embfreq.errors import ConfigError
from embfreq.models.base import RankingModel
from embfreq.training.threads import phase_threads, with_wait_policy
from embfreq.training.train import train
from tests.conftest import CONF, synthetic_seqs, write_seq


def test_phase_threads_defaults_and_overrides():
    assert phase_threads(None, 2) == {"train": 1, "eval": 2, "source": "default"}
    assert phase_threads(None, 1) == {"train": 1, "eval": 1, "source": "default"}
    assert phase_threads(4, 2) == {"train": 4, "eval": 4, "source": "threads"}
    assert phase_threads({"train": None, "eval": 3}, 2) == {"train": 1, "eval": 3, "source": "threads.eval"}
    assert phase_threads({"train": 2, "eval": None}, 8) == {"train": 2, "eval": 8, "source": "threads.train"}


def compose_with_hydra(overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_wait_policy_is_a_short_spin_unless_the_environment_chose():
    env = {"PATH": "/bin"}
    with_wait_policy(env)
    assert env == {"PATH": "/bin", "GOMP_SPINCOUNT": "10000"}
    for chosen in ({"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "5"}):
        env = dict(chosen)
        with_wait_policy(env)
        assert env == chosen  # the user's choice is kept, nothing added beside it


def test_run_threads_from_the_config_and_the_joblib_share():
    cpus = len(os.sched_getaffinity(0))
    try:
        cfg = compose_with_hydra([])
        HydraConfig.instance().set_config(cfg)
        assert run_threads(cfg) == {"train": 1, "eval": cpus, "source": "default"}
        cfg = compose_with_hydra(["threads=3"])
        assert run_threads(cfg) == {"train": 3, "eval": 3, "source": "threads"}
        cfg = compose_with_hydra(["threads.eval=5"])
        assert run_threads(cfg) == {"train": 1, "eval": 5, "source": "threads.eval"}
        cfg = compose_with_hydra(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
        HydraConfig.instance().set_config(cfg)
        assert run_threads(cfg) == {"train": 1, "eval": max(1, cpus // 2), "source": "default"}
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.parametrize("override,message", [
    ("threads.train=0", "threads.train must be an integer >= 1 or null, got 0"),
    ("threads.eval=1.5", "threads.eval must be an integer >= 1 or null, got 1.5"),
    ("threads=0", "threads must be an integer >= 1 or null, got 0"),
    ("+threads.test=2", "threads takes train and eval, got ['test']"),
])
def test_thread_settings_are_checked(override, message):
    cfg = compose_with_hydra(["data.path=x", override])
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_config(cfg)


def test_each_phase_runs_at_its_count_and_the_run_records_it(tmp_path, monkeypatch):
    path = write_seq(tmp_path / "tiny.txt", synthetic_seqs(num_users=40, num_items=30))
    seen = {"train": set(), "val": set(), "test": set()}
    fit, val, test = RankingModel.training_step, RankingModel.validation_step, RankingModel.test_step
    monkeypatch.setattr(RankingModel, "training_step",
                        lambda self, b, i: (seen["train"].add(torch.get_num_threads()), fit(self, b, i))[1])
    monkeypatch.setattr(RankingModel, "validation_step",
                        lambda self, b, i: (seen["val"].add(torch.get_num_threads()), val(self, b, i))[1])
    monkeypatch.setattr(RankingModel, "test_step",
                        lambda self, b, i: (seen["test"].add(torch.get_num_threads()), test(self, b, i))[1])
    before = torch.get_num_threads()
    try:
        with initialize_config_dir(str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=[
                "data=custom", f"data.path={path}", "data.min_user_interactions=0", "data.min_item_interactions=0",
                f"cache_dir={tmp_path / 'cache'}", "trainer.max_epochs=2", "eval_every=1", "data.batch_size=16",
                "trainer=cpu", "analysis=false", "model=mf_bpr", "threads.train=1", "threads.eval=2", "~logger"])
        train(cfg, tmp_path / "run")
    finally:
        torch.set_num_threads(before)
    assert seen == {"train": {1}, "val": {2}, "test": {2}}
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["thread_policy"] == {"train": 1, "eval": 2, "source": "threads.train+threads.eval"} and m["threads"] == 1
    assert m["compile"] == {"setting": "auto", "enabled": False}
