#!/usr/bin/env bash
# The test command: set up .venv (pinned), make sure headless Chromium is there for the report's
# browser test, then lint, type-check and run the whole suite. Works on a fresh machine with
# Python 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing Debian's chromium for the report's browser test"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test.sh: chromium missing and not root: the browser test will be skipped outside CI" >&2
  fi
fi
# Shared benchmark data beside the checkout (tests skip the UCI parts only if it is absent).
export DROPKIT_UCI_ROOT="${DROPKIT_UCI_ROOT:-$(cd .. && pwd)/shared/uci}"
.venv/bin/ruff check src tests benchmarks
# types: strict on the public API, normal elsewhere (pyproject's [tool.mypy]); py.typed ships
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
