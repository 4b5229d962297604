#!/usr/bin/env bash
# GPU figures for benchmarks/RESULTS.md in one run, on a machine with CUDA (about 6-8 minutes).
#
# The GPU image has torch, Lightning, torchmetrics, scipy and matplotlib but not Hydra, so first,
# on a machine with the package installed:
#     pip wheel --no-deps -w .whl hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
# then on the GPU machine, with .whl beside the checkout (the device tool: carry .whl):
#     bash benchmarks/gpu_figures.sh
# Output goes to $OUT (default ./gpu-figures): the machine, the CUDA tests, the benchmark rows on
# the GPU (SASRec and MF-BPR epochs with and without band [0,5], full-ranking validation passes,
# GPU peak memory), the 10M synthetic graph build (on that machine's CPU) and a bf16-mixed run.
# DEVICE=cpu runs the same steps here as a dry run.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-figures}
device=${DEVICE:-cuda}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/embfreq-site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/embfreq-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 EMBFREQ_CACHE=/tmp/embfreq-cache
step() {  # name, seconds, command...: output to $out/name.txt, the exit status logged
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.txt" 2>&1
  echo "$name: exit $? in $((SECONDS - t0)) s" | tee -a "$out/steps.txt"
}
step machine 60 bash -c 'nvidia-smi; python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"'
step cuda_tests 90 python3 -m pytest -q -p no:cacheprovider tests/test_smoothed_embedding.py tests/test_models.py -k "cuda or bf16"
step bench_gpu 240 python3 benchmarks/run.py --device "$device" --only beauty:train,beauty:val --workdir /tmp/embfreq-bench
step bench_syn10m 150 python3 benchmarks/run.py --only syn10m:graph --workdir /tmp/embfreq-bench
step bf16 90 python3 -m embfreq.train model=sasrec data=beauty trainer=gpu trainer.accelerator="$device" \
  trainer.precision=bf16-mixed trainer.max_epochs=2 eval_every=1 analysis=false hydra.run.dir=/tmp/embfreq-bf16
