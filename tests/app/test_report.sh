#!/usr/bin/env bash
# spanscope-cli report end to end: every figure in PNG, SVG and PDF and valid (PNG decodes, SVG
# parses as XML, PDF opens with pdfinfo), CSV numbers equal the analyze/sweep JSON (the document
# text, layer stack and compare figures included), --from
# manifest.json regenerates identical CSVs, existing files are never overwritten without --force
# (and nothing is written then), a bad output path or a failing write gives one error line and
# leaves no temporary or half-written file.
set -uo pipefail
CLI=${SPANSCOPE_CLI:?}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=$(mktemp -d /tmp/spanscope-report-XXXXXX)
trap 'rm -rf "$W"' EXIT
L=/usr/share/common-licenses
source "$HERE/checks.sh"
# expect_error NAME SUBSTRING CMD...: non-zero exit and exactly one error line on stderr, naming
# SUBSTRING (report prints progress on stderr too, so only 'error:' lines count here)
expect_error() {
  local name=$1 want=$2; shift 2
  "$@" >"$W/out" 2>"$W/err"; local rc=$?
  local lines; lines=$(grep -c 'error:' "$W/err")
  if [ "$rc" -ne 0 ] && [ "$lines" -eq 1 ] && grep 'error:' "$W/err" | grep -q -- "$want"; then
    echo "ok   $name: $(grep 'error:' "$W/err")"; passes=$((passes + 1))
  else
    echo "FAIL $name (rc=$rc, $lines error lines, wanted '$want'):"; cat "$W/err"; fails=$((fails + 1))
  fi
}
command -v pdfinfo >/dev/null || { echo "FAIL pdfinfo not found: install poppler-utils (scripts/setup.sh does)"; exit 1; }

"$CLI" train-tokenizer --out "$W/tok.json" --vocab 512 $L/Apache-2.0 $L/GPL-2 $L/LGPL-2.1 >"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
"$CLI" init-model --out "$W/model" --tokenizer "$W/tok.json" --layers 4 --hidden 64 --heads 2 --intermediate 128 \
  --pattern "masformer:2,window:256" >>"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
head -c 6000 $L/GPL-3 >"$W/doc.txt"
P="full*2,window:256*2"
"$CLI" analyze --model "$W/model" --doc "$W/doc.txt" --pattern "$P" --pool 64 --maps --rows 700 --json "$W/a.json" >/dev/null 2>&1
check "analyze --json exits 0" test $? -eq 0
C="full*3,block:128"
"$CLI" analyze --model "$W/model" --doc "$W/doc.txt" --pattern "$C" --pool 64 --json "$W/c.json" >/dev/null 2>&1
check "analyze --json of the compare pattern exits 0" test $? -eq 0
"$CLI" sweep --model "$W/model" --doc "$W/doc.txt" --sparse window:256 --json "$W/s.json" >/dev/null 2>&1
check "sweep --json exits 0" test $? -eq 0

R="$W/report"
"$CLI" report --model "$W/model" --doc "$W/doc.txt" --pattern "$P" --sweep --sparse window:256 --pool 64 \
  --layers 0,3 --heads all --compare "$C" --tint attention --query 700 --select-layer 3 --select-head 1 \
  --out "$R" >"$W/report.txt" 2>"$W/report.err"
check "report exits 0" test $? -eq 0
cat "$W/report.txt"
FIGS="distance_profile attention_map_layer00 attention_map_layer00_head0 attention_map_layer00_head1
  attention_map_layer03 attention_map_layer03_head0 attention_map_layer03_head1 token_loss perplexity_vs_cost cost_table
  document_text layer_stack compare_layers compare_loss"
for f in $FIGS; do
  check "$f: png, svg, pdf and csv written" test -s "$R/$f.png" -a -s "$R/$f.svg" -a -s "$R/$f.pdf" -a -s "$R/$f.csv"
  check "$f.pdf opens (pdfinfo: 1 page)" bash -c "pdfinfo '$R/$f.pdf' | grep -qE '^Pages: +1$'"
