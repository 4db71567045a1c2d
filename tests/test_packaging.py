"""Packaging: the extras table the CLI checks equals pyproject's, the licence is what the
metadata says, and the sdist ships what its tests import."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dropkit._extras import EXTRAS

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dist(requirement: str) -> str:
    """``"ray[data]>=2.40"`` -> ``"ray"`` (PEP 508 name, normalised)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)  # type: ignore[union-attr]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_extras_table_matches_pyproject():
    declared = PYPROJECT["project"]["optional-dependencies"]
    assert set(declared) - {"dev"} == set(EXTRAS)
    for extra, modules in EXTRAS.items():
        assert {_dist(r) for r in declared[extra]} == {dist for _, dist in modules}, extra


def test_license_is_apache_2_and_declared():
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) == 201
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]


def test_torch_floor_is_the_tested_one():
    """pyproject's floor is the version scripts/check_floor.sh installs by default."""
    floor = re.search(r'FLOOR_TORCH:-([0-9.]+)', (ROOT / "scripts/check_floor.sh").read_text())
    assert floor is not None
    assert f"torch>={floor.group(1)},<3" in PYPROJECT["project"]["dependencies"]


def test_sdist_manifest_ships_the_test_helpers():
    """Every ``tests.x`` module a test imports is a file under tests/ that MANIFEST.in
    grafts (the sdist's tests collect only if their helpers travel with them)."""
    assert "graft tests" in (ROOT / "MANIFEST.in").read_text().splitlines()
    imported = set()
    for path in (ROOT / "tests").glob("*.py"):
        imported |= set(re.findall(r"^from tests\.(\w+) import", path.read_text(), re.M))
    # a helper is a module (tests/x.py) or a package (tests/x/__init__.py, e.g. the model zoo)
    assert imported and all((ROOT / "tests" / f"{name}.py").is_file()
                            or (ROOT / "tests" / name / "__init__.py").is_file()
                            for name in imported)
