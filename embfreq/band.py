"""The frequency band [lower_freq, upper_freq]: its config check, its label, its sort order."""

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


def band_label(lower, upper) -> str:
    """"[l, u]" with open sides as (-inf / inf), or "baseline" for no band."""
    if lower is None and upper is None:
        return "baseline"
    lo = "(-inf" if lower is None else f"[{bound_text(lower)}"
    hi = "inf)" if upper is None else f"{bound_text(upper)}]"
    return f"{lo}, {hi}"


def bound_text(v) -> str:
    """A bound as written in labels and on axes: 5 not 5.0, inf for an open upper side."""
    return "inf" if v is None else (str(int(v)) if float(v).is_integer() else f"{v:g}")


def bound_order(v, none_first: bool) -> tuple:
    """Sort key of a bound: an open lower side (None) before every number, an open upper side after."""
    return (0 if none_first else 2, 0.0) if v is None else (1, float(v))
