#!/usr/bin/env bash
# Continual-trains a SparseK variant of the default model on the GPU machine, in one device call
# (about 9 minutes), beside a control run that continues the default model under its own pattern
# for the same number of steps (so the comparison is not "more training"):
#   sparsek4   full attention in layers 0-3, SparseK k = 128 / window 384 above (k + w = 512, the
#              attended keys of a window-512 layer)
#   masformer4-ct  full 0-3, window 512 above (the default model's pattern)
# Both start from assets/models/masformer4 at context 8192 (SparseK trains through the fused
# forward and backward kernels on CUDA; new scorers start as a recency ramp, u_j = j / 16, so the
# SparseK layers begin as a window of about k + w keys: --sparsek-recency). Then both, and the
# default model itself, are analysed on the first 8192 tokens of every held-out sample on CUDA, and
# the trained recency slopes are printed. SKIP_TESTS=1 skips the SparseK tests (run elsewhere).
# Needs .devtrain/data (scripts/pack_device_train.sh; bin/ not needed) and .devdeps/ carried along;
# the tree must stay under 64 MiB: move assets/models/full8k out of the checkout for the call.
#   OUT=$OUT bash scripts/gpu_train_sparsek.sh
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/device_lib.sh
OUT=${OUT:-/tmp/spanscope-sparsek-out}
RUNS=${RUNS_DIR:-$ROOT/runs-sparsek}
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
CLI=$BUILD/app/spanscope-cli
DEVICE=${DEVICE:-cuda}
TRAIN_SECONDS=${TRAIN_SECONDS:-150}   # per run
CONTEXT=${CONTEXT:-8192}; BATCH=${BATCH:-2}; LR=${LR:-3e-4}
SPARSEK=${SPARSEK:-sparsek:128/384}
INIT=${INIT:-assets/models/masformer4}
EVAL_TOKENS=${EVAL_TOKENS:-8192}   # tokens of each held-out sample analysed (SAMPLES: a glob of them)
mkdir -p "$OUT" "$RUNS"
log() { echo "[sparsek $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/driver.log"; }

DATA=${DATA_DIR:-}
if [ -z "$DATA" ]; then DATA=$RUNS/data; unpack_train_tokens "$ROOT/.devtrain" "$DATA" || { log "bad train.tokens.xz"; exit 1; }; fi
if [ ! -x "$CLI" ]; then
  msg=$(build_on_device "$BUILD" "$OUT" spanscope-cli spanscope_engine_tests) || { echo "$msg"; exit 1; }
  log "$(echo "$msg" | tail -1)"
fi
# The SparseK tests on this machine (the blocked SparseK attention runs on CUDA here too).
[ -e /work/main ] || { mkdir -p /work && ln -s "$ROOT" /work/main; }
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  "$BUILD/tests/spanscope_engine_tests" --gtest_filter='SparseK*:Analysis.*' >"$OUT/tests_sparsek.log" 2>&1
  log "SparseK and analysis tests: exit $? ($(grep -E '^\[  (PASSED|FAILED)' "$OUT/tests_sparsek.log" | tr '\n' ' '))"
fi

# Steps that fit TRAIN_SECONDS for the slower (SparseK) run, from a probe; the control runs as many.
# A failed probe (the dense reference out of memory?) is retried once with half the batch.
common() { COMMON=(--init "$INIT" --train "$DATA/train.tokens" --val "$DATA/val.tokens" --context "$CONTEXT"
                   --batch "$BATCH" --lr "$LR" --device "$DEVICE"); }
common
if [ -n "${STEPS:-}" ]; then tps=0; else
tps=$(probe_train "$CLI" "$RUNS" "$OUT/probe.log" 15 "${COMMON[@]}" --pattern "full*4,$SPARSEK*8")
if [ -z "$tps" ] && [ "$BATCH" -gt 1 ]; then
  tail -5 "$OUT/probe.log"; BATCH=$((BATCH / 2)); log "probe failed: batch $BATCH"; common
  tps=$(probe_train "$CLI" "$RUNS" "$OUT/probe.log" 15 "${COMMON[@]}" --pattern "full*4,$SPARSEK*8")
