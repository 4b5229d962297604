#!/usr/bin/env bash
# The wheel, not the source tree: build it, install it into a fresh venv, and run the commands from
# another directory (one-epoch training, prepare, report, analyze, and the console scripts).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
rm -rf "$ROOT/build"  # setuptools keeps stale modules there; they would enter the wheel
python3 -m pip wheel -q --no-deps "$ROOT" -w "$WORK/dist"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q torch==2.13.0
"$WORK/venv/bin/pip" install -q "$WORK"/dist/embfreq-*.whl
cd "$WORK"
export EMBFREQ_CACHE="$WORK/cache" PATH="$WORK/venv/bin:$PATH"
embfreq-prepare data=lastfm | tail -1
python -m embfreq.train data=lastfm model=mf_bpr band=b0_5 trainer.max_epochs=1 eval_every=1 \
    hydra.run.dir="$WORK/runs/one" | tail -1
embfreq-train data=lastfm model=sasrec band=baseline trainer.max_epochs=1 eval_every=1 analysis=false \
    hydra.run.dir="$WORK/runs/two" | tail -1
python -m embfreq.report "$WORK/runs" --out "$WORK/report" >/dev/null
embfreq-analyze "$WORK/runs/one" >/dev/null
test -s "$WORK/report/summary.csv" && test -s "$WORK/runs/one/metrics.json"
python -c "from hydra.core.plugins import Plugins; import sys; sys.exit(0 if 'hydra_plugins.embfreq_sweeper.embfreq_sweeper.EmbfreqSweeper' in Plugins.instance().class_name_to_class else 'the sweeper plugin is not in the wheel')"
python -c "import embfreq, sys; sys.exit(0 if '$ROOT' not in embfreq.__file__ else 'imported from the source tree')"
echo "wheel check: ok"
