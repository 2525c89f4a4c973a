#!/usr/bin/env bash
# Packs what scripts/gpu_train.sh needs on the GPU machine into .devtrain/ (git-ignored, carried
# per device call; the working tree that travels is limited to 64 MiB): the training data of
# scripts/build_data.sh with train.tokens compressed (xz), and, when this machine has built them
# with CUDA against the same torch (2.11, CUDA 13), spanscope-cli and the engine tests, which saves
# the GPU machine the build (it builds from source when they do not run there).
#   scripts/pack_device_train.sh [DATA_DIR] [BUILD_DIR]   BUILD_DIR: a CUDA build without Cairo
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${1:-$ROOT/data}
BUILD=${2:-$ROOT/build-dev}
D="$ROOT/.devtrain"
rm -rf "$D"; mkdir -p "$D/data" "$D/bin"
for f in tokenizer.json val.tokens stats.json LICENSES.md; do cp "$DATA/$f" "$D/data/"; done
cp -r "$DATA/samples" "$D/data/"
xz -T2 -6 -c "$DATA/train.tokens" >"$D/data/train.tokens.xz"
sha256sum "$DATA/train.tokens" | cut -d' ' -f1 >"$D/data/train.tokens.sha256"
if [ -x "$BUILD/app/spanscope-cli" ] && ! ldd "$BUILD/app/spanscope-cli" | grep -q libcairo; then
  cp "$BUILD/app/spanscope-cli" "$BUILD/tests/spanscope_engine_tests" "$D/bin/"
  strip "$D/bin/"*
fi
du -sh "$D" "$D"/*
