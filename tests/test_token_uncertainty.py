"""Token-level uncertainty (S, B, T, V): per-token measures against a float64 naive loop,
sequence aggregates against hand sums over real tokens, padding invariance, streaming."""

from __future__ import annotations

import math

import pytest
import torch

from dropkit import uncertainty as U
from dropkit.errors import DropkitValueError
from dropkit.measures import ClassificationStream, classification

S, B, T, V = 5, 3, 4, 6
MASK = [[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]]


def _logits(seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(S, B, T, V, generator=g, dtype=torch.float64)


def _naive(logits: torch.Tensor) -> dict[str, list[list[float]]]:
    """Python-float loops: softmax, entropy of the mean, mean entropy, their difference."""
    z = logits.tolist()
    out: dict[str, list[list[float]]] = {"H": [], "EH": [], "MI": []}
    for b in range(B):
        for key in out:
            out[key].append([])
        for t in range(T):
            ps = []
            for s in range(S):
                row = z[s][b][t]
                m = max(row)
                e = [math.exp(v - m) for v in row]
                ps.append([v / sum(e) for v in e])
            pbar = [sum(p[k] for p in ps) / S for k in range(V)]
            h = -sum(q * math.log(q) for q in pbar if q > 0)
            eh = sum(-sum(q * math.log(q) for q in p if q > 0) for p in ps) / S
            out["H"][b].append(h)
            out["EH"][b].append(eh)
            out["MI"][b].append(h - eh)
    return out


def test_per_token_measures_match_naive_loop() -> None:
    logits = _logits()
    ref = _naive(logits)
    tok = U.token_measures(logits, from_logits=True)
    for field, key in [("predictive_entropy", "H"), ("expected_entropy", "EH"),
                       ("mutual_information", "MI")]:
        torch.testing.assert_close(getattr(tok, field), torch.tensor(ref[key], dtype=torch.float64),
                                   atol=1e-12, rtol=1e-10, msg=field)
    # the (S, B, ..., C) functions give the same per-token values
    torch.testing.assert_close(U.mutual_information(logits, from_logits=True),
                               tok.mutual_information, atol=0, rtol=0)


@pytest.mark.parametrize("mask_dtype", [torch.int64, torch.bool, torch.int32])
def test_sequence_aggregates_match_hand_sums(mask_dtype: torch.dtype) -> None:
    logits = _logits(seed=1)
    ref = _naive(logits)
    tok = U.token_measures(logits, from_logits=True, mask=torch.tensor(MASK).to(mask_dtype))
    for field, key in [("predictive_entropy", "H"), ("mutual_information", "MI"),
                       ("expected_entropy", "EH")]:
        real = [[ref[key][b][t] for t in range(T) if MASK[b][t]] for b in range(B)]
        want = {"mean": [sum(r) / len(r) for r in real], "sum": [sum(r) for r in real],
                "max": [max(r) for r in real]}
        for reduce, values in want.items():
            torch.testing.assert_close(tok.sequence(field, reduce),
                                       torch.tensor(values, dtype=torch.float64),
                                       atol=1e-12, rtol=1e-10, msg=f"{field} {reduce}")


def test_padded_positions_never_change_a_sequence_aggregate() -> None:
    logits = _logits(seed=2)
    mask = torch.tensor(MASK)
    changed = logits.clone()
    pad = ~mask.bool()  # (B, T)
    g = torch.Generator().manual_seed(9)
    noise = 1e30 * torch.randn(S, int(pad.sum()), V, generator=g, dtype=torch.float64)
    changed[:, pad] = noise  # any finite values at the padded positions, very large here
    a = U.token_measures(logits, from_logits=True, mask=mask)
    b = U.token_measures(changed, from_logits=True, mask=mask)
    assert not torch.equal(a.predictive_entropy, b.predictive_entropy)  # the padding did change
    for field in ("predictive_entropy", "expected_entropy", "mutual_information"):
        for reduce in ("mean", "sum", "max"):
            assert torch.equal(a.sequence(field, reduce), b.sequence(field, reduce)), (field,
                                                                                      reduce)


def test_stream_of_token_chunks_equals_one_shot() -> None:
    logits = _logits(seed=3).float()
    mask = torch.tensor(MASK, dtype=torch.bool)
    stream = ClassificationStream(from_logits=True, mask=mask)
    for chunk in torch.split(logits, [2, 1, 2]):
        stream.update(chunk)
    streamed = stream.token_measures()
    whole = U.token_measures(logits, from_logits=True, mask=mask)
    for field in ("predictive_entropy", "expected_entropy", "mutual_information"):
        torch.testing.assert_close(getattr(streamed, field), getattr(whole, field),
                                   atol=1e-6, rtol=1e-6, msg=field)
        torch.testing.assert_close(streamed.sequence(field, "mean"),
                                   whole.sequence(field, "mean"), atol=1e-6, rtol=1e-6)


def test_large_vocabulary_is_processed_one_slice_at_a_time(monkeypatch) -> None:
    # the float64 working set of a chunk is cut into slices of at most _SLICE_ELEMENTS values
    # (at least one sample), so memory never grows like S x B x T x V
    sizes: list[int] = []
    real = classification._entropy_terms

    def spy(x: torch.Tensor, from_logits: bool):
        sizes.append(x.shape[0])
        return real(x, from_logits)

    monkeypatch.setattr(classification, "_entropy_terms", spy)
    monkeypatch.setattr(classification, "_SLICE_ELEMENTS", 2 * B * T * V)
    logits = _logits(seed=4)
    sliced = U.token_measures(logits, from_logits=True)
    assert sizes == [2, 2, 1]  # S = 5 samples, two per slice
    monkeypatch.setattr(classification, "_SLICE_ELEMENTS", 1 << 20)
    whole = U.token_measures(logits, from_logits=True)
    torch.testing.assert_close(sliced.mutual_information, whole.mutual_information,
                               atol=1e-13, rtol=0)


def test_bad_masks_and_options() -> None:
    logits = _logits()
    with pytest.raises(DropkitValueError, match=r"`mask` to be a tensor of shape \(3, 4\)"):
        U.token_measures(logits, from_logits=True, mask=torch.ones(3, 5))
    with pytest.raises(DropkitValueError, match="`mask` to be 0/1 values"):
        U.token_measures(logits, from_logits=True, mask=torch.full((3, 4), 2))
    with pytest.raises(DropkitValueError, match=r"at least one real \(1\) position.*\[1\]"):
        U.token_measures(logits, from_logits=True, mask=torch.tensor(MASK) * torch.tensor(
            [[1], [0], [1]]))
    with pytest.raises(DropkitValueError, match="token samples"):
        U.token_measures(logits[:, :, 0], from_logits=True)  # (S, B, V): no token axis
    tok = U.token_measures(logits, from_logits=True)
    with pytest.raises(DropkitValueError, match="`reduce` to be one of 'mean', 'sum', 'max'"):
        tok.sequence("mutual_information", "median")
    with pytest.raises(DropkitValueError, match="`measure` to be one of"):
        tok.sequence("entropy")


def test_samples_with_grad_are_detached_and_unchanged() -> None:
    logits = _logits(seed=5).requires_grad_(True)
    before = logits.detach().clone()
    tok = U.token_measures(logits, from_logits=True, mask=torch.tensor(MASK))
    assert not tok.mutual_information.requires_grad  # no graph kept across samples
    assert torch.equal(logits.detach(), before)  # the caller's tensor is not modified
    torch.testing.assert_close(tok.mutual_information,
                               U.token_measures(before, from_logits=True).mutual_information,
                               atol=0, rtol=0)
