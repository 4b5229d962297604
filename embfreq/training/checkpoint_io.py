"""Checkpoint writes that are atomic on every local file system.

Lightning's writer goes through an fsspec transaction whose temp file lies in the system temp dir,
so with the run dir on another file system (a tmpfs, a network mount) the final step is a copy: a
kill during it leaves a 0-byte or partial checkpoint at the final name. Here the temp file lies in
the checkpoint's own directory, is fsynced, then renamed over the old file, so a failed save
(killed process, full disk) leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from embfreq.io import atomic_path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(Path(path), durable=True) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose saves are write-beside, fsync, rename (local paths only)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)