done
check "every PNG decodes, every SVG parses, with sane sizes" python3 - "$R" "$HERE" $FIGS <<'PY'
import struct, sys, zlib, xml.etree.ElementTree as ET
sys.path.insert(0, sys.argv[2])
from png_check import read_png, region_stats
def png_stream_ok(path):  # every chunk's CRC, and the image data inflates to exactly h rows
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat = 8, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body, (crc,) = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n], struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + body) == crc, (path, kind)
        if kind == b"IHDR": w, h, ch = *struct.unpack(">II", body[:8]), {2: 3, 6: 4}[body[9]]
        if kind == b"IDAT": idat += body
        pos += 12 + n
    assert len(zlib.decompress(idat)) == h * (w * ch + 1), path
    return w, h
decoded = set()
for f in sys.argv[3:]:
    w, h = png_stream_ok(f"{sys.argv[1]}/{f}.png")
    assert 1000 <= w <= 1600 and 400 <= h <= 1400, (f, w, h)
    kind = f.split("_head")[0].rstrip("0123456789")
    if kind not in decoded:  # one full decode per kind of figure (pure Python is slow)
        decoded.add(kind)
        png = read_png(f"{sys.argv[1]}/{f}.png")
        colours, _ = region_stats(png, 0, 0, 1, 1)
        assert colours > 20, (f, "looks blank", colours)
    root = ET.parse(f"{sys.argv[1]}/{f}.svg").getroot()
    assert root.tag.endswith("svg"), (f, root.tag)
PY
check "no temporary file left" test -z "$(find "$R" -name '*.tmp.*')"
check "manifest: schema, versions, hashes, settings, files" python3 - "$R" "$W" <<'PY'
import json, os, sys
R, W = sys.argv[1], sys.argv[2]
m = json.load(open(f"{R}/manifest.json"))
def fnv(b):
    h = 1469598103934665603
    for c in b: h = ((h ^ c) * 1099511628211) & (2**64 - 1)
    return f"{h:016x}"
assert m["schema_version"] == 1 and m["kind"] == "report" and m["spanscope_version"]
assert m["model"]["fnv1a64"] == fnv(open(f"{W}/model/model.safetensors", "rb").read())
assert m["document"]["fnv1a64"] == fnv(open(f"{W}/doc.txt", "rb").read())
assert m["pattern"] == "full*2,window:256*2"
s = m["settings"]
assert s["layers"] == [0, 3] and s["heads"] == "all" and s["sweep"] and s["sparse"] == "window:256" and s["pool"] == 64
assert (s["tint"], s["query_token"], s["select_layer"], s["select_head"]) == ("attention", 700, 3, 1), s
assert s["compare"] == "full*3,block:128*1" and (s["text_first"], s["text_tokens"]) == (500, 400), s
assert [f["name"] for f in m["figures"]][-4:] == ["document_text", "layer_stack", "compare_layers", "compare_loss"]
assert sorted(m["files"]) == sorted(f for f in os.listdir(R)), set(os.listdir(R)) ^ set(m["files"])
html = open(f"{R}/index.html").read()
for f in m["figures"]:
    assert f'src="{f["name"]}.png"' in html, f["name"]
PY
check "CSV numbers equal the analysis and sweep JSON" python3 - "$R" "$W/a.json" "$W/s.json" <<'PY'
import csv, json, math, sys
R = sys.argv[1]
a, s = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
def rows(name): return list(csv.DictReader(open(f"{R}/{name}.csv")))
def close(x, y, rel=1e-6, abs_=1e-9):
    assert math.isclose(float(x), float(y), rel_tol=rel, abs_tol=abs_), (x, y)
d = rows("distance_profile")
assert len(d) == 4 * len(a["layers"][0]["head_mean"]["bin_mass"])
for r in d:
    close(r["mass"], a["layers"][int(r["layer"])]["head_mean"]["bin_mass"][int(r["bin"])], 1e-12, 0)
    assert r["spec"] == a["layers"][int(r["layer"])]["spec"]
