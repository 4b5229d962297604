"""Per run: items.csv, per-user test ranks and the per-item analysis of one run dir."""
