#!/usr/bin/env bash
# Trains spanscope's shipped models on the GPU machine (CUDA + torch, no Debian packages), in
# stages that each fit one call of at most 10 minutes; every training stage resumes from its
# checkpoint, so a stage cut off by the time limit is simply run again. Needs data/ from
# scripts/build_data.sh and .devdeps/ from scripts/pack_device_deps.sh carried along; runs/ keeps
# the runs between calls while the machine stays warm. Logs and results go to $OUT.
#   scripts/gpu_train.sh STAGE...     stages: build probe pretrain continual evaluate pack
# Time limits per stage (seconds) and step counts come from the environment (defaults below).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-/tmp/spanscope-train-out}
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
CLI=$BUILD/app/spanscope-cli
RUNS=${RUNS_DIR:-$ROOT/runs}
DATA=$ROOT/data
mkdir -p "$OUT" "$RUNS"
cd "$ROOT"
# Model: 12 layers, hidden 256, 4 heads of 64, SwiGLU 768, vocabulary 8192 (12.3M parameters).
# DEVICE, SHAPE_ARGS, PRE_CONTEXT and CT_CONTEXT exist for a dry run of the whole plan on the CPU
# with a tiny model (see the end of this file); the defaults are the real plan.
DEVICE=${DEVICE:-cuda}
read -r -a SHAPE <<<"${SHAPE_ARGS:---layers 12 --hidden 256 --heads 4 --intermediate 768}"
PRE_CONTEXT=${PRE_CONTEXT:-2048}; CT_CONTEXT=${CT_CONTEXT:-8192}
PRE_STEPS=${PRE_STEPS:-6000}; PRE_BATCH=${PRE_BATCH:-16}; PRE_LR=${PRE_LR:-2e-3}
CT_STEPS=${CT_STEPS:-600}; CT_BATCH=${CT_BATCH:-4}; CT_LR=${CT_LR:-6e-4}
STAGE_SECONDS=${STAGE_SECONDS:-540}
# Continual training at 8k: name and pattern. l = full bottom layers, window 512 above.
VARIANTS=("full8k full" "masformer4 masformer:4,window:512" "masformer2 masformer:2,window:512" "window512 window:512")

[ -f "$RUNS/.use-sdpa" ] && export SPANSCOPE_TRAIN_ATTENTION=sdpa
train_for() {  # train_for SECONDS ARGS...: SIGTERM at the deadline makes train checkpoint and stop
  local secs=$1; shift
  timeout -s TERM "$secs" "$CLI" train --device "$DEVICE" "$@"
  local rc=$?
  [ $rc -eq 124 ] && echo "[gpu_train] time limit: checkpointed, run the stage again to resume"
  return 0
}

