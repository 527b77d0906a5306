"""Doctests of the library run on the CPU backend with 8 simulated devices, like the tests."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_num_cpu_devices", 8)