for l in (0, 3):
    la = a["layers"][l]; P, Q = la["pool_rows"], la["pool_cols"]; pooled = la["pooled"]
    for h in (0, 1, None):
        name = f"attention_map_layer{l:02d}" + (f"_head{h}" if h is not None else "")
        m = list(csv.reader(open(f"{R}/{name}.csv")))
        assert len(m) == P + 1 and len(m[0]) == Q + 2, (name, len(m), len(m[0]))
        for i in range(P):
            for j in range(Q):
                want = pooled[(h * P + i) * Q + j] if h is not None else sum(pooled[(k * P + i) * Q + j] for k in (0, 1)) / 2
                close(m[i + 1][j + 2], want, 1e-6, 1e-12)
t = rows("token_loss")
assert len(t) == len(a["token_loss"]) == a["tokens"] - 1
for r, want in zip(t, a["token_loss"]): close(r["loss_pattern"], want)
full = [float(r["loss_all_full"]) for r in t]
close(sum(full) / len(full), s["points"][-1]["mean_loss"], 1e-6)
sw = rows("perplexity_vs_cost")
assert len(sw) == len(s["points"]) == 5
for r, p in zip(sw, s["points"]):
    assert int(r["boundary"]) == p["boundary"]
    for k in ("relative_cost", "mean_loss", "perplexity"): close(r[k], p[k], 1e-9)
c = rows("cost_table")
for r, want in zip(c, a["cost"]["layers"]):
    for k in ("pairs", "flops", "bytes", "kv_cache_bytes", "share_of_full"): close(r[k], want[k], 1e-12, 0)
assert c[-1]["layer"] == "total" and c[-1]["spec"] == a["pattern"]
close(c[-1]["share_of_full"], a["cost"]["relative_cost"], 1e-12, 0)
close(c[-1]["pairs"], a["cost"]["pairs"], 0, 0)
PY
check "document, layer stack and compare CSVs equal the analysis JSON" python3 - "$R" "$W/a.json" "$W/c.json" "$W/doc.txt" <<'PY'
import csv, json, math, re, sys
R = sys.argv[1]
a, c = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
doc = open(sys.argv[4], "rb").read()
def rows(name): return list(csv.DictReader(open(f"{R}/{name}.csv", newline="")))
def close(x, y, rel=1e-6, abs_=1e-9):
    assert math.isclose(float(x), float(y), rel_tol=rel, abs_tol=abs_), (x, y)
T, H, layer, head, query = a["tokens"], 2, 3, 1, 700
# Document text: 400 tokens centred on the query; loss of token t is token_loss[t-1]; the attention
# column is head 1's exact row of query 700 in layer 3, empty after the query.
d = rows("document_text")
assert [int(r["position"]) for r in d] == list(range(500, 900)), (d[0]["position"], len(d))
row = a["layers"][layer]["rows"]  # (R=1, H, T)
assert len(row) == H * T
full = {int(r["position"]) + 1: r["loss_all_full"] for r in rows("token_loss")}
for r in d:
    t = int(r["position"])
    close(r["loss"], a["token_loss"][t - 1])
    assert r["loss_all_full"] == full[t], (t, r["loss_all_full"], full[t])
    close(r["loss_minus_all_full"], float(r["loss"]) - float(r["loss_all_full"]), 1e-5, 1e-6)
    close(r["beyond_span_mass"], a["layers"][layer]["beyond_per_token"][t], 1e-6, 1e-12)
    if t <= query: close(r["attention"], row[head * T + t], 1e-6, 1e-12)
    else: assert r["attention"] == "", (t, r["attention"])
# Layer 3 is window:256 and query 700 sees keys 445..700: the window holds 500..700 of them.
in_window = sum(row[head * T + k] for k in range(500, 701))
close(sum(float(r["attention"]) for r in d if r["attention"]), in_window, 1e-5)
# The text column, unescaped and joined, is the document's bytes over those tokens.
def unescape(s): return re.sub(rb"\\(x[0-9A-F]{2}|n|t|r|\\)", lambda m: {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"\\": b"\\"}.get(m.group(1)) or bytes([int(m.group(1)[1:], 16)]), s.encode())
text = b"".join(unescape(r["text"]) for r in d)
assert len(text) > 800 and doc.count(text) == 1, len(text)
# Layer stack: head 1's statistics, the cost model's pairs, the boundary below layer 2.
st = rows("layer_stack")
assert [r["spec"] for r in st] == [l["spec"] for l in a["layers"]]
for l, r in enumerate(st):
    la, h = a["layers"][l], a["layers"][l]["heads"][head]
    assert r["full_below_boundary"] == ("1" if l < 2 else "0")
    close(r["pairs"], la["cost"]["pairs"], 0, 0)
    close(r["share_of_full"], la["cost"]["share_of_full"], 1e-12, 0)
    for k in ("beyond_mass", "mean_distance", "entropy", "sink_mass"): close(r[k], h[k], 1e-12, 1e-15)
