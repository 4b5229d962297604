"""The item-table results page's `beauty` tables are written by hand: each of their rows must equal
the committed summary.csv row of the same data, model, band and allocation, number for number."""

import csv
import re

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.results
PAGE = ROOT / "docs/results/item_tables/README.md"
SUMMARY = ROOT / "docs/results/item_tables/summary.csv"
MODELS = {"SASRec": "sasrec", "MF-BPR": "mf_bpr", "GRU4Rec": "gru4rec"}


def _signed(x: float, digits: int, suffix: str = "") -> str:
    return f"{x:+.{digits}f}{suffix}".replace("-", "−")


def _ci(delta: float, lo: float, hi: float, digits: int, suffix: str = "") -> str:
    star = "*" if lo > 0 or hi < 0 else ""
    return f"{_signed(delta, digits, suffix)} [{_signed(lo, digits, suffix)}, {_signed(hi, digits, suffix)}]{star}"


def expected_cells(r: dict) -> list[str]:
    """The numeric cells of a page row from its summary.csv row: NDCG@10 ± seed std, Δ in % of the
    baseline [CI], the in-band targets' Δ [CI] and the other users' Δ [CI]."""
    f = {k: float(v) for k, v in r.items() if v and re.fullmatch(r"[-+\d.e]+", v)}
    base = f["baseline_ndcg10"]
    sd = f" ± {f['ndcg10_std']:.4f}" if "ndcg10_std" in f else ""
    pct = [100 * f[k] / base for k in ("delta_ndcg10", "delta_ci_low", "delta_ci_high")]
    return [f"{f['ndcg10_mean']:.4f}{sd}", _ci(*pct, 1, "%"),
            _ci(f["delta_ndcg10_inband"], f["inband_ci_low"], f["inband_ci_high"], 4),
            _ci(f["delta_ndcg10_rest"], f["rest_ci_low"], f["rest_ci_high"], 4)]


def page_rows():
    """(data, model, band, params, numeric cells, line) of each row of the page's `beauty` tables."""
    data = model = None
    for line in PAGE.read_text().splitlines():
        head = re.match(r"## `(\w+)`, ([\w-]+), ", line)
        if head:
            data, model = head.group(1), MODELS[head.group(2)]
        elif line.startswith("## "):
            data = model = None
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if data and len(cells) == 7 and re.fullmatch(r"`\[.*[\])]`", cells[0]):
            params = int(re.match(r"([\d,]+) \(", cells[2]).group(1).replace(",", ""))
            yield data, model, cells[0].strip("`"), params, cells[3:], line


def test_every_beauty_row_equals_its_summary_row():
    summary = list(csv.DictReader(open(SUMMARY)))
    rows = list(page_rows())
    assert len(rows) >= 20 and {(d, m) for d, m, *_ in rows} == {("beauty", "sasrec"), ("beauty", "mf_bpr")}
    for data, model, band, params, cells, line in rows:
        candidates = [r for r in summary if (r["data"], r["model"], r["band"]) == (data, model, band)
                      and int(r["embedding_params"] or 0) == params]
        assert candidates, f"no summary.csv row for: {line}"
        assert any(expected_cells(r) == cells for r in candidates), \
            f"{line}\n  summary.csv says: {[expected_cells(r) for r in candidates]}"


def test_expected_cells_by_hand():
    r = {"ndcg10_mean": "0.02", "ndcg10_std": "0.001", "baseline_ndcg10": "0.025", "delta_ndcg10": "-0.005",
         "delta_ci_low": "-0.006", "delta_ci_high": "-0.004", "delta_ndcg10_inband": "0.0012",
         "inband_ci_low": "-0.0001", "inband_ci_high": "0.0025", "delta_ndcg10_rest": "-0.001",
         "rest_ci_low": "-0.002", "rest_ci_high": "-0.0001", "band": "[0, 5]"}
    assert expected_cells(r) == ["0.0200 ± 0.0010", "−20.0% [−24.0%, −16.0%]*", "+0.0012 [−0.0001, +0.0025]",
                                 "−0.0010 [−0.0020, −0.0001]*"]
