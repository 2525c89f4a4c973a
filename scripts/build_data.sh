#!/usr/bin/env bash
# Builds spanscope's training data from Debian 12 documentation packages:
#   1. downloads and unpacks the packages of scripts/corpus/sources.txt (apt-get download; ~600 MB,
#      kept in ~/.cache/spanscope/corpus-work, outside the clone);
#   2. extracts long English documents as plain text (scripts/corpus/build_corpus.py): train/val
#      text, the held-out sample documents, licences, statistics;
#   3. trains the byte-level BPE tokenizer (8192 tokens) with spanscope's own trainer;
#   4. encodes train and val into .tokens files for `spanscope-cli train`.
# Result in DATA_DIR (default data/, ignored by git): tokenizer.json, train.tokens, val.tokens,
# samples/ (+ index.json), LICENSES.md, stats.json. Every step is skipped when its output exists.
#   scripts/build_data.sh [BUILD_DIR] [DATA_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
DATA=${2:-$ROOT/data}
CLI="$BUILD/app/spanscope-cli"
WORK=${SPANSCOPE_CORPUS_WORK:-$HOME/.cache/spanscope/corpus-work}
CORPUS=${SPANSCOPE_CORPUS_OUT:-$HOME/.cache/spanscope/corpus-out}
VOCAB=${SPANSCOPE_VOCAB:-8192}
log() { echo "[data] $*" >&2; }
# setup.sh installs what is missing (Debian packages incl. groff and perl, torch) and builds.
[ -x "$CLI" ] || SPANSCOPE_BUILD="$BUILD" bash "$ROOT/scripts/setup.sh" build
mkdir -p "$DATA"

bash "$ROOT/scripts/corpus/fetch_packages.sh" "$WORK"
stamp="$CORPUS/stats.json"
if [ ! -f "$stamp" ] || [ -n "$(find "$ROOT/scripts/corpus" -newer "$stamp" -name '*.py' -o -newer "$stamp" -name 'sources.txt')" ]; then
  log "extracting documents into $CORPUS"
  python3 "$ROOT/scripts/corpus/build_corpus.py" "$WORK" "$CORPUS"
  rm -f "$DATA/tokenizer.json" "$DATA/train.tokens" "$DATA/val.tokens"
fi
if [ ! -f "$DATA/tokenizer.json" ]; then
  log "training the tokenizer ($VOCAB tokens) on $CORPUS/tokenizer_sample.txt"
  "$CLI" train-tokenizer --vocab "$VOCAB" --out "$DATA/tokenizer.json" "$CORPUS/tokenizer_sample.txt"
  rm -f "$DATA/train.tokens" "$DATA/val.tokens"
fi
for split in train val; do
  if [ ! -f "$DATA/$split.tokens" ]; then
    log "encoding $split"
    "$CLI" tokenize --tokenizer "$DATA/tokenizer.json" --out "$DATA/$split.tokens" "$CORPUS/$split.txt"
  fi
done
mkdir -p "$DATA/samples"
cp "$CORPUS"/samples/* "$DATA/samples/"
cp "$CORPUS/LICENSES.md" "$CORPUS/stats.json" "$DATA/"
log "done: $(du -sh "$DATA" | cut -f1) in $DATA"
