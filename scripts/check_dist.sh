#!/usr/bin/env bash
# Build the wheel and the sdist offline (no build isolation: setuptools from .venv), check what
# they carry, then run a fast subset of the SDIST's own tests against the installed WHEEL (not
# ./src): the sdist's tests collect and run, and the wheel has its package data.
# Usage: bash scripts/check_dist.sh [PYTEST ARGS]   (after scripts/bootstrap.sh dev)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-$PWD/.venv/bin/python}"  # absolute: the tests run after a cd into the sdist
# the shared UCI data beside the checkout, as in scripts/test.sh (the sdist is unpacked elsewhere)
export DROPKIT_UCI_ROOT="${DROPKIT_UCI_ROOT:-$(cd .. && pwd)/shared/uci}"
SECONDS=0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" -m pip wheel -q --no-build-isolation --no-deps -w "$work/dist" . >/dev/null
"$py" -c "import sys; from setuptools import build_meta as b; b.build_sdist(sys.argv[1])" \
    "$work/dist" >/dev/null
wheel="$(ls "$work"/dist/dropkit-*.whl)"
sdist="$(ls "$work"/dist/dropkit-*.tar.gz)"
echo "check_dist: built $(basename "$wheel") and $(basename "$sdist") in ${SECONDS} s"
"$py" - "$wheel" "$sdist" <<'EOF'
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1:]
names = set(zipfile.ZipFile(wheel).namelist())
for need in ("dropkit/__main__.py", "dropkit/py.typed", "dropkit/bench/uci_native.c",
             "dropkit/datasets/uci_sha256.txt", "dropkit/_extras.py"):
    assert need in names, f"wheel lacks {need}"
meta = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("/METADATA"))
for line in ("License-Expression: Apache-2.0", "Requires-Dist: torch<3,>=2.2.2",
             "Provides-Extra: lab", "Provides-Extra: digits",
             "Classifier: Programming Language :: Python :: 3.11"):
    assert line in meta.splitlines(), f"wheel METADATA lacks {line!r}"
assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "wheel lacks LICENSE"
root = tarfile.open(sdist).getnames()[0].split("/")[0]
members = set(tarfile.open(sdist).getnames())
for need in ("LICENSE", "README.md", "requirements.lock", "tests/conftest.py",
             "tests/_torchvision.py", "tests/shared_data.py", "tests/zoo/small.py",
             "tests/test_packaging.py"):
    assert f"{root}/{need}" in members, f"sdist lacks {need}"
print(f"check_dist: wheel has {len(names)} files, sdist {len(members)}; metadata and "
      "package data present")
EOF
# a pure-Python wheel installs by unzipping (pip --target does the same, slower)
"$py" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    "$wheel" "$work/site"
tar -xzf "$sdist" -C "$work"
cd "$work"/dropkit-*/
# the wheel, not the sdist's src/ nor the editable checkout, must be what the tests import
PYTHONPATH="$work/site" "$py" -c "import importlib.util as u, sys; o = u.find_spec('dropkit')\
.origin; assert o.startswith(sys.argv[1]), o" "$work/site"
PYTHONPATH="$work/site" "$py" -m pytest -p no:cacheprovider tests/test_packaging.py \
    tests/test_datasets_uci.py tests/test_functional.py tests/test_cli_conventions.py \
    -k "not python_m and not help_imports" "$@"
echo "check_dist: done in ${SECONDS} s"
