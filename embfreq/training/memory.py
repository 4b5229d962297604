"""Bounded heap growth: large temporary buffers go back to the system when freed.

glibc raises its mmap threshold (the size from which a buffer gets its own mapping) each time such a
buffer is freed, up to 32 MiB. After the first freed score matrix, a validation pass's temporaries of
a few MiB each (the comparison mask, the encoder's activations, the batch's arrays, growing batch by
batch in length-sorted order) then come from the heap, which fragments and is not returned: on
Beauty a pass grew the process by 0.6-0.9 GiB, in a different pass from run to run (issue 34).
A fixed threshold keeps buffers from `MMAP_THRESHOLD` up in their own mappings, freed at once.
Evaluation (`RankingModel.ranks`) sets it; `EMBFREQ_MMAP_THRESHOLD=<bytes>` chooses another
threshold and `EMBFREQ_MMAP_THRESHOLD=default` keeps glibc's dynamic one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter; setting it also turns off the dynamic threshold
MMAP_THRESHOLD = 1 << 20  # bytes; docs/performance.md has the measurement that chose it

_state: dict = {}


def bound_heap_growth(threshold: int | None = None) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes (default `EMBFREQ_MMAP_THRESHOLD` or
    `MMAP_THRESHOLD`; once per process, later calls do nothing). True when set; False where the C
    library is not glibc, or with EMBFREQ_MMAP_THRESHOLD=default."""
    if "set" in _state:
        return _state["set"]
    env = os.environ.get("EMBFREQ_MMAP_THRESHOLD", "").strip()
    if threshold is None:
        threshold = None if env == "default" else int(env) if env else MMAP_THRESHOLD
    ok = False
    if threshold is not None and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            ok = bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold)))
        except (OSError, AttributeError):  # musl and others: no mallopt
            ok = False
    _state["set"], _state["threshold"] = ok, threshold if ok else None
    return ok


def heap_record() -> dict:
    """For metrics.json: the mmap threshold this process runs with (None: the C library's own)."""
    return {"mmap_threshold": _state.get("threshold")}
