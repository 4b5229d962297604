"""Checkpoint writes that are atomic on every local file system.

Lightning's writer goes through an fsspec transaction whose temp file lies in the system temp dir,
so with the run dir on another file system (a tmpfs, a network mount) the final step is a copy: a
kill during it leaves a 0-byte or partial checkpoint at the final name. Here the temp file lies in
the checkpoint's own directory, is fsynced, then renamed over the old file, so a failed save
(killed process, full disk) leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from embfreq.io import current_umask


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the rename itself survives a power cut once the directory is synced
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass



class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose saves are write-beside, fsync, rename (local paths only)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)