# Compare: the two analyses side by side, in long form.
cl = {(r["layer"], r["quantity"]): r for r in rows("compare_layers")}
for k in ("mean_loss", "perplexity"):
    close(cl["all", k]["current"], a[k], 1e-12); close(cl["all", k]["compare"], c[k], 1e-12)
    close(cl["all", k]["compare_minus_current"], c[k] - a[k], 1e-6, 1e-12)
close(cl["all", "relative_cost"]["current"], a["cost"]["relative_cost"], 1e-12)
close(cl["all", "relative_cost"]["compare"], c["cost"]["relative_cost"], 1e-12)
assert (cl["all", "beyond_span"]["current"], cl["all", "beyond_span"]["compare"]) == ("256", "128")
for l in range(4):
    assert (cl[str(l), "spec"]["current"], cl[str(l), "spec"]["compare"]) == (a["layers"][l]["spec"], c["layers"][l]["spec"])
    for k in ("beyond_mass", "mean_distance", "entropy", "sink_mass"):
        close(cl[str(l), k]["current"], a["layers"][l]["heads"][head][k], 1e-12, 1e-15)
        close(cl[str(l), k]["compare"], c["layers"][l]["heads"][head][k], 1e-12, 1e-15)
lo = rows("compare_loss")
assert len(lo) == T - 1
for r, x, y in zip(lo, a["token_loss"], c["token_loss"]):
    close(r["loss_current"], x); close(r["loss_compare"], y); close(r["compare_minus_current"], y - x, 1e-5, 1e-6)
assert any(float(r["compare_minus_current"]) != 0 for r in lo[200:])  # the patterns differ beyond 128 tokens
assert all(float(r["compare_minus_current"]) == 0 for r in lo[:127])  # and agree before
PY
expect_error "--tint attention needs --query" "needs --query" \
  "$CLI" report --model "$W/model" --doc "$W/doc.txt" --tint attention --out "$W/noquery"
expect_error "--query past the document" "past the document" \
  "$CLI" report --model "$W/model" --doc "$W/doc.txt" --tint attention --query 99999 --out "$W/farquery"
expect_error "a bad --compare pattern" "bogus" "$CLI" report --model "$W/model" --doc "$W/doc.txt" --compare bogus:1 --out "$W/badcmp"
check "refused reports wrote no file" test ! -e "$W/noquery" -a -z "$(ls -A "$W/farquery" 2>/dev/null)" -a ! -e "$W/badcmp"

