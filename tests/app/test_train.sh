#!/usr/bin/env bash
# spanscope-cli tokenize / train / evaluate on the CPU with a tiny model: the loss falls, a run
# cut off (--stop-after, SIGTERM) resumes from the same step to bit-identical weights, and bad
# training inputs fail with one clear line before any work is done.
set -uo pipefail
CLI=${SPANSCOPE_CLI:?}
W=$(mktemp -d /tmp/spanscope-train-XXXXXX)
trap 'rm -rf "$W"' EXIT
L=/usr/share/common-licenses
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

# A corpus in the builder's format: documents separated by <|endoftext|> lines.
{ cat $L/GPL-2; echo '<|endoftext|>'; cat $L/Apache-2.0; echo '<|endoftext|>'; cat $L/LGPL-2.1; } >"$W/train.txt"
cat $L/MPL-2.0 >"$W/val.txt"
"$CLI" train-tokenizer --vocab 400 --out "$W/tok.json" "$W/train.txt" >"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
"$CLI" tokenize --tokenizer "$W/tok.json" --out "$W/train.tokens" "$W/train.txt" >"$W/tok.out" 2>&1
check "tokenize exits 0" test $? -eq 0
check "tokenize counts 3 documents" grep -q "3 documents" "$W/tok.out"
"$CLI" tokenize --tokenizer "$W/tok.json" --out "$W/val.tokens" "$W/val.txt" >>"$W/tok.out" 2>&1
check "token file decodes to the corpus" python3 - "$W/train.tokens" "$W/tok.json" "$W/train.txt" <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"SPTOKENS"
version, vocab, eot, docs, n = struct.unpack("<IIIIQ", data[8:32])
ids = struct.unpack("<%dH" % n, data[32:])
assert len(data) == 32 + 2 * n and docs == 3 and ids.count(eot) == 3 and ids[-1] == eot
tok = json.load(open(sys.argv[2]))
# byte-level decoding of the GPT-2 alphabet
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs = bs[:] + [256 + i for i in range(256) if i not in bs]
bs = bs + [i for i in range(256) if i not in bs]
byte_of = {chr(c): b for b, c in zip(bs, cs)}
inv = {v: k for k, v in tok["model"]["vocab"].items()}
docs = [b""]
for i in ids:
    if i == eot:
        docs.append(b"")
    else:
        docs[-1] += bytes(byte_of[ch] for ch in inv[i])
want = [d.strip("\n") for d in open(sys.argv[3], encoding="utf-8").read().split("<|endoftext|>")]
got = [d.decode("utf-8").strip("\n") for d in docs[:-1]]
assert got == want, "decoded documents differ"
PY

COMMON=(--train "$W/train.tokens" --val "$W/val.tokens" --tokenizer "$W/tok.json" --layers 2 --hidden 64 --heads 2
        --intermediate 128 --context 64 --batch 8 --steps 60 --lr 3e-3 --warmup 5 --eval-every 20 --log-every 10
        --checkpoint-every 25 --pattern "full,window:16" --device cpu)
"$CLI" train "${COMMON[@]}" --out "$W/a" >"$W/a.out" 2>"$W/a.err"
check "train exits 0" test $? -eq 0
check "progress lines show loss, tokens/s and time left" grep -qE '^\[train\] step 10/60  loss [0-9.]+  lr .* tok/s  left ' "$W/a.err"
check "model folder and record written" test -f "$W/a/model.safetensors" -a -f "$W/a/config.json" -a -f "$W/a/tokenizer.json" -a -f "$W/a/training.json"
check "record is complete and the loss fell" python3 - "$W/a/training.json" "$W/a/config.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2]))
l = r["losses"]
assert len(l) == 60 and r["steps"] == 60 and r["tokens"] == 60 * 8 * 64
first, last = sum(l[:5]) / 5, sum(l[-5:]) / 5
print(f"    loss {first:.3f} -> {last:.3f}, val {r['evals'][0]['val_loss']:.3f} -> {r['final_val_loss']:.3f}")
assert last < first - 0.8, (first, last)
assert r["evals"][-1]["val_loss"] < r["evals"][0]["val_loss"]
assert len(r["data"]["train"]["hash"]) == 16 and r["data"]["train"]["documents"] == 3
assert "train --train" in r["runs"][0]["command"]
assert c["attention_pattern"] in ("full,window:16", "full*1,window:16*1") and c["max_position_embeddings"] == 64
PY
"$CLI" evaluate --model "$W/a" --tokens "$W/val.tokens" --context 64 --json "$W/eval.json" >"$W/eval.out" 2>&1
check "evaluate reports a loss near the training's validation loss" python3 - "$W/eval.json" "$W/a/training.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
print(f"    evaluate {e['loss']:.3f}, training val {r['final_val_loss']:.3f}")
assert abs(e["loss"] - r["final_val_loss"]) < 0.3
PY

