"""Shared test set-up: the CPU backend with 8 simulated devices, strict dtype promotion."""

from __future__ import annotations

import os

# Must happen before JAX starts its backend: tests see 8 simulated CPU devices.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np
import pytest

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy generator: every test sees the same random data."""
    return np.random.default_rng(20261126)


@pytest.fixture
def getkey():
    """Return a function that yields fresh, deterministic JAX PRNG keys."""
    keys = iter(jax.random.split(jax.random.key(0), 1024))
    return lambda: next(keys)
