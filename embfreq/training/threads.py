"""CPU threads for a run: OpenMP's wait policy (set before torch loads libgomp) and the thread count."""

from __future__ import annotations

import os

# libgomp spins 300,000 iterations before a waiting thread sleeps. On a machine whose cores are
# busy with other processes the spinning threads steal the cores the work needs: 2-thread SASRec
# steps were 4-5x slower than with passive waiting there, and equal on a quiet machine
# (benchmarks/omp_wait.md).
WAIT_POLICY = "PASSIVE"


def configure_openmp() -> None:
    """Passive OpenMP waiting unless the user chose a policy or a spin count. Only effective before
    torch is imported (libgomp reads its environment once); the CLI entry points call it first."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY


def usable_cpus() -> int:
    """The cores this process may run on (a SLURM or cgroup CPU set), not all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
