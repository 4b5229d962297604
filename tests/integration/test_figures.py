"""The figures' one style (issue 35) and their regeneration: every committed figure under
docs/results is made by scripts/regenerate_figures.py from committed files, has its PDF beside its
PNG, labels its axes with display names, draws no line between unrelated bands, and has no text
overlapping another."""

import importlib.util
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from embfreq.analysis.figures import band_figures, figure_base
from embfreq.analysis.figures.figure_base import bound_tick, display, display_title, overlapping_texts
from embfreq.analysis.figures.ndcg_heatmap import Cell, Grid, plot_heatmap
from embfreq.analysis.sweep.sweep_report import make_report
from tests.conftest import ROOT

RESULTS = ROOT / "docs" / "results"
# config keys a reader should never see on a figure: the display names replace them
RAW = re.compile(r"\b(sasrec|mf_bpr|gru4rec|beauty_1000|baseline|outside_band|mixed_dim)\b|neighbours=")


def load_script():
    spec = importlib.util.spec_from_file_location("regenerate_figures", ROOT / "scripts" / "regenerate_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def committed_figures() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--", "docs/results", "docs/figures"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return sorted(p for p in out.stdout.splitlines() if p.endswith((".png", ".pdf")))


@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved while the test runs: [(figure, path)], through figure_base.save_as."""
    figs = []
    real = figure_base.save_as

    def spy(fig, path, fmt, **kw):
        figs.append((fig, Path(path)))
        return real(fig, path, fmt, **kw)

    monkeypatch.setattr(figure_base, "save_as", spy)
    return figs


def check_style(fig, name: str) -> None:
    """One figure's style: axes labelled (a colorbar too), no config key shown, text >= 7 pt and
    inside the figure, no two texts overlapping. (Units are in the labels' wording, figure_base.LABELS.)"""
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes, name
    assert any(ax.get_xlabel().strip() for ax in axes), name  # stacked panels: the bottom one
    for ax in axes:  # each y axis labelled, or sharing it with a labelled one (a broken x axis)
        assert any(o.get_ylabel().strip() for o in ax.get_shared_y_axes().get_siblings(ax)), name
    for cb in (ax for ax in fig.axes if ax.get_label() == "<colorbar>"):
        assert cb.get_ylabel().strip(), name
    fig.canvas.draw()
    texts = figure_base.texts(fig)
    shown = [t.get_text() for t in texts]
    assert not [s for s in shown if RAW.search(s)], (name, [s for s in shown if RAW.search(s)])
    assert min(t.get_fontsize() for t in texts) >= figure_base.SMALL, name
    r = fig.canvas.get_renderer()
    for t in texts:
        e = t.get_window_extent(r)
        assert e.x0 >= fig.bbox.x0 - 1 and e.x1 <= fig.bbox.x1 + 1 and e.y0 >= -1 and e.y1 <= fig.bbox.y1 + 1, (name, t.get_text())
    assert overlapping_texts(fig) == [], name


def check_report_figures(drawn, written) -> None:
    saved = {}
    for fig, path in drawn:
        saved.setdefault(path.parent / path.stem, (fig, set()))[1].add(path.suffix)
    assert saved
    for stem, (fig, suffixes) in saved.items():
        assert suffixes == {".png", ".pdf"}, stem  # PDF beside every PNG
        check_style(fig, stem.name)
    assert {p for p in written if p.suffix in (".png", ".pdf")} == {s.parent / (s.name + x) for s in saved
                                                                   for x in (".png", ".pdf")}


def test_display_names_and_bounds():
    assert [display(k) for k in ("sasrec", "mf_bpr", "baseline", "beauty", "outside_band")] == [
        "SASRec", "MF-BPR", "no band", "Beauty", "neighbours (outside band)"]
    assert display("hashed buckets=16") == "hashed, 16 buckets"
    assert display("mixed_dim band_dim=8") == "mixed dim, band dim 8"
    assert display("trainer.max_epochs=400") == "trainer.max_epochs=400"  # a variant: as given
    assert display_title("mf_bpr · beauty_1000 · band [0, 5] (neighbours=outside_band)") == (
        "MF-BPR · Beauty (users ≥ 10) · band [0, 5], neighbours (outside band)")
    assert display_title("sasrec · yelp · neighbours=shared") == "SASRec · Yelp · one shared vector"
    assert [bound_tick(None, True), bound_tick(None, False), bound_tick(5.0, True), bound_tick(2.5, False)] == [
        "-inf", "inf", "5", "2.5"]


def band_rec(band, lo, hi, share, delta, mode="all", base=0.04):
    return {"data": "beauty", "model": "sasrec", "variant": "", "neighbours": mode, "band": band, "lower_freq": lo,
            "upper_freq": hi, "share_in_band": share, "baseline_ndcg10": base, "delta_ndcg10": delta,
            "delta_ci_low": delta - 0.002, "delta_ci_high": delta + 0.002, "ndcg10_mean": base + delta,
            "significant": True, "seed_significant": mode == "all"}


BANDS = [band_rec("[0, 5]", 0, 5, 0.7, -0.008), band_rec("[0, 5]", 0, 5, 0.7, -0.011, "outside_band"),
         band_rec("[5, 5]", 5, 5, 0.08, -0.004), band_rec("[10, 20]", 10, 20, 0.085, -0.005),
         band_rec("[100, inf)", 100, None, 0.0025, -0.003), band_rec("[100, inf)", 100, None, 0.0025, -0.007,
                                                                      "outside_band"),
         band_rec("[0, 5]", 0, 5, 0.7, -0.02, "hashed buckets=16")]


def test_frontier_draws_markers_and_no_line_between_bands(drawn, tmp_path):
    base = {"band": "baseline", "neighbours": None, "ndcg10_mean": 0.04}
    band_figures.frontier([base, *BANDS], "sasrec · beauty", tmp_path / "frontier")
    fig = drawn[0][0]
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_linestyle() not in ("None", "none", "", " ")]
    # the only drawn lines are the no-band level: no line joins two bands
    assert len(lines) == 1 and len(set(np.asarray(lines[0].get_ydata(), dtype=float))) == 1
    markers = [ln for ln in ax.get_lines() if ln.get_marker() not in ("None", "none", "", " ", None, "_")]  # not caps
    # the star, one series per neighbour mode; the other item table (hashed) is in budget_* figures
    assert sorted(len(ln.get_xdata()) for ln in markers) == [1, 2, 4]
    assert sorted(t.get_text() for t in ax.texts) == ["[0, 5]", "[10, 20]", "[100, inf)", "[5, 5]"]  # each band once
    assert fig.legends and [t.get_text() for t in fig.legends[0].get_texts()] == [
        "no band (0.0400)", "neighbours (all)", "neighbours (outside band)"]
    check_style(fig, "frontier")
    # a report of other item tables only: those are drawn, as markers too
    drawn.clear()
    band_figures.frontier([base, BANDS[-1]], "sasrec · beauty", tmp_path / "frontier2")
    assert [t.get_text() for t in drawn[0][0].legends[0].get_texts()] == ["no band (0.0400)", "hashed, 16 buckets"]


def test_bucket_figure_draws_markers_only(drawn, tmp_path):
    recs = [{"band": r["band"], "neighbours": r["neighbours"], "bucket": b, "users": 100 * (i + 1),
             "delta_ndcg10": r["delta_ndcg10"] * i, "ci_low": r["delta_ndcg10"] * i - 0.01,
             "ci_high": r["delta_ndcg10"] * i + 0.01} for r in BANDS for i, b in enumerate(("0", "1-5", ">5"))]
    band_figures.buckets(recs, "sasrec · beauty", tmp_path / "buckets")
    fig = drawn[0][0]
    ax = fig.axes[0]
    joined = [ln for ln in ax.get_lines() if ln.get_linestyle() not in ("None", "none", "", " ")
              and len(set(np.asarray(ln.get_ydata(), dtype=float))) > 1]
    assert joined == []
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "[0, 5]", "[0, 5] (outside band)", "[5, 5]", "[10, 20]", "[100, inf)", "[100, inf) (outside band)"]
    check_style(fig, "buckets")


