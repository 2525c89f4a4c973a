#!/usr/bin/env bash
# Trains spanscope's shipped models on the GPU machine (CUDA + torch, no Debian packages) inside a
# device session of about 30 minutes made of calls of at most 10 minutes each. Run the same
# command in every call; it carries on where the last call stopped (runs/ stays while the
# machine is warm) and stops itself before the call's limit:
#   OUT=$OUT bash scripts/gpu_train.sh
# Plan, against the clock of the first call (runs/.t0):
#   build   spanscope-cli, then (in the background, while pretraining runs) the engine tests and
#           the backward-kernel tests; window/block training falls back to SDPA with dense masks
#           (SPANSCOPE_TRAIN_ATTENTION=sdpa) when they fail;
#   pretrain  full attention at context 2k; steps sized from a probe so that it ends at PRE_UNTIL;
#   continual at context 8k into full8k, masformer4, masformer2, window512, sized to end at CT_UNTIL;
#   evaluate  every model on the first 8192 tokens of every held-out sample, the zero-shot boundary
#           sweep of full8k, warm analysis latency of the default model at 8k and 32k tokens;
#   pack    the shipped models (full8k, masformer4) in parts under 16 MiB, results.tar.gz.
# A training cut off by the deadline is checkpointed (SIGTERM) and resumed by the next call.
# Needs .devtrain/ from scripts/pack_device_train.sh (or data/ from scripts/build_data.sh) and .devdeps/
# from scripts/pack_device_deps.sh carried along. The device takes at most 64 MiB of working tree:
# with the shipped models (50 MB in assets/models) in the tree the transfer is refused: move them
# out of the checkout for the device calls (mv assets/models /tmp/) and back afterwards.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-/tmp/spanscope-train-out}
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
CLI=$BUILD/app/spanscope-cli
RUNS=${RUNS_DIR:-$ROOT/runs}
DATA=${DATA_DIR:-$ROOT/data}
LOGS=$RUNS/logs
mkdir -p "$OUT" "$RUNS" "$LOGS"
cd "$ROOT"
source scripts/device_lib.sh
# Model: 12 layers, hidden 256, 4 heads of 64, SwiGLU 768, vocabulary 8192 (12.3M parameters).
# DEVICE, SHAPE_ARGS and the contexts exist for a dry run on the CPU (see the end of this file).
DEVICE=${DEVICE:-cuda}
read -r -a SHAPE <<<"${SHAPE_ARGS:---layers 12 --hidden 256 --heads 4 --intermediate 768}"
PRE_CONTEXT=${PRE_CONTEXT:-2048}; PRE_BATCH=${PRE_BATCH:-16}; PRE_LR=${PRE_LR:-2e-3}
CT_CONTEXT=${CT_CONTEXT:-8192}; CT_BATCH=${CT_BATCH:-4}; CT_LR=${CT_LR:-6e-4}
PROBE_STEPS=${PROBE_STEPS:-20}
# Seconds after the first call's start by which pretraining and continual training should end,
# and how long one call may run (the device allows 600).
PRE_UNTIL=${PRE_UNTIL:-900}; CT_UNTIL=${CT_UNTIL:-1390}; CALL_SECONDS=${CALL_SECONDS:-570}
MIN_STEPS=${MIN_STEPS:-100}
# Continual training at 8k: name and pattern. l = full bottom layers, window 512 above.
VARIANTS=("full8k full" "masformer4 masformer:4,window:512" "masformer2 masformer:2,window:512" "window512 window:512")
MODELS=(pretrain2k); for v in "${VARIANTS[@]}"; do MODELS+=("${v%% *}"); done  # every run, by name
SAMPLE_TOKENS=${SAMPLE_TOKENS:-$CT_CONTEXT}

