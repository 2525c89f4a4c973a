#!/usr/bin/env bash
# Copies what the build needs from this machine's Debian packages (header-only JSON and CLI
# libraries, GoogleTest) and the sample texts into .devdeps/ (git-ignored), for the GPU machine,
# which has CUDA and torch but no Debian packages. Never committed: it is carried per run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
D="$ROOT/.devdeps"
rm -rf "$D"; mkdir -p "$D/include" "$D/lib" "$D/docs"
cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/gtest "$D/include/"
cp /usr/lib/x86_64-linux-gnu/libgtest.a /usr/lib/x86_64-linux-gnu/libgtest_main.a "$D/lib/"
cp /usr/share/common-licenses/{GPL-3,GPL-2,Apache-2.0,LGPL-2.1,LGPL-3,GFDL-1.3,Artistic,MPL-2.0,CC0-1.0} "$D/docs/"
du -sh "$D"
