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

# build_on_device BUILD LOGDIR TARGET...: configures BUILD against this machine's torch (no GUI,
# headers and GoogleTest from .devdeps/) and builds the targets; logs in LOGDIR, their tails on
# failure. Prints the GPU and the build time.
build_on_device() {
  local build=$1 logs=$2; shift 2
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$logs/device.log"
  local prefix s; prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DSPANSCOPE_DEPS_DIR="$PWD/.devdeps" -DSPANSCOPE_GUI=OFF >"$logs/configure.log" 2>&1 || { tail -20 "$logs/configure.log"; return 1; }
  s=$(date +%s)
  cmake --build "$build" -j "$(nproc)" --target "$@" >"$logs/build.log" 2>&1 || { tail -30 "$logs/build.log"; return 1; }
  echo "built $* in $(( $(date +%s) - s ))s"
}

# probe_train CLI WORKDIR LOG STEPS ARGS...: a few steps of a throwaway training run in WORKDIR/probe
# (ARGS: everything but the step, log, eval and checkpoint options); prints the steady tok/s.
probe_train() {
  local cli=$1 work=$2 log=$3 steps=$4; shift 4
  rm -rf "$work/probe"
  "$cli" train "$@" --steps 100000 --stop-after "$steps" --log-every 5 \
    --eval-every 100000 --checkpoint-every 100000 --out "$work/probe" >"$log" 2>&1
  toks_per_s "$log"
}
