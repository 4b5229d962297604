"""What a multirun (`python -m embfreq.train -m ...`) adds to Hydra's basic sweep: the no-band baseline
of every band grid, one refusal before any job for a setting that is invalid in every job, a record of
the planned jobs (`jobs.json`, so jobs that never started count as missing), the summary table of
every job at the end, and the exit status (non-zero when a job failed; a skipped cell is no failure).

The Hydra plugin `hydra_plugins.embfreq_sweeper` (the `hydra/sweeper: embfreq` of train.yaml) calls
these; they hold no Hydra state, so they are tested on their own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from embfreq.errors import ConfigError, UserError, first_line

JOBS = "jobs.json"
SUMMARY = "summary.txt"
BAND_KEYS = ("lower_freq", "upper_freq", "band")
# keys a no-band run does not depend on: one baseline serves every value of them
BASELINE_FREE = BAND_KEYS + ("neighbours", "item_table")
FAILED = ("failed", "crashed", "interrupted", "no result")

# the exit status of the last sweep in this process; cli() exits with it
exit_code = 0


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _baseline_group(overrides: Sequence[str]) -> tuple:
    return tuple(sorted(o for o in overrides if key_of(o).split(".")[0] not in BASELINE_FREE))


def _is_baseline(cfg: DictConfig) -> bool:
    return cfg.get("lower_freq") is None and cfg.get("upper_freq") is None


def _empty_band(cfg: DictConfig) -> bool:
    lo, hi = cfg.get("lower_freq"), cfg.get("upper_freq")
    try:
        return lo is not None and hi is not None and lo > hi
    except TypeError:  # a non-number: check_config names it
        return False


def add_baselines(jobs: list[list[str]], configs: list[DictConfig], compose: Callable) -> tuple[list, list, list]:
    """`jobs` plus, for each group of band jobs that differ only in band keys (band, neighbours,
    item table), the no-band job of the group when the grid has none: (jobs, configs, added)."""
    have = {_baseline_group(j) for j, c in zip(jobs, configs) if _is_baseline(c)}
    added = []
    for j, c in zip(jobs, configs):
        group = _baseline_group(j)
        if _is_baseline(c) or group in have:
            continue
        have.add(group)
        added.append([o for o in j if key_of(o).split(".")[0] not in BASELINE_FREE] + ["lower_freq=null", "upper_freq=null"])
    return jobs + added, configs + [compose(j) for j in added], added


def precheck(jobs: list[list[str]], configs: list[DictConfig]) -> None:
    """Refuse the sweep once, before any job, when every job that would train is refused by the
    config checks (a job of an empty band is skipped, not checked)."""
    from embfreq.training.config_checks import check_config

    errors, checked = [], 0
    for c in configs:
        if _empty_band(c):
            continue
        checked += 1
        try:
            check_config(without_hydra(c))
        except UserError as e:
            errors.append(str(e))
    if checked and len(errors) == checked:
        others = len(set(errors)) - 1
        raise ConfigError(f"{errors[0]} (in every job of the sweep{f', with {others} other errors' if others else ''}; "
                          "no job was started)")


def without_hydra(cfg: DictConfig) -> DictConfig:
    """A job's config as the job sees it: the hydra node (with interpolations only a running job
    resolves) removed."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    return OmegaConf.create(plain)


def varying(jobs: list[list[str]]) -> list[str]:
    """The override keys whose value differs between jobs: what names a cell."""
    values: dict[str, set] = {}
    for j in jobs:
        for o in j:
            values.setdefault(key_of(o), set())
    for k in values:
        values[k] = {next((o.split("=", 1)[1] for o in j if key_of(o) == k and "=" in o), None) for j in jobs}
    return [k for k, v in values.items() if len(v) > 1]


def cell(job: Sequence[str], keys: Sequence[str]) -> str:
    shown = [o for o in job if key_of(o) in keys]
    return " ".join(shown) or "(default)"


def write_plan(sweep_dir: Path, jobs: list[list[str]], configs: list[DictConfig], added: list) -> None:
    """jobs.json: every job the sweep will launch, before the first starts. The report counts a
    planned job without a run dir (a sweep stopped by SIGTERM) as missing."""
    from embfreq.io import write_json

    def fields(c):
        return {k: OmegaConf.select(c, path) for k, path in (("model", "model.name"), ("data", "data.name"),
                ("seed", "seed"), ("lower_freq", "lower_freq"), ("upper_freq", "upper_freq"),
                ("neighbours", "item_table.neighbours"))}

    added_set = {tuple(a) for a in added}
    write_json(sweep_dir / JOBS, {"started_at": time.time(), "jobs": [
        {"num": i, "overrides": list(j), "added_baseline": tuple(j) in added_set, **fields(c)}
        for i, (j, c) in enumerate(zip(jobs, configs))]})


def planned_jobs(sweep_dir: Path) -> list[dict]:
    path = Path(sweep_dir) / JOBS
    try:
        return list(json.loads(path.read_text()).get("jobs", []))
    except (OSError, ValueError, AttributeError):
        return []


