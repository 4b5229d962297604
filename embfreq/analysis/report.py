"""Sweep report: one row per run from its metrics.json and config.yaml, then tables and figures.

`make_report` writes summary.csv, summary.md, one NDCG@10 heatmap over (lower_freq, upper_freq)
per model/dataset, and a frontier plot (NDCG@10 against the share of items without an own
embedding). Figures use ``matplotlib.figure.Figure`` with an Agg canvas, never pyplot; every
file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embfreq.errors import UserError
from embfreq.io import atomic_path, write_text

METRICS = "metrics.json"
CONFIG = "config.yaml"
HR, NDCG = "test/hr@10", "test/ndcg@10"

# Config keys that never split runs into separate panels: the swept band and seed have their
# own axes, and these others do not change results.
IGNORED_KEYS = ("seed", "lower_freq", "upper_freq", "neighbours", "cache_dir", "threads", "num_workers",
                "resume", "analysis", "bucketing", "eval.batch_size")
IGNORED_PREFIXES = ("trainer.",)

CSV_COLUMNS = (
    "run", "status", "reason", "model", "data", "variant", "seed", "lower_freq", "upper_freq", "band",
    "neighbours", "items", "items_in_band", "share_in_band", "embedding_params", "embedding_params_saved",
    "total_params", "epochs_trained", "best_epoch", "test_hr@10", "test_ndcg@10", "baseline_hr@10",
    "baseline_ndcg@10", "baseline_runs", "delta_hr@10", "delta_ndcg@10", "delta_ndcg@10_pct", "seconds_total",
)


class ReportError(UserError):
    """No runs under a path, or a run's files cannot be read."""


@dataclass
class Row:
    run_dir: Path
    status: str  # ok | skipped | failed | missing (no metrics.json: unfinished or killed)
    reason: str = ""
    model: str | None = None
    data: str | None = None
    seed: int | None = None
    lower_freq: float | None = None
    upper_freq: float | None = None
    neighbours: str | None = None
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # flattened: dotted key -> value
    variant: str = ""  # config differences from the other runs of the same model and data
    baseline: dict = field(default_factory=dict)  # hr, ndcg, runs (how many baselines were averaged)

    @property
    def is_baseline(self) -> bool:
        return self.lower_freq is None and self.upper_freq is None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def hr(self) -> float | None:
        return _num(self.metrics.get("test", {}).get(HR)) if self.ok else None

    @property
    def ndcg(self) -> float | None:
        return _num(self.metrics.get("test", {}).get(NDCG)) if self.ok else None

    @property
    def share(self) -> float | None:
        return _num(self.metrics.get("share_in_band"))

    @property
    def band(self) -> str:
        return band_label(self.lower_freq, self.upper_freq)

    @property
    def panel(self) -> tuple:
        """Runs that share a heatmap: same model, data, other config and neighbour mode."""
        return (self.model or "?", self.data or "?", self.variant, self.neighbours or "")


@dataclass
class Report:
    out_dir: Path
    rows: list[Row]
    files: list[Path]
    table: str  # the per-run markdown table
    summary: str = ""  # the per-configuration results table, as printed


# -- reading runs ---------------------------------------------------------------------------------
def find_run_dirs(paths) -> list[Path]:
    """Run directories named by `paths`: each path is a run dir, or searched for run dirs below it.

    A run dir holds metrics.json or config.yaml; Hydra's own `.hydra/` copies and other hidden
    folders (`.submitit/`) are not runs.
    """
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise ReportError(f"{p}: no such file or directory")
        if p.is_file():
            if p.name not in (METRICS, CONFIG):
                raise ReportError(f"{p}: not a sweep or run directory")
            p = p.parent
        if _is_run_dir(p):
            found.add(p.resolve())
            continue
        for name in (METRICS, CONFIG):
            for f in p.rglob(name):
                rel = f.parent.relative_to(p).parts
                if not any(part.startswith(".") for part in rel):
                    found.add(f.parent.resolve())
    if not found:
        raise ReportError(f"no runs under {', '.join(map(str, paths))} (no {METRICS} or {CONFIG} found)")
    return sorted(found)


def _is_run_dir(p: Path) -> bool:
    return not p.name.startswith(".") and ((p / METRICS).is_file() or (p / CONFIG).is_file())


