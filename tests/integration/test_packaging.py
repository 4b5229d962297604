"""The built wheel runs the main jobs: its configs and bundled data travel inside the package."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools would pack stale modules left there
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(out)], check=True, cwd=out, timeout=300)
    (whl,) = out.glob("embfreq-*.whl")
    site = out / "site"
    zipfile.ZipFile(whl).extractall(site)
    return site


def test_wheel_holds_configs_and_data(unpacked_wheel):
    pkg = unpacked_wheel / "embfreq"
    assert (pkg / "conf" / "train.yaml").is_file() and (pkg / "conf" / "hydra" / "help" / "embfreq.yaml").is_file()
    for sub in ("cli", "training", "analysis/per_run", "analysis/sweep", "analysis/figures"):
        assert (pkg / sub / "__init__.py").is_file(), sub
    for group in ("model", "data", "trainer", "band", "sweep", "experiment"):
        assert list((pkg / "conf" / group).glob("*.yaml")), group
    assert (pkg / "data" / "bundled" / "LastFM.txt.gz").is_file()


@pytest.mark.slow
def test_installed_package_runs_prepare_and_composes_train(unpacked_wheel, tmp_path):
    """From outside the repo, with only the wheel's files importable (not the source tree)."""
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel), "EMBFREQ_CACHE": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, "-m", "embfreq.prepare", "data=lastfm"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    stats = json.loads(p.stdout.strip().splitlines()[-1])
    assert stats["data"] == "lastfm" and stats["users"] == 1090
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cache"]  # prepare makes no run dir
    p = subprocess.run([sys.executable, "-c", "import embfreq.train as t; print(t.__file__)"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.stdout.strip().startswith(str(unpacked_wheel))
    p = subprocess.run([sys.executable, "-m", "embfreq.train", "model=mf_bpr", "--cfg", "job"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "name: mf_bpr" in p.stdout


@pytest.mark.slow
def test_console_script_entry_points_find_the_configs(unpacked_wheel, tmp_path):
    """A console script imports embfreq.prepare as a module (not __main__): Hydra then looks the
    configs up as the package embfreq.conf."""
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel), "EMBFREQ_CACHE": str(tmp_path / "cache")}
    code = "import sys; from embfreq.cli.prepare import cli; sys.argv = ['embfreq-prepare', 'data=lastfm']; cli()"
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["users"] == 1090
    code = "import sys; from embfreq.cli.train import cli; sys.argv = ['embfreq-train', 'model=mf_bpr', '--cfg', 'job']; cli()"
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "name: mf_bpr" in p.stdout


def test_report_and_analyze_console_scripts_run_from_the_wheel(unpacked_wheel, tmp_path):
    """embfreq-report and embfreq-analyze call sys.exit(main()) from the wheel: --help, an error in one line,
    and the cwd gets no run dir, .hydra/ or outputs/."""
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel)}
    cases = [(["embfreq.cli.report", "--help"], 0, "usage: embfreq-report"),
             (["embfreq.cli.report", "runs,1", "--out", "o"], 2, "embfreq: error: runs,1: no such file"),
             (["embfreq.cli.analyze", "--help"], 0, "usage: embfreq-analyze"),
             (["embfreq.cli.analyze", "r", "which=last"], 2, "embfreq: error: r: not a run directory")]
    for (module, *args), rc, expected in cases:
        code = f"import sys; from {module} import main; sys.argv = {['embfreq', *args]!r}; sys.exit(main())"
        p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == rc and expected in p.stdout + p.stderr, (args, p.stdout, p.stderr)
    assert list(tmp_path.iterdir()) == []


def test_console_scripts_are_declared():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"embfreq-train": "embfreq.cli.train:cli", "embfreq-prepare": "embfreq.cli.prepare:cli",
                       "embfreq-report": "embfreq.cli.report:main", "embfreq-analyze": "embfreq.cli.analyze:main"}
