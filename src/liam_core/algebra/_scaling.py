"""Scaling and detrending of ``[time, metrics]`` series: :func:`standardize`, :func:`detrend`.

Every operation is a pure jitted function. Time runs along ``axis`` (0 by default); 1-D
input is one series. Results keep the input's float dtype (integer input is promoted to
JAX's default float). Settings are static: a bad one raises
:class:`~liam_core.ConfigError` or :class:`~liam_core.ShapeError` while the function is
traced, before anything runs.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._checks import check_choice, check_int
from ._jit import checked_jit
from ._series import as_series

DetrendKind = Literal["constant", "linear"]
"""What :func:`detrend` removes: the mean (``"constant"``) or the least-squares line."""


class StandardizeState(NamedTuple):
    """What :func:`standardize` fits: ``x`` maps to ``((x - shift) - mean) / scale``.

    ``shift`` is the first reference sample of each series: deviations from it are exact
    for a constant series and small when the mean dwarfs the spread, so float32 keeps its
    digits. ``mean`` is the mean of the shifted reference, ``scale`` its standard
    deviation, or 1 where ``constant`` (zero variance), as scikit-learn's ``StandardScaler``.
    """

    shift: jax.Array
    mean: jax.Array
    scale: jax.Array
    constant: jax.Array


@functools.partial(jax.jit, static_argnames=("axis", "ddof"))
def _standardize_fit(x: jax.Array, axis: int, ddof: int) -> StandardizeState:
    """The state of ``x`` (checked: 1-D or 2-D float, ``axis`` in range, ``0 <= ddof < n``)."""
    n = x.shape[axis]
    shift = lax.index_in_dim(x, 0, axis, keepdims=True)
    shifted = x - shift
    mean = jnp.mean(shifted, axis=axis, keepdims=True)
    centred = shifted - mean
    var = jnp.sum(centred * centred, axis=axis, keepdims=True) / (n - ddof)
    constant = var == 0
    scale = jnp.sqrt(jnp.where(constant, 1, var))
    return StandardizeState(*(jnp.squeeze(a, axis) for a in (shift, mean, scale, constant)))


@functools.partial(jax.jit, static_argnames=("axis", "new_data"))
def _standardize_apply(
    state: StandardizeState, x: jax.Array, axis: int, new_data: bool
) -> jax.Array:
    """``((x - shift) - mean) / scale``; a constant reference series gives 0 on its own data
    (every deviation from its first sample is 0) and, on new data, its offset from the
    reference value (scale 1, as scikit-learn)."""
    shift, mean, scale, constant = (jnp.expand_dims(a, axis) for a in state)
    centred = (x - shift) - mean
    # The select (not a division by the scale of 1) keeps the program XLA compiles, and so
    # the bits of pipelines that trace standardize into a larger jit, as they always were.
    return jnp.where(constant, centred if new_data else 0, centred / scale)


@functools.partial(checked_jit, static_argnames=("axis", "ddof"))
def standardize(x: jax.Array, axis: int = 0, ddof: int = 0) -> jax.Array:
    """Centre each series to mean 0 and scale it to standard deviation 1.

    ``(x - mean) / std`` along ``axis``, as scikit-learn's ``StandardScaler().fit_transform``
    (which uses ``ddof=0``). A series whose values are all equal has zero variance and
    comes out as exactly 0, never NaN or inf (scikit-learn also gives 0 there). To fit the
    scaling on one window and apply it to another, use
    :func:`liam_core.algebra.transforms.standardize`.

    Args:
        x: ``[time]`` or ``[time, metrics]`` array.
        axis: the time axis.
        ddof: delta degrees of freedom of the standard deviation; ``n - ddof`` must be > 0.

    Returns:
        An array of the shape and float dtype of ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import standardize
        >>> standardize(jnp.array([[1.0, 5.0], [3.0, 5.0]])).tolist()
        [[-1.0, 0.0], [1.0, 0.0]]

    Oracle: ``sklearn.preprocessing.StandardScaler`` (``ddof=0``), ``scipy.stats.zscore``.
    """
    owner = "standardize"
    x, axis, n = as_series(x, axis, owner)
    ddof = check_int(
        ddof, "ddof", minimum=0, maximum=n - 1, owner=owner, why=f" (n - ddof must be > 0, n={n})"
    )
    return _standardize_apply(_standardize_fit(x, axis, ddof), x, axis, new_data=False)


def _time_ramp(n: int, axis: int, ndim: int, dtype) -> jax.Array:
    """``0 .. n - 1`` centred on 0, laid along ``axis`` of an ``ndim``-D array."""
    shape = [1] * ndim
    shape[axis] = n
    return (jnp.arange(n, dtype=dtype) - (n - 1) / 2).reshape(shape)


def detrend_along(x: jax.Array, kind: DetrendKind | bool | None, axis: int) -> jax.Array:
    """Remove the mean (``"constant"``) or the least-squares line (``"linear"``) along ``axis``.

    ``False`` or ``None`` leave ``x`` as it is. Works on ``x`` in its own layout, so the
    reductions read it in place. No checks: callers have validated ``x`` and ``kind``.
    """
    if kind is False or kind is None:
        return x
    centred = x - jnp.mean(x, axis=axis, keepdims=True)
    n = x.shape[axis]
    if kind == "constant" or n < 2:  # one sample: the fitted line passes through it
        return centred
    # Least squares on a centred time axis: the slope needs no intercept, and the normal
    # equations stay well conditioned for long series (scipy solves the same problem with
    # lstsq on [t/n, 1]).
    t = _time_ramp(n, axis, x.ndim, x.dtype)
    slope = jnp.sum(centred * t, axis=axis, keepdims=True) / (n * (n * n - 1) / 12)
    return centred - slope * t


@functools.partial(checked_jit, static_argnames=("type", "axis"))
def detrend(x: jax.Array, type: DetrendKind = "linear", axis: int = 0) -> jax.Array:
    """Remove the mean (``type="constant"``) or the least-squares line (``"linear"``).

    Args:
        x: ``[time]`` or ``[time, metrics]`` array.
        type: ``"linear"`` (default) or ``"constant"``; named as scipy names it.
        axis: the time axis (scipy's default is the last axis; ours is 0, the time axis).

    Returns:
        The residuals, an array of the shape and float dtype of ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import detrend
        >>> detrend(jnp.array([1.0, 3.0, 5.0, 7.0])).tolist()
        [0.0, 0.0, 0.0, 0.0]
        >>> detrend(jnp.array([1.0, 3.0, 5.0, 7.0]), type="constant").tolist()
        [-3.0, -1.0, 1.0, 3.0]

    Oracle: ``scipy.signal.detrend(x, axis=axis, type=type)`` (no breakpoints).
    """
    owner = "detrend"
    check_choice(type, "type", DetrendKind, owner=owner)
    x, axis, _ = as_series(x, axis, owner)
    return detrend_along(x, type, axis)
