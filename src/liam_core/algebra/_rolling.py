"""Rolling windows over ``[time, metrics]`` series: :func:`rolling_mean`, :func:`rolling_std`.

Both are pure jitted functions with "valid" output (``n - window + 1`` rows), computed by
summing in fused levels of at most 16 terms: no running sum over the whole series, so
float32 stays accurate on long series. Settings are static and checked while tracing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from .._checks import check_int
from ._jit import checked_jit
from ._series import as_series

# Terms a window sum adds in one pass. Longer windows are summed in levels of at most this
# many terms (windows of windows), so the cost grows like log(window) passes, the rounding
# error like _FLAT * levels, and nothing depends on the series length: no global running
# sum, whose cancellation loses float32 accuracy on long series.
_FLAT = 16

Stats = tuple[jax.Array, ...]
Combine = Callable[[Stats, int, Stats, int], Stats]


def _slice_rows(items: Stats, start: int, length: int) -> Stats:
    return tuple(lax.slice_in_dim(item, start, start + length, axis=0) for item in items)


def _slide(items: Stats, size: int, count: int, stride: int, combine: Combine) -> Stats:
    """For every start ``i``: combine items ``i, i + stride, ..., i + (count - 1) * stride``.

    Each item summarises ``size`` raw rows; ``combine(a, size_a, b, size_b)`` merges two
    summaries of adjacent, disjoint runs. The result has ``len - (count - 1) * stride`` rows.
    """
    length = items[0].shape[0] - (count - 1) * stride
    if count <= _FLAT:
        if combine is _add and stride > 1:
            # Upper levels of a sum: XLA's reduce-window materialises its result, so a
            # consumer that transposes (an FFT of every column) reads finished sums instead
            # of recomputing the whole stencil in its own, cache-hostile order.
            (item,) = items
            total = lax.reduce_window(
                item,
                0,
                lax.add,
                (count,) + (1,) * (item.ndim - 1),
                (1,) * item.ndim,
                "VALID",
                window_dilation=(stride,) + (1,) * (item.ndim - 1),
            )
            return (total,)
        acc = _slice_rows(items, 0, length)
        for term in range(1, count):
            acc = combine(acc, term * size, _slice_rows(items, term * stride, length), size)
        return acc
    blocks, rest = divmod(count, _FLAT)
    base = _slide(items, size, _FLAT, stride, combine)
    out = _slice_rows(_slide(base, _FLAT * size, blocks, _FLAT * stride, combine), 0, length)
    if rest:
        offset = blocks * _FLAT * stride
        tail_items = tuple(lax.slice_in_dim(item, offset, None, axis=0) for item in items)
        tail = _slide(tail_items, size, rest, stride, combine)
        out = combine(out, blocks * _FLAT * size, tail, rest * size)
    return out


def _add(a: Stats, size_a: int, b: Stats, size_b: int) -> Stats:
    del size_a, size_b
    return (a[0] + b[0],)


def _merge_moments(a: Stats, size_a: int, b: Stats, size_b: int) -> Stats:
    """Chan et al.'s pairwise update of ``(mean, sum of squared deviations)``."""
    mean_a, m2_a = a
    mean_b, m2_b = b
    total = size_a + size_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (size_b / total)
    m2 = m2_a + m2_b + delta * delta * (size_a * size_b / total)
    return mean, m2


def _rolling_setup(x: jax.Array, window: int, axis: int, owner: str) -> tuple[jax.Array, int, int]:
    x, axis, n = as_series(x, axis, owner)
    window = check_int(
        window, "window", minimum=1, maximum=n, owner=owner, why=f" (the length of axis {axis})"
    )
    return jnp.moveaxis(x, axis, 0), axis, window


@functools.partial(checked_jit, static_argnames=("window", "axis"))
def rolling_mean(x: jax.Array, window: int, axis: int = 0) -> jax.Array:
    """Mean over every run of ``window`` consecutive samples ("valid" windows only).

    Output row ``i`` is the mean of input rows ``i .. i + window - 1``. Windows are summed
    in fused levels of at most 16 terms, so float32 results stay accurate on series of
    any length (no running sum over the whole series).

    Args:
        x: ``[time]`` or ``[time, metrics]`` array.
        window: the number of samples per window, ``1 <= window <= n``.
        axis: the time axis.

    Returns:
        ``n - window + 1`` rows along ``axis``, in the float dtype of ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import rolling_mean
        >>> rolling_mean(jnp.array([1.0, 2.0, 3.0, 4.0, 5.0]), window=2).tolist()
        [1.5, 2.5, 3.5, 4.5]

    Oracle: ``pandas.DataFrame(x).rolling(window).mean()`` without its first
    ``window - 1`` (NaN) rows.
    """
    x, axis, window = _rolling_setup(x, window, axis, "rolling_mean")
    (total,) = _slide((x,), 1, window, 1, _add)
    return jnp.moveaxis(total / window, 0, axis)


@functools.partial(checked_jit, static_argnames=("window", "axis", "ddof"))
def rolling_std(x: jax.Array, window: int, axis: int = 0, ddof: int = 1) -> jax.Array:
    """Standard deviation over every run of ``window`` consecutive samples ("valid" only).

    Each window's mean and sum of squared deviations are merged pairwise (Chan et al.),
    so the result is accurate even when the mean is large against the spread.

    Args:
        x: ``[time]`` or ``[time, metrics]`` array.
        window: the number of samples per window, ``1 <= window <= n``.
        axis: the time axis.
        ddof: delta degrees of freedom (pandas' default 1); ``window - ddof`` must be > 0
            (pandas returns NaN there; here it is a ConfigError).

    Returns:
        ``n - window + 1`` rows along ``axis``, in the float dtype of ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import rolling_std
        >>> rolling_std(jnp.array([1.0, 3.0, 5.0, 5.0]), window=2).tolist()
        [1.4142135381698608, 1.4142135381698608, 0.0]

    Oracle: ``pandas.DataFrame(x).rolling(window).std(ddof=ddof)`` without its first
    ``window - 1`` (NaN) rows.
    """
    owner = "rolling_std"
    x, axis, window = _rolling_setup(x, window, axis, owner)
    ddof = check_int(
        ddof, "ddof", minimum=0, maximum=window - 1, owner=owner,
        why=f" (window - ddof must be > 0, {window=})",
    )  # fmt: skip
    # Deviations from the first sample are exact (Sterbenz) for data that stays within a
    # factor 2 of it, and small: the moments of a series whose mean dwarfs its spread keep
    # their digits (float32 rounds 1e4 to 1e-3, which would swamp a spread of 1e-2).
    shifted = x - x[:1]
    _, m2 = _slide((shifted, jnp.zeros_like(x)), 1, window, 1, _merge_moments)
    return jnp.moveaxis(jnp.sqrt(m2 / (window - ddof)), 0, axis)
