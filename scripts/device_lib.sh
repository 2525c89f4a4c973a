# Helpers shared by the GPU-machine scripts (sourced, not run): scripts/gpu_train.sh and
# scripts/gpu_train_sparsek.sh.

# unpack_train_tokens PACK DEST: DEST/ gets PACK/data/* with train.tokens unpacked from
# train.tokens.xz and checked against its sha256 (scripts/pack_device_train.sh). Returns 1 on a
# mismatch.
unpack_train_tokens() {
  local pack=$1 dest=$2
  [ -f "$dest/train.tokens" ] && return 0
  mkdir -p "$dest"; cp -r "$pack/data/"* "$dest/"
  python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2] + '.part','wb'))" \
    "$pack/data/train.tokens.xz" "$dest/train.tokens"
  [ "$(sha256sum "$dest/train.tokens.part" | cut -d' ' -f1)" = "$(cat "$pack/data/train.tokens.sha256")" ] || return 1
  mv "$dest/train.tokens.part" "$dest/train.tokens"; rm -f "$dest/train.tokens.xz"
}

# toks_per_s LOG: steady tok/s of a train log: the progress line's rate is the mean since the first
# step (which pays for start-up), so the rate is taken between the middle and the last line.
toks_per_s() {
  python3 - "$1" <<'PY'
import re, sys
pts = [(int(a), float(b)) for a, b in re.findall(r"step (\d+)/\d+ .* (\d+) tok/s", open(sys.argv[1]).read())]
if len(pts) >= 3:
    (s1, r1), (s2, r2) = [p for p in pts if p[0] >= pts[-1][0] // 2][0], pts[-1]
    t1, t2 = s1 / r1, s2 / r2  # seconds per token-of-one-step units: t(S) = S * n / r(S)
    if s2 > s1 and t2 > t1:
        print(int((s2 - s1) / (t2 - t1)))
PY
}