fi
[ -n "$tps" ] || { tail -20 "$OUT/probe.log"; log "probe failed"; exit 1; }
fi
steps=${STEPS:-$(python3 -c "print(max(10, int(0.9 * $TRAIN_SECONDS * $tps / ($BATCH * $CONTEXT))))")}
log "SparseK training: $tps tok/s at context $CONTEXT -> $steps steps per run"
every=$(( steps / 4 > 25 ? steps / 4 : 25 )); warmup=$(( steps / 5 < 20 ? steps / 5 : 20 ))
for run in "sparsek4 full*4,$SPARSEK*8" "masformer4-ct full*4,window:512*8"; do
  set -- $run
  s=$(date +%s)
  "$CLI" train "${COMMON[@]}" --pattern "$2" --steps "$steps" --warmup "$warmup" --eval-every "$every" --checkpoint-every 100000 \
    --log-every 25 --out "$RUNS/$1" >"$OUT/train_$1.log" 2>&1
  log "$1 ($2): exit $? in $(( $(date +%s) - s ))s; $(tail -2 "$OUT/train_$1.log" | tr '\n' ' ')"
done

# First 8192 tokens of every held-out sample, every model, on CUDA.
R=$OUT/results; mkdir -p "$R"
for s in "$DATA"/samples/${SAMPLES:-*}.txt; do
  n=$(basename "$s" .txt)
  for m in "$INIT" "$RUNS/sparsek4" "$RUNS/masformer4-ct"; do
    "$CLI" analyze --model "$m" --doc "$s" --device "$DEVICE" --first-tokens "$EVAL_TOKENS" --json "$R/$(basename "$m").$n.json" \
      >/dev/null 2>>"$OUT/evaluate.log" || echo "failed: $m $n" >>"$OUT/evaluate.log"
  done
done
# Warm latency of the SparseK model at 8k (the app's boundary change on this model).
"$CLI" analyze --model "$RUNS/sparsek4" --doc "$DATA/samples/gpl3_license.txt" --device "$DEVICE" --first-tokens "$EVAL_TOKENS" \
  --repeat 4 2>&1 | grep -E "^pattern|^latency|^loss" | tee "$OUT/latency.log"
python3 - "$R" >"$OUT/summary.md" <<'PY'
import glob, json, os, sys
rows = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    model, sample = os.path.basename(f)[:-5].split(".", 1)
    j = json.load(open(f))
    sel = [l.get("selections") for l in j["layers"] if l.get("selections")]
    rows.setdefault(model, {})[sample] = (j["mean_loss"], j["cost"]["relative_cost"],
        sum(s["selected_per_query"] for s in sel) / len(sel) if sel else None)
samples = sorted({s for r in rows.values() for s in r})
print("| model | " + " | ".join(samples) + " | mean | C | selected keys per query |")
print("|---" * (len(samples) + 4) + "|")
for m, r in rows.items():
    losses = [r[s][0] for s in samples if s in r]
    sel = [r[s][2] for s in samples if s in r and r[s][2] is not None]
    print(f"| {m} | " + " | ".join(f"{r[s][0]:.3f}" if s in r else "-" for s in samples) +
          f" | {sum(losses)/len(losses):.3f} | {next(iter(r.values()))[1]:.3f} | " + (f"{sum(sel)/len(sel):.1f}" if sel else "-") + " |")
PY
cat "$OUT/summary.md"
# The trained recency slopes beta (per SparseK layer and head; they start at 1/16).
python3 - "$RUNS/sparsek4/model.safetensors" <<'PY' | tee "$OUT/recency.txt"
import json, struct, sys, torch
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
for name, info in sorted(head.items(), key=lambda kv: kv[0]):
    if name.endswith("sparsek_score.position"):
        b, e = info["data_offsets"]
        dt = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}[info["dtype"]]
        t = torch.frombuffer(bytearray(raw[8 + n + b:8 + n + e]), dtype=dt).float()
        print(name, " ".join(f"{x:.4f}" for x in t.tolist()))
PY
for m in sparsek4 masformer4-ct; do cp "$RUNS/$m/training.json" "$OUT/training.$m.json" 2>/dev/null; done
tar -C "$RUNS" -cf - sparsek4/config.json sparsek4/tokenizer.json sparsek4/training.json sparsek4/model.safetensors \
  | split -b 15M - "$OUT/sparsek4.tar.part-"
rm -rf "$R"  # the per-sample analyses (large); summary.md keeps their table
log "done"
# What comes back from the GPU machine is limited to 8 files: the model's parts and one archive.
(cd "$OUT" && tar -czf logs.tar.gz --remove-files -- *.log *.json *.md *.txt 2>/dev/null)

# Dry run on the CPU (a minute; tiny context, two samples' first 256 tokens):
#   DEVICE=cpu BUILD_DIR=build DATA_DIR=data CONTEXT=128 BATCH=2 TRAIN_SECONDS=10 EVAL_TOKENS=256 \
#   SAMPLES=g* RUNS_DIR=/tmp/sk-dry OUT=/tmp/sk-dry-out scripts/gpu_train_sparsek.sh
