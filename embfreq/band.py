"""The frequency band ``[lower, upper]``: the one value that owns its bounds, their check, the
in-band mask, its label and its run-dir tag.

An item is *in the band* when ``lower <= training frequency <= upper``; ``None`` leaves a side
open. No bound at all (``Band()``, ``lower_freq=null upper_freq=null`` in a config) is the
baseline without a band: it is written ``baseline`` in labels, reports and run-dir names, and
``null`` in configs. An open upper side is written ``inf`` in labels (``[100, inf)``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional

from embfreq.errors import ConfigError

NO_BAND = "baseline"  # the one spelling of "no band" in labels, reports and run-dir names


class BandError(ConfigError, ValueError):
    """A bound that is not a non-negative number, or ``lower > upper``. A ValueError for code that
    builds an item table directly; a ConfigError (one line, exit 2) on the command line."""


def _bound(name: str, value) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value) or value < 0:
        raise BandError(f"{name} must be a number >= 0 (a training frequency) or null, got {value!r}")
    if math.isinf(value):
        if name == "lower_freq":
            raise BandError("lower_freq must be finite: an open lower side is null")
        return None  # an open upper side: one spelling, None
    return value


@dataclass(frozen=True)
class Band:
    """Inclusive bounds on an item's training frequency; ``Band()`` is no band."""

    lower: Optional[float] = None
    upper: Optional[float] = None

    def __post_init__(self):
        lower, upper = _bound("lower_freq", self.lower), _bound("upper_freq", self.upper)
        if lower is not None and upper is not None and lower > upper:
            raise BandError(f"lower_freq={bound_text(lower)} > upper_freq={bound_text(upper)}: "
                            "the band [lower_freq, upper_freq] is empty")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    @property
    def is_none(self) -> bool:
        """True for the baseline: no bound on either side, no item in the band."""
        return self.lower is None and self.upper is None

    def mask(self, freq, padding_idx: Optional[int] = None):
        """(n,) bool tensor: which items of frequency ``freq`` are in the band; the padding row never is."""
        import torch

        freq = torch.as_tensor(freq)
        in_band = torch.zeros(freq.shape[0], dtype=torch.bool, device=freq.device)
        if not self.is_none:
            in_band = torch.ones_like(in_band)
            if self.lower is not None:
                in_band &= freq >= self.lower
            if self.upper is not None:
                in_band &= freq <= self.upper
        if padding_idx is not None:
            in_band[padding_idx] = False
        return in_band

    @property
    def label(self) -> str:
        """``[0, 5]``, ``[100, inf)``, ``(-inf, 5]``, or ``baseline``."""
        return band_label(self.lower, self.upper)

    @property
    def tag(self) -> str:
        """A run-dir name part: ``b0-5``, ``b100-inf``, ``b-inf-5``, or ``baseline``."""
        if self.is_none:
            return NO_BAND
        lo = "-inf" if self.lower is None else bound_text(self.lower)
        return f"b{lo}-{bound_text(self.upper)}"

    def sort_key(self) -> tuple:
        """Baseline first, then by lower bound (open first), then by upper bound (open last)."""
        return (not self.is_none, bound_order(self.lower, True), bound_order(self.upper, False))

    def __str__(self) -> str:
        return self.label


def band_label(lower, upper) -> str:
    """`Band.label` of two bounds, unchecked: reports also label the skipped runs of an empty band."""
    if lower is None and upper is None:
        return NO_BAND
    lo = "(-inf" if lower is None else f"[{bound_text(lower)}"
    return f"{lo}, {bound_text(upper)}" + (")" if upper is None else "]")


def bound_text(v) -> str:
    """A bound as written in labels and on axes: 5 not 5.0, inf for an open upper side."""
    return "inf" if v is None else (str(int(v)) if float(v).is_integer() else f"{v:g}")


def bound_order(v, none_first: bool) -> tuple:
    """Sort key of a bound: an open lower side (None) before every number, an open upper side after."""
    return (0 if none_first else 2, 0.0) if v is None else (1, float(v))
