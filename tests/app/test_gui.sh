#!/usr/bin/env bash
# The desktop app under Xvfb, driven by a script: load a model and a document, move the boundary,
# select a token, zoom the map, switch views, sweep, compare, export the views' figures (twice: the
# second, without force, is refused), and drop bad files on the window. Then three short sessions
# answer the export dialog: a fresh folder exports without asking; an existing export makes it ask
# "Overwrite N files?", and Cancel leaves every file as it was while Overwrite rewrites them all.
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
export $W/export
wait
state $W/s6.json
screenshot $OUT/gui_exported.png
export $W/export
wait
state $W/s7.json
export-force $W/export
wait
state $W/s8.json
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
# SparseK: a tiny model with a SparseK layer (trained a few steps on the CPU) in the app: the
# selections tint of the Document view, a query's own selections, and the exported document figure.
"$CLI" tokenize --tokenizer "$W/tok.json" --out "$W/sk.tokens" $L/GPL-2 >/dev/null 2>&1 || exit 1
"$CLI" train --train "$W/sk.tokens" --val "$W/sk.tokens" --tokenizer "$W/tok.json" --layers 2 --hidden 64 --heads 2 \
  --intermediate 128 --context 64 --batch 4 --steps 15 --warmup 2 --pattern "full,sparsek:4/8" --device cpu \
  --out "$W/skmodel" >"$W/sktrain.log" 2>&1 || { cat "$W/sktrain.log"; echo "FAIL: training the SparseK model"; exit 1; }
# The pattern comes from saved settings (SparseK with k = 7, window 8, boundary 1); the script then sets k = 4.
echo '{"boundary": 1, "sparse_kind": "sparsek", "sparse_span": 8, "sparse_top_k": 7}' >"$W/sksettings.json"
cat >"$W/skscript.txt" <<SCRIPT
drop $W/skmodel
drop $W/doc.txt
wait
state $W/k00.json
topk 4
wait
layer 1
tint selections
wait
state $W/k0.json
screenshot $OUT/gui_sparsek_picks.png
token 600
wait
state $W/k1.json
screenshot $OUT/gui_sparsek_query600.png
export $W/skexport
wait
state $W/k2.json
quit
SCRIPT
timeout 300 xvfb-run -a -s "-screen 0 1400x900x24" "$GUI" --script "$W/skscript.txt" --settings "$W/sksettings.json" \
  --width 1400 --height 900 >"$W/skgui.log" 2>&1 || { cat "$W/skgui.log"; echo "FAIL: SparseK session"; exit 1; }
python3 - "$W" <<'PY' || exit 1
import csv, json, sys
w = sys.argv[1]
k0, k1, k2 = (json.load(open(f"{w}/k{i}.json")) for i in range(3))
fails = []
def check(name, cond):
    print(("ok   " if cond else "FAIL ") + name)
    if not cond: fails.append(name)
layers = k0["analysis"]["layers"]
check(f"layer 1 runs the chosen SparseK k and window ({layers[1]['spec']})", layers[1]["spec"] == "sparsek:4/8"
      and k0["sparse_top_k"] == 4 and "selected_per_query" not in layers[0])
check(f"its selections are counted ({layers[1].get('selected_per_query')} keys per query)", layers[1].get("selected_per_query", 0) > 0)
check("the Document view shows the selections tint of layer 1", k0["tint"] == 4 and k0["layer"] == 1)
check("a chosen query's row is computed", k1["analysis"]["query_rows"] == [600] and k1["query_token"] == 600)
check(f"export succeeded ({k2['export_error']!r})", k2["export_error"] == "" and not k2["exporting"])
rows = list(csv.DictReader(open(f"{w}/skexport/document_text.csv")))
tinted = [r for r in rows if r["sparsek_selection"] not in ("", "nan")]
check(f"the exported document figure carries the query's selections ({len(tinted)} keys)",
      tinted and all(0 < float(r["sparsek_selection"]) <= 1 + 1e-6 and int(r["position"]) <= 600 - 8 for r in tinted))
man = json.load(open(f"{w}/skexport/manifest.json"))
check("the export's settings name the selections tint", '"tint": "selections"' in json.dumps(man))
k00 = json.load(open(f"{w}/k00.json"))
check(f"saved settings restore SparseK with its k ({k00['analysis']['layers'][1]['spec']})",
      k00["sparse_kind"] == "sparsek" and k00["sparse_top_k"] == 7 and k00["analysis"]["layers"][1]["spec"] == "sparsek:7/8")
