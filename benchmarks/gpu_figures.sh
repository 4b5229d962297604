#!/usr/bin/env bash
# GPU figures for benchmarks/RESULTS.md in one run, on a machine with CUDA (about 6-8 minutes).
#
# The GPU image has torch, Lightning, torchmetrics, scipy and matplotlib but not Hydra, so first,
# on a machine with the package installed:
#     pip wheel --no-deps -w .whl hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
# then on the GPU machine, with .whl beside the checkout (the device tool: carry .whl):
#     bash benchmarks/gpu_figures.sh
#     bash benchmarks/gpu_figures.sh [--dry-run] [OUT_DIR]
# Output goes to OUT_DIR (or $OUT, default ./gpu-figures): the machine, the CUDA tests, the benchmark
# rows on the GPU (SASRec and MF-BPR epochs with and without band [0,5], full-ranking validation
# passes, GPU peak memory), the 10M synthetic graph build (on that machine's CPU), a bf16-mixed run,
# and the card's sweep (`-m lower_freq=0,5,10 upper_freq=5,20 data=lastfm trainer=gpu`, 20 epochs,
# with its no-band baseline) with its summary table and report (OUT_DIR/card_sweep/: summary.txt,
# summary.md, summary.csv, runs.csv). Step limits add up to under 8 minutes of sweep and figures.
# --dry-run: on a CPU, every step that needs no GPU, with the sweep at 1 epoch and 2 training
# batches: a check of the script and of the tables it writes. DEVICE=cpu runs the GPU steps on CPU.
set -uo pipefail
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
out=$(realpath -m "${1:-${OUT:-gpu-figures}}")
cd "$(dirname "$0")/.."
device=${DEVICE:-cuda}
mkdir -p "$out"
: > "$out/steps.txt"
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
card_sweep() {  # the card's command, then its report: the tables of OUT_DIR/card_sweep
  python3 -m embfreq.train -m lower_freq=0,5,10 upper_freq=5,20 data=lastfm analysis=false \
    hydra.sweep.dir="$out/card_sweep" "$@" && python3 -m embfreq.report "$out/card_sweep"
}
export -f card_sweep
export out
if [ "$dry" = 1 ]; then
  step card_sweep 300 bash -c 'card_sweep "$@"' _ trainer=cpu trainer.max_epochs=1 +trainer.limit_train_batches=2 threads=1
  exit 0
fi
step machine 60 bash -c 'nvidia-smi; python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"'
step card_sweep 240 bash -c 'card_sweep "$@"' _ trainer=gpu trainer.accelerator="$device" trainer.max_epochs=20
step cuda_tests 90 python3 -m pytest -q -p no:cacheprovider tests/unit/test_smoothed_embedding.py tests/integration/test_models.py -k "cuda or bf16"
step bench_gpu 240 python3 benchmarks/run.py --device "$device" --only beauty:train,beauty:val --workdir /tmp/embfreq-bench
step bench_syn10m 150 python3 benchmarks/run.py --only syn10m:graph --workdir /tmp/embfreq-bench
step bf16 90 python3 -m embfreq.train model=sasrec data=beauty trainer=gpu trainer.accelerator="$device" \
  trainer.precision=bf16-mixed trainer.max_epochs=2 eval_every=1 analysis=false hydra.run.dir=/tmp/embfreq-bf16