# The training path (SDPA with the pattern's boolean masks) and the analysis path (spanscope's
# blocked attention) must compute the same loss on the same tokens: one window over a document.
head -c 3000 $L/MPL-2.0 >"$W/d.txt"
"$CLI" tokenize --tokenizer "$W/tok.json" --out "$W/d.tokens" "$W/d.txt" >/dev/null 2>&1
"$CLI" analyze --model "$W/a" --doc "$W/d.txt" --json "$W/d.json" >/dev/null 2>&1
n=$(python3 -c "import json; print(json.load(open('$W/d.json'))['tokens'])")
"$CLI" evaluate --model "$W/a" --tokens "$W/d.tokens" --context $((n - 1)) --json "$W/d.eval.json" >/dev/null 2>&1
check "training and analysis compute the same loss (same masks)" python3 - "$W/d.json" "$W/d.eval.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["mean_loss"]; e = json.load(open(sys.argv[2]))["loss"]
print(f"    analysis {a:.6f}, training evaluation {e:.6f}")
assert abs(a - e) < 1e-4
PY

# The SDPA fallback (dense masks) trains to the same losses as spanscope's kernels.
SPANSCOPE_TRAIN_ATTENTION=sdpa "$CLI" train "${COMMON[@]}" --steps 20 --out "$W/sdpa" >/dev/null 2>&1
"$CLI" train "${COMMON[@]}" --steps 20 --out "$W/own" >/dev/null 2>&1
check "SDPA fallback and own kernels give the same training losses" python3 - "$W/sdpa/training.json" "$W/own/training.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["losses"]; b = json.load(open(sys.argv[2]))["losses"]
assert len(a) == len(b) == 20 and max(abs(x - y) for x, y in zip(a, b)) < 1e-3, (a[-3:], b[-3:])
PY

# Cut off after 33 steps, then resumed: the same steps, the same losses, the same weights.
"$CLI" train "${COMMON[@]}" --out "$W/b" --stop-after 33 >"$W/b.out" 2>&1
check "a stopped run leaves a checkpoint and no model" test -f "$W/b/checkpoint/state.json" -a ! -f "$W/b/model.safetensors"
"$CLI" train "${COMMON[@]}" --out "$W/b" >"$W/b2.out" 2>"$W/b2.err"
check "resume says so" grep -q "resumed from the checkpoint" "$W/b2.err"
check "resumed run continues from step 33" python3 - "$W/b/training.json" "$W/a/training.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1])); a = json.load(open(sys.argv[2]))
assert [r["from_step"] for r in b["runs"]] == [0, 33]
assert b["losses"] == a["losses"], "losses differ from the uninterrupted run"
PY
check "resumed weights are identical to the uninterrupted run" cmp -s "$W/a/model.safetensors" "$W/b/model.safetensors"

# SIGTERM in the middle: checkpoint, exit 130, then resume to the end.
"$CLI" train "${COMMON[@]}" --steps 400 --checkpoint-every 1000 --out "$W/c" >"$W/c.out" 2>"$W/c.err" &
pid=$!
for _ in $(seq 1 300); do grep -q "step 10/" "$W/c.err" && break; sleep 0.1; done
kill -TERM $pid; wait $pid; rc=$?
check "SIGTERM stops with exit 130" test $rc -eq 130
check "SIGTERM leaves a checkpoint" python3 -c "import json,sys; s=json.load(open('$W/c/checkpoint/state.json')); assert 10 <= s['step'] < 400"
"$CLI" train "${COMMON[@]}" --steps 400 --checkpoint-every 1000 --out "$W/c" --stop-after 5 >/dev/null 2>&1
check "resume after SIGTERM continues" python3 -c "import json; s=json.load(open('$W/c/checkpoint/state.json')); assert len(s['losses']) == s['step'] and len(s['runs']) == 2"