sys.exit(1 if fails else 0)
PY
# Without saved SparseK settings, the SparseK model opens with the pattern it was trained with.
printf 'model %s\ndoc %s\nwait\nstate %s\nquit\n' "$W/skmodel" "$W/doc.txt" "$W/k3.json" >"$W/skscript2.txt"
timeout 300 xvfb-run -a -s "-screen 0 1400x900x24" "$GUI" --script "$W/skscript2.txt" --settings "$W/sksettings2.json" \
  --width 1400 --height 900 >"$W/skgui2.log" 2>&1 || { cat "$W/skgui2.log"; echo "FAIL: SparseK session 2"; exit 1; }
python3 - "$W/k3.json" <<'PY' || exit 1
import json, sys
k3 = json.load(open(sys.argv[1]))
specs = [l["spec"] for l in k3["analysis"]["layers"]]
ok = k3["sparse_kind"] == "sparsek" and k3["boundary"] == 1 and specs == ["full", "sparsek:4/8"]
print(("ok   " if ok else "FAIL ") + f"a SparseK model opens with its trained pattern ({specs}, boundary {k3['boundary']})")
sys.exit(0 if ok else 1)
PY

# The exported manifest regenerates the figures from the command line.
"$CLI" report --from "$W/export/manifest.json" --out "$W/regen" >"$W/regen.txt" 2>&1 || { cat "$W/regen.txt"; echo "FAIL: report --from the GUI export"; exit 1; }
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
# Export: every view's figure in every format, valid, with the numbers the app shows.
import csv, os, subprocess, xml.etree.ElementTree as ET
x, x2 = json.load(open(f"{w}/s6.json")), json.load(open(f"{w}/s7.json"))
ex = f"{w}/export"
layer = x["layer"]
figs = ["distance_profile", f"attention_map_layer{layer:02d}", "token_loss", "perplexity_vs_cost", "cost_table",
        "document_text", "layer_stack", "compare_layers", "compare_loss"]
check(f"export succeeded ({x['export_error']!r})", x["export_error"] == "" and not x["exporting"])
check(f"export wrote {len(x['export_files'])} files", len(x["export_files"]) == 4 * len(figs) + 2
      and all(os.path.getsize(f) > 0 for f in x["export_files"]))
for f in figs:
    ok = all(os.path.getsize(f"{ex}/{f}.{e}") > 0 for e in ("png", "svg", "pdf", "csv"))
    if ok:
        p = read_png(f"{ex}/{f}.png")
        ET.parse(f"{ex}/{f}.svg")
        info = subprocess.run(["pdfinfo", f"{ex}/{f}.pdf"], capture_output=True, text=True)
        ok = p[0] > 200 and p[1] > 200 and info.returncode == 0 and "Pages:" in info.stdout
    check(f"export {f}: png decodes, svg parses, pdfinfo opens the pdf", ok)
m = json.load(open(f"{ex}/manifest.json"))
check("export manifest names the view state", m["kind"] == "report" and m["source"]["state"]["layer"] == layer
      and m["source"]["state"]["map_zoomed"] and m["settings"]["layers"] == [layer] and m["settings"]["sweep"])
rows = list(csv.reader(open(f"{ex}/attention_map_layer{layer:02d}.csv")))
la = x["analysis"]["layers"][layer]
q0, q1, k0, k1 = x["analysis"]["map_region"]
check(f"attention map csv is the zoomed region ({len(rows) - 1} x {len(rows[0]) - 2})",
      len(rows) - 1 == la["pool_rows"] and len(rows[0]) - 2 == la["pool_cols"] and int(rows[1][0]) == q0
      and int(rows[-1][1]) == q1 and rows[0][2].startswith(f"keys_{k0}_"))
loss = list(csv.DictReader(open(f"{ex}/token_loss.csv")))
mean = sum(float(r["loss_pattern"]) for r in loss) / len(loss)
check(f"token loss csv: T-1 rows, mean {mean:.5f} = app {x['analysis']['mean_loss']:.5f}, with all-full",
      len(loss) == x["snapshot"]["tokens"] - 1 and abs(mean - x["analysis"]["mean_loss"]) < 1e-4
      and loss[0]["loss_all_full"] != "")
check("sweep csv has L+1 points", len(list(csv.DictReader(open(f"{ex}/perplexity_vs_cost.csv")))) == x["sweep_points"])
# Document: the attention tint of token 700 in layer 3 (block 128: keys 640..700), over the tokens the
# Document view showed when they include the query, else 400 tokens around it.
st = m["settings"]
vis = x["document_visible"]
window = (vis[0], vis[1] - vis[0] + 1) if vis[0] >= 0 and vis[0] <= 700 <= vis[1] else (500, 400)
check(f"export settings hold the Document view's tint, query and window {window} (view showed {vis})",
      vis[0] >= 0 and vis[1] > vis[0]
      and (st["tint"], st["query_token"], st["select_layer"], st["text_first"], st["text_tokens"]) == ("attention", 700, 3) + window)
