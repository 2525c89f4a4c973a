#!/usr/bin/env bash
# Downloads (without installing) the Debian 12 documentation packages that spanscope's corpus is
# built from, and unpacks each into WORK/pkg/<package>/ exactly as dpkg would install it.
# Idempotent: packages already downloaded or unpacked are skipped. Needs apt-get and dpkg-deb only.
#   scripts/corpus/fetch_packages.sh WORK
set -euo pipefail
WORK=${1:?usage: fetch_packages.sh WORK_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The package list lives in one place, sources.txt (package<TAB>what it gives the corpus).
mapfile -t PACKAGES < <(grep -v '^\s*#' "$HERE/sources.txt" | awk 'NF {print $1}' | sort -u)
mkdir -p "$WORK/debs" "$WORK/pkg"
cd "$WORK/debs"
chmod 777 . 2>/dev/null || true   # apt-get download runs as _apt when it can
missing=()
for p in "${PACKAGES[@]}"; do
  compgen -G "${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[corpus] downloading ${#missing[@]} Debian packages: ${missing[*]}" >&2
  apt-get download "${missing[@]}" >&2
fi
for p in "${PACKAGES[@]}"; do
  deb=$(ls "${p}"_*.deb | sort -V | tail -1)
  dest="$WORK/pkg/$p"
  if [ ! -f "$dest/.unpacked" ]; then
    rm -rf "$dest" && mkdir -p "$dest"
    dpkg-deb -x "$deb" "$dest"
    dpkg-deb -f "$deb" Version >"$dest/.unpacked"
  fi
  printf '%s\t%s\n' "$p" "$(cat "$dest/.unpacked")"
done >"$WORK/packages.tsv"
echo "[corpus] ${#PACKAGES[@]} packages unpacked under $WORK/pkg (versions in $WORK/packages.tsv)" >&2
