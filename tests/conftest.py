import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "embfreq" / "conf"


def write_seq(path: Path, seqs: dict) -> Path:
    path.write_text("".join(f"{u} {' '.join(map(str, items))}\n" for u, items in seqs.items()))
    return path


def synthetic_seqs(num_users: int = 60, num_items: int = 40, min_len: int = 4, max_len: int = 12, seed: int = 0) -> dict:
    """Power-law-ish item popularity, so bands have both rare and popular items."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, num_items + 1) ** 0.8
    p /= p.sum()
    return {u: list(rng.choice(np.arange(1, num_items + 1), size=rng.integers(min_len, max_len + 1), p=p))
            for u in range(1, num_users + 1)}


@pytest.fixture
def tiny_seq_file(tmp_path) -> Path:
    return write_seq(tmp_path / "tiny.txt", synthetic_seqs())