doc = list(csv.DictReader(open(f"{ex}/document_text.csv", newline="")))
att = {int(r["position"]): float(r["attention"]) for r in doc if r["attention"] != ""}
check(f"document csv: the query's row over the window sums to 1 ({sum(att.values()):.6f}), nothing before its block or after it",
      (abs(sum(att.values()) - 1) < 1e-4 if window[0] <= 640 else sum(att.values()) <= 1 + 1e-4) and max(att) == 700 and all(v == 0 for k, v in att.items() if k < 640)
      and all(v > 0 for k, v in att.items() if k >= 640))
lmean = {int(r["position"]) + 1: r["loss_pattern"] for r in loss}
check("document csv: each token's loss is the token loss csv's", all(r["loss"] == lmean[int(r["position"])] for r in doc))
# Layers: the stack the app shows (head mean), the boundary below layer 2.
stack = list(csv.DictReader(open(f"{ex}/layer_stack.csv")))
check("layer stack csv: the app's specs and beyond-span mass, boundary at 2",
      [r["spec"] for r in stack] == [l["spec"] for l in x["analysis"]["layers"]]
      and all(abs(float(r["beyond_mass"]) - l["beyond_mass"]) <= 1e-12 * max(1, l["beyond_mass"])
              for r, l in zip(stack, x["analysis"]["layers"]))
      and [r["full_below_boundary"] for r in stack] == ["1", "1", "0", "0", "0", "0"])
# Compare: the app's pattern against full*6.
cmpl = {(r["layer"], r["quantity"]): r for r in csv.DictReader(open(f"{ex}/compare_layers.csv"))}
check("compare csv: current is the app's analysis, compare is all-full",
      abs(float(cmpl["all", "mean_loss"]["current"]) - x["analysis"]["mean_loss"]) < 1e-12
      and float(cmpl["all", "relative_cost"]["compare"]) == 1.0 and cmpl["5", "spec"]["compare"] == "full"
      and m["settings"]["compare"] == "full*6")
check("manifest maps every data view to its figures, Help to none",
      m["source"]["views"]["Document"] == "document_text" and m["source"]["views"]["Layers"] == "layer_stack"
      and m["source"]["views"]["Compare"] == "compare_layers, compare_loss" and m["source"]["views"]["Help"].startswith("none"))
check(f"second export without force is refused ({x2['export_error']!r})",
      "already exists" in x2["export_error"] and x2["export_files"] == [])
check("refused export leaves no temporary files", not [f for f in os.listdir(ex) if ".tmp." in f])
x3 = json.load(open(f"{w}/s8.json"))
check("export-force overwrites", x3["export_error"] == "" and len(x3["export_files"]) == len(x["export_files"]))
regen = f"{w}/regen"
same = [f for f in ("cost_table.csv", "distance_profile.csv") if open(f"{ex}/{f}").read() == open(f"{regen}/{f}").read()]
check(f"report --from the export regenerates the same cost table and distance profile ({same})", len(same) == 2)
rl = list(csv.DictReader(open(f"{regen}/token_loss.csv")))
check("report --from regenerates the token loss", len(rl) == len(loss)
      and max(abs(float(a["loss_pattern"]) - float(b["loss_pattern"])) for a, b in zip(rl, loss)) < 1e-3)
def same_table(name):  # same rows and text; numbers within the app's and the CLI's float noise
    a, b = list(csv.reader(open(f"{ex}/{name}.csv", newline=""))), list(csv.reader(open(f"{regen}/{name}.csv", newline="")))
    if len(a) != len(b): return False
    for ra, rb in zip(a, b):
        for u, v in zip(ra, rb):
            try: fu, fv = float(u), float(v)
            except ValueError:
                if u != v: return False
                continue
            if abs(fu - fv) > 1e-3 * max(1, abs(fu)): return False
    return True
check("report --from regenerates the layer stack exactly", open(f"{ex}/layer_stack.csv").read() == open(f"{regen}/layer_stack.csv").read())
for name in ("document_text", "compare_layers", "compare_loss"):
    check(f"report --from regenerates {name}", same_table(name))
frames = [float(l.split(",")[1]) for l in open(f"{w}/frames.csv").read().split()[1:]]
frames.sort()
print(f"frames: {len(frames)}, median {frames[len(frames)//2]:.1f} ms, p95 {frames[int(len(frames)*0.95)]:.1f} ms, max {frames[-1]:.1f} ms")
print(f"gui checks: {len(fails)} failed")
sys.exit(1 if fails else 0)
PY
main_rc=$?

