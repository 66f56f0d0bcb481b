#!/usr/bin/env bash
# One GPU session of the e2ehim-tiny recipe search (issue 13), as it was run on a lent H200 (16 cores):
#   1. the CUDA interop check (benchmarks/cuda_check.py);
#   2. a 640 px embedded training build;
#   3. three recipes trained side by side on the one GPU for the same wall time (step counts from a short probe of
#      each recipe's speed, so that every cosine schedule ends);
#   4. each final checkpoint scored on data/him-test-640 (the leaderboard set).
# Every step is a plain himbench command; only the step counts depend on the machine.
#   Usage: bash benchmarks/recipe_gpu.sh OUT_DIR [TOTAL_SECONDS] [TRAIN_IMAGES] [DEVICE]
# TOTAL_SECONDS bounds the whole script: training gets what the other steps leave of it.
set -u
START=$(date +%s)
OUT=${1:?output folder}
TOTAL_SECONDS=${2:-560}
TRAIN_IMAGES=${3:-6000}
DEVICE=${4:-cuda}
PROBE_STEPS=${PROBE_STEPS:-60}
WORKERS=${WORKERS:-7}
HB=${HB:-himbench}
WORK=${WORK:-/tmp/recipe}
mkdir -p "$OUT" "$WORK"
log() { echo "[$(date +%T)] $*"; }

declare -A SETS=(
  [r320]="--set input_size=320"
  [w320]="--set input_size=320 --set backbone.stem_channels=[16,32,48] --set backbone.embed_dim=48 --set guidance.d_model=128 --set guidance.ffn_dim=256 --set guidance.decoder_layers=3 --set matting.tower_convs=2"
)
NAMES=${NAMES:-"r320 w320"}
COMMON="--model e2ehim-tiny --data $WORK/train --batch-size 16 --lr 1e-3 --warmup-steps 200 --seed 0 --workers $WORKERS --device $DEVICE"

log "cuda check (beside the build)"
python3 benchmarks/cuda_check.py --device "$DEVICE" --data data/him-test-640 --out "$OUT/cuda_check.json" \
  > "$WORK/cuda_check.log" 2>&1 &
CHECK=$!

log "build $TRAIN_IMAGES training images"
$HB build-dataset --out "$WORK/train" --splits train="$TRAIN_IMAGES" --size 640 --seed 7 -j "$(nproc)" --no-progress \
  || { log "build failed"; exit 1; }
wait $CHECK || tail -20 "$WORK/cuda_check.log"

log "probe each recipe's speed"
for n in $NAMES; do
  # shellcheck disable=SC2086
  TQDM_DISABLE=1 $HB train $COMMON ${SETS[$n]} --out "$WORK/probe_$n" --steps "$PROBE_STEPS" --log-every $((PROBE_STEPS / 3)) --checkpoint-every 0 \
    > "$WORK/probe_$n.log" 2>&1 &
done
wait
TRAIN_SECONDS=$((START + TOTAL_SECONDS - 60 - $(date +%s)))  # 60 s left for scoring and packing
log "$TRAIN_SECONDS s left for training"
declare -A STEPS
for n in $NAMES; do
  rate=$(python3 -c "import csv,sys; r=list(csv.DictReader(open('$WORK/probe_$n/log.csv'))); print(float(r[-1]['steps_per_s']))" 2>/dev/null || echo 0)
  STEPS[$n]=$(python3 -c "print(max(${MIN_STEPS:-200}, int(float('$rate') * $TRAIN_SECONDS * 0.9 / 100) * 100))")
  log "$n: $rate steps/s (recipes side by side) -> ${STEPS[$n]} steps"
done

log "train"
for n in $NAMES; do
  # shellcheck disable=SC2086
  TQDM_DISABLE=1 timeout $((TRAIN_SECONDS + 20)) $HB train $COMMON ${SETS[$n]} --out "$WORK/$n" --steps "${STEPS[$n]}" \
    --log-every 100 --checkpoint-every 1000 > "$WORK/train_$n.log" 2>&1 &
done
wait
log "score"
for n in $NAMES; do
  ckpt="$WORK/$n/final"
  [ -f "$ckpt/model.safetensors" ] || ckpt=$(ls -d "$WORK/$n"/checkpoints/step_* 2>/dev/null | tail -1)
  [ -n "$ckpt" ] || { log "$n: no checkpoint"; tail -5 "$WORK/train_$n.log"; continue; }
  python3 benchmarks/score_checkpoints.py --data data/him-test-640 --device "$DEVICE" "$ckpt" >> "$OUT/scores.jsonl" 2>"$WORK/score_$n.log" &
done
wait
cat "$OUT/scores.jsonl"
for n in $NAMES; do
  # final/ (weights + config), the loss log and curve, the resolved train config: one archive per recipe
  tar -C "$WORK/$n" -cf "$OUT/$n.tar" final log.csv loss.png train_config.json 2>/dev/null
  tail -2 "$WORK/train_$n.log"
done
log "done"
