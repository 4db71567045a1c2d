"""Issue 11 on the sampling side: stale plans, threads, mutation, memory, and user mistakes.

Each test reproduces a failure the reliability probe found and checks the fixed value.
"""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dropkit
from dropkit.mc.plan import plans
from tests.zoo.small import assert_same_state, snapshot


def _mlp(p: float = 0.1) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Dropout(p), nn.Linear(32, 3)).eval()


def _mi(model: nn.Module, x: torch.Tensor) -> float:
    pred = dropkit.MCDropout(model, samples=400, seed=0, progress=False).predict(x)
    return float(pred.mutual_information.mean())


class FunctionalP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out, self.p = nn.Linear(8, 32), nn.Linear(32, 3), 0.1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.dropout(torch.relu(self.fc(x)), self.p, training=self.training))


def test_plans_follow_changed_rates_code_and_submodules() -> None:
    torch.manual_seed(1)
    x = torch.randn(16, 8)
    model = _mlp(0.1)
    low = _mi(model, x)
    model[4].p = 0.9  # a changed rate: the plan (and the sampled copy) are rebuilt
    high = _mi(model, x)
    assert high > 5 * low, (low, high)
    assert _mi(_mlp(0.9), x) == pytest.approx(high, rel=1e-6)  # same as a fresh model
    fp = FunctionalP().eval()
    a = _mi(fp, x)
    fp.p = 0.9  # the rate F.dropout reads
    assert _mi(fp, x) > 5 * a
    model[0] = nn.Linear(8, 32)  # a replaced submodule: its output, not the old one
    fresh = nn.Sequential(*model).eval()
    got = dropkit.sample(model, x, 4, seed=3)
    assert torch.equal(got, dropkit.sample(fresh, x, 4, seed=3))
    with torch.no_grad():
        model[5].weight.mul_(2.0)  # in-place weight updates are seen (shared tensors)
    assert torch.allclose(dropkit.sample(model, x, 4, seed=3).sum(), got.sum() * 0 +
                          dropkit.sample(model, x, 4, seed=3).sum())
    assert not torch.equal(dropkit.sample(model, x, 4, seed=3), got)


def test_plan_is_inspectable_and_clearable() -> None:
    model, x = _mlp(0.3), torch.randn(4, 8)
    mc = dropkit.MCDropout(model, samples=4, seed=0)
    mc.predict(x)
    assert mc.plan is not None and mc.plan.switch_on == ("4",)
    assert mc.plan.firing.fired == {"4": ("module", 0.3)} and mc.plan.firing.silent == ()
    assert plans(model) == [mc.plan]
    mc.clear_plans()
    assert plans(model) == [] and mc.plan is None


PASSES: list[int] = []  # rows of each forward pass of `Counted` (module level: no fingerprint)


class Counted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop, self.out = nn.Linear(8, 32), nn.Dropout(0.3), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        PASSES.append(x.shape[0])
        return self.out(self.drop(torch.relu(self.fc(x))))


def test_a_model_changed_and_changed_back_keeps_its_plans() -> None:
    """A hook added for one call and removed (a profiler, a feature extractor, the firing trace
    of a benchmark) used to throw the plans away: the next call planned again, which on a
    BERT-base batch cost more than the sampling itself."""
    torch.manual_seed(0)
    model, x = Counted().eval(), torch.randn(5, 8)
    first = dropkit.sample(model, x, 6, seed=1, strategy="stacked")
    (plan,) = plans(model)
    PASSES.clear()
    handle = model.fc.register_forward_hook(lambda *a: None)
    dropkit.sample(model, x, 6, seed=1, strategy="stacked")  # another state: planned anew
    assert len(PASSES) > 1 and plans(model)[0] is not plan
    handle.remove()
    PASSES.clear()
    again = dropkit.sample(model, x, 6, seed=1, strategy="stacked")
    assert PASSES == [6 * 5] and plans(model)[0] is plan  # one stacked pass, no planning
    assert torch.equal(again, first)
    state = snapshot(model)
    original = model.fc
    for _ in range(plan_states := 4):  # four other states push the first one out
        model.fc = nn.Linear(8, 32)
        dropkit.sample(model, x, 2, seed=0, strategy="stacked")
    model.fc = original
    PASSES.clear()
    assert torch.equal(dropkit.sample(model, x, 6, seed=1, strategy="stacked"), first)
    assert len(PASSES) > 1 and plan_states == 4  # forgotten: planned anew, same samples
    assert_same_state(model, state)


def test_a_kept_state_whose_module_died_is_never_matched() -> None:
    """Fingerprints are object ids, and a freed module's id can come back for a new module in
    its place: a kept state whose modules died is not reused (its plan would run copies of the
    dead modules)."""
    import gc

    from dropkit.mc.plan import _entry

    model = _mlp(0.2)
    dropkit.sample(model, torch.randn(3, 8), 2, seed=0)
    kept = _entry(model)
    assert kept.alive()
    model[2] = nn.Linear(32, 32)
    gc.collect()
    assert not kept.alive()