# Bad inputs: one line naming what is wrong, nothing written.
expect_error "missing training data" "no-such.tokens" "$CLI" train "${COMMON[@]}" --train "$W/no-such.tokens" --out "$W/e1"
head -c 1000 "$W/train.tokens" >"$W/trunc.tokens"
expect_error "truncated token file" "trunc.tokens: header says" "$CLI" train "${COMMON[@]}" --train "$W/trunc.tokens" --out "$W/e2"
printf 'hello world' >"$W/text.tokens"
expect_error "a text file as token data" "not a spanscope token file" "$CLI" train "${COMMON[@]}" --val "$W/text.tokens" --out "$W/e3"
expect_error "pattern does not fit the model" "--pattern" "$CLI" train "${COMMON[@]}" --pattern "full*3" --out "$W/e4"
"$CLI" train-tokenizer --vocab 300 --out "$W/tok300.json" "$W/train.txt" >/dev/null 2>&1
expect_error "tokenizer and data disagree" "tok300.json has 300" "$CLI" train "${COMMON[@]}" --tokenizer "$W/tok300.json" --out "$W/e5"
expect_error "context longer than the data" "fewer than one window" "$CLI" train "${COMMON[@]}" --context 100000 --out "$W/e6"
touch "$W/afile"
expect_error "unwritable output" "afile/out" "$CLI" train "${COMMON[@]}" --out "$W/afile/out"
expect_error "resume with other options" "was made with context" "$CLI" train "${COMMON[@]}" --steps 400 --checkpoint-every 1000 --context 32 --out "$W/c"
expect_error "a finished model is not overwritten" "already" "$CLI" train "${COMMON[@]}" --seed 2 --out "$W/a"
check "failed runs wrote nothing" test ! -e "$W/e1" -a ! -e "$W/e2" -a ! -e "$W/e4" -a ! -e "$W/e5" -a ! -e "$W/e6"
expect_error "continual training needs --init or --tokenizer" "--init" "$CLI" train --train "$W/train.tokens" --val "$W/val.tokens" --out "$W/e7"

# Continual training from the finished model at a longer context into another pattern.
"$CLI" train --init "$W/a" --train "$W/train.tokens" --val "$W/val.tokens" --out "$W/d" --context 128 --batch 4 \
  --steps 10 --warmup 2 --lr 1e-3 --pattern "full,block:32" --device cpu --eval-every 10 >"$W/d.out" 2>"$W/d.err"
check "continual training from a model folder" python3 - "$W/d/training.json" "$W/d/config.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2]))
assert c["attention_pattern"] in ("full,block:32", "full*1,block:32*1") and c["max_position_embeddings"] == 128
assert r["options"]["init"].endswith("/a")
# starting from a trained model: the first loss is far below a random model's ln(400) = 6.0
print(f"    continual: first loss {r['losses'][0]:.3f}")
assert r["losses"][0] < 5.5, r["losses"][0]
PY

