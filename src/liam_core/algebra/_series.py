"""Trace-time checks of ``[time]`` / ``[time, metrics]`` input, shared by the signal modules.

The generic checks live in :mod:`liam_core._checks`; the two here are specific to series
(a time axis in range, at least one sample along it) and use its message shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array, check_int, check_ndim
from .._errors import EmptyInputError, ShapeError

SERIES_LAYOUT = " ([time] or [time, metrics])"


def as_series(x: jax.Array, axis: int, owner: str, name: str = "x") -> tuple[jax.Array, int, int]:
    """``(x, axis, n)``: ``x`` as a 1-D or 2-D float array, ``axis`` non-negative, ``n >= 1``.

    Floats keep their dtype, integers become JAX's default float; only static dtype and
    shape are read, so this runs on tracers.
    """
    x = as_float_array(x, name, owner=owner, allow_empty=True)
    check_ndim(x, name, (1, 2), owner=owner, layout=SERIES_LAYOUT)
    axis = check_int(
        axis, "axis", minimum=-x.ndim, maximum=x.ndim - 1, owner=owner,
        why=f" for an array of shape {tuple(x.shape)}",
    )  # fmt: skip
    axis %= x.ndim
    n = x.shape[axis]
    if n == 0:
        raise EmptyInputError(
            f"{owner}: `{name}` must hold at least one sample along axis {axis}, got shape "
            f"{tuple(x.shape)}"
        )
    return x, axis, n


def as_signal(x: jax.Array, axis: int, owner: str, name: str = "x") -> tuple[jax.Array, int]:
    """``(x, axis)`` for the spectral functions: an array of any rank ``>= 1``, real or
    complex, possibly empty, and ``axis`` non-negative.

    Floats and complex numbers keep their dtype, integers become JAX's default float; only
    static dtype and shape are read, so this runs on tracers.
    """
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.issubdtype(np.dtype(dtype), np.complexfloating):
        x = jnp.asarray(x)
    else:
        x = as_float_array(x, name, owner=owner, allow_empty=True)
    if x.ndim == 0:
        raise ShapeError(f"{owner}: `{name}` must have a time axis, got a scalar (shape ())")
    axis = check_int(
        axis, "axis", minimum=-x.ndim, maximum=x.ndim - 1, owner=owner,
        why=f" for an array of shape {tuple(x.shape)}",
    )  # fmt: skip
    return x, axis % x.ndim
