"""The runs of a sweep, read from their directories: one `Row` per run from its metrics.json and
config.yaml, each named by its variant, given its baseline, in report order (`load_rows`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from embfreq.analysis.sweep.baselines import assign_baselines, assign_variants
from embfreq.band import band_label, bound_order
from embfreq.errors import UserError, first_line
from embfreq.training.integrity import check_config_unchanged, read_run_state
from embfreq.io import flatten
from embfreq.training.run_dir import CONFIG, METRICS, read_metrics

HR, NDCG = "test/hr@10", "test/ndcg@10"
# the budget options of each item-table strategy (embfreq.nn.ITEM_TABLES[name].options), without importing torch
TABLE_OPTIONS = {"neighbours": ("neighbours",), "shared": (), "hashed": ("buckets",), "mixed_dim": ("band_dim",),
                 "qr": ("buckets",)}


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
    state: dict = field(default_factory=dict)  # run_state.json: what the run recorded at its start
    baseline: dict = field(default_factory=dict)  # hr, ndcg, runs (how many baselines were averaged)

    @property
    def is_baseline(self) -> bool:
        return self.lower_freq is None and self.upper_freq is None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def hr(self) -> float | None:
        return as_number(self.metrics.get("test", {}).get(HR)) if self.ok else None

    @property
    def ndcg(self) -> float | None:
        return as_number(self.metrics.get("test", {}).get(NDCG)) if self.ok else None

    @property
    def share(self) -> float | None:
        return as_number(self.metrics.get("share_in_band"))

    @property
    def band(self) -> str:
        return band_label(self.lower_freq, self.upper_freq)

    @property
    def panel(self) -> tuple:
        """Runs that share a heatmap: same model, data, other config and neighbour mode."""
        return (self.model or "?", self.data or "?", self.variant, self.neighbours or "")


def load_rows(paths) -> list[Row]:
    """Every run under `paths`, with its variant and baseline, in report order."""
    from embfreq.training.sweep import never_started

    dirs = find_run_dirs(paths)
    rows = [read_run(d) for d in dirs]
    check_duplicates(rows)
    check_same_data(rows)
    for j in never_started(paths, dirs):  # a stopped sweep's jobs that never started count as missing
        rows.append(Row(run_dir=Path(j["sweep_dir"]).resolve() / f"{j['num']}_never_started", status="missing",
                        reason="never started (the sweep was stopped first; jobs.json): " + " ".join(j["overrides"]),
                        model=j.get("model"), data=j.get("data"), seed=as_int(j.get("seed")),
                        lower_freq=as_number(j.get("lower_freq")), upper_freq=as_number(j.get("upper_freq")),
                        neighbours=j.get("neighbours")))
    assign_variants(rows)
    assign_baselines(rows)
    rows.sort(key=_row_order)
    return rows


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
    try:
        state = read_run_state(run_dir) or {}
        if config:
            check_config_unchanged(run_dir, config, state, "report it")
    except UserError as e:
        raise ReportError(str(e)) from None
    if not (run_dir / METRICS).is_file():
        m = {}
        status, reason = "missing", f"no {METRICS}: the job is unfinished or was killed"
    else:
        try:
            m = read_metrics(run_dir)
        except UserError as e:
            raise ReportError(str(e)) from None
        # no status: an old record, ok only when it holds test results
        status = str(m.get("status", "ok" if isinstance(m.get("test"), dict) and m["test"] else "missing"))
        reason = str(m.get("reason") or m.get("error") or "")
    flat = flatten(config) if config else {}

    def pick(key, config_key=None):  # metrics.json first; config.yaml for runs without one
        return m[key] if key in m else flat.get(config_key or key)

    return Row(
        run_dir=run_dir, status=status, reason=reason, model=pick("model", "model.name"),
        data=pick("data", "data.name"), seed=as_int(pick("seed")), lower_freq=as_number(pick("lower_freq")),
        upper_freq=as_number(pick("upper_freq")), neighbours=substitute(pick("neighbours", "item_table.neighbours"), flat),
        metrics=m, config=flat, state=state,
    )


# Keys that do not make a run another run: where it kept its files, how many threads it used, and
# what it showed or logged (the divergence guard changes no number of a run it does not stop).
NOT_IDENTITY = ("cache_dir", "data.cache_dir", "resume", "threads", "compile", "data.num_workers", "analysis",
                "trainer.enable_progress_bar", "trainer.enable_model_summary")
NOT_IDENTITY_ROOTS = ("logger", "callbacks.divergence", "threads")  # threads.train, threads.eval
# The data settings that decide what a run trains and is tested on (`ProcessedData.fingerprint`).
DATA_SOURCE = ("path", "bundled", "url", "sha256", "format", "columns", "sep", "min_rating",
               "min_user_interactions", "min_item_interactions", "drop_duplicates")


def run_identity(r: Row) -> str | None:
    """A run is its config (paths and thread counts aside) and seed; None for a run without a config."""
    if not r.config:
        return None
    import json

    ident = {k: v for k, v in r.config.items() if k not in NOT_IDENTITY
             and not any(k == root or k.startswith(root + ".") for root in NOT_IDENTITY_ROOTS)}
    return json.dumps(ident, sort_keys=True, default=str)


def check_duplicates(rows: list[Row]) -> None:
    """Two results of one run would count as two seeds (mean and spread wrong): a copied run dir, or a
    rerun of the same config and seed. Refused with one line naming both dirs; a failed, skipped or
    unfinished duplicate adds no number and is allowed (a rerun after a failure)."""
    seen: dict[str, Row] = {}
    for r in rows:
        if not r.ok:
            continue
        keys = [run_identity(r)]
        started = r.metrics.get("started_at")
        if started is not None and r.metrics.get("run_dir"):  # a copy of a run without its config.yaml
            keys.append(f"copy of {r.metrics['run_dir']} started at {started}")
        for key in filter(None, keys):
            other = seen.setdefault(key, r)
            if other is not r:
                raise ReportError(f"duplicate runs (same config and seed {r.seed}): {other.run_dir} and {r.run_dir}; "
                                  "remove one: the report would count them as two seeds")


def check_same_data(rows: list[Row]) -> None:
    """Runs with the same data settings must have trained on the same data (by the fingerprint each
    recorded): a data file that changed between runs makes their comparison meaningless."""
    first: dict[str, Row] = {}
    for r in rows:
        fp = r.state.get("data_fingerprint")
        if not r.ok or not r.config or fp is None:
            continue
        import json

        key = json.dumps({k: r.config.get(f"data.{k}") for k in DATA_SOURCE} | {"name": r.data}, sort_keys=True,
                         default=str)
        other = first.setdefault(key, r)
        if other.state["data_fingerprint"] != fp:
            raise ReportError(f"runs on data={r.data} trained on different data (their data fingerprints differ): "
                              f"{other.run_dir} and {r.run_dir}; the data file changed between them")


def substitute(neighbours, flat: dict):
    """What a band item uses instead of its own vector: the neighbour mode (all, outside_band), or
    another item-table strategy with its budget, e.g. "hashed buckets=256". Like the neighbour
    mode, it is compared with the same no-band baseline."""
    name = flat.get("item_table.name")
    if name in (None, "neighbours"):
        return neighbours
    options = TABLE_OPTIONS.get(name, ())
    params = sorted((k, flat.get(f"item_table.{k}")) for k in options if flat.get(f"item_table.{k}") is not None)
    return " ".join([str(name)] + [f"{k}={v}" for k, v in params])


def _read_config(path: Path) -> dict:
    from omegaconf import OmegaConf

    try:
        c = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # YAML or OmegaConf errors of many kinds
        raise ReportError(f"{path}: unreadable {CONFIG} ({type(e).__name__}: {first_line(e)})") from None
    return c if isinstance(c, dict) else {}


def as_number(v) -> float | None:
    """A number from a JSON or YAML value (whole floats as int), or None for anything else."""
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def as_int(v) -> int | None:
    x = as_number(v)
    return int(x) if x is not None else None


def _row_order(r: Row) -> tuple:
    return (str(r.model), str(r.data), r.variant, not r.is_baseline, bound_order(r.lower_freq, True),
            bound_order(r.upper_freq, False), str(r.neighbours), r.seed if r.seed is not None else -1, str(r.run_dir))
