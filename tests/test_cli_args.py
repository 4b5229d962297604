"""The argv shim of embfreq.report and embfreq.analyze: bare paths, the old flags, quoting, its errors."""

import os
import re
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from embfreq.cli.args import quote, to_overrides
from embfreq.errors import UserError
from tests.conftest import CONF, ROOT

REPORT = dict(key="paths", many=True, flags={"--out": "out"})
ANALYZE = dict(key="run_dir", many=False, flags={"--which": "which", "--accelerator": "accelerator"})
ODD = ["a,b c", "it's", 'say "x"', "${oc.env:HOME}", "a\\${x}", "end\\", "q\\'", "[x]", "{k: v}", "é ~#$%"]


def composed(name, argv, **shim):
    with initialize_config_module("embfreq.conf", version_base="1.3"):
        return compose(name, overrides=to_overrides(argv, **shim))


def test_odd_paths_survive_hydra_exactly():
    cfg = composed("report", [*ODD[:-1], "--out", ODD[-1]], **REPORT)
    assert list(cfg.paths) == ODD[:-1] and cfg.out == ODD[-1]
    for path in ODD:
        assert composed("analyze", [path], **ANALYZE).run_dir == path
    for path in [*ODD, "runs/lr=0.1"]:  # a path with = only as paths=[...] / run_dir=...
        assert list(composed("report", [f"paths=[{quote(path)}]"], **REPORT).paths) == [path]
        assert composed("analyze", [f"run_dir={quote(path)}"], **ANALYZE).run_dir == path


def test_bare_arguments_and_old_flags():
    assert to_overrides(["d1", "d2", "out=x"], **REPORT) == ["paths=['d1','d2']", "out=x"]
    assert to_overrides(["d", "--out", "o"], **REPORT) == to_overrides(["--out=o", "d"], **REPORT) \
        == ["paths=['d']", "out='o'"]
    assert to_overrides(["run", "which=last"], **ANALYZE) == ["run_dir='run'", "which=last"]
    assert to_overrides(["--which", "last", "run", "--accelerator", "cpu"], **ANALYZE) \
        == ["run_dir='run'", "which='last'", "accelerator='cpu'"]
    cfg = composed("analyze", ["run", "--which", "last", "--accelerator", "cpu"], **ANALYZE)
    assert (cfg.run_dir, cfg.which, cfg.accelerator) == ("run", "last", "cpu")
    # overrides and Hydra's flags pass through; a flag's value is not a path
    assert to_overrides(["paths=[a]", "+x=1", "~out", "--cfg", "job", "-cn", "report"], **REPORT) \
        == ["paths=[a]", "+x=1", "~out", "--cfg", "job", "-cn", "report"]
    assert to_overrides(["--info", "defaults", "r"], **ANALYZE) == ["run_dir='r'", "--info", "defaults"]
    assert to_overrides(["--info", "r"], **ANALYZE) == ["run_dir='r'", "--info"]
    assert to_overrides([], **REPORT) == []
    assert to_overrides(["r", "hydra.verbose=true", "hydra/help=default"], **ANALYZE)[1:] \
        == ["hydra.verbose=true", "hydra/help=default"]


@pytest.mark.parametrize("argv, shim, msg", [
    (["r1", "r2"], ANALYZE, "one run_dir only, got 2: r1 r2"),
    (["r1", "run_dir=r2"], ANALYZE, "run_dir given twice"),
    (["d", "paths=[e]"], REPORT, "paths given twice"),
    (["d", "--out"], REPORT, "--out needs a value (out=...)"),
    (["r", "--which"], ANALYZE, "--which needs a value (which=...)"),
    (["-m", "d"], REPORT, "-m: no multirun here"),
    (["--multirun", "r"], ANALYZE, "--multirun: no multirun here"),
    # an argument with = is an override: an unknown key (or a path with =) is one line, not Hydra's dump
    (["d", "ot=x"], REPORT, "ot: no such key (the keys are paths, out); a path with = is given as paths=['ot=x']"),
    (["runs/lr=0.1"], ANALYZE, "runs/lr: no such key (the keys are run_dir, which, accelerator); "
                               "a path with = is given as run_dir='runs/lr=0.1'"),
])
def test_shim_errors(argv, shim, msg):
    with pytest.raises(UserError, match="^" + re.escape(msg)):
        to_overrides(argv, **shim)


