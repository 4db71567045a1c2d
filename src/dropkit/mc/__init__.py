"""Stochastic inference for any model: switch dropout on, draw samples, predict."""
