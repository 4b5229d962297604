"""`python -m embfreq.prepare data=<name>`: process a dataset (or load it from the cache), print one JSON line."""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from embfreq.errors import UserError


def prepare(cfg: DictConfig) -> dict:
    from embfreq.data.processed import load_processed

    args = OmegaConf.to_container(cfg.data, resolve=True)
    name = args.pop("name", None)
    data = load_processed(**args, cache_dir=cfg.cache_dir)
    return {"data": name, **data.stats(), "seconds": round(data.seconds, 4), "cached": data.cached}


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
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
