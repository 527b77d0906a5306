"""Signal operations on ``[time, metrics]`` arrays: scaling, detrending, rolling windows, spectra.

Every operation is a pure jitted function. Time runs along ``axis`` (0 by default); 1-D
input is one series. Results keep the input's float dtype (integer input is promoted
to JAX's default float). Settings are static: a bad one raises
:class:`~liam_core._errors.ConfigError` or :class:`~liam_core._errors.ShapeError` while the
function is traced, before anything runs.

numpy / scipy / pandas / scikit-learn are the oracles; each docstring names its own.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._errors import ConfigError, EmptyInputError, InvalidTypeError, ShapeError

# ---------------------------------------------------------------------------------------
# Validation shared by the signal and drift-statistics modules (trace time, static info).
# ---------------------------------------------------------------------------------------


def _as_float(x: jax.Array, op: str, name: str = "x") -> jax.Array:
    """``x`` as a JAX array of a real float dtype: floats kept, integers promoted."""
    x = jnp.asarray(x)
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise InvalidTypeError(
            f"{op}: {name} must hold real numbers (float or int), got dtype {x.dtype}"
        )
    if jnp.issubdtype(x.dtype, jnp.integer):
        x = x.astype(jax.dtypes.canonicalize_dtype(float))
    return x


def _check_ndim(x: jax.Array, op: str, name: str = "x") -> None:
    if x.ndim not in (1, 2):
        raise ShapeError(
            f"{op}: {name} must be 1-D [time] or 2-D [time, metrics], got shape {x.shape}"
        )


def _check_axis(axis: int, x: jax.Array, op: str) -> int:
    """The non-negative time axis, or a ConfigError naming ``axis``."""
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise ConfigError(f"{op}: axis must be an int, got {type(axis).__name__}: {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ConfigError(
            f"{op}: axis={axis} is out of range for an array of shape {x.shape}; "
            f"allowed: {-x.ndim} <= axis < {x.ndim}"
        )
    return int(axis) % x.ndim


def _check_int(value: object, name: str, op: str, low: int, high: int | None, why: str) -> int:
    """``value`` as an int in ``[low, high]`` (``high=None``: unbounded), else a ConfigError."""
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{op}: {name} must be {allowed}{why}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ConfigError(f"{op}: {name} must be {allowed}{why}, got {name}={value}")
    return int(value)


def _check_choice(value: object, name: str, op: str, allowed: tuple) -> None:
    if not any(
        value is choice or (type(value) is type(choice) and value == choice) for choice in allowed
    ):
        raise ConfigError(
            f"{op}: unknown {name}={value!r}; allowed: {', '.join(repr(a) for a in allowed)}"
        )


def _check_positive_float(value: object, name: str, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"{op}: {name} must be a positive finite number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{op}: {name} must be a positive finite number, got {name}={value}")
    return float(value)


def _check_time_length(x: jax.Array, axis: int, op: str, name: str = "x") -> int:
    n = x.shape[axis]
    if n == 0:
        raise EmptyInputError(
            f"{op}: {name} has no samples along axis {axis} (shape {x.shape}); nothing to compute"
        )
    return n


# ---------------------------------------------------------------------------------------
# Scaling and detrending
# ---------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("axis", "ddof"))
def standardize(x: jax.Array, axis: int = 0, ddof: int = 0) -> jax.Array:
    """Centre each series to mean 0 and scale it to standard deviation 1.

    ``(x - mean) / std`` along ``axis``, as scikit-learn's ``StandardScaler().fit_transform``
    (which uses ``ddof=0``). A series whose values are all equal has zero variance and
    comes out as exactly 0, never NaN or inf (scikit-learn also gives 0 there).

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
    op = "standardize"
    x = _as_float(x, op)
    _check_ndim(x, op)
    axis = _check_axis(axis, x, op)
    n = _check_time_length(x, axis, op)
    ddof = _check_int(ddof, "ddof", op, 0, n - 1, f" (n - ddof must be > 0, n={n})")
    # Shifting by the first sample makes a constant series exactly 0 (so its variance is
    # exactly 0) and keeps the variance accurate when the mean is large against the spread.
    shifted = x - lax.index_in_dim(x, 0, axis, keepdims=True)
    centred = shifted - jnp.mean(shifted, axis=axis, keepdims=True)
    var = jnp.sum(centred * centred, axis=axis, keepdims=True) / (n - ddof)
    constant = var == 0
    std = jnp.sqrt(jnp.where(constant, 1, var))
    return jnp.where(constant, 0, centred / std)


