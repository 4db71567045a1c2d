"""Posteriors over a parameter vector: NUTS draws (the gold standard) and a last-layer Laplace.

Both work on a flat vector ``theta`` ``(P,)`` and a *potential* ``U(theta) = -log p(theta | data)``
up to a constant, so the same code samples a conjugate linear model (whose posterior is known in
closed form: the tests use it) and the lab's small networks.

NUTS comes from pyro-ppl (``pip install 'dropkit[bayes]'``), imported when first used.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dropkit.lab.train import seeded

Potential = Callable[[torch.Tensor], torch.Tensor]


def nuts_samples(potential: Potential, init: torch.Tensor, *, warmup: int, samples: int,
                 seed: int, max_tree_depth: int = 6) -> torch.Tensor:
    """Draws ``(S, P)`` from ``exp(-potential)`` by one chain of NUTS (pyro), started at ``init``.

    The step size and a diagonal mass matrix are adapted during ``warmup`` (dual averaging and
    windowed variance, pyro's defaults); the ``samples`` draws after it are returned. Randomness
    comes from ``seed`` alone: torch's global stream is forked, so the caller's is untouched.
    ``max_tree_depth`` caps the leapfrog steps per draw at ``2**depth - 1``: it bounds the cost
    on badly conditioned posteriors, at the price of more correlated draws.
    """
    try:
        from pyro.infer import MCMC, NUTS
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("dropkit's NUTS posterior needs pyro-ppl: "
                          "pip install 'dropkit[bayes]'") from err

    def pyro_potential(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return potential(params["theta"])

    kernel = NUTS(potential_fn=pyro_potential, adapt_step_size=True, adapt_mass_matrix=True,
                  full_mass=False, max_tree_depth=max_tree_depth)
    mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup,
                initial_params={"theta": init.detach().clone()}, disable_progbar=True)
    with seeded(seed):
        mcmc.run()
    return mcmc.get_samples()["theta"].detach()  # (S, P)


def gaussian_linear_posterior(features: torch.Tensor, y: torch.Tensor, *, noise_std: float,
                              prior_precision: torch.Tensor | float
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(P,)`` and covariance ``(P, P)`` of ``w`` for ``y = features @ w + N(0, noise^2)``.

    Prior ``w ~ N(0, diag(1 / prior_precision))``. This is the exact posterior of Bayesian linear
    regression, and also the last-layer Laplace approximation of a network whose last layer is
    linear in ``features`` (its Hessian is exactly ``features^T features / noise^2`` plus the
    prior's), expanded around the posterior mean.
    """
    phi = features  # (N, P)
    prec = torch.as_tensor(prior_precision, dtype=phi.dtype).expand(phi.shape[1])
    precision = phi.T @ phi / noise_std**2 + torch.diag(prec)  # (P, P)
    chol = torch.linalg.cholesky(precision)
    cov = torch.cholesky_inverse(chol)
    mean = cov @ (phi.T @ y.reshape(-1)) / noise_std**2
    return mean, cov


def linear_predictive(features: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(N,)`` and variance ``(N,)`` of ``features @ w`` for ``w ~ N(mean, cov)``."""
    return features @ mean, ((features @ cov) * features).sum(1)
