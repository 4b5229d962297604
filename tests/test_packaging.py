"""The built wheel runs the main jobs: its configs and bundled data travel inside the package."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(out)], check=True, cwd=out, timeout=300)
    (whl,) = out.glob("embfreq-*.whl")
    site = out / "site"
    zipfile.ZipFile(whl).extractall(site)
    return site


def test_wheel_holds_configs_and_data(unpacked_wheel):
    pkg = unpacked_wheel / "embfreq"
    assert (pkg / "conf" / "train.yaml").is_file()
    for group in ("model", "data", "trainer", "band", "sweep", "experiment"):
        assert list((pkg / "conf" / group).glob("*.yaml")), group
    assert (pkg / "data" / "bundled" / "LastFM.txt.gz").is_file()


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
