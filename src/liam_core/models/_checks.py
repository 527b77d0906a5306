"""Trace-time checks for models: settings at construction, shapes and dtypes at call time.

Everything here looks only at Python values and static shapes/dtypes, so it runs while JAX
traces (under ``jit``, ``vmap``, ``grad``) and raises before anything is compiled.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ConfigError, EmptyInputError, InvalidTypeError, ShapeError
from ..algebra._checks import as_real_array

# Every model computes in float32 (parameters and activations); inputs are cast to it.
DTYPE = jnp.float32


def check_int_setting(owner: str, name: str, value: Any, *, minimum: int) -> int:
    """Return ``value`` as an int, or raise naming ``owner``'s field ``name`` and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidTypeError(
            f"{owner}: `{name}` must be an int >= {minimum}, got {type(value).__name__}: {value!r}"
        )
    if value < minimum:
        raise ConfigError(f"{owner}: `{name}` must be an int >= {minimum}, got {value}")
    return int(value)


def check_choice(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of the ``allowed`` names, else raise ``ConfigError``."""
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{owner}: `{name}` must be one of {list(allowed)}, got {value!r}")
    return value


def as_float32(x: Any, name: str) -> jax.Array:
    """Return ``x`` as a float32 JAX array (tracers included); refuse text, bools, complex."""
    x = as_real_array(x, name)
    if isinstance(x, np.ndarray):
        x = x.astype(DTYPE, copy=False)  # cast on the host: no device program to compile
    return jnp.asarray(x, dtype=DTYPE)


def as_example(x: Any, *, owner: str, in_features: int, name: str = "x") -> jax.Array:
    """One example ``[in_features]`` as float32, or ``ShapeError`` naming both shapes."""
    x = as_float32(x, name)
    if x.shape != (in_features,):
        hint = ""
        if x.ndim >= 2 and x.shape[-1] == in_features:
            hint = (
                f" {owner} works on one example at a time: map it over a batch with "
                "`jax.vmap(model)(x)`, or use the per-example losses, which take `[batch, features]`."
            )
        raise ShapeError(
            f"{owner}: `{name}` must be one example of shape (in_features,) = ({in_features},), "
            f"got shape {tuple(x.shape)}.{hint}"
        )
    return x


def as_batch(x: Any, *, owner: str, in_features: int, name: str = "x") -> jax.Array:
    """A batch ``[batch, in_features]`` as float32 with at least one row, or a typed error."""
    x = as_float32(x, name)
    if x.ndim != 2 or x.shape[1] != in_features:
        hint = ""
        if x.shape == (in_features,):
            hint = " For a single example, add a batch axis: `x[None, :]`."
        raise ShapeError(
            f"{owner}: `{name}` must be a batch of shape (batch, in_features) = "
            f"(batch, {in_features}), got shape {tuple(x.shape)}.{hint}"
        )
    if x.shape[0] == 0:
        raise EmptyInputError(f"{owner}: `{name}` has no rows (shape {tuple(x.shape)})")
    return x
