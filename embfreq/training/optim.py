"""Optimiser construction: the configured factory, with the fused kernel where it exists."""

from __future__ import annotations

import functools
import inspect

import torch


def default_optimizer():
    return functools.partial(torch.optim.Adam, lr=1e-3)


def fused_supported(params) -> bool:
    """Whether torch has a fused optimiser kernel for every parameter's device (CPU since torch 2.4)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:
        return False
    return bool(params) and all(p.device.type in devices and p.is_floating_point() for p in params)


def with_fused(factory, params):
    """`factory` with fused=True added when its optimiser takes `fused`, the user left it unset, and
    the kernel exists here: the fused Adam is several times faster, and the same algorithm."""
    target = factory.func if isinstance(factory, functools.partial) else factory
    keywords = factory.keywords if isinstance(factory, functools.partial) else {}
    try:
        takes_fused = "fused" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        takes_fused = False
    if not takes_fused or "fused" in keywords or not fused_supported(params):
        return factory
    return functools.partial(factory, fused=True)
