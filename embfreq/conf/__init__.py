"""The Hydra configs, a package so that installed console scripts find them (pkg://embfreq.conf),
and the resolvers of run-dir names."""

from omegaconf import OmegaConf

from embfreq.band import Band, BandError


def item_table_tag(item_table) -> str:
    """A run dir's name for what its band items use: the neighbour mode ("all", "outside_band"), or
    another strategy with its budget ("hashed-buckets1195", "mixed_dim-band_dim8", "shared")."""
    name = item_table.get("name", "neighbours") if item_table is not None else "neighbours"
    if name == "neighbours":
        return str(item_table.get("neighbours", "all") if item_table is not None else "all")
    params = sorted((str(k), v) for k, v in item_table.items() if k not in ("name", "_target_") and v is not None)
    return "-".join([str(name)] + [f"{k}{v}" for k, v in params])


def band_tag(lower_freq, upper_freq) -> str:
    """A run dir's name for its band: b0-5, b100-inf, baseline (`Band.tag`). An invalid band still
    names its dir (b10-5): a sweep records that job as skipped there, the check says why."""
    try:
        return Band(lower_freq, upper_freq).tag
    except BandError:
        return f"b{lower_freq}-{upper_freq}"


def schema_help() -> str:
    """The top-level keys of embfreq.training.config_checks.SCHEMA for `--help` (imported only then)."""
    from embfreq.training.config_checks import help_lines

    return help_lines()


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("item_table_tag", item_table_tag, replace=True)
    OmegaConf.register_new_resolver("band_tag", band_tag, replace=True)
    OmegaConf.register_new_resolver("embfreq_schema_help", schema_help, replace=True)


register_resolvers()
