"""Spectra of ``[time, metrics]`` series: :func:`periodogram`, :func:`welch`, :func:`dominant_period`.

Every operation is a pure jitted function following ``scipy.signal``'s conventions (its
windows, detrending, scaling and one-sided folding); each docstring names its oracle.
Settings are static and checked while tracing. On the CPU backend, lengths whose real
FFT XLA would compute by Bluestein's method pair two series into one complex FFT.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import check_bool, check_choice, check_int, check_number
from .._errors import InvalidValueError, ShapeError
from ._jit import checked_jit
from ._scaling import detrend_along
from ._series import as_series

# Periodic ("DFT-even") cosine-sum windows, as scipy.signal.get_window(name, n) builds them:
# w[k] = sum_j (-1)^j a_j cos(2 pi j k / n).
_COSINE_WINDOWS = {
    "boxcar": (1.0,),
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.50, 0.08),
}

WindowName = Literal["boxcar", "hann", "hamming", "blackman", "bartlett"]
"""The spectral windows, periodic as ``scipy.signal.get_window(name, n)`` builds them."""
SpectralDetrend = Literal["constant", "linear", False, None]
"""What a spectrum removes from each series (segment) first; ``False``/``None``: nothing."""
Scaling = Literal["density", "spectrum"]
"""Units of a spectrum: ``"density"`` (units**2 / Hz) or ``"spectrum"`` (units**2)."""
Average = Literal["mean", "median"]
"""How :func:`welch` averages the periodograms of its segments."""


def _window_values(name: WindowName, n: int, xp, dtype) -> jax.Array | np.ndarray:
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


def _spectral_checks(
    owner: str, fs: object, window: object, detrend_: object, scaling: object
) -> float:
    check_choice(window, "window", WindowName, owner=owner)
    check_choice(detrend_, "detrend", SpectralDetrend, owner=owner)
    check_choice(scaling, "scaling", Scaling, owner=owner)
    return check_number(fs, "fs", positive=True, owner=owner)


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
    input as for complex input. Always ``False`` off the CPU backend (read at trace time).
    """
    # The cost model is ducc0's and was measured only on XLA CPU, where Bluestein lengths are
    # slow (a 999,969-point rfft of 64 series took 2.35 s against 0.6 s for 10^6 points, on
    # 2 EPYC cores); GPU and TPU FFT libraries have their own plans, so they get the plain
    # real FFT of the given length.
    if jax.default_backend() != "cpu":
        return False
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
        # Time last: the FFT of each contiguous series was measured faster (in numpy and
        # JAX) than an FFT down the columns of a tall [time, metrics] array; the layout
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
    window: WindowName,
    detrend_: SpectralDetrend,
    onesided: bool,
    scaling: Scaling,
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
    x = detrend_along(x, detrend_, axis)
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


@functools.partial(
    checked_jit,
    static_argnames=("fs", "window", "detrend", "return_onesided", "scaling", "axis"),
)
def periodogram(
    x: jax.Array,
    fs: float = 1.0,
    window: WindowName = "boxcar",
    detrend: SpectralDetrend = "constant",
    return_onesided: bool = True,
    scaling: Scaling = "density",
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
    owner = "periodogram"
    fs = _spectral_checks(owner, fs, window, detrend, scaling)
    onesided = check_bool(return_onesided, "return_onesided", owner=owner)
    x, axis, n = as_series(x, axis, owner)
    power = _power(x, axis, fs, window, detrend, onesided, scaling)
    return _frequencies(n, fs, onesided, x.dtype), jnp.moveaxis(power, -1, axis)


def _median_bias(count: int) -> float:
    """Ratio of the median to the mean of ``count`` chi-squared(2) periodograms (scipy's)."""
    even = 2 * np.arange(1.0, (count - 1) // 2 + 1)
    return float(1 + np.sum(1.0 / (even + 1) - 1.0 / even))


@functools.partial(
    checked_jit,
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
    window: WindowName = "hann",
    nperseg: int = 256,
    noverlap: int | None = None,
    detrend: SpectralDetrend = "constant",
    scaling: Scaling = "density",
    average: Average = "mean",
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
    owner = "welch"
    fs = _spectral_checks(owner, fs, window, detrend, scaling)
    check_choice(average, "average", Average, owner=owner)
    x, axis, n = as_series(x, axis, owner)
    series = jnp.moveaxis(x, axis, -1)
    nperseg = check_int(
        nperseg, "nperseg", minimum=1, maximum=n, owner=owner, why=f" (the length of axis {axis})"
    )
    if noverlap is None:
        noverlap = nperseg // 2
    noverlap = check_int(
        noverlap, "noverlap", minimum=0, maximum=nperseg - 1, owner=owner, why=f" ({nperseg=})"
    )
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


def dominant_period(x: jax.Array, fs: float = 1.0, axis: int = 0) -> jax.Array:
    """Period of the strongest non-constant oscillation of each series.

    The period is ``1 / f`` at the largest bin of the one-sided boxcar periodogram
    (mean removed) above frequency 0, in the units of ``1 / fs``. Ties go to the lowest
    frequency. A finite series with no power above frequency 0 (a constant) has no period:
    an :class:`~liam_core.InvalidValueError` names it; inside an outer ``jax.jit``, where
    values cannot be checked, it gives NaN (as does a series holding NaN or inf).

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
    period = _dominant_period(x, fs, axis)
    if isinstance(period, jax.core.Tracer):
        return period
    missing = np.isnan(np.asarray(period))
    if missing.any():
        # NaN from finite input is a series without any power above frequency 0.
        values = np.asarray(x)
        finite = np.isfinite(values).all(axis=axis % values.ndim)
        constant = missing & finite
        if constant.any():
            where = "" if values.ndim == 1 else f" at column {int(np.argmax(constant))}"
            raise InvalidValueError(
                f"dominant_period: `x` must vary along axis {axis % values.ndim} (a constant "
                f"series has no period), got a series without power above frequency 0{where}"
            )
    return period


@functools.partial(checked_jit, static_argnames=("fs", "axis"))
def _dominant_period(x: jax.Array, fs: float, axis: int) -> jax.Array:
    owner = "dominant_period"
    fs = check_number(fs, "fs", positive=True, owner=owner)
    x, axis, n = as_series(x, axis, owner)
    if n < 2:
        raise ShapeError(
            f"{owner}: `x` must hold at least 2 samples along axis {axis}, got shape "
            f"{tuple(x.shape)}"
        )
    freqs, power = periodogram(x, fs=fs, axis=axis)
    power = jnp.moveaxis(power, axis, 0)[1:]
    peak = jnp.argmax(power, axis=0)
    period = 1 / freqs[1:][peak]
    return jnp.where(jnp.max(power, axis=0) > 0, period, jnp.nan)