def read_run(run_dir: Path) -> Row:
    """One run's row; a metrics.json or config.yaml that exists but cannot be parsed is an error."""
    config = _read_config(run_dir / CONFIG) if (run_dir / CONFIG).is_file() else {}
    mpath = run_dir / METRICS
    if not mpath.is_file():
        m = {}
        status, reason = "missing", f"no {METRICS}: the job is unfinished or was killed"
    else:
        m = _read_metrics(mpath)
        # no status: an old record, ok only when it holds test results
        status = str(m.get("status", "ok" if isinstance(m.get("test"), dict) and m["test"] else "missing"))
        reason = str(m.get("reason") or m.get("error") or "")
    flat = _flatten(config)

    def pick(key, config_key=None):  # metrics.json first; config.yaml for runs without one
        return m[key] if key in m else flat.get(config_key or key)

    return Row(
        run_dir=run_dir, status=status, reason=reason, model=pick("model", "model.name"),
        data=pick("data", "data.name"), seed=_int(pick("seed")), lower_freq=_num(pick("lower_freq")),
        upper_freq=_num(pick("upper_freq")), neighbours=pick("neighbours"), metrics=m, config=flat,
    )


def _read_metrics(path: Path) -> dict:
    try:
        m = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: unreadable {METRICS} ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(m, dict):
        raise ReportError(f"{path}: unreadable {METRICS} (expected a JSON object, got {type(m).__name__})")
    for key in ("test", "val", "seconds"):
        if key in m and not isinstance(m[key], dict):
            raise ReportError(f"{path}: unreadable {METRICS} ({key!r} is not an object)")
    return m


def _read_config(path: Path) -> dict:
    from omegaconf import OmegaConf

    try:
        c = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # YAML or OmegaConf errors of many kinds
        raise ReportError(f"{path}: unreadable {CONFIG} ({type(e).__name__}: {_first_line(e)})") from None
    return c if isinstance(c, dict) else {}


