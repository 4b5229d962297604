"""Issue 33, items 2 and 3: commands that read a run check what it recorded (analyze: data and
config; report: config, same data across runs, and no duplicate run counted as another seed)."""

import json
import shutil

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from embfreq.analysis.sweep.sweep_runs import ReportError, load_rows
from embfreq.errors import UserError
from embfreq.training.integrity import config_sha256
from embfreq.training.train import run_job
from tests.conftest import CONF, synthetic_seqs, write_seq

BASE = ["data=custom", "data.min_user_interactions=0", "data.min_item_interactions=0", "trainer.max_epochs=2",
        "eval_every=1", "data.batch_size=32", "model.embedding_dim=16", "trainer=cpu", "analysis=false",
        "threads=1", "+trainer.enable_progress_bar=false", "model=mf_bpr"]


def cfg(data, cache, *overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[*BASE, f"data.path={data}", f"cache_dir={cache}", *overrides])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two seeds of one tiny MF-BPR config; the tests work on copies."""
    d = tmp_path_factory.mktemp("integrity")
    seqs = synthetic_seqs(num_users=40, num_items=30)
    data = write_seq(d / "tiny.txt", seqs)
    for seed in (1, 2):
        run_job(cfg(data, d / "cache", f"seed={seed}"), d / "sweep" / f"s{seed}")
    return d, seqs


@pytest.fixture
def sweep(trained, tmp_path):
    d, seqs = trained
    shutil.copytree(d / "sweep", tmp_path / "sweep")
    data = tmp_path / "tiny.txt"
    shutil.copy(d / "tiny.txt", data)
    for run in (tmp_path / "sweep").iterdir():  # the copies read the copied data file
        c = yaml.safe_load((run / "config.yaml").read_text())
        c["data"]["path"] = str(data)
        (run / "config.yaml").write_text(yaml.safe_dump(c))
        state = json.loads((run / "run_state.json").read_text())
        state["config_sha256"] = config_sha256(OmegaConf.load(run / "config.yaml"))
        (run / "run_state.json").write_text(json.dumps(state))
    return tmp_path / "sweep", data, seqs


def test_config_sha_is_what_train_recorded(trained):
    d, _ = trained
    for seed in (1, 2):
        run = d / "sweep" / f"s{seed}"
        state = json.loads((run / "run_state.json").read_text())
        assert config_sha256(OmegaConf.load(run / "config.yaml")) == state["config_sha256"]


# -- analyze ------------------------------------------------------------------------------------
def analyze(run):
    from embfreq.cli.analyze import analyze as run_analyze

    return run_analyze(run, accelerator="cpu")


def test_analyze_unchanged_run_works(sweep):
    s, _, _ = sweep
    summary = analyze(s / "s1")
    assert summary["num_items"] == 30 and (s / "s1" / "items.csv").is_file()


def refused(run, match):
    before = (run / "metrics.json").read_bytes()
    with pytest.raises(UserError) as e:
        analyze(run)
    msg = str(e.value)
    assert "\n" not in msg and match in msg, msg
    assert (run / "metrics.json").read_bytes() == before and not (run / "items.csv").exists()
    return msg


def test_analyze_refuses_changed_data_with_the_same_items(sweep):
    s, data, seqs = sweep
    seqs = dict(seqs)
    seqs[1] = seqs[1][:-2] + seqs[1][-2:][::-1]  # one user's validation and test swapped: same items
    if seqs[1][-1] == seqs[1][-2]:
        seqs[2] = seqs[2][:-2] + seqs[2][-2:][::-1]
    write_seq(data, seqs)
    refused(s / "s1", "cannot analyze: the data changed since the run trained (its data fingerprint differs")


def test_analyze_refuses_an_edited_config(sweep):
    s, _, _ = sweep
    c = yaml.safe_load((s / "s1" / "config.yaml").read_text())
    c["eval"]["ks"] = [1, 10]
    (s / "s1" / "config.yaml").write_text(yaml.safe_dump(c))
    refused(s / "s1", "cannot analyze: config.yaml changed since the run started (run_state.json records")


def test_analyze_run_without_record_checks_the_item_count(sweep):
    s, data, seqs = sweep
    (s / "s1" / "run_state.json").unlink()
    write_seq(data, {**seqs, 99: [901, 902, 903]})  # a new user with three new items
    refused(s / "s1", "cannot analyze: the data changed since the run trained (33 items now, 30 in metrics.json)")


def test_analyze_damaged_record_is_one_line(sweep):
    s, _, _ = sweep
    (s / "s1" / "run_state.json").write_text("{")
    refused(s / "s1", "run_state.json: unreadable (JSONDecodeError")


# -- report ------------------------------------------------------------------------------------
def test_report_reads_two_seeds(sweep):
    s, _, _ = sweep
    rows = load_rows([s])
    assert sorted(r.seed for r in rows) == [1, 2] and all(r.ok for r in rows)


def test_report_refuses_a_copied_run_dir(sweep):
    s, _, _ = sweep
    shutil.copytree(s / "s1", s / "s1_copy")
    with pytest.raises(ReportError, match=r"^duplicate runs \(same config and seed 1\): \S+/s1 and \S+/s1_copy; "):
        load_rows([s])


def test_report_refuses_a_rerun_of_the_same_config_and_seed(sweep):
    """Another cache dir, thread count, analysis flag or logger, or a run from before the divergence
    guard, do not make it another run."""
    s, _, _ = sweep
    shutil.copytree(s / "s2", s / "s2_rerun")
    c = yaml.safe_load((s / "s2_rerun" / "config.yaml").read_text())
    c["cache_dir"] = c["data"]["cache_dir"] = "/elsewhere"
    c["threads"], c["analysis"], c["logger"] = 4, True, None
    del c["callbacks"]["divergence"]
    (s / "s2_rerun" / "config.yaml").write_text(yaml.safe_dump(c))
    (s / "s2_rerun" / "run_state.json").unlink()
    m = json.loads((s / "s2_rerun" / "metrics.json").read_text())
    m.update(started_at=m["started_at"] + 100, run_dir=str(s / "s2_rerun"))
    (s / "s2_rerun" / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(ReportError, match=r"^duplicate runs \(same config and seed 2\): \S+/s2 and \S+/s2_rerun"):
        load_rows([s])


def test_report_refuses_a_copy_without_config(sweep):
    s, _, _ = sweep
    shutil.copytree(s / "s1", s / "s1_copy")
    (s / "s1_copy" / "config.yaml").unlink()
    with pytest.raises(ReportError, match=r"^duplicate runs .*/s1 and \S+/s1_copy"):
        load_rows([s])


def test_report_keeps_runs_that_differ_in_a_setting(sweep):
    s, _, _ = sweep
    shutil.copytree(s / "s2", s / "s2_lr")
    c = yaml.safe_load((s / "s2_lr" / "config.yaml").read_text())
    c["model"]["optimizer"]["lr"] = 0.01
    (s / "s2_lr" / "config.yaml").write_text(yaml.safe_dump(c))
    (s / "s2_lr" / "run_state.json").unlink()
    m = json.loads((s / "s2_lr" / "metrics.json").read_text())
    m.update(started_at=m["started_at"] + 100, run_dir=str(s / "s2_lr"))
    (s / "s2_lr" / "metrics.json").write_text(json.dumps(m))
    assert len(load_rows([s])) == 3


def test_report_allows_a_failed_run_beside_its_ok_rerun(sweep):
    s, _, _ = sweep
    shutil.copytree(s / "s1", s / "s1_failed")
    m = json.loads((s / "s1_failed" / "metrics.json").read_text())
    (s / "s1_failed" / "metrics.json").write_text(json.dumps({"status": "failed", "error": "x", "seed": 1,
                                                                "model": m["model"], "data": m["data"]}))
    rows = load_rows([s])
    assert sorted((r.seed, r.status) for r in rows) == [(1, "failed"), (1, "ok"), (2, "ok")]


def test_report_refuses_an_edited_config(sweep):
    s, _, _ = sweep
    c = yaml.safe_load((s / "s2" / "config.yaml").read_text())
    c["model"]["embedding_dim"] = 64
    (s / "s2" / "config.yaml").write_text(yaml.safe_dump(c))
    with pytest.raises(ReportError, match=r"/s2: cannot report it: config\.yaml changed since the run started"):
        load_rows([s])


def test_report_refuses_runs_of_one_data_config_on_different_data(sweep):
    s, _, _ = sweep
    state = json.loads((s / "s2" / "run_state.json").read_text())
    state["data_fingerprint"] = "0" * 64
    (s / "s2" / "run_state.json").write_text(json.dumps(state))
    with pytest.raises(ReportError, match=r"^runs on data=custom trained on different data .*: \S+/s1 and \S+/s2;"):
        load_rows([s])
