"""`python -m embfreq.train`: the train command, kept at its documented name (embfreq/cli/train.py)."""

from embfreq.training.train import cli, main  # noqa: F401

if __name__ == "__main__":
    cli()