# The export dialog, answered by the script: three sessions on one folder.
gui() {  # gui NAME: run the app on $W/NAME.txt; its exit code in $rc
  timeout 300 xvfb-run -a -s "-screen 0 1400x900x24" "$GUI" --script "$W/$1.txt" --settings "$W/$1-settings.json" \
    --width 1400 --height 900 >"$W/$1.log" 2>&1
  rc=$?
}
snapshot() {  # path, size, mtime (ns) and sha256 of every file
  python3 - "$1" <<'PY'
import hashlib, os, sys
for f in sorted(os.listdir(sys.argv[1])):
    p = os.path.join(sys.argv[1], f)
    print(f, os.path.getsize(p), os.stat(p).st_mtime_ns, hashlib.sha256(open(p, "rb").read()).hexdigest())
PY
}
D="$W/dialog"
cat >"$W/d1.txt" <<SCRIPT
drop $W/model
drop $W/doc.txt
wait
export-dialog $D
frames 3
wait
state $W/d0.json
export-answer cancel
SCRIPT
gui d1
dialog_fails=0
dcheck() {  # dcheck NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; dialog_fails=$((dialog_fails + 1)); fi
}
dcheck "answering a dialog that does not ask fails the script (exit 2)" \
  bash -c "[ $rc -eq 2 ] && grep -q 'the export dialog is not asking to overwrite' '$W/d1.log'"
state() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$W/$1.json" "$2"; }
dcheck "a fresh folder exports from the dialog without asking (26 files)" \
  test "$(state d0 '(s["export_error"], len(s["export_files"]), s["export_dialog_open"], s["export_overwrite_question"])')" = "('', 26, False, 0)"
dcheck "without a query token the document figure is the text the Document view showed" python3 -c "
import json, sys
v = json.load(open('$W/d0.json'))['document_visible']; st = json.load(open('$D/manifest.json'))['settings']
print('    view showed', v, 'figure', st['text_first'], st['text_tokens'])
sys.exit(0 if v[0] >= 0 and v[1] > v[0] and (st['text_first'], st['text_tokens']) == (v[0], v[1] - v[0] + 1) else 1)"
before=$(snapshot "$D")
dcheck "the dialog export wrote 26 files" test "$(echo "$before" | wc -l)" -eq 26

for answer in cancel overwrite; do
  cat >"$W/d-$answer.txt" <<SCRIPT
drop $W/model
drop $W/doc.txt
boundary 1
wait
export-dialog $D
frames 3
state $W/ask-$answer.json
screenshot $OUT/gui_export_overwrite.png
export-answer $answer
frames 3
wait
state $W/after-$answer.json
SCRIPT
  sleep 0.05  # a rewrite gets a later mtime
  gui "d-$answer"
  dcheck "$answer session exits 0" test "$rc" -eq 0
  dcheck "$answer: the dialog asks 'Overwrite 26 files?'" \
    test "$(state "ask-$answer" '(s["export_dialog_open"], s["export_overwrite_question"], s["exporting"], s["export_files"])')" = "(True, 26, False, [])"
  dcheck "$answer: the dialog closes" \
    test "$(state "after-$answer" '(s["export_dialog_open"], s["export_overwrite_question"], s["export_error"])')" = "(False, 0, '')"
  dcheck "$answer: no temporary file left" test -z "$(find "$D" -name '*.tmp.*')"
  if [ "$answer" = cancel ]; then
    dcheck "cancel: nothing exported" test "$(state after-cancel 'len(s["export_files"])')" = 0
    dcheck "cancel: every file as it was (size, mtime, sha256)" test "$before" = "$(snapshot "$D")"
  else
    dcheck "overwrite: 26 files exported" test "$(state after-overwrite 'len(s["export_files"])')" = 26
    dcheck "overwrite: every file rewritten, the pattern's numbers changed" python3 - "$before" "$(snapshot "$D")" "$D" <<'PY'
import json, sys
old = {l.split()[0]: l.split()[1:] for l in sys.argv[1].splitlines()}
new = {l.split()[0]: l.split()[1:] for l in sys.argv[2].splitlines()}
assert old.keys() == new.keys(), old.keys() ^ new.keys()
assert all(int(new[f][1]) > int(old[f][1]) for f in old), [f for f in old if int(new[f][1]) <= int(old[f][1])]
for f in ("cost_table.csv", "layer_stack.csv", "manifest.json", "token_loss.csv"):
    assert new[f][2] != old[f][2], f
assert json.load(open(f"{sys.argv[3]}/manifest.json"))["pattern"] == "full*1,window:512*5"
PY
  fi
done
echo "dialog checks: $dialog_fails failed"
[ "$main_rc" -eq 0 ] && [ "$dialog_fails" -eq 0 ]
