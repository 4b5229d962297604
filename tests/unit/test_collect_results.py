"""scripts/collect_results.py: copying finished runs into a results page never overwrites another run."""

import importlib.util
import sys

import pytest

from tests.conftest import ROOT
from tests.conftest import fake_run


def collect(monkeypatch, *argv):
    spec = importlib.util.spec_from_file_location("collect", ROOT / "scripts" / "collect_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(sys, "argv", ["collect_results.py", *map(str, argv)])
    return mod.main()


def test_collects_finished_runs_and_is_idempotent(tmp_path, monkeypatch):
    sweep = tmp_path / "R" / "s1" / "grid"
    fake_run(sweep, "0_base", lower=None, upper=None)
    fake_run(sweep, "1_band", ndcg=0.08)
    fake_run(sweep, "2_unfinished", status=None)
    page = tmp_path / "page"
    assert collect(monkeypatch, sweep, "--to", page) == 0
    assert sorted(p.parent.name for p in (page / "runs" / "s1" / "grid").rglob("metrics.json")) == ["0_base", "1_band"]
    assert collect(monkeypatch, sweep, "--to", page) == 0  # the same runs again: nothing clashes


@pytest.mark.parametrize("second_root", ["same_call", "later_call"])
def test_a_run_dir_name_already_taken_by_another_run_copies_nothing(tmp_path, monkeypatch, capsys, second_root):
    # R/item_budgets_a/s1/grid and R/item_budgets_b/s1/grid both map to runs/s1/grid
    a = tmp_path / "R" / "item_budgets_a" / "s1" / "grid"
    b = tmp_path / "R" / "item_budgets_b" / "s1" / "grid"
    fake_run(a, "0_run", ndcg=0.1)
    fake_run(b, "0_run", ndcg=0.2)
    fake_run(b, "1_new", ndcg=0.3)
    page = tmp_path / "page"
    if second_root == "later_call":
        assert collect(monkeypatch, a, "--to", page) == 0
        assert collect(monkeypatch, b, "--to", page) == 2
    else:
        assert collect(monkeypatch, a, b, "--to", page) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("collect_results: nothing copied: ") and "0_run" in err[0]
    dest = page / "runs" / "s1" / "grid"
    assert not (dest / "1_new").exists()
    if second_root == "later_call":  # the first run is still there, unchanged
        assert (dest / "0_run" / "metrics.json").read_bytes() == (a / "0_run" / "metrics.json").read_bytes()
