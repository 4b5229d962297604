"""Why SASRec's dropout and relu take mask-free forms when compiled: inductor's CPU bool-mask stores.

    python benchmarks/inductor_cpu_kernels.py [--shape 30,50,64] [--calls 200] [--threads 1]

Times, at one SASRec packed batch's activation shape (30 rows x 50 positions x 64 dims), three
element-wise functions of a tensor that requires grad, eager against `torch.compile` (inductor,
static shapes), and the same without grad:

- `scale` (x * 1.25 + 1): saves nothing for backward;
- `relu` (relu(x) * 1.25): the compiled forward also stores relu's bool mask for its backward;
- `dropout` (x * (u >= 0.2) * 1.25, u uniform): stores the dropout's bool mask.

In the SASRec step these two kinds of kernel were most of the compiled forward. On torch 2.13.0 with
AVX2 the bool store of a float mask (`VecMask<float,1>::store(bool*)`) compiles to scalar loops over
32 lanes per 8 values, so such a kernel runs far slower than eager's separate operators (see
benchmarks/RESULTS.md); `embfreq/nn/sasrec.py` therefore writes both masks as float arithmetic under
compile. Rerun this after a torch upgrade: when the `relu` and `dropout` rows with grad are no
longer slower than eager, those forms are no longer needed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def scale(x, u):
    return x * 1.25 + 1


def relu(x, u):
    return x.relu() * 1.25


def dropout(x, u):
    return x * (u >= 0.2).to(x.dtype) * 1.25


FUNCTIONS = {"scale": scale, "relu": relu, "dropout": dropout}


def per_call_us(fn, args, calls: int) -> float:
    for _ in range(3):
        fn(*args)
    best = float("inf")
    for _ in range(3):  # best of 3 blocks: these machines are noisy
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(*args)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="30,50,64", help="activation shape, comma-separated")
    ap.add_argument("--calls", type=int, default=200, help="calls per timed block")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import torch

    from embfreq.training.compile_step import cpu_compiler_problem

    problem = cpu_compiler_problem()
    if problem:
        print(f"inductor_cpu_kernels: {problem}", file=sys.stderr)
        return 1
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    torch.set_num_threads(a.threads)
    shape = tuple(int(s) for s in a.shape.split(","))
    torch.manual_seed(0)
    u = torch.rand(shape)
    print(f"# torch {torch.__version__}, inductor vector ISA {pick_vec_isa() or 'none'}, {a.threads} thread(s), "
          f"shape {shape}, best of 3 blocks of {a.calls} calls")
    print("| function | grad | eager us | compiled us | compiled / eager |")
    print("|---|---|---|---|---|")
    for name, fn in FUNCTIONS.items():
        for grad in (True, False):
            x = torch.randn(shape, requires_grad=grad)
            compiled = torch.compile(fn, dynamic=False)
            ctx = torch.enable_grad() if grad else torch.no_grad()
            with ctx:
                eager_us = per_call_us(fn, (x, u), a.calls)
                comp_us = per_call_us(compiled, (x, u), a.calls)
            print(f"| {name} | {'yes' if grad else 'no'} | {eager_us:.0f} | {comp_us:.0f} | {comp_us / eager_us:.2f}x |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
