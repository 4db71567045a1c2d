"""Property tests: any input gives a dropkit error or a finite, correct result (equal to a
float64 naive reference), and streaming in chunks equals the one-shot functions."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dropkit import uncertainty as U
from dropkit.errors import DropkitError
from dropkit.measures import ClassificationStream, RegressionStream

CLASS_MEASURES = ("predictive_entropy", "expected_entropy", "mutual_information")
F32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


def _naive_class(x: np.ndarray, from_logits: bool) -> dict[str, np.ndarray]:
    """Python-float loops over (S, B, C): float64 softmax with the max subtracted."""
    s, b, c = x.shape
    out = {k: np.zeros(b) for k in CLASS_MEASURES}
    for j in range(b):
        ps = []
        for i in range(s):
            row = [float(v) for v in x[i, j]]
            if from_logits:
                m = max(row)
                e = [math.exp(v - m) for v in row]
                ps.append([v / sum(e) for v in e])
            else:
                ps.append([min(max(v, 0.0), 1.0) for v in row])
        pbar = [sum(p[k] for p in ps) / s for k in range(c)]
        h = -sum(q * math.log(q) for q in pbar if q > 0)
        eh = sum(-sum(q * math.log(q) for q in p if q > 0) for p in ps) / s
        out["predictive_entropy"][j], out["expected_entropy"][j] = h, eh
        out["mutual_information"][j] = max(h - eh, 0.0)
    return out


def _outcome(fn):
    """The result of ``fn()``, or the DropkitError it raised (any other error propagates)."""
    try:
        return fn()
    except DropkitError as err:
        return err


def _class_stream(samples: torch.Tensor, from_logits: bool, sizes: list[int]
                  ) -> dict[str, torch.Tensor]:
    stream = ClassificationStream(from_logits=from_logits)
    for chunk in torch.split(samples, sizes):
        stream.update(chunk)
    return stream.measures()


def _chunks(s: int, data: st.DataObject) -> list[int]:
    sizes = []
    while sum(sizes) < s:
        sizes.append(data.draw(st.integers(1, s - sum(sizes))))
    return sizes


BIG = np.float32(3e38)


@settings(max_examples=40, deadline=None)
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=3, max_dims=3, max_side=4),
                    elements=F32), data=st.data())
@example(x=np.array([[[BIG, -BIG]], [[-BIG, BIG]]], dtype=np.float32), data=None)
@example(x=np.array([[[BIG, np.nan]]], dtype=np.float32), data=None)
def test_logits_error_or_correct(x: np.ndarray, data: st.DataObject | None) -> None:
    samples = torch.from_numpy(x)
    sizes = [1] * x.shape[0] if data is None else _chunks(x.shape[0], data)
    got = _outcome(lambda: {k: getattr(U, k)(samples, from_logits=True)
                            for k in CLASS_MEASURES})
    streamed = _outcome(lambda: _class_stream(samples, True, sizes))
    if isinstance(got, DropkitError) or isinstance(streamed, DropkitError):
        # both paths judge the input alike, and non-finite logits are the only bad input here
        assert isinstance(got, DropkitError) and isinstance(streamed, DropkitError)
        assert not np.isfinite(x).all()
        return
    ref = _naive_class(x, from_logits=True)
    for k in CLASS_MEASURES:
        assert torch.isfinite(got[k]).all(), k
        np.testing.assert_allclose(got[k].double().numpy(), ref[k], atol=2e-6, err_msg=k)
        torch.testing.assert_close(streamed[k], got[k], atol=2e-6, rtol=0, msg=k)


@st.composite
def _probabilities(draw: st.DrawFn) -> np.ndarray:
    """Normalised rows, sometimes spoiled (scaled, shifted, NaN) to test the checks."""
    shape = draw(hnp.array_shapes(min_dims=3, max_dims=3, max_side=4))
    w = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1e3)))
    w = w + draw(st.sampled_from([0.0, 1e-3]))
    p = w / np.where(w.sum(-1, keepdims=True) > 0, w.sum(-1, keepdims=True), 1.0)
    spoil = draw(st.sampled_from(["none", "none", "half", "tiny", "negative", "nan"]))
    if spoil == "half":
        p = p * 0.5
    elif spoil == "tiny":
        p = p * (1 + 1e-7)
    elif spoil == "negative":
        p.flat[0] = -0.2
    elif spoil == "nan":
        p.flat[0] = np.nan
    return p.astype(np.float32)


def _rows_ok(p: np.ndarray) -> bool:
    p64 = p.astype(np.float64)
    return bool(np.isfinite(p64).all() and p64.min() >= -1e-4 and p64.max() <= 1 + 1e-4
                and np.abs(p64.sum(-1) - 1).max() <= 1e-4)


@settings(max_examples=40, deadline=None)
@given(p=_probabilities(), data=st.data())
@example(p=np.full((2, 1, 4), 0.125, dtype=np.float32), data=None)  # rows summing to 0.5
def test_probabilities_error_or_correct(p: np.ndarray, data: st.DataObject | None) -> None:
    samples = torch.from_numpy(p)
    sizes = [1] * p.shape[0] if data is None else _chunks(p.shape[0], data)
    got = _outcome(lambda: {k: getattr(U, k)(samples, from_logits=False)
                            for k in CLASS_MEASURES})
    streamed = _outcome(lambda: _class_stream(samples, False, sizes))
    if not _rows_ok(p):
        assert isinstance(got, DropkitError) and isinstance(streamed, DropkitError)
        return
    assert not isinstance(got, DropkitError) and not isinstance(streamed, DropkitError)
    ref = _naive_class(p, from_logits=False)
    for k in CLASS_MEASURES:
        np.testing.assert_allclose(got[k].double().numpy(), ref[k], atol=2e-6, err_msg=k)
        torch.testing.assert_close(streamed[k], got[k], atol=2e-6, rtol=0, msg=k)


def _naive_mixture(m: np.ndarray, y: np.ndarray, lv: np.ndarray | None, tau: float | None
                   ) -> np.ndarray:
    """log mean_s N(y; mu_s, sigma_s^2), Python floats, logsumexp with the max subtracted."""
    s, b = m.shape
    out = np.zeros(b)
    for j in range(b):
        terms = []
        for i in range(s):
            r = float(y[j]) - float(m[i, j])
            log_var = -math.log(tau) if lv is None else float(lv[i, j])
            if r == 0:
                quad = 0.0
            else:  # r^2 / sigma^2 in log space: exp(-log_var) alone may overflow
                lq = 2 * math.log(abs(r)) - log_var
                quad = math.inf if lq > 709 else math.exp(lq)
            terms.append(-0.5 * quad - 0.5 * log_var - 0.5 * math.log(2 * math.pi))
        top = max(terms)
        if top == -math.inf:
            out[j] = -math.inf
            continue
        out[j] = top + math.log(sum(math.exp(t - top) for t in terms)) - math.log(s)
    return out


def _mixture_stream(m: np.ndarray, y: np.ndarray, lv: np.ndarray | None, tau: object,
                    sizes: list[int]) -> torch.Tensor:
    stream = RegressionStream(tau=tau, target=torch.from_numpy(y))  # type: ignore[arg-type]
    lv_chunks = [None] * len(sizes) if lv is None else torch.split(torch.from_numpy(lv), sizes)
    for chunk, lv_chunk in zip(torch.split(torch.from_numpy(m), sizes), lv_chunks, strict=True):
        stream.update(chunk, lv_chunk)
    ll = stream.measures()["target_log_likelihood"]
    assert ll is not None
    return ll


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 3)),
    data=st.data(),
    noise=st.sampled_from(["tau", "log_var"]),
)
def test_mixture_likelihood_error_or_correct(shape: tuple[int, int], data: st.DataObject,
                                             noise: str) -> None:
    # exact zeros make zero residuals, where a tiny variance once gave 0 * inf = NaN
    val = st.floats(-1e3, 1e3, width=32) | st.sampled_from([0.0, 0.0, np.nan, np.inf])
    m = data.draw(hnp.arrays(np.float32, shape, elements=val))
    y = data.draw(hnp.arrays(np.float32, shape[1:], elements=val))
    lv = tau = None
    if noise == "log_var":
        lv = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(-120, 80, width=32)
                                  | st.just(-100.0)))
    else:
        tau = data.draw(st.floats(-1.0, 1e4) | st.sampled_from([math.inf, math.nan, True]))
    args = {"log_var": None if lv is None else torch.from_numpy(lv), "tau": tau}
    got = _outcome(lambda: U.gaussian_mixture_log_likelihood(torch.from_numpy(m),
                                                             torch.from_numpy(y), **args))
    streamed = _outcome(lambda: _mixture_stream(m, y, lv, tau, _chunks(shape[0], data)))
    bad = not (np.isfinite(m).all() and np.isfinite(y).all()) or (
        tau is not None and not (type(tau) is float and 0 < tau < math.inf))
    if bad:
        assert isinstance(got, DropkitError) and isinstance(streamed, DropkitError)
        return
    assert not isinstance(got, DropkitError) and not isinstance(streamed, DropkitError)
    # correct = the float64 reference rounded to float32 (-inf where it is below float32's range)
    with np.errstate(over="ignore"):  # below float32's range rounds to -inf, on purpose
        want = _naive_mixture(m, y, lv, tau).astype(np.float32)
    assert not torch.isnan(got).any()
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(streamed, got, rtol=1e-6, atol=1e-5)
