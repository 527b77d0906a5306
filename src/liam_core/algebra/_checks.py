"""Trace-time input checks shared by the algebra: they look only at static dtype and shape."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import EmptyInputError, InvalidTypeError, ShapeError


def as_real_array(x, name: str):
    """``x`` as a numpy or JAX array of real numbers, or ``InvalidTypeError`` naming ``name``.

    Text, objects, bools and complex numbers are refused; nothing is converted or copied
    beyond ``np.asarray`` of non-arrays, and tracers pass through (only dtype is read).
    """
    if not isinstance(x, jax.Array):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as error:
            raise InvalidTypeError(
                f"`{name}` must be a numeric array, could not convert it: {error}"
            ) from None
    dtype = np.dtype(x.dtype)
    if dtype == np.bool_ or not (
        np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)
    ):
        raise InvalidTypeError(f"`{name}` must hold real numbers (float or int), got dtype {dtype}")
    return x


def as_float_array(x, name: str, *, ndim: int | tuple[int, ...] | None = None) -> jax.Array:
    """Return ``x`` as a floating JAX array, or raise a typed error naming ``name``.

    Floating input keeps its dtype; integer input becomes JAX's default float (float32, or
    float64 under x64). Text, objects, bools and complex numbers are refused. Works on
    tracers, since only the static dtype and shape are inspected.
    """
    x = as_real_array(x, name)
    dtype = np.dtype(x.dtype)
    if np.issubdtype(dtype, np.integer):
        x = jnp.asarray(x, dtype=jnp.result_type(float))
    else:
        x = jnp.asarray(x)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in allowed:
            expected = " or ".join(f"{d}-D" for d in allowed)
            raise ShapeError(f"`{name}` must be {expected}, got shape {tuple(x.shape)}")
    if x.size == 0:
        raise EmptyInputError(f"`{name}` is empty (shape {tuple(x.shape)}); nothing to compute")
    return x
