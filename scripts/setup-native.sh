#!/usr/bin/env bash
# Builds the optional native BLAS addon (packages/native-blas, npm name @heads/native-blas) that gives
# the wasm and cpu backends OpenBLAS matMul kernels (src/backend/native-matmul.ts). Idempotent.
#
# 1. Build prerequisites: a C/C++ toolchain, make, python3 (node-gyp) and OpenBLAS's headers and library.
#    When any is missing and we run as root with apt-get, installs Debian's
#    `build-essential python3 libopenblas-dev`; otherwise prints what to install.
#    Run before `npm ci` (which then builds the addon) or after it (then this step rebuilds it).
# 2. Rebuilds the addon through npm (`npm rebuild @heads/native-blas`, npm's own node-gyp). If an earlier
#    `npm ci` dropped the optional package because the build failed, re-creates its node_modules link
#    first (the same link `npm ci` makes for a `file:` dependency).
# 3. Loads the result and prints OpenBLAS's configuration.
#
# Without the addon the toolkit still works (stock/wrapped wasm kernels), so by default a missing
# prerequisite or a failed build is reported and the script exits 0. With --strict it exits 1 instead.
# Usage: bash scripts/setup-native.sh [--strict] [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."

strict=0
install=1
for arg in "$@"; do
  case "$arg" in
    --strict) strict=1 ;;
    --no-install) install=0 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "setup-native: unknown option $arg" >&2; exit 2 ;;
  esac
done

PKG=@heads/native-blas
DIR=packages/native-blas
DEBIAN_PACKAGES="build-essential python3 libopenblas-dev"

say() { echo "setup-native: $*"; }
give_up() {
  say "$1"
  say "native BLAS not built; heads will use the tfjs wasm kernels (with the transpose wrapper)."
  if [ "$strict" = 1 ]; then exit 1; fi
  exit 0
}

# True when a C program using cblas_sgemm compiles and links against OpenBLAS.
have_openblas() {
  local cc=${CC:-cc} tmp
  command -v "$cc" >/dev/null 2>&1 || return 1
  tmp=$(mktemp -d)
  printf '#include <cblas.h>\nint main(void){float a=1,b=1,c=0;cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,1,1,1,1.f,&a,1,&b,1,0.f,&c,1);return c==1.f?0:1;}\n' >"$tmp/t.c"
  local ok=1
  if "$cc" -I/usr/include/openblas "$tmp/t.c" -o "$tmp/t" -lopenblas >/dev/null 2>&1 && "$tmp/t"; then ok=0; fi
  rm -rf "$tmp"
  return $ok
}

missing_prereqs() {
  local m=()
  command -v "${CC:-cc}" >/dev/null 2>&1 || m+=("C compiler (${CC:-cc})")
  command -v "${CXX:-c++}" >/dev/null 2>&1 || m+=("C++ compiler (${CXX:-c++}, node-gyp links with it)")
  command -v make >/dev/null 2>&1 || m+=("make")
  command -v python3 >/dev/null 2>&1 || m+=("python3 (node-gyp)")
  if [ ${#m[@]} -eq 0 ] && ! have_openblas; then m+=("OpenBLAS headers and library (cblas.h, libopenblas.so)"); fi
  if [ ${#m[@]} -gt 0 ]; then printf '%s\n' "${m[@]}"; fi
}

# --- 1. prerequisites -----------------------------------------------------------------------------
missing=$(missing_prereqs)
if [ -n "$missing" ]; then
  say "missing build prerequisites:"
  while IFS= read -r line; do echo "  - $line"; done <<<"$missing"
  if [ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: $DEBIAN_PACKAGES"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $DEBIAN_PACKAGES >/dev/null; }; then
      give_up "apt-get could not install $DEBIAN_PACKAGES"
    fi
    missing=$(missing_prereqs)
    [ -z "$missing" ] || give_up "still missing after apt-get install: $missing"
  else
    say "install them, e.g. on Debian/Ubuntu:  sudo apt-get install $DEBIAN_PACKAGES"
    say "(Fedora: sudo dnf install gcc gcc-c++ make python3 openblas-devel)"
    give_up "prerequisites missing"
  fi
fi

# --- 2. build through npm ---------------------------------------------------------------------------
if [ ! -d node_modules ]; then
  say "build prerequisites present; node_modules is missing, so nothing to rebuild: 'npm ci' builds the addon"
  exit 0
fi
# node-gyp needs Node's headers; use installed ones (no download) unless npm already names a nodedir.
if [ -z "${npm_config_nodedir:-}" ] && [ -z "$(npm config get nodedir 2>/dev/null | grep -v '^undefined$' || true)" ]; then
  prefix=$(dirname "$(dirname "$(command -v node)")")
  if [ -f "$prefix/include/node/node_api.h" ]; then export npm_config_nodedir="$prefix"; fi
fi
if [ ! -e "node_modules/$PKG" ]; then
  say "re-linking the optional package that npm dropped: node_modules/$PKG -> $DIR"
  mkdir -p node_modules/@heads
  ln -sfn "../../$DIR" "node_modules/$PKG"
fi
say "building $PKG (npm rebuild $PKG)"
if ! npm rebuild "$PKG" --foreground-scripts; then
  give_up "the build failed (see the node-gyp output above)"
fi

# --- 3. check -------------------------------------------------------------------------------------
if ! node -e "
const { blas, loadError } = require('$PKG');
if (!blas) { console.error('setup-native: addon did not load: ' + (loadError && loadError.message)); process.exit(1); }
const c = blas.config();
console.log('setup-native: OK: ' + c.config + ' (core ' + c.corename + ', ' + c.threads + ' threads)');
"; then
  give_up "the addon was built but does not load"
fi
