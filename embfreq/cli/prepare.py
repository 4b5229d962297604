"""`python -m embfreq.prepare data=<name>`: process a dataset (or load it from the cache), print one JSON line."""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig

from embfreq.errors import UserError


def prepare(cfg: DictConfig) -> dict:
    """The `data` DataModule's file processed (or found in the cache), and its statistics."""
    from embfreq.training.builders import build_datamodule

    dm = build_datamodule(cfg)
    data = dm.data_processed()
    return {"data": dm.name, **data.stats(), "seconds": round(data.seconds, 4), "cached": data.cached}


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        print(json.dumps(prepare(cfg)), flush=True)
    except UserError as e:
        print(f"embfreq: error: {e}", file=sys.stderr)
        sys.exit(2)


def cli() -> None:
    """`embfreq-prepare` and `python -m embfreq.prepare`."""
    # processing only: no run dir, no .hydra/ copy, no log file
    sys.argv += ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    main()


if __name__ == "__main__":
    cli()