def test_heatmap_names_an_open_lower_bound_and_writes_a_pdf(drawn, tmp_path):
    cells = {(None, 5): Cell([0.2, 0.22]), (5, None): Cell([0.25]), (5, 5): Cell([], ["failed"])}
    grid = Grid(("mf_bpr", "beauty_1000", "", "all"), [None, 5], [5, None], cells, Cell([0.21, 0.23]))
    png, pdf = plot_heatmap(grid, tmp_path / "heatmap_ndcg10_x.png")
    assert (png.name, pdf.name) == ("heatmap_ndcg10_x.png", "heatmap_ndcg10_x.pdf") and pdf.read_bytes()[:4] == b"%PDF"
    ax = drawn[0][0].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["-inf", "5"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "inf"]
    check_style(drawn[0][0], "heatmap")


@pytest.mark.results
def test_every_committed_png_under_results_has_its_pdf():
    figs = set(committed_figures())
    pngs = [p for p in figs if p.endswith(".png")]
    assert pngs and [p for p in pngs if p[:-4] + ".pdf" not in figs] == []


@pytest.mark.results
def test_regenerate_script_makes_every_committed_figure():
    """The script's jobs cover every committed figure under docs/results, and each job makes what its
    folder commits: a report's figures are those its committed summary.md lists (the report's own
    record, PNG and PDF); a curve plot's curves.png and .pdf. Each command is its page's."""
    mod = load_script()
    expected = []
    for folder, kind, args in mod.JOBS:
        if kind == "report":
            md = (ROOT / folder / "summary.md").read_text().split("\n## Figures\n", 1)[1].split("\n## ", 1)[0]
            stems = re.findall(r"!\[[^\]]*\]\(([^)]+)\.png\)", md)
        else:
            stems = mod.STEMS[kind](args)
        expected += [f"{folder}/{s}{x}" for s in stems for x in (".png", ".pdf")]
        readme = ROOT / folder / "README.md"
        if folder == "docs/figures":  # the per-run figures of results.md's norm section
            page = (ROOT / "docs/results.md").read_text()
        else:
            page = (readme if readme.is_file() else readme.parent.parent / "README.md").read_text()
        line = "python " + " ".join(f'"{a}"' if " " in a else a for a in mod.command(kind, args)[1:])
        if folder.endswith("epoch_cap_sasrec_beauty_1000"):  # written by collect_results.py, whose last step it is
            assert "scripts/collect_results.py" in page and f"--to {folder}" in page
        else:
            assert line in page, line
    assert sorted(expected) == committed_figures() == mod.committed()