def _time_ramp(n: int, axis: int, ndim: int, dtype) -> jax.Array:
    """``0 .. n - 1`` centred on 0, laid along ``axis`` of an ``ndim``-D array."""
    shape = [1] * ndim
    shape[axis] = n
    return (jnp.arange(n, dtype=dtype) - (n - 1) / 2).reshape(shape)


def _detrend_along(x: jax.Array, kind: str | bool | None, axis: int) -> jax.Array:
    """Remove the mean (``"constant"``) or the least-squares line (``"linear"``) along ``axis``.

    Works on ``x`` in its own layout, so the reductions read it in place.
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


_DETRENDS = ("constant", "linear")


@functools.partial(jax.jit, static_argnames=("type", "axis"))
def detrend(x: jax.Array, type: str = "linear", axis: int = 0) -> jax.Array:
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
    op = "detrend"
    _check_choice(type, "type", op, _DETRENDS)
    x = _as_float(x, op)
    _check_ndim(x, op)
    axis = _check_axis(axis, x, op)
    _check_time_length(x, axis, op)
    return _detrend_along(x, type, axis)


# ---------------------------------------------------------------------------------------
# Rolling windows
# ---------------------------------------------------------------------------------------

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


def _rolling_setup(x: jax.Array, window: int, axis: int, op: str) -> tuple[jax.Array, int, int]:
    x = _as_float(x, op)
    _check_ndim(x, op)
    axis = _check_axis(axis, x, op)
    n = _check_time_length(x, axis, op)
    window = _check_int(window, "window", op, 1, n, f" (the length of axis {axis})")
    return jnp.moveaxis(x, axis, 0), axis, window


@functools.partial(jax.jit, static_argnames=("window", "axis"))
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


@functools.partial(jax.jit, static_argnames=("window", "axis", "ddof"))
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
    op = "rolling_std"
    x, axis, window = _rolling_setup(x, window, axis, op)
    ddof = _check_int(ddof, "ddof", op, 0, window - 1, f" (window - ddof must be > 0, {window=})")
    # Deviations from the first sample are exact (Sterbenz) for data that stays within a
    # factor 2 of it, and small: the moments of a series whose mean dwarfs its spread keep
    # their digits (float32 rounds 1e4 to 1e-3, which would swamp a spread of 1e-2).
    shifted = x - x[:1]
    _, m2 = _slide((shifted, jnp.zeros_like(x)), 1, window, 1, _merge_moments)
    return jnp.moveaxis(jnp.sqrt(m2 / (window - ddof)), 0, axis)


# ---------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------

_CONVOLVE_MODES = ("full", "same", "valid")
# Kernels up to this length are applied as one fused sum of shifted, scaled copies
# (exact in the order of summation, and fast); longer ones go to XLA's convolution.
_DIRECT_KERNEL_MAX = 64


@functools.partial(jax.jit, static_argnames=("mode", "axis"))
def convolve(x: jax.Array, kernel: jax.Array, mode: str = "full", axis: int = 0) -> jax.Array:
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
    op = "convolve"
    _check_choice(mode, "mode", op, _CONVOLVE_MODES)
    x = _as_float(x, op)
    _check_ndim(x, op)
    axis = _check_axis(axis, x, op)
    n = _check_time_length(x, axis, op)
    kernel = jnp.asarray(kernel)
    if kernel.ndim != 1 or kernel.shape[0] == 0:
        raise ShapeError(f"{op}: kernel must be a non-empty 1-D array, got shape {kernel.shape}")
    kernel = _as_float(kernel, op, "kernel").astype(x.dtype)
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


# ---------------------------------------------------------------------------------------
# Spectra
# ---------------------------------------------------------------------------------------

# Periodic ("DFT-even") cosine-sum windows, as scipy.signal.get_window(name, n) builds them:
# w[k] = sum_j (-1)^j a_j cos(2 pi j k / n).
_COSINE_WINDOWS = {
    "boxcar": (1.0,),
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.50, 0.08),
}
_WINDOWS = (*_COSINE_WINDOWS, "bartlett")
_SPECTRAL_DETRENDS = (False, None, "constant", "linear")
_SCALINGS = ("density", "spectrum")
_AVERAGES = ("mean", "median")


def _window_values(name: str, n: int, xp, dtype) -> jax.Array | np.ndarray:
    """The periodic window ``name`` of length ``n``, computed with ``xp`` (numpy or jnp)."""
    if n == 1:
        return xp.ones(1, dtype=dtype)
    k = xp.arange(n, dtype=dtype)
    if name == "bartlett":
        return 1 - xp.abs(2 * k / n - 1)
    coefs = _COSINE_WINDOWS[name]
    if len(coefs) == 1:
        return xp.ones(n, dtype=dtype)
    values = coefs[0] * xp.ones(n, dtype=dtype)
    for j, a in enumerate(coefs[1:], start=1):
        values = values + (-1) ** j * a * xp.cos((2 * np.pi * j / n) * k)
    return values


def _spectral_checks(op: str, fs: object, window: object, detrend_: object, scaling: object):
    _check_choice(window, "window", op, _WINDOWS)
    _check_choice(detrend_, "detrend", op, _SPECTRAL_DETRENDS)
    _check_choice(scaling, "scaling", op, _SCALINGS)
    return _check_positive_float(fs, "fs", op)


def _largest_prime_factor(n: int) -> int:
    largest, factor = 1, 2
    while factor * factor <= n:
        while n % factor == 0:
            largest, n = factor, n // factor
        factor += 1
    return max(largest, n)


def _fft_cost_guess(n: int) -> float:
    """pocketfft/ducc0's cost model of a mixed-radix FFT of length ``n``."""
    cost, rest = 0.0, n
    while rest % 4 == 0:
        cost, rest = cost + 2, rest // 4
    while rest % 2 == 0:
        cost, rest = cost + 2, rest // 2
    factor = 3
    while factor * factor <= rest:
        while rest % factor == 0:
            cost, rest = cost + (factor if factor <= 5 else 1.1 * factor), rest // factor
        factor += 2
    if rest > 1:
        cost += rest if rest <= 5 else 1.1 * rest
    return cost * n


