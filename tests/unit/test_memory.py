"""Evaluation's heap stays bounded: glibc's dynamic mmap threshold let growing temporaries (length-
sorted evaluation batches) fragment the heap by 0.6-0.9 GiB on Beauty; `embfreq.training.memory` fixes it and
evaluation sets it. benchmarks/eval_memory.py measures the real validation pass."""

import subprocess
import sys

import pytest
import torch

from embfreq.training import memory
from tests.conftest import ROOT

PATTERN = """
import torch
{setup}
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
big = torch.empty(6 << 20); del big  # a freed 24 MiB score-sized buffer raises glibc's dynamic threshold
base, keep = rss(), []
for i in range(40):  # growing temporaries with small survivors between them, as length-sorted batches
    a = torch.ones((6 << 20) + i * 16384, dtype=torch.bool)
    keep.append(torch.ones(1000))
    del a
print(rss() - base)
"""


def growth(setup: str) -> float:
    p = subprocess.run([sys.executable, "-c", PATTERN.format(setup=setup)], capture_output=True, text=True,
                       cwd=ROOT, check=True)
    return float(p.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_bounded_threshold_returns_temporaries_that_the_dynamic_one_keeps():
    bounded = growth("from embfreq.training.memory import bound_heap_growth\nassert bound_heap_growth()")
    default = growth("")
    assert bounded < 20, bounded  # 40 temporaries of 6 MiB: nothing kept
    assert default > 100, default  # the behaviour it replaces (a check that the pattern means something)


def test_evaluation_sets_the_threshold(monkeypatch):
    calls = []
    monkeypatch.setattr("embfreq.models.base.bound_heap_growth", lambda: calls.append(1))
    from embfreq.models import MFBPR
    from tests.conftest import make_model

    freq = torch.ones(11)
    op = torch.eye(11).to_sparse()
    model = make_model(MFBPR, 5, num_items=10, item_freq=freq, operator=op, lower_freq=None, upper_freq=None)
    batch = {"users": torch.tensor([0, 1]), "targets": torch.tensor([3, 4]),
             "seen_rows": torch.tensor([0]), "seen_cols": torch.tensor([2])}
    with torch.no_grad():
        model.ranks(batch)
    assert calls


def test_threshold_from_the_environment(monkeypatch):
    monkeypatch.setattr(memory, "_state", {})
    monkeypatch.setenv("EMBFREQ_MMAP_THRESHOLD", "default")
    assert memory.bound_heap_growth() is False and memory.heap_record() == {"mmap_threshold": None}
