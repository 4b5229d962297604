"""`torch.compile` of the training step: the setting, the compiled loss, and what compiling cost.

A model's training loss is split in two (`RankingModel.step_inputs` and `dense_loss`): the
data-dependent part (packing the batch, trimming padding) runs eagerly, and `dense_loss`, which has
no data-dependent shape (padding is masked by weight, not cut out), is compiled once per run with
dynamic shapes, so batches of other sizes reuse the same graph instead of compiling again. The
effective item table (a custom autograd function) stays eager and enters as an input.

`compile: auto` (the default) compiles on CUDA and keeps eager on CPU, where a SASRec epoch gains
only 1.13-1.20x after a ~47 s build and the results are not bit-identical to the eager runs'
(docs/performance.md); `compile: true` compiles on CPU too (worth it for runs of ~100 epochs and
more), `false` never. On CPU the compiled step draws eager's random numbers (`_inductor_options`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time

import torch

from embfreq.errors import ConfigError, first_line

log = logging.getLogger("embfreq.compile")

SETTINGS = (True, False, "auto")


def wanted(setting, device: torch.device | str) -> bool:
    """Whether the training step is compiled for `setting` (true | false | auto) on `device`."""
    if setting not in SETTINGS:
        raise ConfigError(f"compile must be one of (true, false, auto), got {setting!r}")
    if setting == "auto":
        return torch.device(device).type == "cuda"
    return bool(setting)


def cpu_compiler_problem() -> str | None:
    """Why inductor cannot build CPU kernels here (no C++ compiler), or None."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        compiler = get_cpp_compiler()
    except Exception as e:  # inductor raises when it finds no compiler
        return f"no C++ compiler for torch.compile on CPU ({first_line(e)})"
    if shutil.which(compiler) is None:
        return f"no C++ compiler for torch.compile on CPU ({compiler!r} not found; set CXX or install g++)"
    return None


def _compile_error(e: BaseException) -> bool:
    """An error of the compiler stack (Dynamo, AOT autograd, inductor, the C++ build), not of the model."""
    import subprocess

    mod = type(e).__module__ or ""
    return mod.startswith(("torch._dynamo", "torch._inductor", "torch._functorch")) or isinstance(
        e, subprocess.CalledProcessError)


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _inductor_options(args):
    """On CPU, draw eager's random numbers (`fallback_random`): inductor's own generator made the
    compiled SASRec forward ~1.3x slower here (benchmarks/RESULTS.md), and the compiled dropout then
    draws what the eager step would. On CUDA, inductor's in-kernel generator is kept."""
    if any(isinstance(a, torch.Tensor) and a.is_cuda for a in args):
        return contextlib.nullcontext()
    import torch._inductor.config as inductor_config

    return inductor_config.patch(fallback_random=True)


class CompiledStep:
    """`fn` compiled with dynamic shapes; records the seconds spent compiling (calls that made a
    new graph) and the number of graphs. `fallback`: on a compiler failure, log it in one line and
    run `fn` eagerly from then on (the failure is kept in `record()`); else raise one-line ConfigError."""

    def __init__(self, fn, backend: str = "inductor", fallback: bool = False, name: str = "training step"):
        self.fn, self.backend, self.fallback, self.name = fn, backend, fallback, name
        self.compiled = torch.compile(fn, backend=backend, dynamic=True)
        self.seconds = 0.0
        self.graphs = 0
        self.calls_compiling = 0
        self.failed: str | None = None

    def __call__(self, *args):
        if self.failed is not None:
            return self.fn(*args)
        before = _graphs()
        t0 = time.perf_counter()
        try:
            with _inductor_options(args):
                out = self.compiled(*args)
        except Exception as e:
            if not _compile_error(e):
                raise
            cause = getattr(e, "inner_exception", None) or e  # BackendCompilerFailed wraps the compiler's error
            self.failed = f"{type(cause).__name__}: {first_line(cause)}"
            if not self.fallback:
                raise ConfigError(f"compile=true: torch.compile of the {self.name} failed ({self.failed}); "
                                  "set compile=false to train eagerly") from None
            log.warning("torch.compile of the %s failed, training eagerly: %s", self.name, self.failed)
            return self.fn(*args)
        new = _graphs() - before
        if new:
            dt = time.perf_counter() - t0
            self.seconds += dt
            self.graphs += new
            self.calls_compiling += 1
            log.info("compiled the %s (%s, %d graph%s) in %.1f s", self.name, self.backend, new,
                     "" if new == 1 else "s", dt)
        return out

    def record(self) -> dict:
        """For metrics.json: backend, seconds compiling (first calls, one step included), graphs made,
        and how many calls compiled (1 = paid once per run), or the failure that made it eager."""
        out = {"enabled": self.failed is None, "backend": self.backend, "seconds": round(self.seconds, 3),
               "graphs": self.graphs, "compiling_calls": self.calls_compiling}
        if self.failed is not None:
            out["failed"] = self.failed
        return out


def run_device(cfg) -> str:
    """"cuda" when the run's trainer uses a GPU, else "cpu"."""
    from embfreq.training.device import uses_gpu

    return "cuda" if uses_gpu(cfg.trainer.get("accelerator", "auto")) else "cpu"


def configure(model, cfg) -> None:
    """Compile `model`'s training step when the run's `compile` setting asks for it on its device.
    compile=true on a CPU without a C++ compiler is a one-line ConfigError; with auto a compiler
    failure is logged and the run trains eagerly (`record` says so)."""
    setting = cfg.get("compile", "auto")
    device = run_device(cfg)
    if not wanted(setting, device):
        log.info("training step: eager (compile=%s on %s)", str(setting).lower(), device)
        return
    if device == "cpu":
        problem = cpu_compiler_problem()
        if problem is not None:
            raise ConfigError(f"compile=true: {problem}; set compile=false")
    model.compile_step(fallback=setting == "auto")


def record(model, cfg) -> dict:
    """metrics.json's "compile": the setting, whether the step ran compiled, and its compile cost."""
    setting = cfg.get("compile", "auto")
    step = getattr(model, "compiled_step", None)
    if step is None:
        return {"setting": setting, "enabled": False}
    return {"setting": setting, **step.record()}
