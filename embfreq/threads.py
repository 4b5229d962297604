"""CPU threads for a run: OpenMP's wait policy (set before torch loads libgomp) and the thread count."""

from __future__ import annotations

import os

# libgomp spins 300,000 iterations before a waiting thread sleeps. On a machine whose cores are
# busy with other processes the spinning threads steal the cores the work needs; a short spin keeps
# most of the quiet-machine speed (see benchmarks/omp_wait.py and the README).
SPIN_COUNT = "10000"


def configure_openmp() -> None:
    """Shorten OpenMP's spin-wait unless the user chose a policy. Only effective before torch is
    imported (libgomp reads its environment once); the CLI entry points call it first."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT


def usable_cpus() -> int:
    """The cores this process may run on (a SLURM or cgroup CPU set), not all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
