"""Checks of the frequency band given in a config."""

from __future__ import annotations

from embfreq.errors import ConfigError


def check_band(lower_freq, upper_freq) -> None:
    """Raise ConfigError for a negative or non-numeric bound, or lower_freq > upper_freq."""
    for name, v in (("lower_freq", lower_freq), ("upper_freq", upper_freq)):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{name} must be a number or null, got {v!r}")
        if v != v:  # NaN
            raise ConfigError(f"{name} must be a number or null, got nan")
        if v < 0:
            raise ConfigError(f"{name} must be >= 0 (a training frequency), got {v}")
    if lower_freq is not None and upper_freq is not None and lower_freq > upper_freq:
        raise ConfigError(f"lower_freq={lower_freq} > upper_freq={upper_freq}: the band [lower_freq, upper_freq] is empty")
