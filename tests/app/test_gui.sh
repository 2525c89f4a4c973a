#!/usr/bin/env bash
# The desktop app under Xvfb, driven by a script: load a model and a document, move the boundary,
# select a token, zoom the map, switch views, sweep, compare, and drop bad files on the window.
# Asserts on the app's state and on what the screenshots show. Exit 77 (skipped) without Xvfb.
set -uo pipefail
GUI=${SPANSCOPE_GUI:?}
CLI=${SPANSCOPE_CLI:?}
SRC=${SPANSCOPE_SOURCE_DIR:?}
command -v xvfb-run >/dev/null || { echo "xvfb-run not installed: skipped"; exit 77; }
W=$(mktemp -d /tmp/spanscope-gui-XXXXXX)
OUT=${SPANSCOPE_GUI_SCREENSHOTS:-$W}
trap 'rm -rf "$W"' EXIT
L=/usr/share/common-licenses
"$CLI" train-tokenizer --out "$W/tok.json" --vocab 512 $L/Apache-2.0 $L/GPL-2 >/dev/null 2>&1 || exit 1
"$CLI" init-model --out "$W/model" --tokenizer "$W/tok.json" --layers 6 --hidden 64 --heads 2 --intermediate 128 >/dev/null || exit 1
head -c 6000 $L/GPL-3 >"$W/doc.txt"
cp -r "$W/model" "$W/broken" && truncate -s -500 "$W/broken/model.safetensors"
printf '\x00\xff\xfe\x01 binary' >"$W/binary.dat"
: >"$W/empty.txt"

cat >"$W/script.txt" <<SCRIPT
drop $W/model
drop $W/doc.txt
wait
screenshot $OUT/gui_initial.png
state $W/s0.json
boundary 2
kind block
span 128
wait
state $W/s1.json
screenshot $OUT/gui_boundary2_block128.png
token 700
layer 3
tint attention
wait
state $W/s2.json
screenshot $OUT/gui_token700.png
zoom 0.25 0.30 0.25 0.30
wait
state $W/s3.json
screenshot $OUT/gui_zoomed.png
focus Distances
sweep
wait
compare full
wait
state $W/s4.json
screenshot $OUT/gui_sweep_compare.png
drop $W/broken
wait
expect-error model.safetensors
screenshot $OUT/gui_error.png
drop $W/binary.dat
wait
expect-error not valid UTF-8
drop $W/empty.txt
wait
expect-error document is empty
state $W/s5.json
quit
SCRIPT

timeout 600 xvfb-run -a -s "-screen 0 1400x900x24" "$GUI" --script "$W/script.txt" --settings "$W/settings.json" \
  --width 1400 --height 900 --frame-log "$W/frames.csv"
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: app exited with $rc"; exit 1; }
PYTHONPATH="$SRC/tests/app" python3 - "$W" "$OUT" <<'PY'
import json, sys
from png_check import read_png, region_stats
w, out = sys.argv[1], sys.argv[2]
s = [json.load(open(f"{w}/s{i}.json")) for i in range(6)]
fails = []
def check(name, cond):
    print(("ok   " if cond else "FAIL ") + name)
    if not cond: fails.append(name)
check("initial analysis uses the model's 6 layers", s[0]["analysis"]["pattern"].endswith("*2") or "window:512" in s[0]["analysis"]["pattern"])
check("boundary moved to 2 with block 128", s[1]["analysis"]["pattern"] == "full*2,block:128*4" and s[1]["boundary"] == 2)
check("cost falls with the boundary", s[1]["analysis"]["relative_cost"] < s[0]["analysis"]["relative_cost"])
check("block layers drop all mass beyond 128", all(l["beyond_mass"] == 0 for l in s[1]["analysis"]["layers"][2:]))
check("selected token is the query row", s[2]["analysis"]["query_rows"] == [700] and s[2]["query_token"] == 700)
q0, q1, k0, k1 = s[3]["analysis"]["map_region"]
T = s[3]["snapshot"]["tokens"]
check("zoom asks for the visible region", abs(q0 - 0.25 * T) <= 1 and abs(q1 - 0.30 * T) <= 1 and abs(k0 - 0.25 * T) <= 1)
check("zoomed map has exact cells", s[3]["analysis"]["layers"][0]["pool_rows"] == q1 - q0)
check("sweep has L+1 points", s[4].get("sweep_points") == 7)
check("compare ran the second pattern", s[4].get("compare_pattern") == "full*6")
check("bad files leave the app running with the last good model", s[5]["snapshot"]["has_model"] and "empty" in s[5]["snapshot"]["error"])
a, b = read_png(f"{out}/gui_initial.png"), read_png(f"{out}/gui_boundary2_block128.png")
check("screenshot size", a[0] == 1400 and a[1] == 900)
# Attention map panel (bottom left): a heat map has many colours.
colours, _ = region_stats(b, 0.02, 0.62, 0.2, 0.9)
check(f"attention map is drawn ({colours} colours)", colours > 20)
check("boundary change redraws the panels", a[3] != b[3])
e = read_png(f"{out}/gui_error.png")
# The error banner is red: look for strongly red pixels in the top half.
_, _, ch, rows = e
red = sum(1 for row in rows[:450] for x in range(0, 1400, 3) if row[x*ch] > 90 and row[x*ch+1] < 50 and row[x*ch+2] < 50)
check(f"error banner shown ({red} red pixels)", red > 200)
frames = [float(l.split(",")[1]) for l in open(f"{w}/frames.csv").read().split()[1:]]
frames.sort()
print(f"frames: {len(frames)}, median {frames[len(frames)//2]:.1f} ms, p95 {frames[int(len(frames)*0.95)]:.1f} ms, max {frames[-1]:.1f} ms")
print(f"gui checks: {len(fails)} failed")
sys.exit(1 if fails else 0)
PY
