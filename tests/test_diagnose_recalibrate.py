"""recalibrate_bn with non-finite data: an error, and the user's model bitwise unchanged (it
used to write NaN running statistics into the model with inplace=True)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dropkit.diagnose import recalibrate_bn
from dropkit.errors import DropkitValueError


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.3), nn.BatchNorm1d(6), nn.ReLU(),
                        nn.Linear(6, 3), nn.BatchNorm1d(3))
    with torch.no_grad():  # trained-looking statistics, not the defaults
        net(torch.randn(32, 4))
    return net.eval()


def _state(net: nn.Module) -> list[object]:
    return ([(k, v.clone()) for k, v in net.state_dict().items()]
            + [m.training for m in net.modules()]
            + [getattr(m, "momentum", None) for m in net.modules()])


def _same(a: list[object], b: list[object]) -> bool:
    return all(torch.equal(x[1], y[1]) if isinstance(x, tuple) else x == y
               for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("inplace", [True, False])
def test_non_finite_data_is_rejected_and_the_model_left_bitwise_unchanged(
        inplace: bool) -> None:
    net = _net()
    before = _state(net)
    x = torch.randn(40, 4)
    x[7, 2] = float("nan")
    with pytest.raises(DropkitValueError, match="`data` to be finite values, but got 1 NaN"):
        recalibrate_bn(net, x, inplace=inplace)
    assert _same(_state(net), before)
    # batches from an iterable are seen only while they run: caught by the statistics
    batches = [torch.randn(16, 4), torch.full((16, 4), float("inf"))]
    with pytest.raises(DropkitValueError, match=r"finite BatchNorm statistics.*in 2, 5"):
        recalibrate_bn(net, batches, inplace=inplace)
    assert _same(_state(net), before)
    # finite data still works, and the check did not change the result
    fixed = recalibrate_bn(net, batches[:1], inplace=inplace)
    with torch.no_grad():  # by hand: the first BatchNorm sees Linear's output (dropout off)
        torch.testing.assert_close(fixed[2].running_mean, net[0](batches[0]).mean(0))
