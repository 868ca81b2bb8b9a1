#!/bin/sh
# casavox offline install: `sudo ./install.sh` in the unpacked pack (options: ./install.sh --help).
# Finds the Python the pack's wheels were built for and hands over to install.py (standard library
# only); CASAVOX_PYTHON names another interpreter.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
want=$(sed -n 's/.*"python": "\([0-9.]*\)".*/\1/p' "$here/MANIFEST.json" | head -n 1)
py=${CASAVOX_PYTHON:-}
if [ -z "$py" ]; then
  for candidate in "python$want" python3; do
    if command -v "$candidate" >/dev/null 2>&1; then py=$candidate; break; fi
  done
fi
if [ -z "$py" ]; then
  echo "casavox-install: error: no python$want or python3 on this box (install Python $want)" >&2
  exit 1
fi
exec "$py" "$here/install.py" "$@"