# SparseK (issue 6): a tiny model with a SparseK layer trains on the CPU, its scoring network learns,
# and the saved model loads again.
"$CLI" train "${COMMON[@]}" --pattern "full,sparsek:4/8" --out "$W/sk" >"$W/sk.out" 2>&1
check "a SparseK model trains, its loss falls and its scorer learns" python3 - "$W/sk/training.json" "$W/sk/model.safetensors" <<'PY'
import json, struct, sys
r = json.load(open(sys.argv[1])); l = r["losses"]
first, last = sum(l[:5]) / 5, sum(l[-5:]) / 5
print(f"    sparsek loss {first:.3f} -> {last:.3f}")
assert last < first - 0.8
d = open(sys.argv[2], "rb").read(); n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n])
t = h["model.layers.1.self_attn.sparsek_score.weight"]
assert t["shape"] == [2, 32] and "model.layers.0.self_attn.sparsek_score.weight" not in h
raw = d[8 + n + t["data_offsets"][0]: 8 + n + t["data_offsets"][1]]
vals = [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
assert max(abs(v) for v in vals) > 1e-4, "the scoring network did not move from its zero start"
# The recency slope, one per head, started at --sparsek-recency's default 1/16 and trained with the rest.
b = h["model.layers.1.self_attn.sparsek_score.position"]
raw = d[8 + n + b["data_offsets"][0]: 8 + n + b["data_offsets"][1]]
beta = [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
print(f"    recency slopes {beta}")
assert b["shape"] == [2] and all(0 < x < 0.2 for x in beta) and r["options"]["sparsek_recency"] == 0.0625, beta
PY
"$CLI" evaluate --model "$W/sk" --tokens "$W/val.tokens" --context 64 >"$W/sk.eval" 2>&1
check "a SparseK model loads and evaluates" grep -q "loss [0-9.]* nats/token" "$W/sk.eval"
# Its selections in the analysis: the CLI's per-layer lines and the JSON's selections block.
head -c 3000 /usr/share/common-licenses/GPL-3 >"$W/sk_doc.txt"
"$CLI" analyze --model "$W/sk" --doc "$W/sk_doc.txt" --rows 200 --json "$W/sk_an.json" >"$W/sk_an.out" 2>&1
check "a SparseK model's analysis prints its selections" grep -q "sparsek:4/8: [0-9.]* keys selected" "$W/sk_an.out"
check "the analysis JSON carries the selections" python3 - "$W/sk_an.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); T = j["tokens"]
full, sk = j["layers"][0], j["layers"][1]
assert "selections" not in full and "selections" in sk
s = sk["selections"]
assert s["top_k"] == 4 and s["window"] == 8 and len(s["key_picks"]) == T
# the mask sum per query is min(4, candidates) averaged over the queries: a bit under 4
want = sum(min(4, max(0, i - 8 + 1)) for i in range(T)) / T
assert abs(s["mask_per_query"] - want) < 1e-3, (s["mask_per_query"], want)
assert s["selected_per_query"] >= s["mask_per_query"] - 1e-9
keys = [k for head in s["rows"][0] for k in head["keys"]]
assert keys and max(keys) <= 200 - 8, keys
print(f"    selected per query {s['selected_per_query']:.2f}, mask {s['mask_per_query']:.3f}")
PY
# The report's document figure tinted by the selections: picks per token, and query 200's own keys.
"$CLI" report --model "$W/sk" --doc "$W/sk_doc.txt" --tint selections --select-layer 1 --out "$W/sk_rep" >"$W/sk_rep.out" 2>&1
"$CLI" report --model "$W/sk" --doc "$W/sk_doc.txt" --tint selections --select-layer 1 --query 200 --out "$W/sk_rep2" >>"$W/sk_rep.out" 2>&1
check "the document figure's selection tint matches the analysis" python3 - "$W/sk_an.json" "$W/sk_rep/document_text.csv" "$W/sk_rep2/document_text.csv" <<'PY'
import csv, json, sys
s = json.load(open(sys.argv[1]))["layers"][1]["selections"]
picks = {int(r["position"]): float(r["sparsek_selection"]) for r in csv.DictReader(open(sys.argv[2]))}
assert picks and all(abs(v - s["key_picks"][p]) < 1e-4 for p, v in picks.items()), "picks differ from the JSON"
own = {int(r["position"]): r["sparsek_selection"] for r in csv.DictReader(open(sys.argv[3]))}
want = {}
for head in s["rows"][0]:
    for k, m in zip(head["keys"], head["mask"]):
        want[k] = want.get(k, 0.0) + m / len(s["rows"][0])
got = {p: float(v) for p, v in own.items() if v not in ("", "nan")}
shown = {k: m for k, m in want.items() if k in own}
assert shown and got.keys() == shown.keys() and all(abs(got[k] - shown[k]) < 1e-4 for k in got), (got, shown)
print(f"    query 200 selected {len(want)} keys ({len(shown)} in the figure's window)")
PY
expect_error "a negative recency slope is refused" "--sparsek-recency must be in" "$CLI" train "${COMMON[@]}" --pattern "full,sparsek:4/8" --sparsek-recency -1 --out "$W/sk3"
expect_error "SparseK needs a short context (dense reference)" "at most 4096" "$CLI" train "${COMMON[@]}" --pattern "full,sparsek:4/8" --context 8192 --out "$W/sk2"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
