"""What a run recorded about itself, checked by every command that reads the run afterwards.

train.py writes `run_state.json` when a run starts: the sha256 of its resolved config and the
fingerprint of its processed data (`ProcessedData.fingerprint`). `analyze` refuses a run whose data
or config.yaml changed since (its items.csv, figures and analysis would describe other data than
metrics.json); the report refuses a run whose config.yaml was edited, and runs of one experiment
that trained on different data. A run from before this record is read unchecked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from embfreq.errors import UserError
from embfreq.io import read_json_object

RUN_STATE = "run_state.json"  # the name train.py writes


def config_sha256(cfg) -> str:
    """sha256 of a run config as train.py computes it: resolved, without `resume`."""
    from omegaconf import DictConfig, OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    plain.pop("resume", None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(plain)).encode()).hexdigest()


def read_run_state(run_dir: str | Path) -> dict | None:
    """The run's record, or None for a run from before it; a damaged one is an error."""
    path = Path(run_dir) / RUN_STATE
    if not path.is_file():
        return None
    state, why = read_json_object(path)
    if why:
        raise UserError(f"{path}: unreadable ({why}); cannot check the run")
    return state


def check_config_unchanged(run_dir: str | Path, cfg, state: dict | None, what: str) -> None:
    """Refuse when config.yaml is not the config the run recorded at its start."""
    recorded = (state or {}).get("config_sha256")
    if recorded is not None and config_sha256(cfg) != recorded:
        raise UserError(f"{run_dir}: cannot {what}: config.yaml changed since the run started "
                        f"({RUN_STATE} records another config)")


def check_data_unchanged(run_dir: str | Path, fingerprint: str, num_items: int, state: dict | None,
                         metrics: dict, what: str) -> None:
    """Refuse when the data the run's config names now processes to other data than it trained on
    (by the recorded fingerprint; for runs without one, by the item count metrics.json recorded)."""
    recorded = (state or {}).get("data_fingerprint")
    if recorded is not None:
        if fingerprint != recorded:
            raise UserError(f"{run_dir}: cannot {what}: the data changed since the run trained (its data "
                            f"fingerprint differs from the one in {RUN_STATE}); restore the run's data file")
        return
    items = metrics.get("items")
    if isinstance(items, int) and not isinstance(items, bool) and items != num_items:
        raise UserError(f"{run_dir}: cannot {what}: the data changed since the run trained ({num_items} items "
                        f"now, {items} in metrics.json); restore the run's data file")
