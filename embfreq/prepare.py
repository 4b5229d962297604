"""`python -m embfreq.prepare`: the prepare command, kept at its documented name (embfreq/cli/prepare.py)."""

from embfreq.cli.prepare import cli, prepare  # noqa: F401

if __name__ == "__main__":
    cli()