@pytest.mark.results
def test_committed_small_reports_in_style(drawn, tmp_path):
    """The reports of the two small committed pages, redrawn: every figure in style, PNG and PDF."""
    for name in ("epoch_cap_sasrec_beauty_1000", "epoch_cap_400_bands"):
        drawn.clear()
        rep = make_report([RESULTS / name], tmp_path / name)
        check_report_figures(drawn, rep.files)
        # and the same files as committed (the validation curves are another job's: validation_curves.py)
        assert sorted(p.name for p in rep.files if p.suffix in (".png", ".pdf")) == sorted(
            Path(p).name for p in committed_figures() if Path(p).parent == Path("docs/results") / name
            and not Path(p).name.startswith("val_curves."))


@pytest.mark.slow
def test_committed_large_reports_in_style(drawn, tmp_path):
    for paths, name in (([RESULTS / "bands"], "bands"), ([RESULTS / "item_tables" / "runs"], "item_tables")):
        drawn.clear()
        rep = make_report(paths, tmp_path / name)
        check_report_figures(drawn, rep.files)


def test_per_run_figures_in_style():
    """The figures `python -m embfreq.analyze RUN_DIR` writes (docs/figures/ holds older ones): the
    same rules, on a synthetic run with and without a band."""
    from embfreq.analysis.figures.plots import freq_vs_norm_figure, frequency_buckets, frequency_buckets_figure, \
        frequency_panels_figure

    rng = np.random.default_rng(3)
    n = 800
    freq = np.r_[0, np.floor(rng.pareto(1.2, n - 1) * 3)]
    norm = 1 / (1 + np.log1p(freq)) + rng.normal(0, 0.05, n)
    counts = rng.poisson(np.minimum(freq, 20) / 5)
    hits = (rng.uniform(size=n) < 0.05 * np.log1p(freq)).astype(float)
    for title, band in (("sasrec · beauty_1000 · band [0, 5] (neighbours=outside_band)", np.r_[False, freq[1:] <= 5]),
                        ("mf_bpr · yelp · baseline", np.zeros(n, dtype=bool))):
        check_style(frequency_panels_figure(freq, norm, hits, hits / 2, title, counts=counts,
                                            in_band=band if band.any() else None), "panels")
        rows = frequency_buckets(freq, {"Recall@10": hits, "NDCG@10": hits / 2}, counts)
        check_style(frequency_buckets_figure(rows, ["Recall@10", "NDCG@10"], title=title), "buckets")
        fig = freq_vs_norm_figure(freq, norm, band, -0.5, title=title)
        check_style(fig, "norm")
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        real = band[1:]  # row 0 is padding, not an item
        assert legend == ([f"items outside the band ({(~real).sum():,})", f"items in the band ({real.sum():,})"]
                          if band.any() else [f"items ({n - 1:,})"])
