"""Command-line parsing: report's and analyze's argparse (paths kept exactly, key=value as --key value,
one error line) and train's override checks."""

import os
import subprocess
import sys

import pytest

from embfreq.cli import analyze, report
from embfreq.cli.args import key_values
from embfreq.errors import UserError
from tests.conftest import ROOT

ODD = ["a,b c", "it's", 'say "x"', "${oc.env:HOME}", "a\\${x}", "end\\", "q\\'", "[x]", "{k: v}", "é ~#$%", "runs/lr=0.1"]


def test_odd_paths_are_kept_exactly():
    args = report.parser().parse_args(key_values([*ODD, "--out", ODD[0]], {"out": "--out"}))
    assert args.paths == ODD and args.out == ODD[0]
    for path in ODD:
        assert analyze.parser().parse_args([path]).run_dir == [path]


def test_key_values_are_the_flags():
    assert key_values(["d1", "d2", "out=x"], {"out": "--out"}) == ["d1", "d2", "--out", "x"]
    assert key_values(["run", "which=last", "accelerator=cpu", "lr=0.1"], {"which": "--which", "accelerator": "--accelerator"}) \
        == ["run", "--which", "last", "--accelerator", "cpu", "lr=0.1"]
    args = report.parser().parse_args(key_values(["d", "out=o=1"], {"out": "--out"}))
    assert (args.paths, args.out) == (["d"], "o=1")
    args = analyze.parser().parse_args(["run", "--which", "last", "--accelerator=cpu"])
    assert (args.run_dir, args.which, args.accelerator) == (["run"], "last", "cpu")


@pytest.mark.parametrize("argv, msg", [
    (["d", "--out"], "argument --out: expected one argument (see embfreq-report --help)"),
    (["-m", "d"], "unrecognized arguments: -m"),
])
def test_argparse_errors_are_a_user_error(argv, msg):
    with pytest.raises(UserError, match="^" + msg.replace("(", r"\(").replace(")", r"\)")):
        report.parser().parse_args(argv)


@pytest.mark.parametrize("name", ["report", "analyze"])
def test_help_lists_every_argument_and_writes_nothing(name, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", f"embfreq.{name}", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.startswith(f"usage: embfreq-{name} ")
    flags = {"report": ["PATH", "--out DIR"], "analyze": ["RUN_DIR", "--which", "--accelerator"]}[name]
    assert [f for f in flags if f not in out] == []
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
