"""Atomic checkpoint writes and one-line refusals of damaged checkpoints."""

import pytest
import torch

from embfreq.training.checkpoint_io import AtomicCheckpointIO
from embfreq.errors import UserError
from embfreq.training.run_dir import load_checkpoint


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "w": torch.arange(5)}, path)
    good = path.read_bytes()

    def dies_midway(obj, f, *a, **k):  # a full disk or a kill during the write
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(OSError):
        io.save_checkpoint({"epoch": 2}, path)
    assert path.read_bytes() == good
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temp file left
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    io.save_checkpoint({"epoch": 3}, path)
    assert load_checkpoint(path)["epoch"] == 3


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_empty_or_partial_checkpoint_is_one_line(tmp_path, content):
    path = tmp_path / "last.ckpt"
    path.write_bytes(content)
    with pytest.raises(UserError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert ("empty checkpoint" if not content else "unreadable checkpoint") in msg