for stage in "$@"; do
  case "$stage" in
    build)
      nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
      PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
      cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" \
        -DSPANSCOPE_DEPS_DIR="$ROOT/.devdeps" -DSPANSCOPE_GUI=OFF 2>&1 | tail -3
      time cmake --build "$BUILD" -j "$(nproc)" --target spanscope-cli spanscope_engine_tests 2>&1 | tail -5 | tee "$OUT/build.log"
      # Training runs window/block layers through spanscope's backward kernel: check it first; if
      # it fails, later stages fall back to SDPA with dense masks (SPANSCOPE_TRAIN_ATTENTION=sdpa).
      if "$BUILD/tests/spanscope_engine_tests" --gtest_filter='*SpanAttentionBwdCuda*:SpanAutograd*' >"$OUT/bwd_tests.log" 2>&1; then
        rm -f "$RUNS/.use-sdpa"; echo "[gpu_train] backward kernel tests passed"
      else
        touch "$RUNS/.use-sdpa"; echo "[gpu_train] backward kernel tests FAILED: training falls back to SDPA"; tail -20 "$OUT/bwd_tests.log"
      fi ;;
    probe)
      # Throughput of both phases (a few steps each), to size the step counts.
      rm -rf "$RUNS/probe2k" "$RUNS/probe8k"
      "$CLI" train --device "$DEVICE" --train "$DATA/train.tokens" --val "$DATA/val.tokens" --tokenizer "$DATA/tokenizer.json" \
        "${SHAPE[@]}" --context "$PRE_CONTEXT" --batch "$PRE_BATCH" --steps 1000 --stop-after 30 --log-every 10 --out "$RUNS/probe2k" 2>&1 | tee "$OUT/probe.log"
      "$CLI" train --device "$DEVICE" --train "$DATA/train.tokens" --val "$DATA/val.tokens" --tokenizer "$DATA/tokenizer.json" \
        "${SHAPE[@]}" --context "$CT_CONTEXT" --batch "$CT_BATCH" --steps 1000 --stop-after 20 --log-every 10 \
        --pattern masformer:4,window:512 --out "$RUNS/probe8k" 2>&1 | tee -a "$OUT/probe.log" ;;
    pretrain)
      train_for "$STAGE_SECONDS" --train "$DATA/train.tokens" --val "$DATA/val.tokens" --tokenizer "$DATA/tokenizer.json" \
        "${SHAPE[@]}" --context "$PRE_CONTEXT" --batch "$PRE_BATCH" --steps "$PRE_STEPS" --lr "$PRE_LR" --warmup "${PRE_WARMUP:-200}" \
        --eval-every 500 --checkpoint-every 500 --log-every 100 --pattern full --out "$RUNS/pretrain2k" 2>&1 | tee -a "$OUT/pretrain.log" | tail -15 ;;
    continual)
      # Each variant gets an equal share of the stage's time; finished ones are skipped.
      for v in "${VARIANTS[@]}"; do
        set -- $v; name=$1; pattern=$2
        [ -f "$RUNS/$name/training.json" ] && continue
        train_for $((STAGE_SECONDS / 4)) --init "$RUNS/pretrain2k" --train "$DATA/train.tokens" --val "$DATA/val.tokens" \
          --context "$CT_CONTEXT" --batch "$CT_BATCH" --steps "$CT_STEPS" --lr "$CT_LR" --warmup "${CT_WARMUP:-50}" --eval-every 200 \
          --checkpoint-every 100 --log-every 50 --pattern "$pattern" --out "$RUNS/$name" 2>&1 | tee -a "$OUT/continual_$name.log" | tail -6
      done ;;
    evaluate)
      # Every model on every held-out sample (loss overall and beyond position 2048, cost C), and
      # the boundary sweep l = 0..12 applied zero-shot to the all-full 8k model.
      mkdir -p "$OUT/results"
      for s in "$DATA"/samples/${SAMPLES:-*}.txt; do
        n=$(basename "$s" .txt)
        for m in pretrain2k full8k masformer4 masformer2 window512; do
          [ -f "$RUNS/$m/training.json" ] || continue
          "$CLI" analyze --model "$RUNS/$m" --doc "$s" --device "$DEVICE" --json "$OUT/results/$m.$n.json" >/dev/null 2>>"$OUT/evaluate.log"
        done
        "$CLI" sweep --model "$RUNS/full8k" --doc "$s" --device "$DEVICE" --sparse window:512 \
          --json "$OUT/results/sweep.full8k.$n.json" >/dev/null 2>>"$OUT/evaluate.log"
      done
      # The project's own figure of the trade-off: perplexity against C over the boundary sweep.
      "$CLI" report --model "$RUNS/full8k" --doc "$DATA/samples/${REPORT_SAMPLE:-kernel_memory_barriers}.txt" --device "$DEVICE" --sweep \
        --sparse window:512 --out "$OUT/results/report_full8k" >>"$OUT/evaluate.log" 2>&1
      for m in pretrain2k full8k masformer4 masformer2 window512; do
        [ -f "$RUNS/$m/training.json" ] && cp "$RUNS/$m/training.json" "$OUT/results/training.$m.json"
      done
      ls "$OUT/results" | wc -l ;;
    pack)
      # The shipped models (all-full 8k and MASFormer l=4), in parts under 16 MiB for the transfer.
      tar -C "$RUNS" -cf - full8k/config.json full8k/tokenizer.json full8k/training.json full8k/model.safetensors \
        masformer4/config.json masformer4/tokenizer.json masformer4/training.json masformer4/model.safetensors \
        | split -b 15M - "$OUT/models.tar.part-"
      tar -C "$OUT" -czf "$OUT/results.tar.gz" results && rm -rf "$OUT/results"
      ls -la "$OUT" ;;
    *) echo "unknown stage $stage" ;;
  esac
done

# Dry run on the CPU (checks the plan end to end in a few minutes, with a tiny model):
#   DEVICE=cpu BUILD_DIR=build SHAPE_ARGS="--layers 2 --hidden 32 --heads 2 --intermediate 64" PRE_CONTEXT=64 \
#   CT_CONTEXT=128 PRE_STEPS=20 CT_STEPS=10 PRE_BATCH=4 CT_BATCH=2 PRE_WARMUP=2 CT_WARMUP=2 RUNS_DIR=/tmp/dry-runs \
#   SAMPLES=gpl3_license REPORT_SAMPLE=gpl3_license OUT=/tmp/dry scripts/gpu_train.sh pretrain continual evaluate pack
