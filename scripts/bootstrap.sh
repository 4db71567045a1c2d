#!/usr/bin/env bash
# Create (or reuse) .venv in the repository root and install dropkit with pinned versions.
# Usage: bash scripts/bootstrap.sh [EXTRAS]   (EXTRAS e.g. "lab" or "dev"; default "lab")
# Re-running is cheap: the install is skipped when pyproject.toml, the lock, the extras and the
# checkout's path are unchanged since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-lab}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3.12 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
  done
fi
[ -n "$py" ] || { echo "bootstrap: no python3 found (need Python >= 3.10)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($py --version)"
  "$py" -m venv .venv
fi
stamp=".venv/.bootstrap-$extras"
# The stamp covers the pins and the checkout's path (an editable install points at it).
want="$( (cat pyproject.toml requirements.lock; pwd) | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: installing dropkit[$extras] into .venv (pinned by requirements.lock)"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch first and alone, so nothing can pull a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0" -c requirements.lock
.venv/bin/python -m pip install -q -c requirements.lock -e ".[$extras]"
echo "$want" > "$stamp"