CALL_START=${GPU_TRAIN_CALL_START:-$(date +%s)}; CALL_END=$((CALL_START + CALL_SECONDS))
[ -f "$RUNS/.t0" ] || echo "$CALL_START" >"$RUNS/.t0"
T0=$(cat "$RUNS/.t0")
log() { echo "[gpu_train +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOGS/driver.log"; }
left() { echo $((CALL_END - $(date +%s))); }
# A call's end: logs to $OUT; background work still running (the tests' build) is cut off with the
# call and redone by the next (ninja carries on where it stopped).
finish_call() { cp "$LOGS"/*.log "$OUT/" 2>/dev/null; log "call ends: run the same command again to continue"; exit 0; }

# probe LOG STEPS ARGS...: a few steps of a throwaway run (runs/probe); prints the steady tok/s.
probe() { local log=$1 steps=$2; shift 2; probe_train "$CLI" "$RUNS" "$log" "$steps" --device "$DEVICE" "$@"; }
# steps SECONDS TOKS_PER_S TOKENS_PER_STEP: how many steps fit (at least MIN_STEPS).
steps_for() { python3 -c "import sys; s,t,n=map(float,sys.argv[1:]); print(max($MIN_STEPS, int(0.92*s*t/n)))" "$@"; }

# train_until DEADLINE ARGS...: SIGTERM at min(deadline, call end) makes train checkpoint and stop.
# Returns 0 when the run finished (training.json written), 1 when it must be resumed.
train_until() {
  local deadline=$1 out=""; shift
  local a prev=""; for a in "$@"; do [ "$prev" = "--out" ] && out=$a; prev=$a; done
  local stop=$(( deadline < CALL_END ? deadline : CALL_END )); local secs=$((stop - $(date +%s)))
  [ $secs -lt 15 ] && return 1
  local name; name=$(basename "$out")
  timeout -s TERM "$secs" "$CLI" train --device "$DEVICE" "$@" >>"$LOGS/$name.log" 2>&1
  local rc=$?
  tail -3 "$LOGS/$name.log"
  [ -f "$out/training.json" ] && return 0  # written last, when the run has finished
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 130 ] && { log "$name: train failed (exit $rc)"; return 2; }
  return 1
}

# ---- data and build ------------------------------------------------------------------------------
# scripts/pack_device_train.sh carries the data (train.tokens compressed) and, built on the CPU
# machine against the same torch, spanscope-cli and the engine tests in .devtrain/.
PACK=${PACK_DIR:-$ROOT/.devtrain}
if [ ! -f "$DATA/train.tokens" ] && [ -f "$PACK/data/train.tokens.xz" ]; then
  DATA=$RUNS/data
  unpack_train_tokens "$PACK" "$DATA" || { log "train.tokens.xz does not unpack to the packed data"; exit 1; }
fi
TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
export LD_LIBRARY_PATH=${TORCH_LIB:+$TORCH_LIB:$TORCH_LIB/../../nvidia/cu13/lib:}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
if [ ! -x "$CLI" ] && [ -x "$PACK/bin/spanscope-cli" ] && [ ! -f "$RUNS/.prebuilt-failed" ]; then
  mkdir -p "$BUILD/app" "$BUILD/tests"
  cp "$PACK/bin/spanscope-cli" "$CLI"; cp "$PACK/bin/spanscope_engine_tests" "$BUILD/tests/"
  if "$CLI" cost --layers 12 --boundary 4 >/dev/null 2>"$LOGS/prebuilt.log"; then log "using the prebuilt spanscope-cli"
  else log "the prebuilt spanscope-cli does not run here: building"; cat "$LOGS/prebuilt.log"; rm -rf "$BUILD"; touch "$RUNS/.prebuilt-failed"; fi
fi
# The engine tests find their fixtures under the source path they were built with (this machine's).
[ -e /work/main ] || { mkdir -p /work 2>/dev/null && ln -s "$ROOT" /work/main 2>/dev/null; }
if [ ! -x "$CLI" ]; then
  msg=$(build_on_device "$BUILD" "$LOGS" spanscope-cli) || { echo "$msg"; exit 1; }
  log "$(echo "$msg" | tail -1)"
fi
if [ ! -f "$RUNS/.bwd-tested" ]; then
  # Engine tests and the backward-kernel check, in the background while pretraining (full
  # attention: SDPA only) uses the GPU.
  ( { [ -x "$BUILD/tests/spanscope_engine_tests" ] ||
      cmake --build "$BUILD" -j "$(( $(nproc) - 2 ))" --target spanscope_engine_tests >>"$LOGS/build.log" 2>&1; } &&
    { "$BUILD/tests/spanscope_engine_tests" --gtest_filter='*SpanAttentionBwdCuda*:SpanAutograd*' >"$LOGS/tests_backward.log" 2>&1
      rc=$?; if [ $rc -eq 0 ]; then rm -f "$RUNS/.use-sdpa"; else touch "$RUNS/.use-sdpa"; fi
      touch "$RUNS/.bwd-tested"; echo "[gpu_train] backward-kernel tests exit $rc" >>"$LOGS/driver.log"
      OMP_NUM_THREADS=4 nice -n 10 "$BUILD/tests/spanscope_engine_tests" >"$LOGS/tests_engine_all.log" 2>&1
      echo "[gpu_train] all engine tests exit $?" >>"$LOGS/driver.log"; } ) &
  BG=$!
fi

# ---- pretrain ------------------------------------------------------------------------------------
PRE=(--train "$DATA/train.tokens" --val "$DATA/val.tokens" --tokenizer "$DATA/tokenizer.json" "${SHAPE[@]}"
     --context "$PRE_CONTEXT" --batch "$PRE_BATCH" --lr "$PRE_LR" --warmup "${PRE_WARMUP:-200}" --pattern full)
if [ ! -f "$RUNS/pretrain2k/training.json" ]; then
  if [ ! -f "$RUNS/.pre_steps" ]; then
    tps=$(probe "$LOGS/probe2k.log" "$PROBE_STEPS" "${PRE[@]}")
    if [ -z "$tps" ] && [ ! -f "$BUILD/build.ninja" ]; then  # the prebuilt binary fails on the GPU: build here
      tail -5 "$LOGS/probe2k.log"; log "probe failed with the prebuilt spanscope-cli: building from source"
      touch "$RUNS/.prebuilt-failed"; rm -rf "$BUILD"; [ -n "${BG:-}" ] && kill "$BG" 2>/dev/null; wait
      GPU_TRAIN_CALL_START=$CALL_START exec bash "$0" "$@"
    fi
    [ -n "$tps" ] || { tail -20 "$LOGS/probe2k.log"; log "probe failed"; exit 1; }
    steps_for $((T0 + PRE_UNTIL - $(date +%s) - 40)) "$tps" $((PRE_BATCH * PRE_CONTEXT)) >"$RUNS/.pre_steps"
    log "pretrain: $tps tok/s at ${PRE_CONTEXT} -> $(cat "$RUNS/.pre_steps") steps"
  fi
  n=$(cat "$RUNS/.pre_steps"); every=$(( n / 8 > 50 ? n / 8 : 50 ))
  train_until $((T0 + PRE_UNTIL + 120)) "${PRE[@]}" --steps "$n" --eval-every "$every" --checkpoint-every "$every" \
    --log-every 100 --out "$RUNS/pretrain2k"
  [ $? -eq 0 ] || finish_call
fi

# ---- continual -----------------------------------------------------------------------------------
# The CUDA tests decide how window layers train.
while [ ! -f "$RUNS/.bwd-tested" ]; do
  if [ -z "${BG:-}" ] || ! kill -0 "$BG" 2>/dev/null; then  # the tests did not build: no kernel check
    log "engine tests did not build (see build.log)"; touch "$RUNS/.use-sdpa" "$RUNS/.bwd-tested"; break
  fi
  [ "$(left)" -lt 40 ] && finish_call; sleep 3
done
if [ -f "$RUNS/.use-sdpa" ]; then export SPANSCOPE_TRAIN_ATTENTION=sdpa; log "window layers train through SDPA (CUDA tests failed)"; fi
CT=(--init "$RUNS/pretrain2k" --train "$DATA/train.tokens" --val "$DATA/val.tokens" --context "$CT_CONTEXT"
    --batch "$CT_BATCH" --lr "$CT_LR" --warmup "${CT_WARMUP:-50}")
if [ ! -f "$RUNS/.ct_steps" ]; then
  budget=$(( (T0 + CT_UNTIL - $(date +%s) - 60) / ${#VARIANTS[@]} ))
  : >"$RUNS/.ct_steps.tmp"
  for v in "${VARIANTS[@]}"; do
    set -- $v
    tps=$(probe "$LOGS/probe8k_$1.log" 10 "${CT[@]}" --pattern "$2")
    if [ -z "$tps" ] && [ "$2" != full ] && [ -z "${SPANSCOPE_TRAIN_ATTENTION:-}" ]; then
      log "probe of $1 failed with spanscope's kernels: window layers fall back to SDPA"; tail -5 "$LOGS/probe8k_$1.log"
      touch "$RUNS/.use-sdpa"; export SPANSCOPE_TRAIN_ATTENTION=sdpa
      tps=$(probe "$LOGS/probe8k_$1.log" 10 "${CT[@]}" --pattern "$2")
    fi
    [ -n "$tps" ] || { tail -20 "$LOGS/probe8k_$1.log"; log "probe of $1 failed"; finish_call; }
    echo "$1 $(steps_for "$budget" "$tps" $((CT_BATCH * CT_CONTEXT))) $tps" >>"$RUNS/.ct_steps.tmp"
  done
  mv "$RUNS/.ct_steps.tmp" "$RUNS/.ct_steps"; log "continual steps (name steps tok/s): $(tr '\n' ';' <"$RUNS/.ct_steps")"
fi
for v in "${VARIANTS[@]}"; do
  set -- $v; name=$1; pattern=$2
  [ -f "$RUNS/$name/training.json" ] && continue
  n=$(awk -v m="$name" '$1 == m {print $2}' "$RUNS/.ct_steps"); every=$(( n / 4 > 25 ? n / 4 : 25 ))
  train_until $((T0 + CT_UNTIL + 90)) "${CT[@]}" --pattern "$pattern" --steps "$n" --eval-every "$every" \
    --checkpoint-every "$every" --log-every 50 --out "$RUNS/$name"
  [ $? -eq 0 ] || finish_call
done

# ---- evaluate ------------------------------------------------------------------------------------
[ "$(left)" -lt 60 ] && finish_call
# Per sample (in parallel): every model on the first SAMPLE_TOKENS tokens and on the whole
# document (past the training context: scripts/whole_documents.py), and the sweep of full8k.
R=$OUT/results; mkdir -p "$R" "$RUNS/whole"
run_cli() { "$CLI" "$@" >/dev/null 2>>"$LOGS/evaluate.log" || echo "failed: $*" >>"$LOGS/evaluate.log"; }
for s in "$DATA"/samples/${SAMPLES:-*}.txt; do
  ( n=$(basename "$s" .txt)
    for m in "${MODELS[@]}"; do
      [ -f "$RUNS/$m/training.json" ] || continue
      run_cli analyze --model "$RUNS/$m" --doc "$s" --device "$DEVICE" --first-tokens "$SAMPLE_TOKENS" --json "$R/$m.$n.json"
      run_cli analyze --model "$RUNS/$m" --doc "$s" --device "$DEVICE" --json "$RUNS/whole/$m.$n.json"
    done
    run_cli sweep --model "$RUNS/full8k" --doc "$s" --device "$DEVICE" --sparse window:512 --first-tokens "$SAMPLE_TOKENS" \
      --json "$R/sweep.full8k.$n.json" ) &
done
wait
python3 scripts/whole_documents.py "$RUNS"/whole/*.json | tee "$R/whole_documents.md"
# Warm analysis latency of the default model (what the app waits for after a boundary change).
LAT=$DATA/samples/${LATENCY_SAMPLE:-kernel_memory_barriers}.txt
for t in 8192 32768; do
  "$CLI" analyze --model "$RUNS/masformer4" --doc "$LAT" --device "$DEVICE" --first-tokens "$t" --repeat 6 2>&1 |
    grep -i -E "tokens\)|warm|seconds" | sed "s/^/[latency $t] /" | tee -a "$LOGS/latency.log"
done
for m in "${MODELS[@]}"; do
  [ -f "$RUNS/$m/training.json" ] && cp "$RUNS/$m/training.json" "$R/training.$m.json"
done
while [ -n "${BG:-}" ] && kill -0 "$BG" 2>/dev/null && [ "$(left)" -gt 30 ]; do sleep 3; done  # the engine tests' log
cp "$LOGS"/*.log "$R/" 2>/dev/null
log "evaluated: $(ls "$R" | wc -l) files"

# ---- pack ----------------------------------------------------------------------------------------
tar -C "$RUNS" -cf - full8k/config.json full8k/tokenizer.json full8k/training.json full8k/model.safetensors \
  masformer4/config.json masformer4/tokenizer.json masformer4/training.json masformer4/model.safetensors \
  | split -b 15M - "$OUT/models.tar.part-"
# The numbers the README's tables need (the analysis JSONs themselves are ~80 MB: kept in
# results_full.tar.gz only with FULL_RESULTS=1, in parts like the models).
python3 scripts/training_results.py "$R" --summary "$OUT/summary.json" >"$OUT/tables.md"
if [ -n "${FULL_RESULTS:-}" ]; then tar -C "$OUT" -czf - results | split -b 15M - "$OUT/results_full.tar.part-"; fi
rm -f "$R"/sweep.*.json; for m in "${MODELS[@]}"; do rm -f "$R/$m".*.json; done
tar -C "$OUT" -czf "$OUT/results.tar.gz" results && rm -rf "$R"
ls -la "$OUT"
log "done"

# Dry run on the CPU (the whole plan end to end in a few minutes, with a tiny model):
#   DEVICE=cpu BUILD_DIR=build SHAPE_ARGS="--layers 4 --hidden 32 --heads 2 --intermediate 64" PRE_CONTEXT=64 \
#   CT_CONTEXT=128 PRE_BATCH=4 CT_BATCH=2 PRE_WARMUP=2 CT_WARMUP=2 PROBE_STEPS=12 MIN_STEPS=10 PRE_UNTIL=60 \
#   CT_UNTIL=120 SAMPLES=gpl3_license LATENCY_SAMPLE=gpl3_license RUNS_DIR=/tmp/dry-runs OUT=/tmp/dry \
#   scripts/gpu_train.sh
