"""`python -m embfreq.analyze`: the analyze command, kept at its documented name (embfreq/cli/analyze.py)."""

import sys

from embfreq.cli.analyze import analyze, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
