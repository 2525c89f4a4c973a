#!/usr/bin/env bash
# The main job: open the desktop app on the default model and a sample long document; without a
# display (or without the GUI build) run the same analysis headless and print the summary.
#   scripts/run_main.sh BUILD_DIR [extra options]
# Until a trained model ships (assets/models/), the default model is a randomly initialised one
# that this script creates once under BUILD_DIR/models/default, with a BPE tokenizer trained by
# spanscope's own trainer on Debian's licence texts (the GPL-3 sample document is held out).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?build dir}; shift || true
CLI="$BUILD/app/spanscope-cli"
MODEL="$BUILD/models/default"
DOC=${SPANSCOPE_DOC:-/usr/share/common-licenses/GPL-3}
LICENSES=/usr/share/common-licenses

if [ ! -f "$MODEL/model.safetensors" ]; then
  mkdir -p "$BUILD/models"
  echo "[main] creating the default (random, untrained) model in $MODEL" >&2
  "$CLI" train-tokenizer --out "$BUILD/models/tokenizer.json" --vocab 2048 \
    "$LICENSES/Apache-2.0" "$LICENSES/GPL-2" "$LICENSES/LGPL-2.1" "$LICENSES/LGPL-3" \
    "$LICENSES/GFDL-1.3" "$LICENSES/Artistic" "$LICENSES/MPL-2.0" "$LICENSES/CC0-1.0"
  "$CLI" init-model --out "$MODEL" --tokenizer "$BUILD/models/tokenizer.json" \
    --layers 12 --hidden 256 --heads 4 --intermediate 768 --context 2048 --seed 1 \
    --pattern "masformer:4,window:512"
fi
GUI="$BUILD/app/spanscope"
if [ -x "$GUI" ] && [ -z "${SPANSCOPE_HEADLESS:-}" ]; then
  exec "$GUI" --model "$MODEL" --doc "$DOC" "$@"  # falls back to the headless analysis without a display
fi
exec "$CLI" analyze --model "$MODEL" --doc "$DOC" --json "$BUILD/main-analysis.json" "$@"
