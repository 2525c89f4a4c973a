#!/usr/bin/env bash
# The main job: open the desktop app on the default model and a sample long document; without a
# display (or without the GUI build) run the same analysis headless and print the summary.
#   scripts/run_main.sh BUILD_DIR [extra options]
# The default model is assets/models/masformer4: spanscope's own 12-layer model, pretrained at
# context 2k and continually trained at 8k into MASFormer l = 4 (full attention in the bottom four
# layers, window 512 above) on English documentation from Debian packages (README: "Shipped
# models"). The document is the GPL-3 that Debian installs, held out of the training data.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?build dir}; shift || true
CLI="$BUILD/app/spanscope-cli"
MODEL=${SPANSCOPE_MODEL:-$ROOT/assets/models/masformer4}
DOC=${SPANSCOPE_DOC:-/usr/share/common-licenses/GPL-3}
GUI="$BUILD/app/spanscope"
if [ -x "$GUI" ] && [ -z "${SPANSCOPE_HEADLESS:-}" ]; then
  exec "$GUI" --model "$MODEL" --doc "$DOC" "$@"  # falls back to the headless analysis without a display
fi
exec "$CLI" analyze --model "$MODEL" --doc "$DOC" --json "$BUILD/main-analysis.json" "$@"