def _first_line(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else ""


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _num(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def _int(v) -> int | None:
    x = _num(v)
    return int(x) if x is not None else None


# -- rows -----------------------------------------------------------------------------------------
def load_rows(paths) -> list[Row]:
    rows = [read_run(d) for d in find_run_dirs(paths)]
    _assign_variants(rows)
    _assign_baselines(rows)
    rows.sort(key=_row_order)
    return rows


def _ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def _assign_variants(rows: list[Row]) -> None:
    """Name the config keys (other than band, seed, ...) on which runs of one model and data differ."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.model, r.data), []).append(r)
    for group in groups.values():
        group = [r for r in group if r.config]  # runs without config.yaml cannot say how they differ
        keys = sorted({k for r in group for k in r.config if not _ignored(k)})
        varying = [k for k in keys if len({json.dumps(r.config.get(k), sort_keys=True, default=str) for r in group}) > 1]
        for r in group:
            r.variant = ", ".join(f"{k}={_fmt_value(r.config.get(k))}" for k in varying)


def _fmt_value(v) -> str:
    return "null" if v is None else str(v)


def _assign_baselines(rows: list[Row]) -> None:
    """Baseline of a run: ok no-band runs of the same model and data (same variant when there is
    one), of the same seed when there is one, else the mean over all of them."""
    bases = [r for r in rows if r.ok and r.is_baseline and r.ndcg is not None]
    for r in rows:
        if not r.ok or r.is_baseline:
            continue
        cands = [b for b in bases if (b.model, b.data) == (r.model, r.data)]
        same_variant = [b for b in cands if b.variant == r.variant]
        cands = same_variant or cands
        same_seed = [b for b in cands if b.seed == r.seed and r.seed is not None]
        cands = same_seed or cands
        if cands:
            r.baseline = {
                "hr": float(np.mean([b.hr for b in cands if b.hr is not None])) if any(b.hr is not None for b in cands) else None,
                "ndcg": float(np.mean([b.ndcg for b in cands])),
                "runs": len(cands),
            }


def _bound_key(v, none_first: bool) -> tuple:
    return (0 if none_first else 2, 0.0) if v is None else (1, float(v))


def _row_order(r: Row) -> tuple:
    return (str(r.model), str(r.data), r.variant, not r.is_baseline, _bound_key(r.lower_freq, True),
            _bound_key(r.upper_freq, False), str(r.neighbours), r.seed if r.seed is not None else -1, str(r.run_dir))


def band_label(lower, upper) -> str:
    if lower is None and upper is None:
        return "baseline"
    lo = "(-inf" if lower is None else f"[{_fmt_num(lower)}"
    hi = "inf)" if upper is None else f"{_fmt_num(upper)}]"
    return f"{lo}, {hi}"


def _fmt_num(v) -> str:
    return "inf" if v is None else (str(int(v)) if float(v).is_integer() else f"{v:g}")


def row_record(r: Row, out_dir: Path | None = None) -> dict:
    """The CSV row of a run (None where a value does not apply)."""
    m = r.metrics if r.status == "ok" else {}
    base_ndcg, base_hr = r.baseline.get("ndcg"), r.baseline.get("hr")
    ndcg, hr = r.ndcg, r.hr
    return {
        "run": _rel(r.run_dir, out_dir),
        "status": r.status,
        "reason": r.reason,
        "model": r.model,
        "data": r.data,
        "variant": r.variant,
        "seed": r.seed,
        "lower_freq": r.lower_freq,
        "upper_freq": r.upper_freq,
        "band": r.band,
        "neighbours": r.neighbours,
        "items": _int(m.get("items")),
        "items_in_band": _int(m.get("items_in_band")),
        "share_in_band": _num(m.get("share_in_band")),
        "embedding_params": _int(m.get("embedding_params")),
        "embedding_params_saved": _int(m.get("embedding_params_saved")),
        "total_params": _int(m.get("total_params")),
        "epochs_trained": _int(m.get("epochs_trained")),
        "best_epoch": _int(m.get("best_epoch")),
        "test_hr@10": hr,
        "test_ndcg@10": ndcg,
        "baseline_hr@10": base_hr,
        "baseline_ndcg@10": base_ndcg,
        "baseline_runs": r.baseline.get("runs"),
        "delta_hr@10": hr - base_hr if hr is not None and base_hr is not None else None,
        "delta_ndcg@10": ndcg - base_ndcg if ndcg is not None and base_ndcg is not None else None,
        "delta_ndcg@10_pct": 100.0 * (ndcg - base_ndcg) / base_ndcg if ndcg is not None and base_ndcg else None,
        "seconds_total": _num(m.get("seconds", {}).get("total")) if isinstance(m.get("seconds"), dict) else None,
    }


def _label_base(rows: list[Row], out: Path) -> Path:
    """Runs are named relative to the report dir when inside it, else to their common parent."""
    dirs = [r.run_dir for r in rows]
    out = out.resolve()
    if all(out in d.parents for d in dirs):
        return out
    return Path(os.path.commonpath([d.parent for d in dirs]))


def _rel(p: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return str(p.relative_to(base.resolve()))
        except ValueError:
            pass
    return str(p)


# -- tables ---------------------------------------------------------------------------------------
def csv_text(records: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for rec in records:
        w.writerow({k: "" if rec.get(k) is None else rec[k] for k in CSV_COLUMNS})
    return buf.getvalue()


def markdown_table(records: list[dict]) -> str:
    show_variant = any(rec["variant"] for rec in records)
    head = ["run", "model", "data"] + (["variant"] if show_variant else []) + [
        "band", "seed", "items in band", "embedding params (saved)", "HR@10", "NDCG@10", "Δ NDCG@10 vs baseline", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for rec in records:
        cells = [rec["run"], rec["model"], rec["data"]] + ([rec["variant"]] if show_variant else []) + [
            rec["band"] + ("" if rec["neighbours"] in (None, "all") or rec["band"] == "baseline" else f" ({rec['neighbours']})"),
            _cell(rec["seed"]),
            _in_band(rec),
            _params(rec),
            _f4(rec["test_hr@10"]),
            _f4(rec["test_ndcg@10"]),
            _delta(rec),
            rec["status"] + (f": {_short(rec['reason'])}" if rec["status"] != "ok" and rec["reason"] else ""),
        ]
        lines.append("| " + " | ".join(_md_escape(str(c)) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    return "" if v is None else str(v)


def _f4(v) -> str:
    return "" if v is None else f"{v:.4f}"


def _in_band(rec: dict) -> str:
    if rec["items_in_band"] is None:
        return ""
    share = rec["share_in_band"]
    return f"{rec['items_in_band']:,} / {rec['items']:,} ({100 * share:.1f}%)" if share is not None and rec["items"] else f"{rec['items_in_band']:,}"


def _params(rec: dict) -> str:
    if rec["embedding_params"] is None:
        return ""
    saved = rec["embedding_params_saved"]
    return f"{rec['embedding_params']:,}" + (f" ({saved:,})" if saved else "")


def _delta(rec: dict) -> str:
    d, pct = rec["delta_ndcg@10"], rec["delta_ndcg@10_pct"]
    if d is None:
        return ""
    return f"{d:+.4f}" + (f" ({pct:+.1f}%)" if pct is not None else "")


def _short(s: str, n: int = 100) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


# -- heatmap cells --------------------------------------------------------------------------------
@dataclass
class Cell:
    values: list[float] = field(default_factory=list)  # NDCG@10 of the ok runs
    statuses: list[str] = field(default_factory=list)  # statuses of the other runs

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else None

    def text(self) -> str:
        if self.values:
            s = f"{self.mean:.4f}"
            if len(self.values) > 1:
                s += f"\n±{self.std:.4f} (n={len(self.values)})"
            if self.statuses:
                s += f"\n+{len(self.statuses)} {'/'.join(sorted(set(self.statuses)))}"
            return s
        return "/".join(sorted(set(self.statuses)))


@dataclass
class Grid:
    panel: tuple
    lowers: list  # row values, None (open) first
    uppers: list  # column values, None (inf) last
    cells: dict  # (lower, upper) -> Cell
    baseline: Cell


def grids(rows: list[Row]) -> list[Grid]:
    """One (lower_freq x upper_freq) grid of NDCG@10 per panel (model, data, variant, neighbours)."""
    panels: dict[tuple, list[Row]] = {}
    for r in rows:
        if not r.is_baseline:
            panels.setdefault(r.panel, []).append(r)
    out = []
    for panel, prs in sorted(panels.items(), key=lambda kv: tuple(map(str, kv[0]))):
        lowers = sorted({r.lower_freq for r in prs}, key=lambda v: _bound_key(v, True))
        uppers = sorted({r.upper_freq for r in prs}, key=lambda v: _bound_key(v, False))
        cells: dict = {}
        for r in prs:
            c = cells.setdefault((r.lower_freq, r.upper_freq), Cell())
            (c.values.append(r.ndcg) if r.ok and r.ndcg is not None else c.statuses.append(r.status))
        model, data, variant, _ = panel
        base = Cell()
        bases = [b for b in rows if b.is_baseline and (b.model, b.data) == (model, data)]
        bases = [b for b in bases if b.variant == variant] or bases
        for b in bases:
            (base.values.append(b.ndcg) if b.ok and b.ndcg is not None else base.statuses.append(b.status))
        out.append(Grid(panel, lowers, uppers, cells, base))
    return out


# -- figures --------------------------------------------------------------------------------------
def _new_figure(**kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def _slug(*parts: str) -> str:
    s = "_".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", s).strip("_")[:120] or "runs"


def _panel_title(panel: tuple) -> str:
    model, data, variant, neighbours = panel
    s = f"{model} · {data}"
    if variant:
        s += f" · {variant}"
    if neighbours and neighbours != "all":
        s += f" · neighbours={neighbours}"
    return s


def plot_heatmap(grid: Grid, path: Path) -> Path:
    """Test NDCG@10 per (lower_freq, upper_freq) cell, mean ± std over seeds; the colour scale is
    centred on the baseline, so better cells and worse cells differ in hue."""
    from matplotlib.colors import TwoSlopeNorm

    nr, nc = len(grid.lowers), len(grid.uppers)
    data = np.full((nr, nc), np.nan)
    for i, lo in enumerate(grid.lowers):
        for j, hi in enumerate(grid.uppers):
            c = grid.cells.get((lo, hi))
            if c is not None and c.mean is not None:
                data[i, j] = c.mean
    fig = _new_figure(figsize=(1.6 + 1.45 * nc, 1.4 + 0.85 * nr))
    ax = fig.add_subplot(1, 1, 1)
    finite = data[np.isfinite(data)]
    base = grid.baseline.mean
    norm, cmap = None, "viridis"
    if finite.size:
        lo_v, hi_v = float(finite.min()), float(finite.max())
        if base is not None and lo_v < base < hi_v:  # red below the baseline, blue above
            norm, cmap = TwoSlopeNorm(vcenter=base, vmin=lo_v, vmax=hi_v), "RdBu"
    ax.set_facecolor("#dddddd")  # cells without an ok run
    im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, norm=norm, aspect="auto")
    if finite.size:
        cb = fig.colorbar(im, ax=ax)
        cb.set_label("test NDCG@10")
        if base is not None and finite.min() <= base <= finite.max():
            cb.ax.axhline(base, color="black", lw=1.2)
    for (lo, hi), c in grid.cells.items():
        i, j = grid.lowers.index(lo), grid.uppers.index(hi)
        color = "black"
        if c.mean is not None:  # light text on dark cells
            r, g, b, _ = im.cmap(im.norm(c.mean))
            color = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"
        ax.text(j, i, c.text(), ha="center", va="center", fontsize=7.5, color=color)
    ax.set_xticks(range(nc), [_fmt_num(v) for v in grid.uppers])
    ax.set_yticks(range(nr), ["none" if v is None else _fmt_num(v) for v in grid.lowers])
    ax.set_xlabel("upper_freq")
    ax.set_ylabel("lower_freq")
    b = grid.baseline
    if b.values:
        btxt = f"baseline {b.mean:.4f}" + (f" ± {b.std:.4f} (n={len(b.values)})" if len(b.values) > 1 else "")
    elif b.statuses:
        btxt = "baseline " + "/".join(sorted(set(b.statuses)))
    else:
        btxt = "no baseline run"
    ax.set_title(f"{_panel_title(grid.panel)}\ntest NDCG@10 by band; {btxt}", fontsize=9)
    return _save_png(fig, path)


# -- the report -----------------------------------------------------------------------------------
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
    - summary.md: the results table, the figures and the per-run table;
    - per model and data: heatmap_ndcg10_* (NDCG@10 by band), heatmap_delta_*, frontier_*,
      buckets_* (PNG and PDF).
    """
    from embfreq.analysis import band_figures, bands

    paths = [Path(p) for p in paths]
    if not paths:
        raise ReportError("no sweep or run directory given")
    rows = load_rows(paths)
    out = Path(out_dir) if out_dir is not None else default_out_dir(paths)
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    records = [row_record(r, _label_base(rows, out)) for r in rows]
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
            figures.append(plot_heatmap(g, out / f"heatmap_ndcg10_{name}.png"))
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
    write_text(files[0], csv_text(records))
    write_text(files[1], bands.csv_text(summary, bands.SUMMARY_COLUMNS))
    write_text(files[2], bands.csv_text(bucket_recs, bands.BUCKET_COLUMNS))
    write_text(files[3], _markdown_document(rows, bands.markdown_summary(summary), table, figures, out))
    return Report(out, rows, files + figures, table, bands.markdown_summary(summary))


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


def _markdown_document(rows: list[Row], summary: str, table: str, figures: list[Path], out: Path) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    parts = [
        "# Sweep report\n",
        _cost_line(rows),
        f"{len(rows)} runs: {status}. Test metrics of the best validation checkpoint, full ranking with "
        "seen items removed. Per configuration: mean ± std over seeds; Δ is the change against the "
        "no-band baseline of the same model, data and seed, averaged over the seeds both have, with a "
        "95% paired bootstrap CI over test users (2,000 resamples; * = the CI excludes 0). In-band "
        "targets: test users whose target's training frequency lies in the band.\n",
        summary,
        "\n## Figures\n",
        "\n".join(f"![{f.stem}]({f.name})" for f in figures if f.suffix == ".png") + "\n",
        "\n## Runs\n",
        "Embedding params in parentheses: rows saved with neighbours=outside_band.\n",
        table,
        f"\nTensorBoard (HPARAMS tab compares the runs): `tensorboard --logdir {out}`\n",
    ]
    return "\n".join(parts)
