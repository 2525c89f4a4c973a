#!/usr/bin/env bash
# Without a display the app says so and runs the same analysis headless instead of failing.
set -uo pipefail
GUI=${SPANSCOPE_GUI:?}
CLI=${SPANSCOPE_CLI:?}
W=$(mktemp -d /tmp/spanscope-headless-XXXXXX)
trap 'rm -rf "$W"' EXIT
L=/usr/share/common-licenses
"$CLI" train-tokenizer --out "$W/tok.json" --vocab 300 $L/Apache-2.0 >/dev/null 2>&1 || exit 1
"$CLI" init-model --out "$W/model" --tokenizer "$W/tok.json" --layers 2 --hidden 32 --heads 2 --intermediate 64 >/dev/null || exit 1
head -c 3000 $L/GPL-3 >"$W/doc.txt"
env -u DISPLAY -u WAYLAND_DISPLAY "$GUI" --model "$W/model" --doc "$W/doc.txt" --settings "$W/settings.json" >"$W/out" 2>"$W/err"
rc=$?
cat "$W/err" "$W/out" | grep -v '^\[analyze'
[ $rc -eq 0 ] || { echo "FAIL: exit code $rc"; exit 1; }
grep -q "no display" "$W/err" || { echo "FAIL: did not say there is no display"; exit 1; }
grep -q "running the same analysis headless" "$W/err" || { echo "FAIL: no headless notice"; exit 1; }
grep -qE '^loss +[0-9.]+ nats/token' "$W/out" || { echo "FAIL: no analysis summary"; exit 1; }
env -u DISPLAY -u WAYLAND_DISPLAY "$GUI" --model "$W/model" --doc "$W/missing.txt" --settings "$W/settings.json" >/dev/null 2>"$W/err2"
rc=$?
[ $rc -eq 1 ] && grep -q "missing.txt" "$W/err2" || { echo "FAIL: bad document in headless mode (rc=$rc)"; cat "$W/err2"; exit 1; }
echo "headless fallback: ok"
