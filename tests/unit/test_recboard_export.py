"""scripts/recboard_side_by_side.py export: embfreq's split in FreeRec's format, on a tiny file."""

import importlib.util

from tests.conftest import ROOT


def load():
    spec = importlib.util.spec_from_file_location("rb", ROOT / "scripts" / "recboard_side_by_side.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_export_writes_the_leave_one_out_split_with_freerec_ids(tmp_path):
    # seq format: a user, then items in order; items here are renumbered by embfreq from 1
    data = tmp_path / "tiny.txt"
    data.write_text("u1 a b c d\nu2 b c a\nu3 c a b d e\n")
    out = tmp_path / "export"
    stats = load().export(out, ["data=custom", f"data.path={data}", "data.format=seq",
                                "data.min_user_interactions=0", "data.min_item_interactions=0",
                                f"cache_dir={tmp_path / 'cache'}"])
    assert (stats["users"], stats["items"], stats["train_rows"]) == (3, 5, 6)
    rows = {n: [line.split("\t") for line in (out / f"{n}.txt").read_text().splitlines()]
            for n in ("train", "valid", "test")}
    assert all(r[0] == ["USER", "ITEM", "TIMESTAMP"] for r in rows.values())
    train = [tuple(map(int, r)) for r in rows["train"][1:]]
    valid = [tuple(map(int, r)) for r in rows["valid"][1:]]
    test = [tuple(map(int, r)) for r in rows["test"][1:]]
    # per user: all but the last two items train (position = timestamp), then valid, then test
    assert [r[0] for r in train] == [0, 0, 1, 2, 2, 2]
    assert [r[2] for r in train] == [0, 1, 0, 0, 1, 2]
    assert [(u, t) for u, _, t in valid] == [(0, 2), (1, 1), (2, 3)]
    assert [(u, t) for u, _, t in test] == [(0, 3), (1, 2), (2, 4)]
    # the same item keeps one id everywhere, and ids are 0-based (embfreq's padding row dropped)
    seqs = {0: "abcd", 1: "bca", 2: "cabde"}
    ids = {}
    for u, s in seqs.items():
        got = [i for v, i, _ in train if v == u] + [valid[u][1], test[u][1]]
        for letter, i in zip(s, got):
            assert ids.setdefault(letter, i) == i
    assert sorted(ids.values()) == [0, 1, 2, 3, 4]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    mod = load()
    assert mod.main(["export", str(tmp_path / "x"), "data=no_such_data"]) == 1
    assert mod.main(["plot", str(tmp_path / "missing")]) == 1
    assert mod.main(["nonsense"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and err[0].startswith("recboard_side_by_side: ") and err[2].startswith("usage: ")
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_plot_draws_both_curves_under_the_given_title(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from embfreq.analysis.figures import band_figures

    mod = load()
    (tmp_path / "curves.csv").write_text("epoch,impl,val_ndcg10,val_hr10\n"
                                         "20,embfreq,0.03,0.05\n10,embfreq,0.02,0.04\n"
                                         "10,recboard,0.01,0.03\n20,recboard,0.025,0.045\n")
    drawn, real_save = {}, band_figures.save

    def spy(fig, stem):
        ax = fig.axes[0]
        drawn["title"] = ax.get_title()
        drawn["lines"] = [(ln.get_label(), list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.get_lines()]
        return real_save(fig, stem)

    monkeypatch.setattr(band_figures, "save", spy)
    assert mod.main(["plot", str(tmp_path), "MF-BPR · test"]) == 0
    plt.close("all")
    assert drawn["title"] == "MF-BPR · test"
    assert drawn["lines"] == [("RecBoard (FreeRec)", [10, 20], [0.01, 0.025]), ("embfreq", [10, 20], [0.02, 0.03])]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "curves.pdf").exists()
    assert mod.main(["plot", str(tmp_path), "a", "b"]) == 2
