#!/usr/bin/env bash
# GPU figures for benchmarks/RESULTS.md in one run, on a machine with CUDA (under 8 minutes).
#
# The GPU image has torch, Lightning, torchmetrics, scipy and matplotlib but not Hydra, so first,
# on a machine with the package installed:
#     pip wheel --no-deps -w .whl hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 \
#         hydra-joblib-launcher==1.2.0 joblib
# then on the GPU machine, with .whl beside the checkout (the device tool: carry .whl):
#     bash benchmarks/gpu_figures.sh [--dry-run] [--all] [OUT_DIR]
# Output goes to OUT_DIR (or $OUT, default ./gpu-figures), one file per step and steps.txt:
# - machine.txt: nvidia-smi, torch;
# - gpu_step.md: SASRec on Beauty (band [0,5]), one training epoch and one full-ranking validation
#   pass, eager against compiled (compile=true) and compiled with CUDA graphs (reduce-overhead),
#   medians of interleaved epochs, compile seconds apart (benchmarks/gpu_step.py);
# - card_sweep/ and card_grid/: the card's grid (`-m lower_freq=0,5,10 upper_freq=5,20 data=lastfm`,
#   with its no-band baseline, 7 jobs, 20 epochs) run one job after another, then as 4 processes
#   sharing the GPU (joblib launcher); grid.md has the wall time of each whole grid;
#   each with its summary table and report (summary.txt, summary.md, summary.csv, runs.csv);
# - cuda_tests.txt: the CUDA tests.
# Step limits add up to 460 s. --all adds the earlier figures (benchmarks/run.py rows on the GPU, the
# 10M graph build, a bf16-mixed run; about 8 more minutes).
# --dry-run: on a CPU, every step at a tiny budget (1 epoch, 2 training batches; the step benchmark on
# 2 batches with the aot_eager backend): a check of the script and of the tables it writes.
# DEVICE=cpu runs the GPU steps on CPU.
set -uo pipefail
dry=0
all=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1; shift ;;
    --all) all=1; shift ;;
    *) break ;;
  esac
done
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
card_sweep() {  # the sweep dir, then the card's overrides: its tables in OUT_DIR/<dir>
  local dir=$1; shift
  python3 -m embfreq.train -m lower_freq=0,5,10 upper_freq=5,20 data=lastfm analysis=false \
    hydra.sweep.dir="$out/$dir" "$@" && python3 -m embfreq.report "$out/$dir"
}
grid_walls() {  # grid.md: the wall time of each whole grid, from steps.txt
  {
    echo "| grid | jobs at once | wall s (whole grid, report included) | exit |"
    echo "|---|---|---|---|"
    sed -n 's/^card_sweep: exit \([0-9]*\) in \([0-9]*\) s$/| card_sweep | 1 | \2 | \1 |/p' "$out/steps.txt"
    sed -n "s/^card_grid: exit \\([0-9]*\\) in \\([0-9]*\\) s$/| card_grid | $1 | \\2 | \\1 |/p" "$out/steps.txt"
  } > "$out/grid.md"
}
export -f card_sweep
export out
jobs=${GRID_JOBS:-4}
if [ "$dry" = 1 ]; then
  step card_sweep 300 bash -c 'card_sweep "$@"' _ card_sweep trainer=cpu trainer.max_epochs=1 \
    +trainer.limit_train_batches=2 threads=1
  step card_grid 300 bash -c 'card_sweep "$@"' _ card_grid trainer=cpu trainer.max_epochs=1 \
    +trainer.limit_train_batches=2 threads=1 hydra/launcher=joblib hydra.launcher.n_jobs=2
  step gpu_step 300 python3 benchmarks/gpu_step.py --device cpu --epochs 1 --max-batches 2 --backend aot_eager \
    --modes eager,compiled --cache-dir /tmp/embfreq-bench --out "$out"
  grid_walls 2
  exit 0
fi
step machine 20 bash -c 'nvidia-smi; python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"'
step gpu_step 150 python3 benchmarks/gpu_step.py --device "$device" --epochs 3 --cache-dir /tmp/embfreq-bench --out "$out"
step card_sweep 120 bash -c 'card_sweep "$@"' _ card_sweep trainer=gpu trainer.accelerator="$device" trainer.max_epochs=20
step card_grid 110 bash -c 'card_sweep "$@"' _ card_grid trainer=gpu trainer.accelerator="$device" trainer.max_epochs=20 \
  hydra/launcher=joblib hydra.launcher.n_jobs="$jobs"
grid_walls "$jobs"
step cuda_tests 60 python3 -m pytest -q -p no:cacheprovider tests/unit/test_smoothed_embedding.py tests/integration/test_models.py -k "cuda or bf16"
if [ "$all" = 1 ]; then
  step bench_gpu 240 python3 benchmarks/run.py --device "$device" --only beauty:train,beauty:val --workdir /tmp/embfreq-bench
  step bench_syn10m 150 python3 benchmarks/run.py --only syn10m:graph --workdir /tmp/embfreq-bench
  step bf16 90 python3 -m embfreq.train model=sasrec data=beauty trainer=gpu trainer.accelerator="$device" \
    trainer.precision=bf16-mixed trainer.max_epochs=2 eval_every=1 analysis=false hydra.run.dir=/tmp/embfreq-bf16
fi
