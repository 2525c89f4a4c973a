#!/usr/bin/env bash
# GUI responsiveness on this machine (CPU engine, Xvfb + Mesa): frame times while a long document is
# loaded and analysed with every view open, and the time from a boundary change to the updated
# analysis on a ~2k-token document. Prints a summary; a benchmark, not a test.
#   bench/gui_responsiveness.sh BUILD_DIR        (results: bench/RESULTS_GUI.md)
set -euo pipefail
BUILD=${1:?build dir}
GUI="$BUILD/app/spanscope"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${SPANSCOPE_MODEL:-$ROOT/assets/models/masformer4}
W=$(mktemp -d /tmp/spanscope-bench-XXXXXX)
trap 'rm -rf "$W"' EXIT
L=/usr/share/common-licenses
# ~30k tokens with the default tokenizer: licence texts, repeated.
cat $L/GPL-3 $L/GPL-2 $L/Apache-2.0 $L/LGPL-2.1 $L/GFDL-1.3 $L/MPL-2.0 >"$W/long.txt"
head -c 8500 $L/GPL-3 >"$W/short.txt"
stats() { python3 - "$1" "$2" <<'PY'
import csv, sys
v = sorted(float(r["ms"]) for r in csv.DictReader(open(sys.argv[1])))
n = len(v)
print(f"{sys.argv[2]}: {n} frames, median {v[n//2]:.1f} ms, p95 {v[int(n*0.95)]:.1f} ms, p99 {v[int(n*0.99)]:.1f} ms, max {v[-1]:.1f} ms, share <= 33 ms {sum(x <= 33 for x in v)/n:.1%}")
PY
}
cat >"$W/long.script" <<S
model $MODEL
doc $W/long.txt
frames 400
state $W/long.json
quit
S
xvfb-run -a -s "-screen 0 1600x1000x24" "$GUI" --script "$W/long.script" --settings "$W/s.json" --frame-log "$W/long.csv" >/dev/null
python3 -c "import json; j=json.load(open('$W/long.json')); print('long document:', j['snapshot']['tokens'], 'tokens, analysis running:', j['snapshot']['busy'])"
stats "$W/long.csv" "frames while a long document is analysed"
cat >"$W/short.script" <<S
model $MODEL
doc $W/short.txt
wait
state $W/short0.json
boundary 2
kind block
span 256
wait
state $W/short1.json
boundary 6
wait
state $W/short2.json
quit
S
xvfb-run -a -s "-screen 0 1600x1000x24" "$GUI" --script "$W/short.script" --settings "$W/s.json" --frame-log "$W/short.csv" >/dev/null
python3 - "$W" <<'PY'
import json, sys
import os
for before, f in (("short0", "short1"), ("short1", "short2")):
    j = json.load(open(f"{sys.argv[1]}/{f}.json"))
    # The state files are written by the script just before the change and once the app has
    # settled (+2 frames): their times bound the whole update as the user sees it.
    seen = (os.stat(f"{sys.argv[1]}/{f}.json").st_mtime_ns - os.stat(f"{sys.argv[1]}/{before}.json").st_mtime_ns) / 1e9
    print(f"boundary change on {j['snapshot']['tokens']} tokens -> {j['analysis']['pattern']}: "
          f"analysis {j['analysis']['seconds']:.2f} s, change to settled view {seen:.2f} s")
PY
stats "$W/short.csv" "frames in the short-document session"
