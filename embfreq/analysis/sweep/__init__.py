"""Many runs: reading sweep dirs, baselines, statistics, tables and the report."""
