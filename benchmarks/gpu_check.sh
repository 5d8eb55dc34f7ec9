#!/usr/bin/env bash
# The prepared device check (issue 19): the study's models on reference, fastapi and litserve at 1 and 10 users,
# one repetition, then benchmarks/gpu_check.py's table beside the reference study's figures.
#
#   benchmarks/gpu_check.sh [--device cuda|cpu] [--size real|tiny] [--quick] [--duration S] [--warmup S]
#                           [--budget S]
#
# Runs from any working directory. On the device machine (no registry there) the wheels carried in .whl/ are
# installed into /tmp/site and servingbench runs from the checkout's src/ without pip; here it uses .venv.
# Results: ${OUT:-/tmp/gpu_check}: run.log, gpu_check.txt (the table), summary.json, environment.json at the top
# level (the device tool brings back at most 8 files); the whole results folder stays in a scratch folder.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEVICE=cuda
SIZE=real
# 3 models x 3 frameworks x 2 user counts = 18 trials of (8 + 2) s; with the model builds, server starts and
# correctness checks about 6-7 minutes on an H200, so one call of the device tool (at most 10) leaves a rerun.
DURATION=8
WARMUP=2
BUDGET=420   # seconds for `run`; then it is stopped (finished trials kept) so the table still comes back
MODELS=resnet50,wav2vec2-truncated,bart-large-cnn

usage() { sed -n '5,6p' "$0" | sed 's/^# *//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --size) SIZE=${2:?--size needs a value}; shift 2 ;;
    --quick) SIZE=tiny; DURATION=3; WARMUP=1; shift ;;  # a smoke run: tiny models, 3 s trials
    --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
    --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
    --budget) BUDGET=${2:?--budget needs a value}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

OUT_DIR=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1  # the device tool returns only the output's tail: keep it in order

# Python: the project's .venv here; on the device machine (no .venv travels) the image's python3 plus the
# carried wheels, since nothing can be installed from a registry there.
SITE=""  # the carried wheels' folder, only where they were installed: a .venv must not see cp312 builds
if [ -x "$ROOT/.venv/bin/python" ]; then
  PYTHON=$ROOT/.venv/bin/python
else
  PYTHON=$(command -v python3)
  if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
    echo "== installing $(find "$ROOT/.whl" -maxdepth 1 -type f -name '*.whl' | wc -l) carried wheels into /tmp/site"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$ROOT"/.whl/*.whl
    SITE=/tmp/site
  fi
  # Carried cache: BART's GPT-2 BPE (fetched from PyPI) and the speech samples (espeak-ng and sox): neither
  # can be made there. Copied so that the models built there go to a writable folder, not the checkout.
  if [ -d "$ROOT/.whl/sbcache" ]; then
    mkdir -p /tmp/sbcache && cp -r "$ROOT/.whl/sbcache/." /tmp/sbcache/
    export SERVINGBENCH_CACHE=/tmp/sbcache
  fi
  export HF_HUB_OFFLINE=1  # nothing to download from; fail at once rather than after network timeouts
fi
# Absolute: the servers run with their own working folders. The checkout first, so its servingbench is the one.
export PYTHONPATH=$ROOT/src${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}

echo "== host"
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,power.limit --format=csv,noheader
else
  echo "no GPU (nvidia-smi absent or finds none)"
fi
"$PYTHON" - <<'EOF'
import sys, torch, transformers
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}), "
      f"transformers {transformers.__version__}, GPU seen by torch: {gpu}")
EOF
case $DEVICE in
  cuda*)  # fail before building anything rather than measure the CPU under a GPU's name
    if ! "$PYTHON" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
      echo "gpu_check.sh: --device $DEVICE but torch sees no GPU (use --device cpu here)" >&2
      exit 1
    fi ;;
esac

# reference always; the two Python frameworks only where their server packages import (carried or not).
FRAMEWORKS=reference
for framework in fastapi litserve; do
  case $framework in fastapi) modules="fastapi, uvicorn" ;; litserve) modules="litserve" ;; esac
  if error=$("$PYTHON" -c "import $modules" 2>&1); then
    FRAMEWORKS+=",$framework"
  else
    echo "skipping $framework: import $modules fails: ${error##*$'\n'}"
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")  # the full results folder: too many files for $OUT
RESULTS=$WORK/results
args=(run --frameworks "$FRAMEWORKS" --models "$MODELS" --size "$SIZE" --users "1,10" --repetitions 1
      --duration "$DURATION" --warmup "$WARMUP" --out "$RESULTS")
# --device is new in `run`: pass it where this checkout's servingbench has it, else say the run takes its default.
run_help=$("$PYTHON" -m servingbench.cli run --help)  # captured: grep -q closing a pipe early fails under pipefail
if grep -q -- '--device' <<<"$run_help"; then
  args+=(--device "$DEVICE")
else
  echo "WARNING: this servingbench's 'run' has no --device: the models run on its default device"
fi

echo "== servingbench ${args[*]}"
# SIGINT after the budget: servingbench keeps the trials that finished (summary.json is written after each one).
set +e
timeout --signal=INT --kill-after=30 "$BUDGET" "$PYTHON" -m servingbench.cli "${args[@]}" 2>&1 | tee "$OUT_DIR/run.log"
run_rc=${PIPESTATUS[0]}
set -e
if [ "$run_rc" -eq 124 ]; then echo "gpu_check.sh: the run passed its ${BUDGET}s budget and was stopped"; fi
echo "== servingbench run exited $run_rc"

for file in summary.json environment.json; do
  if [ -f "$RESULTS/$file" ]; then cp "$RESULTS/$file" "$OUT_DIR/"; fi
done
echo "== the device check's table ($RESULTS)"
set +e
"$PYTHON" "$ROOT/benchmarks/gpu_check.py" "$RESULTS/summary.json" | tee "$OUT_DIR/gpu_check.txt"
table_rc=${PIPESTATUS[0]}
set -e
echo "results: $RESULTS; in $OUT_DIR: $(cd "$OUT_DIR" && echo ./*)"
# Failed when either failed: a cell's failure is in the table, a crash or a timeout only in the run's exit code.
[ "$run_rc" -eq 0 ] && [ "$table_rc" -eq 0 ]
