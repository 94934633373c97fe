#!/usr/bin/env bash
# Train several configurations of a model side by side on one GPU within one command, then bring
# back their validation curves and the weights (float16, split in parts of at most 15 MiB, as the
# GPU machine returns files of at most 16 MiB). For issue 19: the paper model `cgrinet` on SIRST.
#
#   bash benchmarks/paper_job.sh SIRST_DIR OUT_DIR LIMIT_S "NAME:OPTIONS" ["NAME:OPTIONS" ...]
#
# e.g. (epochs chosen from gpu_check.sh's epoch time; validation never on test):
#   bash benchmarks/paper_job.sh data/SIRST $OUT 480 \
#       "lr5e4-v0:--lr 5e-4 --epochs 1500 --val-seed 0" "lr5e4-v1:--lr 5e-4 --epochs 1500 --val-seed 1"
#
# Every run: irstd train --dataset SIRST_DIR --split dnanet_50_50/train --model $MODEL (default
# cgrinet) --amp --val-every 20 OPTIONS, stopped by SIGINT after LIMIT_S seconds if still running
# (its state saved; the schedule then did not reach its end: choose --epochs to fit). Returned in
# OUT_DIR: NAME.metrics.csv, NAME.log, and NAME.last.f16.safetensors.part-* (and best) to join with
# `cat NAME.last.f16.safetensors.part-* > NAME.last.f16.safetensors`.
set -uo pipefail
DATA=${1:?usage: paper_job.sh SIRST_DIR OUT_DIR LIMIT_S NAME:OPTIONS ...}
OUT=${2:?}
LIMIT=${3:?}
shift 3
PY=${PYTHON:-python3}
MODEL=${MODEL:-cgrinet}
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$OUT"
[ -n "${NO_INSTALL:-}" ] || $PY -m pip install --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1
pids=()
for spec in "$@"; do
  name=${spec%%:*}; options=${spec#*:}
  # shellcheck disable=SC2086 - OPTIONS are words on purpose
  timeout -s INT "$LIMIT" $PY -m irstd.cli.main train --dataset "$DATA" --split dnanet_50_50/train --model "$MODEL" \
      --device "$DEVICE" --amp --val-every 20 $options --out "$WORK/$name" > "$OUT/$name.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for spec in "$@"; do
  name=${spec%%:*}
  cp "$WORK/$name/metrics.csv" "$OUT/$name.metrics.csv" 2>/dev/null
  for kind in last best; do
    [ -f "$WORK/$name/$kind.safetensors" ] || continue
    $PY -m irstd.models "$WORK/$name/$kind.safetensors" "$WORK/$name/$kind.f16.safetensors" --float16 > /dev/null &&
      split -b 15M "$WORK/$name/$kind.f16.safetensors" "$OUT/$name.$kind.f16.safetensors.part-"
  done
  echo "$name: $(tail -n 1 "$OUT/$name.metrics.csv" 2>/dev/null)"
done
