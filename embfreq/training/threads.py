"""CPU threads for a run: OpenMP's wait policy (set before torch loads libgomp) and the thread count."""

from __future__ import annotations

import os

# libgomp spins 300,000 iterations before a waiting thread sleeps. On a machine whose cores are
# busy with other processes the spinning threads steal the cores the work needs. A short spin
# (10,000 iterations) bridges the gap between back-to-back operators and then sleeps. On the 2-core
# VM (benchmarks/omp_wait.md, 2026-12-07), the SASRec validation pass at 2 threads took 1.15 s with
# it against 1.49 s with passive waiting on a quiet machine, and 2.63 s against 2.77 s with two other
# busy processes. OMP_WAIT_POLICY=PASSIVE remains the safe choice on a machine shared with other
# work. Training runs at 1 thread by default (below), where the policy does not matter.
WAIT_ENV = {"GOMP_SPINCOUNT": "10000"}


def with_wait_policy(env) -> None:
    """Add the short spin to `env` (a mapping of environment variables) unless it already chooses a
    policy or a spin count; for child processes too (the benchmarks' workers)."""
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env.update(WAIT_ENV)


def configure_openmp() -> None:
    """`with_wait_policy` for this process. Only effective before torch is imported (libgomp reads
    its environment once); the CLI entry points call it first."""
    with_wait_policy(os.environ)


def usable_cpus() -> int:
    """The cores this process may run on (a SLURM or cgroup CPU set), not all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# Training threads by default: 1, because 2-thread CPU training is not reproducible run to run (its
# float sums change order; benchmarks/RESULTS.md) and a step is hundreds of small operators that gain
# little from a second thread: with passive waiting a SASRec epoch took 1.67 s at 1 thread and 2.90 s
# at 2; with the short spin above, 2.15 s and 1.83 s (threads.train=2 takes that). Evaluation (large
# score matrices) uses all of the job's cores (issue 34; docs/performance.md).
TRAIN_THREADS = 1
PHASES = ("train", "eval")


def phase_threads(setting, share: int) -> dict:
    """The thread count of each phase: {"train": n, "eval": n, "source": ...}.

    `setting` is the config's `threads`: an int sets both phases; a mapping {train, eval} sets each
    (null: the default); None: both defaults. `share` is the cores this job may use (its CPU set,
    divided among parallel joblib jobs). Defaults: training `min(TRAIN_THREADS, share)`, evaluation
    `share`. The result depends only on the setting and the machine, so a run's float sums are
    repeatable; the run records it in metrics.json."""
    share = max(1, int(share))
    defaults = {"train": min(TRAIN_THREADS, share), "eval": share}
    if setting is None:
        return {**defaults, "source": "default"}
    if isinstance(setting, int) and not isinstance(setting, bool):
        return {"train": setting, "eval": setting, "source": "threads"}
    given = {k: setting.get(k) for k in PHASES}
    out = {k: int(v) if v is not None else defaults[k] for k, v in given.items()}
    chosen = [k for k in PHASES if given[k] is not None]
    return {**out, "source": "+".join(f"threads.{k}" for k in chosen) if chosen else "default"}
