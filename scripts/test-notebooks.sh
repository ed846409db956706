#!/usr/bin/env bash
# Executes every notebook in notebooks/ (or the ones named) headlessly with the tslab kernel and
# Debian's Jupyter, fails on any cell error with the real TypeScript message, and prints
# `N passed, N failed`. Executed copies go to nb-out/; --in-place writes the outputs into the notebooks
# (that is how the committed outputs are made).
#
# Set-up, once (Debian/Ubuntu, as root):
#   apt-get update
#   apt-get install -y --no-install-recommends jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel jupyter-core
#   apt-get install -y --no-install-recommends chromium     # optional: figures as PNG
#   npm ci                                                   # tslab (the kernel) is a dev dependency
# The kernel spec is committed in .jupyter/share/jupyter/kernels/tslab/; nothing is installed into
# the user's Jupyter. The notebooks import the built package (../dist), so this script builds first.
#
# Usage: bash scripts/test-notebooks.sh [--in-place] [--no-build] [notebooks/NN-name.ipynb ...]
set -u
cd "$(dirname "$0")/.."

PY=/usr/bin/python3   # Debian's Python: the one with Jupyter (a pyenv python3 on PATH has none)
DEBIAN_JUPYTER="jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel jupyter-core"

say() { echo "test-notebooks: $*"; }

build=1
driver_args=()
notebooks=()
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --in-place) driver_args+=(--in-place) ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) say "unknown option $arg"; exit 2 ;;
    *) notebooks+=("$arg") ;;
  esac
done

missing=0
if [ ! -x "$PY" ]; then
  say "missing: $PY (Debian's python3)"
  missing=1
else
  for mod in nbclient nbformat jupyter_client; do
    if ! "$PY" -c "import $mod" >/dev/null 2>&1; then
      say "missing: Python module $mod for $PY"
      missing=1
    fi
  done
fi
if [ "$missing" = 1 ]; then
  say "install Debian's Jupyter: apt-get update && apt-get install -y --no-install-recommends $DEBIAN_JUPYTER"
  echo "0 passed, 1 failed"
  exit 1
fi
if [ ! -x node_modules/.bin/tslab ]; then
  say "missing: node_modules/.bin/tslab (the TypeScript kernel); run npm ci"
  echo "0 passed, 1 failed"
  exit 1
fi
chromium=""
for c in /usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome /usr/bin/google-chrome-stable; do
  if [ -x "$c" ]; then chromium=$c; break; fi
done
if [ -z "$chromium" ]; then
  say "Chromium not found: figures will show as a text note instead of a PNG (apt-get install -y --no-install-recommends chromium)"
else
  say "figures rendered to PNG with $chromium"
fi

if [ ${#notebooks[@]} -eq 0 ]; then
  for nb in notebooks/[0-9][0-9]-*.ipynb; do [ -e "$nb" ] && notebooks+=("$nb"); done
fi
if [ ${#notebooks[@]} -eq 0 ]; then
  say "no notebooks found in notebooks/"
  echo "0 passed, 1 failed"
  exit 1
fi

if [ "$build" = 1 ]; then
  say "building dist/ (the notebooks import ../dist)"
  if ! npx tsc -p tsconfig.build.json; then
    say "build failed"
    echo "0 passed, ${#notebooks[@]} failed"
    exit 1
  fi
fi

export PATH="$PWD/node_modules/.bin:$PATH"
export JUPYTER_PATH="$PWD/.jupyter/share/jupyter"
export PYDEVD_DISABLE_FILE_VALIDATION=1   # silences a debugger banner of Debian's Python
"$PY" scripts/run-notebooks.py "${driver_args[@]}" "${notebooks[@]}"
