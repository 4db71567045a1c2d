"""Which UCI kernels run: C, their numba twin, or torch ops, and the log line that says so.

The numba twin is checked against the torch ops like the C kernels are (same draws of the
generator, same networks); those tests skip where numba is not installed.
"""

from __future__ import annotations

import logging
import sys

import pytest
import torch

from dropkit.bench import uci_kernels
from dropkit.bench.uci_batched import resolve_backend
from dropkit.bench.uci_kernels import native_kernels
from dropkit.bench.uci_native import NativeKernels
from dropkit.errors import DropkitError
from tests.native import require_native
from tests.test_bench_uci_native import _run


@pytest.fixture
def no_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("DROPKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DROPKIT_NATIVE", raising=False)
    uci_kernels._log_once.cache_clear()  # each test sees its own log lines


def _no_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "dropkit.bench.uci_native_numba", raising=False)


def test_without_compiler_or_numba_auto_logs_torch_ops(no_compiler, monkeypatch, caplog):
    _no_numba(monkeypatch)
    with caplog.at_level(logging.INFO, logger="dropkit.bench"):
        assert resolve_backend("auto", torch.float32, 3, 17) is None
        assert resolve_backend("auto", torch.float32, 3, 17) is None  # logged once
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.name == "dropkit.bench"
    assert record.getMessage().startswith("UCI kernels: torch ops (no native UCI kernels: c: ")
    assert "does not run" in record.getMessage()
    assert "numba: numba is not installed" in record.getMessage()
    assert "pip install numba" in record.getMessage()
    with pytest.raises(DropkitError, match="no native UCI kernels: c: .*; numba: "):
        resolve_backend("native", torch.float32, 3, 17)


def test_without_compiler_numba_is_the_logged_fallback(no_compiler, caplog) -> None:
    pytest.importorskip("numba")
    with caplog.at_level(logging.INFO, logger="dropkit.bench"):
        kernels = native_kernels(torch.float64, 3, 18)
    assert type(kernels).__name__ == "NumbaKernels"
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("UCI kernels: numba (fallback: c: ")


def test_the_compiler_comes_first_and_is_logged_as_info(monkeypatch, caplog) -> None:
    require_native()
    monkeypatch.delenv("DROPKIT_NATIVE", raising=False)
    uci_kernels._log_once.cache_clear()
    with caplog.at_level(logging.INFO, logger="dropkit.bench"):
        kernels = native_kernels(torch.float64, 13, 50)  # built by the other tests too
    assert type(kernels) is NativeKernels
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "UCI kernels: c")]


def test_dropkit_native_picks_or_refuses(monkeypatch) -> None:
    monkeypatch.setenv("DROPKIT_NATIVE", "fortran")
    with pytest.raises(DropkitError, match="DROPKIT_NATIVE='fortran' is not one of 0, 1, c, "):
        native_kernels(torch.float32, 4, 8)
    _no_numba(monkeypatch)
    monkeypatch.setenv("DROPKIT_NATIVE", "numba")  # only numba, even where C would work
    with pytest.raises(DropkitError, match="no native UCI kernels: numba: numba is not inst"):
        native_kernels(torch.float32, 4, 8)


@pytest.mark.parametrize(("D", "H"), [(13, 50), (70, 7), (3, 130)])
def test_numba_trains_the_same_networks_as_torch_ops(monkeypatch, D: int, H: int) -> None:
    """float64: the same minibatches and masks, parameters and MC statistics to 1e-10;
    masks wider than 64 bits included."""
    pytest.importorskip("numba")
    monkeypatch.setenv("DROPKIT_NATIVE", "numba")
    a_model, a_stats, a_steps = _run("torch", D=D, H=H, dtype=torch.float64)
    b_model, b_stats, b_steps = _run("native", D=D, H=H, dtype=torch.float64)
    assert len(a_steps) == len(b_steps) == 4 * 3
    assert all(torch.equal(x, z) for sa, sb in zip(a_steps, b_steps, strict=True)
               for x, z in zip(sa, sb, strict=True))
    for name in ("w1", "b1", "w2", "b2"):
        torch.testing.assert_close(getattr(b_model, name), getattr(a_model, name),
                                   rtol=1e-10, atol=1e-12)
    for name in ("rmse", "ll", "rmse_standard"):
        torch.testing.assert_close(getattr(b_stats, name), getattr(a_stats, name),
                                   rtol=1e-10, atol=1e-12)


def test_numba_threads_change_nothing_and_float32_agrees(monkeypatch) -> None:
    """Two threads give bitwise the networks of one (networks never share work); float32
    (the benchmark's dtype) agrees with the torch ops within float32 rounding (the tolerance
    of the C test: Adam turns rounding of near-zero gradients into steps of up to lr)."""
    pytest.importorskip("numba")
    monkeypatch.setenv("DROPKIT_NATIVE", "numba")
    one_model, one_stats, _ = _run("native", D=13, H=50, dtype=torch.float64)
    two_model, two_stats, _ = _run("native", D=13, H=50, dtype=torch.float64, threads=2)
    for name in ("w1", "b1", "w2", "b2"):
        assert torch.equal(getattr(two_model, name), getattr(one_model, name))
    assert torch.equal(two_stats.ll, one_stats.ll)
    a_model, a_stats, _ = _run("torch", D=13, H=50, dtype=torch.float32)
    b_model, b_stats, _ = _run("native", D=13, H=50, dtype=torch.float32)
    for name in ("w1", "b1", "w2", "b2"):
        assert getattr(b_model, name).dtype == torch.float32
        torch.testing.assert_close(getattr(b_model, name), getattr(a_model, name),
                                   rtol=0, atol=5e-2 * 1e-2 * 4)
    torch.testing.assert_close(b_stats.ll, a_stats.ll, rtol=1e-4, atol=1e-5)