def _good_fft_size(n: int) -> int:
    """The smallest ``2^a 3^b 5^c 7^d 11^e >= n`` (ducc0's ``good_size_cmplx``)."""
    best = 1 << (n - 1).bit_length()
    f11 = 1
    while f11 < best:
        f7 = f11
        while f7 < best:
            f5 = f7
            while f5 < best:
                f3 = f5
                while f3 < best:
                    size = f3
                    while size < n:
                        size *= 2
                    best = min(best, size)
                    f3 *= 3
                f5 *= 5
            f7 *= 7
        f11 *= 11
    return best


def _rfft_uses_bluestein(n: int) -> bool:
    """Whether ducc0 (XLA's CPU FFT) computes a real FFT of length ``n`` by Bluestein's method.

    Its rule, approximately (a wrong guess costs only speed): lengths with a prime factor
    above sqrt(n) go through a complex FFT of about 2n points, which costs as much for real
    input as for complex input.
    """
    if n < 50 or _largest_prime_factor(n) ** 2 <= n:
        return False
    return 1.5 * 2 * _fft_cost_guess(_good_fft_size(2 * n - 1)) < 0.5 * _fft_cost_guess(n)


def _rfft_power(x: jax.Array, axis: int, peak: jax.Array) -> jax.Array:
    """``|rfft(x)|^2`` along ``axis``, returned with the frequency axis last.

    ``peak`` (``x``'s shape without ``axis``) bounds ``|x|``. When the real FFT would run
    through Bluestein's method (lengths with a large prime factor) and there are several
    series, two real series ``a`` and ``b`` share one complex FFT of ``a + ib`` (measured
    1.5-2x faster on a CPU), and are separated by the symmetry
    ``A[k] = (F[k] + conj F[n-k]) / 2``, ``B[k] = (F[k] - conj F[n-k]) / 2i``. Each series is
    first scaled by a power of two (exact) to a peak near 1, so a quiet series does not
    drown in the rounding error of a loud partner.
    """
    n = x.shape[axis]
    lead = peak.shape
    count = math.prod(lead)
    if count < 2 or not _rfft_uses_bluestein(n):
        # Time last: the FFT of each contiguous series is faster than an FFT down the
        # columns of a tall [time, metrics] array (measured, see JAX-NOTES); the layout
        # change fuses with detrending and windowing.
        spectrum = jnp.fft.rfft(jnp.moveaxis(x, axis, -1), axis=-1)
        return jnp.square(spectrum.real) + jnp.square(spectrum.imag)
    # Pair the series in x's own layout, then transpose once, to complex [pairs, time].
    columns = jnp.moveaxis(x, axis, 0).reshape(n, count)
    peak = peak.reshape(1, count)
    if count % 2:
        columns = jnp.pad(columns, ((0, 0), (0, 1)))
        peak = jnp.pad(peak, ((0, 0), (0, 1)))
    _, exponent = jnp.frexp(jnp.where(peak > 0, peak, 1))
    pairs = jnp.ldexp(columns, -exponent).reshape(n, -1, 2)
    f = jnp.fft.fft(lax.complex(pairs[..., 0], pairs[..., 1]).T, axis=-1)
    nfreq = n // 2 + 1
    head = f[:, :nfreq]
    # mirror[k] = F[(n - k) mod n]: F[0] at k = 0, then F[n - 1], F[n - 2], ...
    mirror = jnp.pad(f[:, n - nfreq + 1 :][:, ::-1], ((0, 0), (1, 0)))
    mirror = jnp.where(jnp.arange(nfreq) == 0, head, mirror)
    re_sum, re_diff = head.real + mirror.real, head.real - mirror.real
    im_sum, im_diff = head.imag + mirror.imag, head.imag - mirror.imag
    power_a = (jnp.square(re_sum) + jnp.square(im_diff)) * 0.25
    power_b = (jnp.square(re_diff) + jnp.square(im_sum)) * 0.25
    power = jnp.stack([power_a, power_b], axis=1).reshape(-1, nfreq)
    power = jnp.ldexp(power, 2 * exponent.reshape(-1, 1))
    return power[:count].reshape((*lead, nfreq))


