"""`python -m embfreq.train`: the train command at its documented name (embfreq/cli/train.py)."""

from embfreq.cli.train import cli, main  # noqa: F401  (configures OpenMP before torch loads)

if __name__ == "__main__":
    cli()
