"""Shape checks of the models' inputs, at trace time: one example, or a batch of examples.

The generic checks (ints, choices, real-number arrays) are :mod:`liam_core._checks`; these
add what is particular to a model: float32, and the ``[in_features]`` or
``[batch, in_features]`` shape with a hint when one was passed where the other belongs.
They look only at static shapes and dtypes, so they run while JAX traces (under ``jit``,
``vmap``, ``grad``) and raise before anything is compiled.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_real_array, check_not_empty
from .._errors import ShapeError

# Every model computes in float32 (parameters and activations); inputs are cast to it.
DTYPE = jnp.float32


def as_float32(x: Any, name: str, *, owner: str | None = None) -> jax.Array:
    """``x`` as a float32 JAX array (tracers included); text, bools and complex are refused."""
    x = as_real_array(x, name, owner=owner)
    if isinstance(x, np.ndarray):
        x = x.astype(DTYPE, copy=False)  # cast on the host: no device program to compile
    return jnp.asarray(x, dtype=DTYPE)


def as_example(x: Any, *, owner: str, in_features: int, name: str = "x") -> jax.Array:
    """One example ``[in_features]`` as float32, or ``ShapeError`` naming both shapes."""
    x = as_float32(x, name, owner=owner)
    if x.shape != (in_features,):
        hint = ""
        if x.ndim >= 2 and x.shape[-1] == in_features:
            hint = (
                f" {owner} works on one example at a time: map it over a batch with "
                "`jax.vmap(model)(x)`, or use the batch losses, which take `[batch, features]`."
            )
        raise ShapeError(
            f"{owner}: `{name}` must be one example of shape (in_features,) = ({in_features},), "
            f"got shape {tuple(x.shape)}.{hint}"
        )
    return x


def as_batch(x: Any, *, owner: str, in_features: int, name: str = "x") -> jax.Array:
    """A batch ``[batch, in_features]`` as float32 with at least one row, or a typed error."""
    x = as_float32(x, name, owner=owner)
    if x.ndim != 2 or x.shape[1] != in_features:
        hint = ""
        if x.shape == (in_features,):
            hint = " For a single example, add a batch axis: `x[None, :]`."
        raise ShapeError(
            f"{owner}: `{name}` must be a batch of shape (batch, in_features) = "
            f"(batch, {in_features}), got shape {tuple(x.shape)}.{hint}"
        )
    check_not_empty(x, name, owner=owner)
    return x
