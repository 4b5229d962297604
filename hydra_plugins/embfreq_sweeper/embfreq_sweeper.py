"""embfreq's Hydra sweeper (`hydra/sweeper: embfreq`, the default of train.yaml): BasicSweeper's grid,
plus what embfreq.training.sweep adds: the no-band baseline of every band grid (hydra.sweeper.baseline=false,
or baseline=false on the command line, turns it off), one refusal before any job for a setting that
is invalid in every job, jobs.json, the summary table of every job and an honest exit status.
Hydra finds sweepers only in the hydra_plugins namespace; the logic is in embfreq.training.sweep."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf


class EmbfreqSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None,
                 baseline: bool = True) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.baseline = bool(baseline)

    def _compose(self, overrides: List[str]):
        return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))

    def sweep(self, arguments: List[str]) -> Any:
        from embfreq.training import sweep as es
        from embfreq.cli.args import error
        from embfreq.errors import UserError

        es.exit_code = 0
        params = self._parse_config() + list(arguments)
        try:
            parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
            jobs = [list(j) for j in self.split_arguments(parser.parse_overrides(params), None)[0]]
            configs = [self._compose_checked(j) for j in jobs]
            added: list = []
            if self.baseline and any(es.key_of(p).split(".")[0] in es.BAND_KEYS for p in params):
                jobs, configs, added = es.add_baselines(jobs, configs, self._compose_checked)
            es.precheck(jobs, configs)
        except UserError as e:  # before any job: one line, exit 2, no sweep dir
            sys.exit(error(e))
        if added:
            print(f"embfreq: {len(added)} no-band baseline job(s) added to the band grid "
                  "(baseline=false to leave them out)", flush=True)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        es.write_plan(sweep_dir, jobs, configs, added)
        keys = es.varying(jobs)
        n = len(jobs) if self.max_batch_size in (None, -1) else self.max_batch_size
        batches = [jobs[i:i + n] for i in range(0, len(jobs), n)]
        rows = [{"num": i, "cell": es.cell(j, keys), "status": "not started"} for i, j in enumerate(jobs)]
        returns = []
        done = 0
        try:
            for batch in batches:
                self.validate_batch_is_legal(batch)
                results = self.launcher.launch(batch, initial_job_idx=done)
                for k, r in enumerate(results):
                    rows[done + k].update(self._row(r))
                done += len(batch)
                returns.append(results)
        finally:  # also when a signal or an error ends the sweep: the table of what ran
            es.fill_unreturned(rows, jobs, sweep_dir)
            es.exit_code = es.finish(rows, sweep_dir)
        return returns

    def _compose_checked(self, overrides: List[str]):
        from embfreq.errors import UserError
        from embfreq.cli.args import composition_error

        try:
            return self._compose(overrides)
        except UserError:
            raise
        except Exception as e:  # an unknown key or group option in one job: one line, its job named
            raise composition_error(e, overrides) from None

    @staticmethod
    def _row(r) -> dict:
        from embfreq.training import sweep as es

        run_dir = OmegaConf.select(r.hydra_cfg, "hydra.runtime.output_dir") if r.hydra_cfg is not None else None
        row = {"run_dir": run_dir, **es.job_status(Path(run_dir) if run_dir else None)}
        if r.status == JobStatus.FAILED:
            row.update(status="crashed", reason=f"{type(r._return_value).__name__}: {r._return_value}")
        elif row["status"] == "not started":
            row["status"] = "no result"
        return row