def _power(
    x: jax.Array,
    axis: int,
    fs: float,
    window: str,
    detrend_: str | bool | None,
    onesided: bool,
    scaling: str,
) -> jax.Array:
    """Scaled ``|FFT|^2`` of each series along ``axis`` (scipy's ``_spectral_helper``).

    Returns the power with the frequency axis last.
    """
    n = x.shape[axis]
    dtype = x.dtype
    # The scale needs only two sums of the window: take them in float64 on the host.
    host_window = _window_values(window, n, np, np.float64)
    if scaling == "density":
        scale = 1.0 / (fs * float(np.sum(host_window * host_window)))
    else:
        scale = 1.0 / float(np.sum(host_window)) ** 2
    # A bound on each detrended series' magnitude (only used to balance packed FFT pairs);
    # reductions on x in its own layout read it in place.
    high, low = jnp.max(x, axis=axis), jnp.min(x, axis=axis)
    if detrend_ is False or detrend_ is None:
        peak = jnp.maximum(high, -low)
    else:
        mean = jnp.mean(x, axis=axis)
        peak = jnp.maximum(high - mean, mean - low)
    x = _detrend_along(x, detrend_, axis)
    if window != "boxcar":
        x = x * _window_values(window, n, jnp, dtype).reshape(
            [n if d == axis else 1 for d in range(x.ndim)]
        )
    if onesided:
        power = _rfft_power(x, axis, peak) * scale
        # Every bin but DC (and Nyquist, for even lengths) stands for two two-sided bins.
        nfreq = power.shape[-1]
        last_doubled = nfreq - 1 if n % 2 else nfreq - 2
        k = jnp.arange(nfreq)
        power = jnp.where((k >= 1) & (k <= last_doubled), 2 * power, power)
    else:
        complex_dtype = np.result_type(dtype, np.complex64)  # numpy's rule: no strict mode
        spectrum = jnp.fft.fft(jnp.moveaxis(x, axis, -1).astype(complex_dtype), axis=-1)
        power = (jnp.square(spectrum.real) + jnp.square(spectrum.imag)) * scale
    return power.astype(dtype)