# Regeneration from the manifest, from another working directory.
(cd "$W" && "$CLI" report --from "$R/manifest.json" --out "$W/again" >/dev/null 2>"$W/again.err")
check "report --from manifest.json exits 0" test $? -eq 0
same_csvs() { for f in "$R"/*.csv; do cmp -s "$f" "$W/again/$(basename "$f")" || { echo "differs: $f"; return 1; }; done; }
check "regenerated CSVs are identical" same_csvs
check "regenerated report has the same files" test "$(ls "$R")" = "$(ls "$W/again")"
cp "$W/doc.txt" "$W/doc.orig" && echo "one more line" >>"$W/doc.txt"
expect_error "--from refuses a changed document" "document changed since the manifest was written" \
  "$CLI" report --from "$R/manifest.json" --out "$W/changed"
check "refused regeneration wrote nothing" test ! -e "$W/changed"
mv "$W/doc.orig" "$W/doc.txt"

# --first-tokens: every figure and CSV covers the first N tokens; the manifest keeps N.
"$CLI" report --model "$W/model" --doc "$W/doc.txt" --first-tokens 200 --pool 32 --out "$W/first" >/dev/null 2>"$W/first.err"
python3 - "$W/first" <<'PY'
import csv, json, sys
d = sys.argv[1]
m = json.load(open(d + "/manifest.json"))
assert m["settings"]["first_tokens"] == 200, m["settings"]
assert len(list(csv.DictReader(open(d + "/token_loss.csv")))) == 199
assert len(list(csv.DictReader(open(d + "/document_text.csv")))) <= 200
PY
check "report --first-tokens 200: CSVs cover 200 tokens, the manifest says so" test $? -eq 0 || cat "$W/first.err"

# Never overwrite without --force; refuse before any work and write nothing.
snapshot() { (cd "$1" && find . -type f -printf '%p %s %T@\n' | sort); }
before=$(snapshot "$R")
expect_error "existing report is not overwritten" "$R/distance_profile.png: already exists" \
  "$CLI" report --model "$W/model" --doc "$W/doc.txt" --pattern "$P" --sweep --sparse window:256 --pool 64 --layers 0,3 --heads all --out "$R"
check "refused report left every file as it was" test "$before" = "$(snapshot "$R")"
mkdir "$W/partial" && echo "mine" >"$W/partial/token_loss.csv"
expect_error "one existing file is enough to refuse" "token_loss.csv: already exists" \
  "$CLI" report --model "$W/model" --doc "$W/doc.txt" --out "$W/partial"
check "refused report wrote nothing" test "$(ls "$W/partial")" = "token_loss.csv" -a "$(cat "$W/partial/token_loss.csv")" = "mine"
"$CLI" report --model "$W/model" --doc "$W/doc.txt" --out "$W/partial" --force >/dev/null 2>&1
check "--force overwrites" test $? -eq 0 -a "$(head -c 8 "$W/partial/token_loss.csv")" = "position"

# Bad output paths and failing writes: one line, no temporary or half-written file.
echo x >"$W/afile"
expect_error "output folder under a file" "afile" "$CLI" report --model "$W/model" --doc "$W/doc.txt" --out "$W/afile/rep"
expect_error "output folder is a file" "exists and is not a folder" "$CLI" report --model "$W/model" --doc "$W/doc.txt" --out "$W/afile"
if [ "$(id -u)" -ne 0 ]; then  # root ignores permissions
  mkdir "$W/ro" && chmod 555 "$W/ro"
  expect_error "unwritable output folder" "$W/ro" "$CLI" report --model "$W/model" --doc "$W/doc.txt" --out "$W/ro"
  check "unwritable folder stays empty" test -z "$(ls -A "$W/ro")"
fi
# A disk that fills midway: a file size limit makes write() fail with EFBIG (SIGXFSZ ignored).
(trap '' XFSZ; ulimit -f 120; exec "$CLI" report --model "$W/model" --doc "$W/doc.txt" --sweep --out "$W/full") \
  >/dev/null 2>"$W/full.err"
rc=$?
check "a write failing midway exits non-zero with one error line" \
  test "$rc" -ne 0 -a "$(grep -c 'error:' "$W/full.err")" -eq 1
grep 'error:' "$W/full.err"
check "the failing write names its file and reason" grep -qE "error: $W/full/[a-z_0-9]+\.(png|svg|pdf|csv): cannot write \(File too large\)" "$W/full.err"
check "no temporary file left after the failure" test -z "$(find "$W/full" -name '*.tmp.*')"
check "no manifest for an incomplete report" test ! -e "$W/full/manifest.json"
check "every file left is complete" python3 - "$W/full" "$HERE" <<'PY'
import os, subprocess, sys, xml.etree.ElementTree as ET
sys.path.insert(0, sys.argv[2])
from png_check import read_png
for f in os.listdir(sys.argv[1]):
    p = os.path.join(sys.argv[1], f)
    if f.endswith(".png"): read_png(p)
    elif f.endswith(".svg"): ET.parse(p)
    elif f.endswith(".pdf"): subprocess.run(["pdfinfo", p], check=True, capture_output=True)
    elif f.endswith(".csv"): assert open(p).read().endswith("\n")
PY

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