def job_status(run_dir: Path | None) -> dict:
    """status, best val and test NDCG@10 and wall time of one job, from its metrics.json."""
    if run_dir is None:
        return {"status": "not started"}
    try:
        m = json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return {"status": "no result"}
    if not isinstance(m, dict):
        return {"status": "no result"}
    secs = m.get("seconds") if isinstance(m.get("seconds"), dict) else {}
    return {"status": str(m.get("status", "no result")), "val": (m.get("val") or {}).get("val/ndcg@10"),
            "test": (m.get("test") or {}).get("test/ndcg@10"), "seconds": secs.get("total"),
            "reason": m.get("reason") or m.get("error")}


def summary_table(rows: list[dict], sweep_dir: Path) -> str:
    """One line per job: job, cell, status, best val NDCG@10, test NDCG@10, wall time, run dir."""
    def num(x):
        return "" if x is None else f"{x:.4f}"

    def secs(x):
        return "" if x is None else f"{x:.1f}s"

    def rel(p):
        if p is None:
            return ""
        try:
            return str(Path(p).relative_to(sweep_dir))
        except ValueError:
            return str(p)

    head = ("job", "cell", "status", "val NDCG@10", "test NDCG@10", "time", "run dir")
    body = [(str(r["num"]), r["cell"], r["status"], num(r.get("val")), num(r.get("test")), secs(r.get("seconds")),
             rel(r.get("run_dir"))) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in (head, *body)]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines.append(f"{len(rows)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; sweep dir: {sweep_dir}")
    for r in rows:
        if r["status"] in FAILED and r.get("reason"):
            lines.append(f"job {r['num']} {r['status']}: {first_line(Exception(r['reason']))}")
    return "\n".join(lines)


def fill_unreturned(rows: list[dict], jobs: list[list[str]], sweep_dir: Path) -> None:
    """Jobs whose launch did not return (a SIGTERM ended the sweep inside one): their run dir, found by
    Hydra's record of their overrides, says what they got to (interrupted, or nothing)."""
    import yaml

    dirs = {}
    for f in Path(sweep_dir).glob("*/.hydra/overrides.yaml"):
        try:
            dirs[tuple(yaml.safe_load(f.read_text()) or ())] = f.parent.parent
        except (OSError, yaml.YAMLError):
            continue
    for r, j in zip(rows, jobs):
        if r["status"] == "not started" and tuple(j) in dirs:
            r.update(run_dir=str(dirs[tuple(j)]), **job_status(dirs[tuple(j)]))


def finish(rows: list[dict], sweep_dir: Path) -> int:
    """Print the summary table, write it beside the runs, and return the sweep's exit status."""
    from embfreq.io import write_text

    text = summary_table(rows, sweep_dir)
    print(text, flush=True)
    try:
        write_text(sweep_dir / SUMMARY, text + "\n")
    except OSError:
        pass
    bad = [r for r in rows if r["status"] in FAILED or r["status"] == "not started"]
    return 1 if bad else 0


# -- the report's side: planned jobs that never ran, band runs without a baseline -------------------

def never_started(paths, run_dirs) -> list[dict]:
    """Jobs a sweep under `paths` planned (jobs.json) that have no run dir: the sweep was stopped
    (SIGTERM, a crash) before they started. Matched on each run's .hydra/overrides.yaml."""
    import yaml

    out = []
    for p in map(Path, paths):
        planned = planned_jobs(p)
        if not planned:
            continue
        seen = set()
        for d in run_dirs:
            f = Path(d) / ".hydra" / "overrides.yaml"
            try:
                seen.add(tuple(yaml.safe_load(f.read_text()) or ()))
            except (OSError, yaml.YAMLError):
                continue
        if not seen and any(Path(d).is_relative_to(p.resolve()) for d in run_dirs):
            continue  # runs without Hydra's record (hydra.output_subdir=null): cannot tell which ran
        out += [{**j, "sweep_dir": str(p)} for j in planned if tuple(j.get("overrides", ())) not in seen]
    return out


def baseline_notes(rows) -> list[str]:
    """One line per (model, data, variant, seed) whose band runs have no no-band run to compare with,
    saying how to add it."""
    import yaml

    lonely: dict[tuple, list] = {}
    for r in rows:
        if r.ok and not r.is_baseline and not r.baseline:
            lonely.setdefault((r.model, r.data, r.variant, r.seed), []).append(r)
    notes = []
    for (model, data, variant, seed), rs in lonely.items():
        try:
            ov = yaml.safe_load((rs[0].run_dir / ".hydra" / "overrides.yaml").read_text()) or []
        except (OSError, yaml.YAMLError):
            ov = [f"model={model}", f"data={data}", f"seed={seed}"]
        keep = [o for o in ov if key_of(str(o)).split(".")[0] not in BASELINE_FREE]
        what = f"{model} · {data}" + (f" · {variant}" if variant else "") + f" · seed {seed}"
        notes.append(f"no baseline for {what} ({len(rs)} band run(s), e.g. {rs[0].run_dir.name}): no Δ for them; "
                     f"add it with: python -m embfreq.train {' '.join(map(str, keep))} lower_freq=null upper_freq=null")
    return notes
