#!/usr/bin/env bash
# spanscope-cli end to end on a real document: tokenizer training, model creation, analyze,
# sweep, cost, and one clear error line with a non-zero exit for each kind of bad input.
set -uo pipefail
CLI=${SPANSCOPE_CLI:?}
W=$(mktemp -d /tmp/spanscope-cli-XXXXXX)
trap 'rm -rf "$W"' EXIT
L=/usr/share/common-licenses
DOC=$L/GPL-3
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

"$CLI" train-tokenizer --out "$W/tok.json" --vocab 512 $L/Apache-2.0 $L/GPL-2 $L/LGPL-2.1 >"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
"$CLI" init-model --out "$W/model" --tokenizer "$W/tok.json" --layers 4 --hidden 64 --heads 2 --intermediate 128 \
  --pattern "masformer:2,window:256" >>"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
check "model folder written" test -f "$W/model/model.safetensors" -a -f "$W/model/config.json" -a -f "$W/model/tokenizer.json"

"$CLI" analyze --model "$W/model" --doc "$DOC" --json "$W/a.json" --rows 0,100 --pool 32 >"$W/analyze.txt" 2>"$W/analyze.err"
check "analyze exits 0" test $? -eq 0
cat "$W/analyze.txt"
check "summary has a row per layer" test "$(grep -cE '^ +[0-9]+  (full|window)' "$W/analyze.txt")" -eq 4
check "summary shows loss and C" grep -qE '^cost +C = 0\.[0-9]+' "$W/analyze.txt"
check "progress reached 4/4" grep -q '4/4' "$W/analyze.err"
check "json is complete" python3 - "$W/a.json" <<'PY'
import json, math, sys
j = json.load(open(sys.argv[1]))
assert j["schema_version"] == 1 and j["kind"] == "analysis"
assert j["settings"]["document"].endswith("GPL-3") and j["settings"]["model_config"]["num_hidden_layers"] == 4
assert j["pattern"] == "full*2,window:256*2", j["pattern"]
n = j["tokens"]; assert n > 5000 and len(j["token_loss"]) == n - 1
assert abs(sum(j["token_loss"]) / (n - 1) - j["mean_loss"]) < 1e-3
assert len(j["layers"]) == 4
for l in j["layers"]:
    assert abs(sum(l["head_mean"]["bin_mass"]) - 1) < 1e-4
    assert len(l["rows"]) == 2 * 2 * n
assert j["layers"][2]["head_mean"]["beyond_mass"] == 0  # a window of 256 never reaches 256
assert 0 < j["cost"]["relative_cost"] < 1
PY

"$CLI" sweep --model "$W/model" --doc "$DOC" --sparse window:256 --json "$W/s.json" >"$W/sweep.txt" 2>/dev/null
check "sweep exits 0" test $? -eq 0
cat "$W/sweep.txt"
check "sweep has l = 0..4" test "$(grep -cE '^ +[0-4]  [01]\.[0-9]{4}' "$W/sweep.txt")" -eq 5
check "sweep json l=4 costs 1" python3 -c "import json,sys; p=json.load(open('$W/s.json'))['points']; assert p[4]['relative_cost']==1 and p[0]['relative_cost']<p[2]['relative_cost']"

"$CLI" cost --layers 24 --boundary 4 --sparse block:1024 --tokens 8192 >"$W/cost.txt"
check "cost reproduces the paper's 27.1%" grep -q '(27.1% of all-full' "$W/cost.txt"

# Bad input: one clear line, non-zero exit.
printf '' >"$W/empty.txt"
printf 'ok\n\xff\xfe binary' >"$W/binary.txt"
head -c 20000 $L/GPL-3 >"$W/short.txt"
expect_error "missing document" "nope.txt" "$CLI" analyze --model "$W/model" --doc "$W/nope.txt"
expect_error "empty document" "document is empty" "$CLI" analyze --model "$W/model" --doc "$W/empty.txt"
expect_error "binary document" "not valid UTF-8" "$CLI" analyze --model "$W/model" --doc "$W/binary.txt"
expect_error "document over the token limit" "more than the limit of 100" "$CLI" analyze --model "$W/model" --doc "$W/short.txt" --max-tokens 100
# --first-tokens: the analysis of a prefix is the whole document's, cut (attention is causal).
"$CLI" analyze --model "$W/model" --doc "$W/short.txt" --json "$W/whole.json" >/dev/null 2>&1
"$CLI" analyze --model "$W/model" --doc "$W/short.txt" --first-tokens 300 --max-tokens 300 --json "$W/first.json" >/dev/null 2>&1
python3 - "$W/whole.json" "$W/first.json" <<'PY'
import json, sys
w, f = (json.load(open(p)) for p in sys.argv[1:])
assert len(f["token_loss"]) == 299 and len(w["token_loss"]) > 1000, (len(f["token_loss"]), len(w["token_loss"]))
assert max(abs(a - b) for a, b in zip(f["token_loss"], w["token_loss"])) < 1e-4
PY
check "--first-tokens 300 analyses the first 300 tokens, with the whole document's losses" test $? -eq 0
expect_error "negative --first-tokens" "--first-tokens: -5 is negative" "$CLI" analyze --model "$W/model" --doc "$W/short.txt" --first-tokens=-5
expect_error "bad pattern" "unknown attention kind 'windw'" "$CLI" analyze --model "$W/model" --doc "$DOC" --pattern "full*2,windw:5*2"
expect_error "pattern with wrong layer count" "has 3 layers but the model has 4" "$CLI" analyze --model "$W/model" --doc "$DOC" --pattern "full*3"
expect_error "missing model" "model folder not found" "$CLI" analyze --model "$W/nomodel" --doc "$DOC"
cp -r "$W/model" "$W/broken"
truncate -s -1000 "$W/broken/model.safetensors"
expect_error "truncated weights" "model.safetensors" "$CLI" analyze --model "$W/broken" --doc "$DOC"
cp -r "$W/model" "$W/badtok"
echo '{"model": ' >"$W/badtok/tokenizer.json"
expect_error "corrupt tokenizer" "tokenizer.json" "$CLI" analyze --model "$W/badtok" --doc "$DOC"
expect_error "row out of range" "--rows" "$CLI" analyze --model "$W/model" --doc "$DOC" --rows 999999
expect_error "unwritable json" "/nonexistent-dir" "$CLI" analyze --model "$W/model" --doc "$W/short.txt" --json /nonexistent-dir/a.json

echo "cli checks: $passes ok, $fails failed"
[ "$fails" -eq 0 ]
