"""`make_report`: a sweep's runs -> runs.csv, summary.csv, buckets.csv, (budgets.csv,) summary.md and
the figures.

The work is done by one module a job: `sweep_runs` reads the runs, `baselines` says what each is
compared with, `run_table` and `bands` make the tables, `ndcg_heatmap`, `band_figures` and
`budget_figure` the figures. Every file is written atomically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from embfreq.analysis.figures import band_figures, budget_figure
from embfreq.analysis.sweep import bands, head_to_head
from embfreq.analysis.figures.ndcg_heatmap import grids, plot_heatmap
from embfreq.analysis.sweep.run_table import csv_text, label_base, markdown_table, row_record
from embfreq.analysis.sweep.sweep_runs import ReportError, Row, load_rows
from embfreq.io import write_text


@dataclass
class Report:
    out_dir: Path
    rows: list[Row]
    files: list[Path]
    table: str  # the per-run markdown table
    summary: str = ""  # the per-configuration results table, as printed


def _slug(*parts: str) -> str:
    s = "_".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", s).strip("_")[:120] or "runs"


def default_out_dir(paths) -> Path:
    """A single path: itself (a sweep or run dir). Several: their shared parent (one sweep)."""
    ps = [Path(p).resolve() for p in paths]
    ps = [p.parent if p.is_file() else p for p in ps]
    if len(ps) == 1:
        return ps[0]
    parents = {p.parent for p in ps}
    if len(parents) == 1:
        return parents.pop()
    raise ReportError("the runs are in different directories: say where to write the report with --out DIR")


def make_report(paths, out_dir: str | Path | None = None) -> Report:
    """Read every run under `paths` (one sweep or several parts); write into out_dir:

    - runs.csv: one row per run; summary.csv: one row per configuration, mean ± std over seeds and
      the paired change against the baseline with bootstrap CIs (overall, in-band targets, rest);
      buckets.csv: the change by training-frequency bucket of the target;
    - where a band has an item-table strategy other than neighbours: budgets.csv, NDCG@10 against
      the embedding parameters allocated, and per model, data and band budget_* (PNG and PDF);
    - summary.md: the results tables, the figures and the per-run table;
    - per model and data: heatmap_ndcg10_* (NDCG@10 by band), heatmap_delta_*, frontier_*,
      buckets_* (each a PNG and a PDF).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ReportError("no sweep or run directory given")
    rows = load_rows(paths)
    out = Path(out_dir) if out_dir is not None else default_out_dir(paths)
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    records = [row_record(r, label_base(rows, out)) for r in rows]
    table = markdown_table(records)
    try:
        summary, bucket_recs = bands.analyse(rows)
    except bands.MismatchError as e:
        raise ReportError(str(e)) from None
    files = [out / "runs.csv", out / "summary.csv", out / "buckets.csv", out / "summary.md"]
    figures: list[Path] = []
    for g in grids(rows):
        if g.cells:
            model, data, variant, neighbours = map(str, g.panel)
            name = _slug(model, data, variant, "" if neighbours in ("", "all") else neighbours)
            figures += plot_heatmap(g, out / f"heatmap_ndcg10_{name}.png")
    for key in dict.fromkeys((r["model"], r["data"], r["variant"]) for r in summary):
        model, data, variant = key
        recs = [r for r in summary if (r["model"], r["data"], r["variant"]) == key]
        name = _slug(model, data, variant)
        title = f"{model} · {data}" + (f" · {variant}" if variant else "")
        cells = [r for r in recs if r["neighbours"] == "all" and r.get("delta_ndcg10") is not None]
        if cells:
            figures += band_figures.heatmap_delta(cells, title + " · neighbours=all", out / f"heatmap_delta_{name}")
        if any(r["band"] != "baseline" and r.get("delta_ndcg10") is not None for r in recs):
            figures += band_figures.frontier(recs, title, out / f"frontier_{name}")
        brs = [b for b in bucket_recs if (b["model"], b["data"], b["variant"]) == key]
        if brs:
            figures += band_figures.buckets(brs, title, out / f"buckets_{name}")
    budget_pts = budget_figure.points(summary)
    for (model, data, variant, band), pts in budget_figure.groups(budget_pts).items():
        title = f"{model} · {data}" + (f" · {variant}" if variant else "") + f" · band {band}"
        figures += budget_figure.plot(pts, title, out / f"budget_{_slug(model, data, variant, band)}")
    budgets_md = ""
    if budget_pts:  # only reports that compare item tables get budgets.csv and head_to_head.csv
        files.append(out / "budgets.csv")
        write_text(files[-1], bands.csv_text(budget_pts, budget_figure.COLUMNS))
        try:
            duels = head_to_head.compare(rows)
        except bands.MismatchError as e:
            raise ReportError(str(e)) from None
        files.append(out / "head_to_head.csv")
        write_text(files[-1], bands.csv_text(duels, head_to_head.COLUMNS))
        budgets_md = budget_figure.markdown(budget_pts) + _head_to_head_section(head_to_head.markdown(duels))
    write_text(files[0], csv_text(records))
    write_text(files[1], bands.csv_text(summary, bands.SUMMARY_COLUMNS))
    write_text(files[2], bands.csv_text(bucket_recs, bands.BUCKET_COLUMNS))
    write_text(files[3], _markdown_document(rows, bands.markdown_summary(summary) + _notes(rows), budgets_md, table,
                                            figures, out))
    return Report(out, rows, files + figures, table, bands.markdown_summary(summary) + _notes(rows))


