#!/usr/bin/env bash
# Prints the Python of the peer stack (torch, transformers, timm, POT at the versions of
# tools/requirements.txt), creating its venv first if needed. The venv lives in a cache folder,
# never in the repository: torch alone brings about 5 GB.
#   PY=$(tools/peer-venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${OTCLIP_PY_VENV:-$HOME/.cache/otclip/py}
STAMP="$VENV/.requirements"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s tools/requirements.txt "$STAMP"; then
    echo "installing the peer stack into $VENV (tools/requirements.txt)" >&2
    python3 -m venv "$VENV" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -r tools/requirements.txt >&2
    cp tools/requirements.txt "$STAMP"
fi
echo "$VENV/bin/python"
