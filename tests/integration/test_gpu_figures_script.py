"""benchmarks/gpu_figures.sh --dry-run on a CPU: the card's sweep (with its baseline) at a tiny budget,
its summary table and report written to the dir given as the argument."""

import csv
import os
import subprocess

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_gpu_figures_dry_run_writes_the_card_sweep_tables(tmp_path):
    out = tmp_path / "figs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_figures.sh"), "--dry-run", str(out)], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    steps = (out / "steps.txt").read_text().splitlines()
    assert len(steps) == 1 and steps[0].startswith("card_sweep: exit 0 in "), steps
    sweep = out / "card_sweep"
    table = (sweep / "summary.txt").read_text()
    assert "7 jobs: 6 ok, 1 skipped" in table, table
    with open(sweep / "summary.csv", newline="") as f:
        bands = [r for r in csv.DictReader(f) if r["band"] != "baseline" and r["seeds"]]
    assert len(bands) == 5 and all(r["delta_ndcg10"] and r["delta_ci_low"] for r in bands)
    assert (sweep / "summary.md").is_file() and (sweep / "runs.csv").is_file()
