"""Convolution of ``[time, metrics]`` series with one 1-D kernel: :func:`convolve`."""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax

from .._checks import as_float_array, check_choice
from ._jit import checked_jit
from ._series import as_series

ConvolveMode = Literal["full", "same", "valid"]
"""Output length of :func:`convolve`, as scipy's ``mode``."""

# Kernels up to this length are applied as one fused sum of shifted, scaled copies
# (exact in the order of summation, and fast); longer ones go to XLA's convolution.
_DIRECT_KERNEL_MAX = 64


@functools.partial(checked_jit, static_argnames=("mode", "axis"))
def convolve(
    x: jax.Array, kernel: jax.Array, mode: ConvolveMode = "full", axis: int = 0
) -> jax.Array:
    """Convolve every series with one 1-D kernel along the time axis.

    Output lengths follow scipy (``n`` samples, ``k`` kernel taps): ``"full"`` gives
    ``n + k - 1``; ``"same"`` gives ``n``, centred on ``"full"``; ``"valid"`` gives
    ``max(n, k) - min(n, k) + 1``. numpy's ``np.convolve`` agrees whenever ``k <= n``.
    The kernel is cast to the float dtype of ``x``; the result has that dtype.

    Args:
        x: ``[time]`` or ``[time, metrics]`` array.
        kernel: 1-D array of taps.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        axis: the time axis.

    Returns:
        The convolution, with the time axis resized as described above.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import convolve
        >>> convolve(jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, 1.0, 0.5])).tolist()
        [0.0, 1.0, 2.5, 4.0, 1.5]
        >>> convolve(jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, 1.0, 0.5]), mode="valid").tolist()
        [2.5]

    Oracle: ``scipy.signal.convolve(x[:, j], kernel, mode)`` per column, and
    ``np.convolve(x[:, j], kernel, mode)`` when the kernel is not longer than the series.
    """
    owner = "convolve"
    check_choice(mode, "mode", ConvolveMode, owner=owner)
    x, axis, n = as_series(x, axis, owner)
    kernel = as_float_array(kernel, "kernel", ndim=1, owner=owner).astype(x.dtype)
    k = kernel.shape[0]

    series = jnp.moveaxis(x, axis, 0)
    # Full convolution: out[i] = sum_t kernel[t] * x[i - t]; pad so every tap reads zeros
    # outside the series, then correlate with the reversed kernel.
    padded = jnp.pad(series, [(k - 1, k - 1)] + [(0, 0)] * (series.ndim - 1))
    full_length = n + k - 1
    taps = kernel[::-1]
    if k <= _DIRECT_KERNEL_MAX:
        full = taps[0] * lax.slice_in_dim(padded, 0, full_length, axis=0)
        for t in range(1, k):
            full = full + taps[t] * lax.slice_in_dim(padded, t, t + full_length, axis=0)
    else:
        columns = padded.reshape(padded.shape[0], -1).T[:, None, :]  # [metrics, 1, time]
        full = lax.conv_general_dilated(
            columns, taps[None, None, :], (1,), "VALID", precision=lax.Precision.HIGHEST
        )[:, 0, :].T.reshape((full_length, *series.shape[1:]))

    if mode == "full":
        out = full
    elif mode == "same":
        start = (full_length - n) // 2
        out = lax.slice_in_dim(full, start, start + n, axis=0)
    else:
        start = min(n, k) - 1
        out = lax.slice_in_dim(full, start, start + max(n, k) - min(n, k) + 1, axis=0)
    return jnp.moveaxis(out, 0, axis)