def _notes(rows: list[Row]) -> str:
    """Band runs without a baseline (how to add one) and planned jobs that never started."""
    from embfreq.training.sweep import baseline_notes

    lines = baseline_notes(rows)
    never = [r for r in rows if r.status == "missing" and r.reason.startswith("never started")]
    if never:
        lines.append(f"{len(never)} planned job(s) never started (counted as missing): "
                     + "; ".join(r.reason.split(": ", 1)[1] for r in never[:5]) + (" ..." if len(never) > 5 else ""))
    return "".join(f"\nNote: {line}\n" for line in lines)


def _cost_line(rows: list[Row]) -> str:
    """What the runs cost: job count, summed and elapsed wall time, threads per job, machine."""
    ok = [r.metrics for r in rows if r.ok and isinstance(r.metrics.get("seconds"), dict)]
    if not ok:
        return ""
    total = sum(float(m["seconds"].get("total", 0.0)) for m in ok)
    starts = [m["started_at"] for m in ok if isinstance(m.get("started_at"), (int, float))]
    ends = [m["finished_at"] for m in ok if isinstance(m.get("finished_at"), (int, float))]
    span = f", {(max(ends) - min(starts)) / 3600:.2f} h from first start to last finish" if starts and ends else ""
    threads = sorted({m.get("threads") for m in ok if m.get("threads") is not None})
    hosts = sorted({f"{m['host'].get('cpus')} CPUs, {m['host'].get('device')}" for m in ok if isinstance(m.get("host"), dict)})
    return (f"Cost: {len(ok)} ok runs, {total / 3600:.2f} h of job wall time in all (mean {total / len(ok) / 60:.1f} min per "
            f"job){span}; torch threads per job: {', '.join(map(str, threads)) or 'not recorded'}; "
            f"machine: {'; '.join(hosts) or 'not recorded'}.\n")


def _markdown_document(rows: list[Row], summary: str, budgets: str, table: str, figures: list[Path], out: Path) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    parts = [
        "# Sweep report\n",
        _cost_line(rows),
        f"{len(rows)} runs: {status}. Test metrics of the best validation checkpoint, full ranking with "
        "seen items removed. Per configuration: mean ± std over seeds; Δ is the change against the "
        "no-band baseline of the same model, data and seed, averaged over the seeds both have, with two "
        "95% CIs: [ ] the paired bootstrap over test users (2,000 resamples, the seeds held fixed) and "
        "{ } the seed-aware two-level bootstrap (2,000 resamples of the seeds, then of the users; "
        "embfreq/analysis/sweep/stats.py), which adds the seed-to-seed spread; * = the seed-aware CI excludes "
        "0, {1 seed} = one paired seed, no seed-aware CI and no significance claim. In-band "
        "targets: test users whose target's training frequency lies in the band.\n",
        summary + _budgets_section(budgets),
        "\n## Figures\n",
        "\n".join(f"![{f.stem}]({f.name})" for f in figures if f.suffix == ".png") + "\n",
        "\n## Runs\n",
        "Embedding params in parentheses: rows saved with neighbours=outside_band.\n",
        table,
        f"\nTensorBoard (HPARAMS tab compares the runs): `tensorboard --logdir {out}`\n",
    ]
    return "\n".join(parts)


def _head_to_head_section(table: str) -> str:
    return ("\n### Head to head at equal memory\n\n"
            "Per band, the configurations that allocate about the same memory (within 10% of each other) "
            "against the one with the best mean validation NDCG@10 among those with the most seeds "
            "(head_to_head.csv): the change of test NDCG@10, paired over the test users and the seeds both "
            "have, with its 95% CIs [over users] and {over seeds and users}, for all test users, the in-band "
            "targets and the others; * = the seed-aware CI excludes 0; † = the overall change stays "
            "significant after Holm's correction over the tier's rivals of its leader (seed-aware "
            "bootstrap p-values, seed_p_holm < 0.05); {1 seed} = no seed-aware CI.\n\n"
            + table)


def _budgets_section(budgets: str) -> str:
    if not budgets:
        return ""
    return ("\n## NDCG@10 at equal memory\n\n"
            "Per band, what band items use instead of an own vector (item-table strategy and budget) against "
            "the embedding parameters it allocates, as a share of the no-band baseline's full table "
            "(budgets.csv, figures budget_*). The interval is the 95% paired bootstrap CI of the change "
            "against the baseline, placed on the level of the baseline's same seeds (± seed std where runs "
            "have no per-user file); * = the seed-aware CI of the change (summary.csv delta_seed_ci_*) "
            "excludes 0; (1 seed) = none exists.\n\n" + budgets)
