"""Which device a Lightning accelerator setting runs on here."""

from __future__ import annotations


def uses_gpu(accelerator: str) -> bool:
    """True for "gpu"/"cuda", and for "auto" on a machine with a CUDA GPU (what Lightning picks)."""
    import torch  # not at import time: the CLIs set up OpenMP before torch loads (embfreq.training.threads)

    accelerator = str(accelerator)
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


# CPU features whose presence changes which kernels (and so which float sums) torch runs
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
              "asimd", "sve")


def machine_record() -> dict:
    """What a result's last digits depend on: CPU model and SIMD flags, GPU, library versions.
    Results repeat exactly only on the same machine and software (float sums follow the kernels)."""
    import os
    import platform

    import numpy
    import pytorch_lightning
    import torch

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "cpu model") and cpu in ("", platform.machine(), platform.processor()):
                cpu = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_flags": [f for f in SIMD_FLAGS if f in flags],
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "cuda": torch.version.cuda,
    }
