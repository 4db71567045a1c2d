#!/usr/bin/env bash
# The declared torch floor, proved: a throwaway venv with the oldest torch pyproject allows
# (torch 2.2.2 with numpy<2, which torch 2.2 was built against), dropkit installed from this
# checkout WITHOUT its dependencies (so pip cannot lift torch), then its runtime dependencies
# and the test runner, then the README's executed python blocks and a smoke set of tests.
# Usage: bash scripts/check_floor.sh [VENV]   (default VENV: /tmp/dropkit-floor; Python 3.11)
# Env: FLOOR_TORCH (default 2.2.2), PYTHON (default python3.11), FLOOR_INDEX (a pip index for
# torch, e.g. a CPU-only one; default: pip's own configuration, where PyPI's Linux wheel pulls
# the CUDA libraries, a few GB).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-/tmp/dropkit-floor}"
torch_version="${FLOOR_TORCH:-2.2.2}"
py="${PYTHON:-python3.11}"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q)
index=()
[ -n "${FLOOR_INDEX:-}" ] && index=(--index-url "$FLOOR_INDEX")
"${pip[@]}" "${index[@]}" "torch==$torch_version" "numpy<2"
"${pip[@]}" --no-deps --force-reinstall .
# the runtime dependencies other than torch/numpy, what the README's blocks and the smoke
# tests import (transformers 5 needs torch >= 2.6, so 4.x; scipy is a reference in the tests)
# and the test runner; torch is named again so that nothing upgrades it
"${pip[@]}" "torch==$torch_version" "numpy<2" "tqdm>=4.60" "transformers<5" scipy \
    pytest pytest-timeout hypothesis
cd "$(mktemp -d)"  # the tests must import the installed package, not ./src
cp -r "$OLDPWD/tests" "$OLDPWD/README.md" "$OLDPWD/pyproject.toml" .
"$venv/bin/python" - <<'EOF'
import dropkit, numpy, torch
print(f"floor check: torch {torch.__version__}, numpy {numpy.__version__}, "
      f"dropkit {dropkit.__version__} from {dropkit.__file__}")
assert "site-packages" in dropkit.__file__, "dropkit must come from the installed wheel"
EOF
"$venv/bin/python" -m pytest -p no:cacheprovider tests/test_docs.py tests/test_functional.py \
    tests/test_mc_mode.py tests/test_predictor.py tests/test_uncertainty.py
