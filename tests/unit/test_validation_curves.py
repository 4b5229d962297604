"""scripts/validation_curves.py: validation curves read back from TensorBoard logs, exactly."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("validation_curves", ROOT / "scripts/validation_curves.py")
vc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vc)


def fake_run(root: Path, name: str, seed: int, lower, upper, points, best_epoch):
    """A run dir as training leaves it: metrics.json and tb/ with val scalars and Lightning's `epoch`."""
    run = root / name
    (run / "tb").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "model": "sasrec", "data": "tiny", "seed": seed, "lower_freq": lower, "upper_freq": upper,
        "item_table": "neighbours", "neighbours": "all", "best_epoch": best_epoch}))
    w = SummaryWriter(str(run / "tb"))
    for step, epoch_index, ndcg, hr in points:
        w.add_scalar("train/loss", 1.0, step)   # other tags are ignored
        w.add_scalar("epoch", epoch_index, step)
        w.add_scalar("val/ndcg@10", ndcg, step)
        w.add_scalar("val/hr@10", hr, step)
    w.close()
    return run


def test_csv_holds_every_validation_point_per_run_in_order(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "b", 2, 0, 5, [(9, 4, 0.25, 0.5), (19, 9, 0.375, 0.75)], best_epoch=9)
    fake_run(runs, "a", 1, None, None, [(9, 4, 0.125, 0.25)], best_epoch=4)
    assert vc.main([str(runs), "--out", str(tmp_path / "out"), "--cap", "5"]) == 0
    with open(tmp_path / "out/val_curves.csv") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["configuration", "seed", "epoch", "val_ndcg10", "val_hr10", "best"],
        ["SASRec · tiny · [0, 5]", "2", "5", "0.25", "0.5", "0"],
        ["SASRec · tiny · [0, 5]", "2", "10", "0.375", "0.75", "1"],   # best_epoch 9 = the 10th epoch
        ["SASRec · tiny · no band", "1", "5", "0.125", "0.25", "1"],
    ]
    png = (tmp_path / "out/val_curves.png").read_bytes()
    assert (tmp_path / "out/val_curves.pdf").stat().st_size > 0
    # the committed CSV alone redraws the same figure
    assert vc.main(["--from-csv", str(tmp_path / "out/val_curves.csv"), "--out", str(tmp_path / "re"),
                    "--cap", "5"]) == 0
    assert (tmp_path / "re/val_curves.png").read_bytes() == png


def test_from_csv_refuses_a_file_of_other_columns_and_roots_with_it(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,ndcg\n1,0.5\n")
    assert vc.main(["--from-csv", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "expected ['configuration'" in capsys.readouterr().err
    assert vc.main([str(tmp_path), "--from-csv", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not both or neither" in capsys.readouterr().err


def test_a_root_without_logged_runs_is_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert vc.main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no run dir with metrics.json and tb/" in capsys.readouterr().err


def test_a_log_without_validation_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path / "runs", "a", 1, None, None, [], best_epoch=None)
    w = SummaryWriter(str(run / "tb"))
    w.add_scalar("train/loss", 1.0, 0)
    w.close()
    assert vc.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2
    assert "no validation scalars" in capsys.readouterr().err


@pytest.mark.results
def test_committed_epoch_cap_curves_cover_every_400_epoch_run_but_seed_1s_baseline():
    folder = ROOT / "docs/results/epoch_cap_400_bands"
    with open(folder / "val_curves.csv") as f:
        runs = {(r["configuration"], int(r["seed"])) for r in csv.DictReader(f)}
    name = "SASRec · Beauty (users ≥ 10) · "
    expected = {(name + b, s) for b in ("[0, 5]", "[100, inf)", "no band")
                for s in (1, 2, 3)} - {(name + "no band", 1)}
    assert runs == expected
