"""The one model zoo of the tests (not a test module).

* `tests.zoo.families`: small real models of transformers, timm and torchvision (random
  weights, no download), with the hand-counted dropout sites of each (`FAMILIES`);
* `tests.zoo.small`: hand-built models in the styles MC dropout must handle (functional and
  attention dropout, flags that gate more than dropout, skips across the cached prefix, code
  torch.fx cannot trace) and the model-state helpers of the mc tests.

The lint tests' models stay in `tests/lint_models.py`, which `dropkit lint` also loads by
name in the CLI tests.
"""

from tests.zoo.families import FAMILIES, P_ATTN, Entry

__all__ = ["FAMILIES", "P_ATTN", "Entry"]
