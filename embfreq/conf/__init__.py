"""The Hydra configs, a package so that installed console scripts find them (pkg://embfreq.conf),
and the one resolver they use."""

from omegaconf import OmegaConf


def item_table_tag(item_table, neighbours) -> str:
    """A run dir's name for what its band items use: the neighbour mode ("all", "outside_band"), or
    another strategy with its budget ("hashed-buckets1195", "mixed_dim-band_dim8", "shared")."""
    name = item_table.get("name", "neighbours") if item_table is not None else "neighbours"
    if name == "neighbours":
        return str(neighbours)
    params = sorted((str(k), v) for k, v in item_table.items() if k != "name" and v is not None)
    return "-".join([str(name)] + [f"{k}{v}" for k, v in params])


def schema_help() -> str:
    """The top-level keys of embfreq.config_checks.SCHEMA for `--help` (imported only then)."""
    from embfreq.config_checks import help_lines

    return help_lines()


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("item_table_tag", item_table_tag, replace=True)
    OmegaConf.register_new_resolver("embfreq_schema_help", schema_help, replace=True)


register_resolvers()
