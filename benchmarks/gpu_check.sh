#!/usr/bin/env bash
# The GPU checks of the training and inference paths in one command, for a session lent a GPU
# (docs/training.md, docs/detect.md). What each step prints goes to OUT/gpu_check.tar.gz (one file:
# the GPU machine gives back at most 8), a line per step to stdout.
#
#   bash benchmarks/gpu_check.sh SIRST_DIR OUT_DIR            # on the GPU machine (a few minutes)
#   bash benchmarks/gpu_check.sh SIRST_DIR OUT_DIR --quick    # the same steps, tiny, on any machine
#
# Steps: install (no deps), the CUDA tests, train_speed.py (eager vs captured step, float32 vs
# bfloat16, batch 12 and 48, and the SIRST epoch check), infer_speed.py --device cuda (frames/s at
# batch 1 and 16) and irstd evaluate on the SIRST test split (model time). The paper model's
# training is benchmarks/paper_job.py (issue 19), a job of its own.
set -uo pipefail
DATA=${1:?usage: gpu_check.sh SIRST_DIR OUT_DIR [--quick]}
OUT=${2:?usage: gpu_check.sh SIRST_DIR OUT_DIR [--quick]}
QUICK=${3:-}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
LOGS=$(mktemp -d)
if [ -n "$QUICK" ]; then
  DEVICE=cpu; VARIANTS=cgrinet_test; BATCHES=4; STEPS=2; REPEATS=2
else
  DEVICE=cuda; VARIANTS=cgrinet,packaged; BATCHES=12,48; STEPS=30; REPEATS=30
fi
run() {  # run NAME CMD...: output to LOGS/NAME.txt, a line per step on stdout
  local name=$1; shift
  local start=$SECONDS
  "$@" > "$LOGS/$name.txt" 2>&1
  echo "$name: exit $? in $((SECONDS - start)) s"
}
[ -n "$QUICK" ] || run install $PY -m pip install --no-deps --no-build-isolation -e .
run pytest_steps $PY -m pytest -q -rs tests/test_steps.py tests/test_sampling.py   # the CUDA-graph tests run here
run pytest_engines $PY -m pytest -q -rs tests/test_onnx_runtime.py tests/test_methods.py
run train_speed $PY benchmarks/train_speed.py --device $DEVICE --variants $VARIANTS --batch-sizes $BATCHES \
    --steps $STEPS --epoch-check "$DATA"
if [ -z "$QUICK" ]; then
  run infer_speed $PY benchmarks/infer_speed.py --device cuda --variants packaged cgrinet --repeats $REPEATS
  run infer_sirst $PY benchmarks/infer_speed.py --device cuda --dataset "$DATA"
fi
run evaluate $PY -m irstd.cli.main evaluate --method cgrinet --device $DEVICE --dataset "$DATA" \
    --split dnanet_50_50/test --skip-errors
tar -czf "$OUT/gpu_check.tar.gz" -C "$LOGS" .
