#!/usr/bin/env bash
# Runs on the GPU machine in one call: builds everything (scripts/gpu_check.sh), skips the test
# suite, then runs bench/bench_attention.py against build-gpu/kernels/libspanscope_ops.so.
# Output: $OUT/bench.md (tables), $OUT/bench.log. Usage (device tool, carry .devdeps):
#   bash bench/run_bench.sh            forward race + statistics pass + 128k memory
#   bash bench/run_bench.sh stats      statistics pass + 128k memory only
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stage=bench
[ "${1:-}" = stats ] && stage=bench-stats
CTEST_ARGS='-R ^NoSuchTest$' exec bash scripts/gpu_check.sh "$stage"