@pytest.mark.parametrize("name", ["report", "analyze"])
def test_help_lists_every_key_and_writes_nothing(name, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", f"embfreq.{name}", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    listed = out.split("== Current config")[0]
    keys = [k for k in OmegaConf.load(CONF / f"{name}.yaml") if k not in ("defaults", "hydra")]
    assert out.startswith(f"embfreq-{name}: ") and [k for k in keys if f"  {k} " not in listed] == []
    assert list(tmp_path.iterdir()) == []


# -- embfreq.train: every override checked before Hydra (issue 32) ---------------------------------------------

@pytest.mark.parametrize("argv, msg", [
    (["lower_frq=3"], "lower_frq: no such key; did you mean lower_freq?"),
    (["+lower_frq=3"], "lower_frq: no such key; did you mean lower_freq?"),
    (["-m", "uper_freq=1,2"], "uper_freq: no such key; did you mean upper_freq?"),
    (["model=sasrek"], "model=sasrek: no such model; the options are gru4rec, mf_bpr, sasrec; did you mean sasrec?"),
    (["-m", "data=lastfm,yelpp"], "data=yelpp: no such data; the options are amazon2014, beauty, beauty_1000, custom, lastfm, yelp; "
                                  "did you mean yelp?"),
    (["+sweep=bands_beuty"], "sweep=bands_beuty: no such sweep"),
    (["model.net.num_blokcs=2"], "model.net.num_blokcs: no such key in model.net; did you mean num_blocks?"),
    (["model=mf_bpr", "model.net.num_blocks=2"], "model.net.num_blocks: no such key in model.net"),
    (["+trainer.fast_dev_rn=true"], "trainer.fast_dev_rn: pl.Trainer takes no argument 'fast_dev_rn'; did you mean "
                                    "fast_dev_run?"),
    (["model.net.num_blocks=-1"], "model.net.num_blocks must be an integer >= 1, got -1"),
    (["deterministic=foo"], "deterministic must be one of ('true', 'false', 'warn'), got 'foo'"),
    (["seed=4294967296"], "seed must be an integer <= 4294967295, got 4294967296"),
    (["data=custom"], "data.path is required for data=custom"),
])
def test_train_overrides_refused_in_one_line(argv, msg):
    from embfreq.cli.args import check_train_overrides

    with pytest.raises(UserError) as e:
        check_train_overrides(argv)
    assert str(e.value).startswith(msg) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize("argv", [
    ["data=lastfm", "trainer.max_epochs=1", "+trainer.fast_dev_run=true", "~logger"],
    ["-m", "lower_freq=0,5", "model=sasrec,mf_bpr", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    ["-m", "+sweep=bands_beauty", "seed=1"],
    ["data.columns={user: u, item: i}", "data=custom", "data.path=x.txt"],  # after open_mappings: ++data.columns
    ["--help"], ["resume=some/run"],
])
def test_train_overrides_accepted(argv):
    from embfreq.cli.args import check_train_overrides, open_mappings

    assert check_train_overrides(open_mappings(argv)) == open_mappings(argv)


def test_trainer_argument_needs_no_plus():
    # README: trainer.* takes any pl.Trainer argument; one the trainer config does not set is added for Hydra
    from embfreq.cli.args import check_train_overrides

    assert check_train_overrides(["trainer.fast_dev_run=true", "trainer.max_epochs=2", "data=lastfm"]) == [
        "++trainer.fast_dev_run=true", "trainer.max_epochs=2", "data=lastfm"]
    assert check_train_overrides(["-m", "trainer.limit_train_batches=1,2", "lower_freq=0,5"]) == [
        "-m", "++trainer.limit_train_batches=1,2", "lower_freq=0,5"]


@pytest.mark.slow
def test_a_moved_key_says_where_it_went():
    """The top-level `neighbours` of earlier versions is item_table.neighbours now: one line, exit 2."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    for args in (["neighbours=outside_band"], ["-m", "neighbours=all,outside_band"]):
        out = subprocess.run([sys.executable, "-m", "embfreq.train", *args], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 2, out.stderr
        line = out.stderr.strip()
        assert "\n" not in line and "it moved to item_table.neighbours" in line
