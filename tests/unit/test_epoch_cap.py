"""scripts/epoch_cap.py: each longer-cap run against the one shorter-cap run of the same config."""

import importlib.util
import math

import numpy as np
import pytest
import yaml

from embfreq.analysis.per_run.per_user import write_test_users
from tests.conftest import ROOT
from tests.conftest import fake_run

spec = importlib.util.spec_from_file_location("epoch_cap", ROOT / "scripts" / "epoch_cap.py")
epoch_cap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(epoch_cap)


def run(root, name, cap, ranks, lr=1e-3, threads=1, **kw):
    d = fake_run(root, name, **kw)
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["trainer"]["max_epochs"] = cap
    cfg["model"]["optimizer"] = {"lr": lr}
    cfg["threads"] = threads
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    write_test_users(d, np.array(ranks), np.zeros(len(ranks), int), np.zeros(len(ranks), int))
    return d


def ndcg(r):
    return 1 / math.log2(r + 1) if r <= 10 else 0.0


@pytest.fixture
def runs(tmp_path):
    short, long = tmp_path / "short", tmp_path / "long"
    run(short, "base", 200, [1, 2, 20], lower=None, upper=None, in_band=0, threads=2)  # threads differ: still a pair
    run(short, "band", 200, [1, 1, 20])
    run(short, "band_other_lr", 200, [5, 5, 5], lr=1e-2)  # another config: never paired
    run(long, "base", 400, [1, 1, 1], lower=None, upper=None, in_band=0)
    run(long, "band", 400, [2, 20, 1])
    return short, long


def test_pairs_by_config_and_gives_the_paired_change(runs):
    short, long = runs
    found = epoch_cap.pairs([short], [long])
    assert [(label, s.run_dir.name, lr.run_dir.name) for label, s, lr in found] == [
        ("no band", "base", "base"), ("[0, 5] all", "band", "band")]
    lines = epoch_cap.table(found).splitlines()
    base_gap = (0 + (1 - ndcg(2)) + 1) / 3
    band_gap = ((ndcg(2) - 1) + (0 - 1) + (1 - 0)) / 3
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:4]]
    assert cells[0][:3] == ["no band", "20, 15, 0.1000", "20, 15, 0.1000"]
    assert cells[0][3].startswith(f"{base_gap:+.4f} [")
    assert cells[1][3].startswith(f"{band_gap:+.4f} [".replace("-", "−"))


def test_a_long_run_without_its_short_run_exits_in_one_line(runs, tmp_path):
    short, long = runs
    run(long, "orphan", 400, [1, 1, 1], lower=5, upper=20)
    with pytest.raises(SystemExit) as e:
        epoch_cap.pairs([short], [long])
    assert "0 runs under" in str(e.value) and "orphan" in str(e.value) and "\n" not in str(e.value)


def test_two_matching_short_runs_are_refused(runs):
    short, long = runs
    run(short, "band_again", 200, [1, 1, 1])
    with pytest.raises(SystemExit, match="2 runs under"):
        epoch_cap.pairs([short], [long])


def test_bad_inputs_exit_in_one_line(runs, tmp_path):
    short, long = runs
    with pytest.raises(SystemExit, match="no such file or directory"):
        epoch_cap.main([str(tmp_path / "nowhere"), "--long", str(long)])
    failed = fake_run(long, "failed", status="failed", lower=5, upper=20)
    with pytest.raises(SystemExit, match="is not a finished run"):
        epoch_cap.pairs([short], [long])
    (failed / "metrics.json").unlink()
    (failed / "config.yaml").unlink()
    (short / "band" / "test_users.npz").unlink()
    with pytest.raises(SystemExit, match="has no test_users.npz"):
        epoch_cap.pairs([short], [long])
