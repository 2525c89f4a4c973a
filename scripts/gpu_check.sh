#!/usr/bin/env bash
# Runs on the GPU machine (CUDA + torch, no Debian packages): builds the engine, CLI and tests
# against that machine's torch, runs every test (GPU tests included) and the main job on CUDA.
# Needs .devdeps/ from scripts/pack_device_deps.sh carried along. Logs go to $OUT.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-/tmp/spanscope-gpu-out}
mkdir -p "$OUT"
cd "$ROOT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
date -u | tee -a "$OUT/device.txt"
c++ --version | head -1 | tee -a "$OUT/device.txt"
# The tests and the main job read Debian's licence texts; this bare machine has none.
mkdir -p /usr/share/common-licenses && cp --update=none .devdeps/docs/* /usr/share/common-licenses/ 2>/dev/null || cp -n .devdeps/docs/* /usr/share/common-licenses/
PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
BUILD=build-gpu
set -o pipefail
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DSPANSCOPE_DEPS_DIR="$ROOT/.devdeps" -DSPANSCOPE_GUI=OFF 2>&1 | tail -5 | tee "$OUT/configure.log" || exit 1
time cmake --build "$BUILD" -j "$(nproc)" 2>&1 | tail -40 | tee "$OUT/build.log" || exit 1
(cd "$BUILD" && ctest --output-on-failure -j 4 --timeout 600 ${CTEST_ARGS:-}) 2>&1 | tee "$OUT/ctest.log" | tail -40
for stage in "$@"; do
  case "$stage" in
    main)
      SPANSCOPE_DOC=/usr/share/common-licenses/GPL-3 SPANSCOPE_HEADLESS=1 bash scripts/run_main.sh "$BUILD" --device cuda 2>&1 | tee "$OUT/main_cuda.log" ;;
    sanitize)
      # compute-sanitizer (memcheck, then racecheck) over the CUDA kernel tests at small sizes.
      SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
      FILTER=${SANITIZE_FILTER:-'*SpanAttentionCuda*T100_*:*SpanAttentionCuda*T17_*:*SpanStatsCuda*T100_*:*SpanStatsCuda*T1237_*:SpanAttentionCuda.*:*SparseKAttentionCuda*T129_*:SparseKAttentionCuda.*:SparseKPlanCuda.*'}
      "$SAN" --tool memcheck --error-exitcode 9 "$BUILD/tests/spanscope_engine_tests" --gtest_filter="$FILTER" 2>&1 \
        | tee "$OUT/sanitizer.log" | grep -E "ERROR SUMMARY|PASSED|FAILED|tests ran" ; echo "memcheck rc=${PIPESTATUS[0]}" | tee -a "$OUT/sanitizer.log"
      RACE=${RACECHECK_FILTER:-'*SpanAttentionCuda*block100prev_B2_H3_T100_*:*SpanStatsCuda*window100_H3_T1237*:*SparseKAttentionCuda*k160_w37*T129_D64*'}
      "$SAN" --tool racecheck --error-exitcode 9 "$BUILD/tests/spanscope_engine_tests" --gtest_filter="$RACE" 2>&1 \
        | tee -a "$OUT/sanitizer.log" | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|PASSED|FAILED" ; echo "racecheck rc=${PIPESTATUS[0]}" | tee -a "$OUT/sanitizer.log" ;;
    bench|bench-quick|bench-stats|bench-bwd|bench-sparsek)
      # bench/bench_attention.py against the spanscope_ops shared library built above.
      extra=(); [ "$stage" = bench-quick ] && extra=(--quick); [ "$stage" = bench-stats ] && extra=(--stats-only)
      [ "$stage" = bench-bwd ] && extra=(--backward)
      [ "$stage" = bench-sparsek ] && extra=(--sparsek)
      [ -n "${BENCH_DIMS:-}" ] && extra+=(--dims "$BENCH_DIMS")
      PYTHONUNBUFFERED=1 python3 bench/bench_attention.py "$BUILD/kernels/libspanscope_ops.so" "${extra[@]}" \
        --autotune-budget "${AUTOTUNE_BUDGET:-150}" \
        --out "$OUT/bench.md" 2>&1 | tee "$OUT/bench.log" | grep -v "^d=" ;;
    latency)
      # Warm analysis latency of the default model on CUDA (what a boundary change in the app
      # costs): ~8k and ~30k tokens, statistics for every layer, 256x256 maps.
      L=/usr/share/common-licenses
      head -c 30500 $L/GPL-3 >/tmp/doc8k.txt
      cat $L/GPL-3 $L/GPL-2 $L/Apache-2.0 $L/LGPL-2.1 $L/GFDL-1.3 $L/MPL-2.0 >/tmp/doc32k.txt
      for doc in /tmp/doc8k.txt /tmp/doc32k.txt; do
        for p in masformer:4,window:512 masformer:2,block:1024 full; do
          "$BUILD/app/spanscope-cli" analyze --model assets/models/masformer4 --doc $doc --device cuda --pattern $p \
            --repeat 6 2>/dev/null | grep -E "^document|^pattern|^latency"
        done
      done 2>&1 | tee "$OUT/latency.log" ;;
    latency-sparsek)
      # Warm analysis latency of SparseK layers on CUDA: the default model continued for 20 steps
      # with full*4,sparsek:128/384*8 on the licence texts (a throwaway model: only its timing and
      # selections are reported) or SK_MODEL, analysed with statistics on ~8k and ~30k tokens.
      L=/usr/share/common-licenses
      CLI="$BUILD/app/spanscope-cli"
      SK="full*4,sparsek:128/384*8"
      # SK_MODEL: a SparseK model to time instead (carried along, e.g. runs/sparsek4).
      SKM=${SK_MODEL:-/tmp/skm}
      if [ -z "${SK_MODEL:-}" ]; then
        "$CLI" tokenize --tokenizer assets/models/masformer4/tokenizer.json --out /tmp/lic.tokens $L/* >/dev/null 2>&1
        "$CLI" train --init assets/models/masformer4 --train /tmp/lic.tokens --val /tmp/lic.tokens --context 1024 --batch 2 \
          --steps 20 --warmup 2 --eval-every 20 --log-every 10 --pattern "$SK" --device cuda --out /tmp/skm >"$OUT/latency_sparsek_train.log" 2>&1 \
          || { tail -5 "$OUT/latency_sparsek_train.log"; echo "training the SparseK model failed"; }
      fi
      head -c 30500 $L/GPL-3 >/tmp/doc8k.txt
      cat $L/GPL-3 $L/GPL-2 $L/Apache-2.0 $L/LGPL-2.1 $L/GFDL-1.3 $L/MPL-2.0 >/tmp/doc32k.txt
      for doc in /tmp/doc8k.txt /tmp/doc32k.txt; do
        for p in "$SK" "masformer:4,window:512"; do
          "$CLI" analyze --model "$SKM" --doc $doc --device cuda --pattern "$p" --repeat 4 2>&1 \
            | grep -E "^document|^pattern|^latency|keys selected|^loss"
        done
      done 2>&1 | tee "$OUT/latency_sparsek.log" ;;
    tune)
      PYTHONUNBUFFERED=1 python3 bench/tune_fwd.py "$BUILD/kernels/libspanscope_ops.so" 2>&1 | tee "$OUT/tune.log" ;;
    tune-fwd)
      PYTHONUNBUFFERED=1 python3 bench/tune_fwd.py "$BUILD/kernels/libspanscope_ops.so" --variants 2>&1 | tee "$OUT/tune_fwd.log" ;;
    tune-stats)
      PYTHONUNBUFFERED=1 python3 bench/tune_fwd.py "$BUILD/kernels/libspanscope_ops.so" --stats-variants 2>&1 | tee "$OUT/tune_stats.log" ;;
    *) echo "unknown stage $stage" ;;
  esac
done