def test_the_plan_cache_does_not_keep_a_model_alive() -> None:
    import gc
    import weakref

    model = _mlp(0.2)
    h = model[0].register_forward_hook(lambda *a: None)
    dropkit.sample(model, torch.randn(3, 8), 2, seed=0)
    h.remove()
    dropkit.sample(model, torch.randn(3, 8), 2)  # two kept states, seeded and not
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_threads_predicting_and_an_eval_caller_share_one_model() -> None:
    torch.set_num_threads(1)
    model, x = _mlp(0.5), torch.randn(32, 8)
    snap = snapshot(model)
    with torch.no_grad():
        eval_ref = model(x)
    ref = dropkit.MCDropout(model, samples=20, seed=7).predict(x).mean
    errors: list[BaseException] = []
    stop = threading.Event()
    seen_dropout = [0, 0]

    def predictor() -> None:
        try:
            for _ in range(15):
                got = dropkit.MCDropout(model, samples=20, seed=7).predict(x).mean
                assert torch.equal(got, ref)  # seeded: identical in every thread
        except BaseException as err:  # reported below
            errors.append(err)

    def eval_caller() -> None:
        try:
            while not stop.is_set():
                with torch.no_grad():
                    seen_dropout[0] += 1
                    seen_dropout[1] += int(not torch.equal(model(x), eval_ref))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=predictor) for _ in range(3)]
    watcher = threading.Thread(target=eval_caller)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert seen_dropout[0] > 0 and seen_dropout[1] == 0  # eval never saw dropout on
    assert_same_state(model, snap)


def test_seeded_sampling_leaves_module_generators_alone() -> None:
    g = torch.Generator().manual_seed(5)
    model = nn.Sequential(nn.Linear(4, 8), dropkit.nn.Dropout(0.5, generator=g),
                          nn.Linear(8, 2)).eval()
    state = g.get_state()
    x = torch.randn(3, 4)
    a = dropkit.sample(model, x, 6, seed=0)
    b = dropkit.sample(model, x, 6, seed=0)
    assert torch.equal(a, b) and torch.equal(g.get_state(), state)
    assert not torch.equal(a[0], a[1])


def test_lazy_modules_are_refused_and_left_lazy() -> None:
    model = nn.Sequential(nn.LazyLinear(8), nn.Dropout(0.5), nn.Linear(8, 2))
    with pytest.raises(dropkit.DropkitValueError, match="lazy modules are initialised"):
        dropkit.sample(model, torch.randn(3, 4), 2)
    with pytest.raises(dropkit.DropkitValueError, match="lazy modules"):
        dropkit.MCDropout(model)
    with pytest.raises(dropkit.DropkitValueError, match="lazy modules"):
        dropkit.lint(model, torch.randn(3, 4))
    assert isinstance(model[0], nn.LazyLinear)


def test_forward_errors_quote_the_users_batch_not_a_probe() -> None:
    model, x = _mlp(), torch.randn(2, 9)  # 9 features for a Linear(8, ...)
    for call in (lambda: dropkit.sample(model, x, 3),
                 lambda: dropkit.MCDropout(model).predict(x),
                 lambda: dropkit.MCDropout(model).deterministic(x)):
        with pytest.raises(dropkit.DropkitValueError, match=r"shape \(2, 9\)"):
            call()


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.drop(x), x


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"output": "missing"}, dropkit.DropkitValueError, "key or attribute"),
    ({"output": 5}, dropkit.DropkitValueError, "index into the model's 2 outputs"),
    ({"seed": 2**64}, dropkit.DropkitValueError, "seed"),
    ({"seed": -1}, dropkit.DropkitValueError, "seed"),
    ({"generator": 5}, dropkit.DropkitTypeError, "generator"),
    ({"output": 3.3}, dropkit.DropkitTypeError, "output"),
    ({"stochastic_depth": "yes"}, dropkit.DropkitTypeError, "stochastic_depth"),
])
def test_bad_sample_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        dropkit.sample(Pair(), torch.randn(3, 4), 2, **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"from_logits": "no"}, "from_logits"),
    ({"keep_samples": "no"}, "keep_samples"),
    ({"tau": True, "task": "regression"}, "tau"),
    ({"tau": float("inf"), "task": "regression"}, "tau"),
    ({"output": 3.3}, "output"),
    ({"heteroscedastic": 1}, "heteroscedastic"),
])
def test_flags_are_type_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(dropkit.DropkitError, match=match):
        dropkit.MCDropout(_mlp(), **kwargs)
    with pytest.raises(dropkit.DropkitTypeError, match="`active` to be a bool"):
        dropkit.functional.dropout(torch.ones(3), 0.5, active="no")  # type: ignore[arg-type]


def test_bad_containers_are_dropkit_errors() -> None:
    with pytest.raises(dropkit.DropkitError, match="loader"):
        dropkit.MCDropout(_mlp()).predict_loader(None)  # type: ignore[arg-type]
    with pytest.raises(dropkit.DropkitError, match="model"):
        dropkit.find_dropout(3)  # type: ignore[arg-type]


def test_kept_samples_are_refused_before_allocating() -> None:
    model, x = _mlp(), torch.randn(512, 8)
    snap = snapshot(model)
    with pytest.raises(dropkit.DropkitValueError, match="keep_samples=False"):
        dropkit.MCDropout(model, samples=20_000, memory_limit=2**20).predict(x)
    with pytest.raises(dropkit.DropkitValueError, match="keep_samples=False"):
        dropkit.sample(model, x, 10**12)
    small = dropkit.MCDropout(model, samples=20_000, keep_samples=False, chunk=5000,
                              memory_limit=2**20, seed=0).predict(x[:4])
    assert small.n_samples == 20_000 and small.samples is None
    assert_same_state(model, snap)


def test_concatenate_checks_its_parts() -> None:
    clf = dropkit.MCDropout(_mlp(), samples=3, seed=0).predict(torch.randn(2, 8))
    reg = dropkit.MCDropout(_mlp(), "regression", samples=3, seed=0).predict(torch.randn(2, 8))
    with pytest.raises(dropkit.DropkitValueError, match="at least one Prediction"):
        dropkit.Prediction.concatenate([])
    with pytest.raises(dropkit.DropkitValueError, match="one task"):
        dropkit.Prediction.concatenate([clf, reg])
    both = dropkit.Prediction.concatenate([clf, clf])
    torch.testing.assert_close(both.mean, torch.cat([clf.mean, clf.mean]))
