"""Which device a Lightning accelerator setting runs on here."""

from __future__ import annotations


def uses_gpu(accelerator: str) -> bool:
    """True for "gpu"/"cuda", and for "auto" on a machine with a CUDA GPU (what Lightning picks)."""
    import torch  # not at import time: the CLIs set up OpenMP before torch loads (embfreq.threads)

    accelerator = str(accelerator)
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
