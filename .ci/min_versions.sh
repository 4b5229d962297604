#!/usr/bin/env bash
# The floors pyproject.toml claims, tested: a fresh venv with every dependency (and the launchers extra,
# and pytest from the dev extra) pinned to its declared `>=` floor, then a quick but meaningful subset of
# the tests against it: bit-identical short runs of each model, the Hydra/Lightning conventions, the
# metrics, the report, and the launcher configs. The pins are read from pyproject.toml, so this always
# tests what pyproject claims. Only torch 2.13.0 (the CPU wheel on local disk) can be installed here, so
# the torch floor must be 2.13. Record results in docs/dependency_floors.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS

# pyproject's floors -> pins ("name>=X" -> "name==X"); anything that is not a plain floor is an error.
python3 - "$ROOT/pyproject.toml" > "$WORK/floors.txt" <<'PY'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project.get("optional-dependencies", {})
reqs = project["dependencies"] + extras.get("launchers", []) + [r for r in extras.get("dev", []) if r.startswith("pytest")]
for r in dict.fromkeys(reqs):
    m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*", r)
    if not m:
        sys.exit(f"min_versions: {r!r} is not a plain '>=' floor")
    print(f"{m[1]}=={m[2]}")
PY
TORCH_FLOOR="$(sed -n 's/^torch==//p' "$WORK/floors.txt")"
case "$TORCH_FLOOR" in
    2.13|2.13.0) ;;
    *) echo "min_versions: torch floor '$TORCH_FLOOR' cannot be tested here (only the torch 2.13.0 CPU wheel is on disk)" >&2
       exit 1 ;;
esac
echo "min_versions: testing the floors"; sed 's/^/  /' "$WORK/floors.txt"

python3 -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
pip_q() {  # pip -q, less this machine's warnings about its local index folders; pip's status is kept (pipefail)
    "$PY" -m pip "$@" 2>&1 | { grep -v 'is neither a file nor a directory' || true; }
}
pip_q install -q torch==2.13.0  # first: the CPU wheel on disk (an unpinned torch would pull a CUDA build)
pip_q install -q --constraint "$WORK/floors.txt" -e "$ROOT[launchers]" pytest
pip_q check
echo "min_versions: installed"
"$PY" -m pip freeze | grep -i -E 'torch|lightning|hydra|omegaconf|numpy|scipy|matplotlib|tensorboard|pytest' | sed 's/^/  /'

cd "$ROOT"
export EMBFREQ_CACHE="$WORK/cache" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
"$PY" -m pytest -q \
    tests/integration/test_reference_results.py tests/integration/test_conventions.py tests/unit/test_metrics.py tests/unit/test_report.py \
    tests/results/test_committed_results.py
"$PY" -m pytest -q tests/integration/test_sweep.py \
    -k "joblib_jobs_divide or slurm_launcher or beauty_sweep_config or cli_waits_passively"
echo "min_versions: ok ($((SECONDS - start)) s, before removing the venv)"