def _frequencies(n: int, fs: float, onesided: bool, dtype) -> jax.Array:
    step = 1.0 / (n * (1.0 / fs))  # numpy's rfftfreq(n, d=1/fs), in the same order
    if onesided:
        k = jnp.arange(n // 2 + 1, dtype=dtype)
    else:
        k = jnp.arange(n, dtype=dtype)
        k = jnp.where(k <= (n - 1) // 2, k, k - n)
    return k * step


def _spectral_input(x: jax.Array, axis: int, op: str) -> tuple[jax.Array, int, int]:
    x = _as_float(x, op)
    _check_ndim(x, op)
    axis = _check_axis(axis, x, op)
    return x, axis, _check_time_length(x, axis, op)


@functools.partial(
    jax.jit,
    static_argnames=("fs", "window", "detrend", "return_onesided", "scaling", "axis"),
)
def periodogram(
    x: jax.Array,
    fs: float = 1.0,
    window: str = "boxcar",
    detrend: str | bool = "constant",
    return_onesided: bool = True,
    scaling: str = "density",
    axis: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Power spectral density (or power spectrum) of each series by one windowed FFT.

    Args:
        x: ``[time]`` or ``[time, metrics]`` array.
        fs: sampling frequency (samples per unit of time).
        window: ``"boxcar"``, ``"hann"``, ``"hamming"``, ``"blackman"`` or ``"bartlett"``,
            periodic as ``scipy.signal.get_window`` builds them.
        detrend: ``"constant"`` (remove the mean), ``"linear"`` (remove the least-squares
            line), or ``False``.
        return_onesided: ``True``: frequencies ``0 .. fs/2`` with the power of the
            negative frequencies folded in; ``False``: all ``n`` FFT frequencies.
        scaling: ``"density"`` (units**2 / Hz) or ``"spectrum"`` (units**2).
        axis: the time axis.

    Returns:
        ``(freqs, power)``: ``freqs`` has ``n // 2 + 1`` entries (one-sided) or ``n``;
        ``power`` has the shape of ``x`` with the time axis replaced by the frequency
        axis. Both in the float dtype of ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import periodogram
        >>> freqs, power = periodogram(jnp.array([1.0, -1.0, 1.0, -1.0]))
        >>> freqs.tolist(), power.tolist()
        ([0.0, 0.25, 0.5], [0.0, 0.0, 4.0])

    Oracle: ``scipy.signal.periodogram(x, fs, window, detrend=detrend,
    return_onesided=return_onesided, scaling=scaling, axis=axis)`` (``nfft`` = the length).
    """
    op = "periodogram"
    fs = _spectral_checks(op, fs, window, detrend, scaling)
    x, axis, n = _spectral_input(x, axis, op)
    onesided = bool(return_onesided)
    power = _power(x, axis, fs, window, detrend, onesided, scaling)
    return _frequencies(n, fs, onesided, x.dtype), jnp.moveaxis(power, -1, axis)


def _median_bias(count: int) -> float:
    """Ratio of the median to the mean of ``count`` chi-squared(2) periodograms (scipy's)."""
    even = 2 * np.arange(1.0, (count - 1) // 2 + 1)
    return float(1 + np.sum(1.0 / (even + 1) - 1.0 / even))


@functools.partial(
    jax.jit,
    static_argnames=(
        "fs",
        "window",
        "nperseg",
        "noverlap",
        "detrend",
        "scaling",
        "average",
        "axis",
    ),
)
def welch(
    x: jax.Array,
    fs: float = 1.0,
    window: str = "hann",
    nperseg: int = 256,
    noverlap: int | None = None,
    detrend: str | bool = "constant",
    scaling: str = "density",
    average: str = "mean",
    axis: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Welch's power spectral density: the average periodogram of overlapping segments.

    Segments of ``nperseg`` samples start every ``nperseg - noverlap`` samples; a trailing
    part too short for a whole segment is dropped, as scipy does. One-sided output.

    Args:
        x: ``[time]`` or ``[time, metrics]`` array.
        fs: sampling frequency.
        window: as in :func:`periodogram` (default ``"hann"``).
        nperseg: samples per segment, ``1 <= nperseg <= n`` (scipy shrinks a too-long
            segment with a warning; here it is a ConfigError).
        noverlap: samples shared by consecutive segments, ``0 <= noverlap < nperseg``;
            ``None`` means ``nperseg // 2``.
        detrend: ``"constant"``, ``"linear"`` or ``False``, applied to each segment.
        scaling: ``"density"`` or ``"spectrum"``.
        average: ``"mean"`` or ``"median"`` (bias-corrected as scipy does) over segments.
        axis: the time axis.

    Returns:
        ``(freqs, power)`` with ``nperseg // 2 + 1`` frequencies, laid out as
        :func:`periodogram`'s.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import welch
        >>> freqs, power = welch(jnp.tile(jnp.array([1.0, -1.0]), 8), nperseg=4)
        >>> freqs.tolist(), [round(p, 4) for p in power.tolist()]
        ([0.0, 0.25, 0.5], [0.0, 1.3333, 2.6667])

    Oracle: ``scipy.signal.welch(x, fs, window, nperseg, noverlap, detrend=detrend,
    scaling=scaling, average=average, axis=axis)``.
    """
    op = "welch"
    fs = _spectral_checks(op, fs, window, detrend, scaling)
    _check_choice(average, "average", op, _AVERAGES)
    x, axis, n = _spectral_input(x, axis, op)
    series = jnp.moveaxis(x, axis, -1)
    nperseg = _check_int(nperseg, "nperseg", op, 1, n, f" (the length of axis {axis})")
    if noverlap is None:
        noverlap = nperseg // 2
    noverlap = _check_int(noverlap, "noverlap", op, 0, nperseg - 1, f" ({nperseg=})")
    step = nperseg - noverlap
    count = (n - noverlap) // step
    starts = jnp.arange(count) * step
    segments = jax.vmap(
        lambda start: lax.dynamic_slice_in_dim(series, start, nperseg, axis=-1),
        out_axes=-2,
    )(starts)  # [..., count, nperseg]
    power = _power(segments, segments.ndim - 1, fs, window, detrend, True, scaling)
    if average == "median" and count > 1:
        power = jnp.median(power, axis=-2) / _median_bias(count)
    else:
        power = jnp.mean(power, axis=-2)
    return _frequencies(nperseg, fs, True, series.dtype), jnp.moveaxis(power, -1, axis)


@functools.partial(jax.jit, static_argnames=("fs", "axis"))
def dominant_period(x: jax.Array, fs: float = 1.0, axis: int = 0) -> jax.Array:
    """Period of the strongest non-constant oscillation of each series.

    The period is ``1 / f`` at the largest bin of the one-sided boxcar periodogram
    (mean removed) above frequency 0, in the units of ``1 / fs``. Ties go to the lowest
    frequency. A series with no power above frequency 0 (a constant) gives NaN.

    Args:
        x: ``[time]`` or ``[time, metrics]`` array with at least 2 samples.
        fs: sampling frequency.
        axis: the time axis.

    Returns:
        A scalar for 1-D ``x``, else one period per metric, in the float dtype of ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import dominant_period
        >>> t = jnp.arange(48.0)
        >>> float(dominant_period(jnp.sin(2 * jnp.pi * t / 12), fs=1.0))
        12.0

    Oracle: ``1 / f[1:][argmax(p[1:])]`` of ``scipy.signal.periodogram(x, fs, axis=axis)``.
    """
    op = "dominant_period"
    fs = _check_positive_float(fs, "fs", op)
    x = _as_float(x, op)
    _check_ndim(x, op)
    axis = _check_axis(axis, x, op)
    n = _check_time_length(x, axis, op)
    if n < 2:
        raise ShapeError(
            f"dominant_period: x needs at least 2 samples along axis {axis}, got shape {x.shape}"
        )
    freqs, power = periodogram(x, fs=fs, axis=axis)
    power = jnp.moveaxis(power, axis, 0)[1:]
    peak = jnp.argmax(power, axis=0)
    period = 1 / freqs[1:][peak]
    return jnp.where(jnp.max(power, axis=0) > 0, period, jnp.nan)
