"""The four commands: train, report, analyze, prepare (`python -m embfreq.<command>` runs these)."""
