#!/usr/bin/env bash
# spanscope setup: one idempotent path used by both README commands and by CI.
#   scripts/setup.sh            install what is missing and build
#   scripts/setup.sh run        ... then run the main job (analysis of a sample document)
#   scripts/setup.sh test       ... then run every test
# What it installs: Debian packages (apt), the pinned torch wheel from PyPI into a virtual
# environment *outside* the clone (reused across clones), then configures and builds with CMake.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TORCH_VERSION=2.11.0
VENV=${SPANSCOPE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/spanscope/venv-torch-$TORCH_VERSION}
BUILD=${SPANSCOPE_BUILD:-$ROOT/build}
JOBS=${SPANSCOPE_JOBS:-$(nproc)}

APT_PACKAGES=(build-essential cmake ninja-build ccache git pkg-config python3 python3-venv python3-pip
  libgtest-dev googletest nlohmann-json3-dev libcli11-dev
  libimgui-dev libglfw3-dev libgl-dev libcairo2-dev fonts-dejavu-core xvfb xauth poppler-utils
  groff-base perl)  # groff-base, perl: the training corpus builder (scripts/build_data.sh)

log() { printf '[setup] %s\n' "$*" >&2; }

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_torch() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" 2>/dev/null; then
    return 0
  fi
  log "installing torch==$TORCH_VERSION into $VENV (once; reused by every clone)"
  mkdir -p "$(dirname "$VENV")"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==$TORCH_VERSION" numpy
}

configure_and_build() {
  local prefix
  prefix=$("$VENV/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  if [ ! -f "$BUILD/build.ninja" ]; then
    log "configuring in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" -DSPANSCOPE_PYTHON="$VENV/bin/python" >/dev/null
  fi
  log "building (ninja -j$JOBS)"
  cmake --build "$BUILD" -j "$JOBS"
}

main() {
  local what=${1:-build}
  install_apt
  install_torch
  configure_and_build
  case "$what" in
    build) ;;
    run)  shift; "$ROOT/scripts/run_main.sh" "$BUILD" "$@" ;;
    test) (cd "$BUILD" && ctest --output-on-failure -j "$JOBS" --timeout 900) ;;
    *) log "unknown command '$what' (use: build | run | test)"; exit 2 ;;
  esac
}
main "$@"
