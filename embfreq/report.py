"""`python -m embfreq.report`: the report command, kept at its documented name (embfreq/cli/report.py)."""

import sys

from embfreq.cli.report import main, report  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
