"""benchmarks/gpu_figures.sh --dry-run on a CPU: the card's sweep (with its baseline) at a tiny budget,
one job after another and as parallel processes, their summary tables and report, the grid wall
times, and the eager/compiled step table, written to the dir given as the argument."""

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
                       env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    steps = (out / "steps.txt").read_text().splitlines()
    assert [s.split(":")[0] for s in steps] == ["card_sweep", "card_grid", "gpu_step"], steps
    assert all(": exit 0 in " in s for s in steps), steps
    for name in ("card_sweep", "card_grid"):
        sweep = out / name
        table = (sweep / "summary.txt").read_text()
        assert "7 jobs: 6 ok, 1 skipped" in table, table
        with open(sweep / "summary.csv", newline="") as f:
            bands = [r for r in csv.DictReader(f) if r["band"] != "baseline" and r["seeds"]]
        assert len(bands) == 5 and all(r["delta_ndcg10"] and r["delta_ci_low"] for r in bands)
        assert (sweep / "summary.md").is_file() and (sweep / "runs.csv").is_file()
    grid = (out / "grid.md").read_text().splitlines()
    assert grid[2].startswith("| card_sweep | 1 | ") and grid[3].startswith("| card_grid | 2 | "), grid
    step = (out / "gpu_step.md").read_text()
    assert "| eager |" in step and "| compiled |" in step and "speed-up over eager" in step, step
