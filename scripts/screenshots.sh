#!/usr/bin/env bash
# The README's screenshots of the app: the default model on the held-out GPL-3, under Xvfb,
# driven by a script (the same commands the GUI test uses). Needs the GUI build.
#   scripts/screenshots.sh BUILD_DIR [OUT_DIR=docs/screenshots]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?build dir}
OUT=${2:-$ROOT/docs/screenshots}
GUI="$BUILD/app/spanscope"
MODEL=${SPANSCOPE_MODEL:-$ROOT/assets/models/masformer4}
DOC=${SPANSCOPE_DOC:-/usr/share/common-licenses/GPL-3}
W=$(mktemp -d /tmp/spanscope-shots-XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"
cat >"$W/script.txt" <<S
model $MODEL
doc $DOC
wait
layer 0
wait
screenshot $OUT/default_model.png
token 300
layer 3
tint attention
wait
zoom 0.0 0.06 0.0 0.06
wait
screenshot $OUT/query_token.png
focus Distances
sweep
wait
compare full
wait
screenshot $OUT/sweep_compare.png
quit
S
timeout 1200 xvfb-run -a -s "-screen 0 1400x900x24" "$GUI" --script "$W/script.txt" --settings "$W/settings.json"
ls -la "$OUT"
