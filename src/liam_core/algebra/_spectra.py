"""Spectra, drop-ins for ``scipy.signal``'s: :func:`periodogram`, :func:`welch`, :func:`csd`,
:func:`coherence`, :func:`spectrogram`, :func:`stft`, :func:`istft`, and :func:`dominant_period`.

Each takes the scipy function's parameters and gives its results (windows, detrending,
scaling, one-sided folding, warnings, edge cases); each docstring names its oracle. The one
difference is the time axis: ``axis=0`` by default (scipy's is -1). Settings are checked in
Python, where tracing reads them; windows are built on the host by
``scipy.signal.get_window`` (float64) and enter the compiled program as an argument, so a new
window of the same length does not compile again. On the CPU backend, lengths whose real
FFT XLA would compute by Bluestein's method pair two series into one complex FFT.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal
from jax import lax

from .._checks import (
    as_float_array,
    as_real_array,
    check_bool,
    check_choice,
    check_int,
    check_number,
    quote,
)
from .._errors import ConfigError, EmptyInputError, InvalidTypeError, InvalidValueError, ShapeError
from ._jit import checked_jit
from ._scaling import detrend_along
from ._series import as_series, as_signal

WindowSpec = str | tuple[Any, ...] | np.ndarray | jax.Array
"""A spectral window as ``scipy.signal`` takes it: a name (``"hann"``), a name with its
parameters (``("tukey", 0.25)``, ``("kaiser", 8.0)``), both built by
``scipy.signal.get_window`` (periodic, "DFT-even"), or the window's values (a 1-D array)."""
SpectralDetrend = Literal["constant", "linear", False, None] | Callable[[jax.Array], jax.Array]
"""What a spectrum removes from each segment first: ``"constant"`` (the mean), ``"linear"``
(the least-squares line), ``False``/``None`` (nothing), or a function of a segment that JAX
can trace (it gets ``[..., nperseg]``, time last, as scipy passes a segment)."""
Scaling = Literal["density", "spectrum"]
"""Units of a spectrum: ``"density"`` (units**2 / Hz) or ``"spectrum"`` (units**2)."""
Average = Literal["mean", "median"]
"""How :func:`welch` and :func:`csd` average the periodograms of their segments."""
SpectrogramMode = Literal["psd", "complex", "magnitude", "angle", "phase"]
"""What :func:`spectrogram` returns per segment: power, the complex STFT, its magnitude,
its angle, or its angle unwrapped along the frequency axis."""

_DETRENDS = ("constant", "linear")


@functools.lru_cache(maxsize=64)
def _named_window(window: str | tuple[Any, ...], nperseg: int) -> np.ndarray:
    values = scipy.signal.get_window(window, nperseg, fftbins=True).astype(np.float64)
    values.setflags(write=False)
    return values


def _window_and_length(window: Any, nperseg: Any, n: int, owner: str) -> tuple[np.ndarray, int]:
    """scipy's segment triage: the window's float64 values and the segment length.

    A named window gets ``nperseg`` samples (256 when ``None``); a segment longer than
    the ``n`` samples becomes ``n`` long with a ``UserWarning``, as scipy does. A window
    given as values sets ``nperseg`` (which, when given too, must equal its length).
    """
    if isinstance(window, str | tuple):
        nperseg = 256 if nperseg is None else check_int(nperseg, "nperseg", owner=owner)
        if nperseg > n:
            warnings.warn(
                f"{owner}: nperseg={nperseg} is greater than the signal length {n}, using "
                f"nperseg={n}",
                UserWarning,
                stacklevel=4,
            )
        nperseg = min(nperseg, n)
        expected = (
            "a window scipy.signal.get_window builds (a name such as 'hann', or a name and "
            "its parameters such as ('tukey', 0.25)) or an array of nperseg values"
        )
        try:
            hash(window)
            return _named_window(window, nperseg), nperseg
        except (ValueError, TypeError) as error:
            raise ConfigError(
                f"{owner}: `window` must be {expected}, got {quote(window)} ({quote(str(error))})"
            ) from None
    if isinstance(window, jax.core.Tracer):
        raise InvalidTypeError(
            f"{owner}: `window` must be concrete values (a numpy array or a name), got a "
            "traced array: pass it from outside jax.jit"
        )
    values = np.asarray(as_real_array(window, "window", owner=owner), np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ShapeError(
            f"{owner}: `window` must be a 1-D array of at least one value, got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise InvalidValueError(f"{owner}: `window` must hold finite values, got a NaN or inf")
    if nperseg is not None:
        nperseg = check_int(nperseg, "nperseg", owner=owner)
        if nperseg != values.size:
            raise ConfigError(
                f"{owner}: `nperseg` must equal the length of `window` ({values.size}), got "
                f"{nperseg}"
            )
    if values.size > n:
        raise ConfigError(
            f"{owner}: `window` must not be longer than the signal ({n} samples along the "
            f"time axis), got {values.size} values"
        )
    return values, values.size


def _check_detrend(detrend_: Any, owner: str) -> Any:
    if callable(detrend_):
        return detrend_
    if detrend_ is False or detrend_ is None:
        return False
    if detrend_ in _DETRENDS:
        return detrend_
    raise ConfigError(
        f"{owner}: `detrend` must be one of 'constant', 'linear', False, None or a function "
        f"of a segment, got {quote(detrend_)}"
    )


def _spectral_settings(owner: str, fs: Any, scaling: Any, return_onesided: Any) -> float:
    check_choice(scaling, "scaling", Scaling, owner=owner)
    check_bool(return_onesided, "return_onesided", owner=owner)
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


# The shortest series whose real FFTs are paired into complex ones. Measured on XLA CPU (2
# Xeon cores, 64 float32 series, `benchmarks/algebra.py`'s lengths): one complex FFT of 32
# pairs against the real FFT of the 64 series took 2.25x as long at 9,969 points and 1.59x at
# 99,969, but 0.77x at 299,969, 0.76x at 999,969 and 0.82x at 1,999,969 (Bluestein lengths
# all). Below this length ducc0's real Bluestein transform is the faster.
_PAIRED_FFT_MIN_LENGTH = 200_000


def _rfft_power(x: jax.Array, axis: int, peak: jax.Array) -> jax.Array:
    """``|rfft(x)|^2`` along ``axis``, returned with the frequency axis last.

    ``peak`` (``x``'s shape without ``axis``) bounds ``|x|``. When the real FFT would run
    through Bluestein's method (lengths with a large prime factor), the series are long
    (``_PAIRED_FFT_MIN_LENGTH``) and there are several, two real series ``a`` and ``b``
    share one complex FFT of ``a + ib`` (measured 1.2-1.3x faster on a CPU at 3e5-2e6
    points, slower below 2e5), and are separated by the symmetry
    ``A[k] = (F[k] + conj F[n-k]) / 2``, ``B[k] = (F[k] - conj F[n-k]) / 2i``. Each series is
    first scaled by a power of two (exact) to a peak near 1, so a quiet series does not
    drown in the rounding error of a loud partner.
    """
    n = x.shape[axis]
    lead = peak.shape
    count = math.prod(lead)
    if count < 2 or n < _PAIRED_FFT_MIN_LENGTH or not _rfft_uses_bluestein(n):
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


def _detrended(segments: jax.Array, detrend_: Any, callable_axis: int | None) -> jax.Array:
    """``segments`` (time last) with ``detrend_`` removed from each.

    A function gets one segment at a time, ``[..., nperseg]`` (as ``scipy.signal.csd``
    and ``welch`` call it) or, with ``callable_axis``, the whole ``[..., count, nperseg]``
    with time moved to that axis (as ``scipy.signal.spectrogram`` calls it).
    """
    if detrend_ is False:
        return segments
    if not callable(detrend_):
        return detrend_along(segments, detrend_, segments.ndim - 1)
    if callable_axis is None:
        out = jax.vmap(detrend_, in_axes=-2, out_axes=-2)(segments)
    else:
        out = jnp.moveaxis(detrend_(jnp.moveaxis(segments, -1, callable_axis)), callable_axis, -1)
    out = jnp.asarray(out)
    if out.shape != segments.shape:
        raise ShapeError(
            f"`detrend` must return a segment of the shape it was given, {segments.shape[-1]} "
            f"samples, got shape {tuple(out.shape)} for {tuple(segments.shape)}"
        )
    return out.astype(segments.dtype)


def _segments(series: jax.Array, nperseg: int, hop: int, count: int) -> jax.Array:
    """``[..., count, nperseg]``: the segments of ``series`` (time last) every ``hop``."""
    if count == 1:
        return series[..., None, :nperseg]
    starts = jnp.arange(count) * hop
    return jax.vmap(
        lambda start: lax.dynamic_slice_in_dim(series, start, nperseg, axis=-1), out_axes=-2
    )(starts)


def _doubled(power: jax.Array, nfft: int) -> jax.Array:
    """One-sided folding (frequency last): every bin but DC (and Nyquist, for an even
    ``nfft``) stands for two two-sided bins."""
    nfreq = power.shape[-1]
    last = nfreq - 1 if nfft % 2 else nfreq - 2
    k = jnp.arange(nfreq)
    return jnp.where((k >= 1) & (k <= last), 2 * power, power)


def _windowed(x: jax.Array, axis: int, win: jax.Array | None, nfft: int) -> jax.Array:
    """``x`` times the window (``None``: a boxcar) along ``axis``, zero-padded to ``nfft``."""
    if win is not None:
        x = x * win.astype(x.dtype).reshape([-1 if d == axis else 1 for d in range(x.ndim)])
    if nfft > x.shape[axis]:
        padding = [(0, 0)] * x.ndim
        padding[axis] = (0, nfft - x.shape[axis])
        x = jnp.pad(x, padding)
    return x


def _real_power(x: jax.Array, axis: int, win: jax.Array, nfft: int, detrend_: Any) -> jax.Array:
    """One-sided ``|rfft|^2`` of each real series along ``axis`` (not scaled nor folded),
    frequency last; ``x`` is read in its own layout. A ``detrend_`` function needs
    segments, ``x`` of ``[..., count, nperseg]`` with ``axis`` last."""
    if callable(detrend_):
        x = _detrended(x, detrend_, None)
        peak = jnp.max(jnp.abs(x), axis=axis)
    else:
        # A bound on each detrended series' magnitude (only used to balance packed FFT
        # pairs); reductions on x in its own layout read it in place.
        high, low = jnp.max(x, axis=axis), jnp.min(x, axis=axis)
        if detrend_ is False:
            peak = jnp.maximum(high, -low)
        else:
            mean = jnp.mean(x, axis=axis)
            peak = jnp.maximum(high - mean, mean - low)
        x = detrend_along(x, detrend_, axis)
    return _rfft_power(_windowed(x, axis, win, nfft), axis, peak)


def _spectra(
    series: jax.Array, win: jax.Array, nfft: int, onesided: bool, detrend_: Any, callable_axis
) -> jax.Array:
    """The FFT of each detrended, windowed segment: ``[..., count, nperseg]`` in,
    ``[..., count, nfreq]`` complex out."""
    segments = _detrended(series, detrend_, callable_axis)
    segments = _windowed(segments, segments.ndim - 1, win, nfft)
    if onesided:
        return jnp.fft.rfft(segments.real, axis=-1)
    return jnp.fft.fft(segments.astype(_complex_dtype(segments.dtype)), axis=-1)


def _average(values: jax.Array, average: str) -> jax.Array:
    """Mean or bias-corrected median over the segment axis (``-2``)."""
    count = values.shape[-2]
    if count == 1:
        return values[..., 0, :]
    if average == "mean":
        return jnp.mean(values, axis=-2)
    bias = _median_bias(count)
    if jnp.iscomplexobj(values):
        median = lax.complex(jnp.median(values.real, axis=-2), jnp.median(values.imag, axis=-2))
        return median / bias
    return jnp.median(values, axis=-2) / bias


@functools.partial(
    jax.jit,
    static_argnames=(
        "fs", "scaling", "axis", "nperseg", "hop", "count", "nfft", "detrend_", "onesided",
        "average",
    ),
)  # fmt: skip
def _welch_power(
    x, win, *, fs, scaling, axis, nperseg, hop, count, nfft, detrend_, onesided, average
):
    """Welch's power of ``x`` along ``axis``, the frequency axis at ``axis``; ``onesided``
    only for real ``x``."""
    scale = _scale(win, nperseg, fs, scaling)
    if onesided and count == 1 and not callable(detrend_):
        # A periodogram: x read in its own layout (reductions in place, one transpose).
        segment = lax.slice_in_dim(x, 0, nperseg, axis=axis)
        power = _doubled(_real_power(segment, axis, win, nfft, detrend_) * scale, nfft)
    else:
        segments = _segments(jnp.moveaxis(x, axis, -1), nperseg, hop, count)
        if onesided:
            power = _real_power(segments, segments.ndim - 1, win, nfft, detrend_)
        else:
            spectra = _spectra(segments, win, nfft, False, detrend_, None)
            power = jnp.square(spectra.real) + jnp.square(spectra.imag)
        # Folded before averaging (doubling is exact): XLA then fuses |F|^2, the scale and
        # the folding into one pass over the FFT's output; scaled |F|^2 alone went to the
        # reduction as separate real and imaginary arrays (18% slower on 1e6 x 64 rows).
        power = power * scale
        power = _average(_doubled(power, nfft) if onesided else power, average)
    return jnp.moveaxis(power.astype(_real_dtype(x.dtype)), -1, axis)


@functools.partial(
    jax.jit,
    static_argnames=(
        "fs", "scaling", "axis", "nperseg", "hop", "count", "nfft", "detrend_", "onesided",
        "average",
    ),
)  # fmt: skip
def _cross_power(
    x, y, win, *, fs, scaling, axis, nperseg, hop, count, nfft, detrend_, onesided, average
):
    """``conj(X) * Y`` averaged over segments; ``x`` and ``y`` time last, the outer axes
    broadcast. The frequency axis goes to ``axis``."""
    scale = _scale(win, nperseg, fs, scaling)
    shape = jnp.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    x = jnp.broadcast_to(x, (*shape, x.shape[-1]))
    y = jnp.broadcast_to(y, (*shape, y.shape[-1]))
    spectra_x = _spectra(_segments(x, nperseg, hop, count), win, nfft, onesided, detrend_, None)
    spectra_y = _spectra(_segments(y, nperseg, hop, count), win, nfft, onesided, detrend_, None)
    cross = jnp.conj(spectra_x) * spectra_y
    cross = _average(cross * jnp.asarray(scale, cross.dtype), average)
    if onesided:
        cross = _doubled(cross, nfft)
    return jnp.moveaxis(cross.astype(_complex_dtype(x.dtype, y.dtype)), -1, axis)


@functools.partial(
    jax.jit,
    static_argnames=(
        "fs", "scaling", "axis", "nperseg", "hop", "count", "nfft", "detrend_", "onesided",
        "mode",
    ),
)  # fmt: skip
def _segment_spectra(
    x, win, *, fs, scaling, axis, nperseg, hop, count, nfft, detrend_, onesided, mode
):
    """The spectrogram of ``x`` (time last): ``[..., nfreq, count]`` moved so the frequency
    axis is at ``axis`` and the segment axis last."""
    scale = _scale(win, nperseg, fs, scaling)
    callable_axis = axis if x.ndim > 1 else None
    spectra = _spectra(
        _segments(x, nperseg, hop, count), win, nfft, onesided, detrend_, callable_axis
    )
    if mode == "psd":
        result = (jnp.square(spectra.real) + jnp.square(spectra.imag)) * scale
        if onesided:
            result = _doubled(result, nfft)
        result = result.astype(_real_dtype(x.dtype))
    else:
        result = spectra * jnp.asarray(jnp.sqrt(scale), spectra.dtype)
        if mode == "magnitude":
            result = jnp.abs(result)
        elif mode in ("angle", "phase"):
            result = jnp.angle(result)
            if mode == "phase":
                result = jnp.unwrap(result, axis=-1)
    result = jnp.swapaxes(result, -1, -2)  # [..., nfreq, count]
    return jnp.moveaxis(result, -2, axis)


def _median_bias(count: int) -> float:
    """Ratio of the median to the mean of ``count`` chi-squared(2) periodograms (scipy's)."""
    even = 2 * np.arange(1.0, (count - 1) // 2 + 1)
    return float(1 + np.sum(1.0 / (even + 1) - 1.0 / even))


def _frequencies(nfft: int, fs: float, onesided: bool, dtype: Any) -> jax.Array:
    """numpy's ``rfftfreq(nfft, 1 / fs)`` or ``fftfreq``, computed in float64 on the host."""
    freqs = np.fft.rfftfreq(nfft, 1 / fs) if onesided else np.fft.fftfreq(nfft, 1 / fs)
    return jnp.asarray(freqs, dtype=dtype)


def _scale(win: jax.Array | None, nperseg: int, fs: float, scaling: str) -> Any:
    """The periodogram's scale from the window's two sums: a constant of the program for
    a boxcar (``None``), else computed from the window in the program (so a new window of
    the same length does not compile again)."""
    if win is None:
        return 1.0 / (fs * nperseg) if scaling == "density" else 1.0 / nperseg**2
    if scaling == "density":
        return 1.0 / (fs * jnp.sum(win * win))
    return 1.0 / jnp.square(jnp.sum(win))


def _window_argument(win: np.ndarray, dtype: Any) -> jax.Array | None:
    """The window as an argument of the jitted functions; ``None`` for a boxcar (nothing
    to multiply by)."""
    return None if np.all(win == 1.0) else jnp.asarray(win, dtype)


def _complex_dtype(*dtypes: Any) -> np.dtype:
    """numpy's promotion of ``dtypes`` with complex64 (JAX's strict mode has none)."""
    return jax.dtypes.canonicalize_dtype(np.result_type(*dtypes, np.complex64))


def _real_dtype(dtype: Any) -> np.dtype:
    """The real dtype of the same precision (float32 for complex64)."""
    return np.finfo(dtype).dtype


def _empty(shape: tuple[int, ...], dtype: Any, parts: int = 2) -> tuple[jax.Array, ...]:
    """scipy's answer to an empty signal: empty arrays of the input's shape."""
    return tuple(jnp.zeros(shape, _real_dtype(dtype)) for _ in range(parts))


class _Segmenting(NamedTuple):
    win: np.ndarray
    nperseg: int
    noverlap: int
    hop: int
    count: int
    nfft: int

    def static(self) -> dict[str, int]:
        """The segment layout as the jitted functions' static arguments."""
        return {"nperseg": self.nperseg, "hop": self.hop, "count": self.count, "nfft": self.nfft}


def _segmenting(
    owner: str, window: Any, nperseg: Any, noverlap: Any, nfft: Any, n: int,
    *, default_overlap: int = 2, length: int | None = None,
) -> _Segmenting:  # fmt: skip
    """The segments of a signal of ``n`` samples (``length`` once extended, if given)."""
    win, nperseg = _window_and_length(window, nperseg, n, owner)
    nfft = nperseg if nfft is None else check_int(nfft, "nfft", minimum=nperseg, owner=owner,
                                                  why=f" (at least nperseg={nperseg})")  # fmt: skip
    if noverlap is None:
        noverlap = nperseg // default_overlap
    noverlap = check_int(
        noverlap, "noverlap", minimum=None, maximum=nperseg - 1, owner=owner,
        why=f" (less than nperseg={nperseg})",
    )  # fmt: skip
    hop = nperseg - noverlap
    length = n if length is None else length
    return _Segmenting(win, nperseg, noverlap, hop, (length - noverlap) // hop, nfft)


def periodogram(
    x: jax.Array,
    fs: float = 1.0,
    window: WindowSpec | None = "boxcar",
    nfft: int | None = None,
    detrend: SpectralDetrend = "constant",
    return_onesided: bool = True,
    scaling: Scaling = "density",
    axis: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Power spectral density (or power spectrum) of each series by one windowed FFT.

    Args:
        x: an array of any rank with time along ``axis``: real (float or int) or complex.
        fs: sampling frequency (samples per unit of time).
        window: a :data:`WindowSpec`: a name or ``(name, parameters)`` that
            ``scipy.signal.get_window`` builds, or ``n`` values; ``None`` is ``"boxcar"``.
        nfft: FFT length: ``None`` (the length ``n``); longer pads with zeros; shorter
            uses the first ``nfft`` samples.
        detrend: ``"constant"``, ``"linear"``, ``False``/``None``, or a function of a
            segment (see :data:`SpectralDetrend`).
        return_onesided: ``True``: frequencies ``0 .. fs/2`` with the power of the
            negative frequencies folded in; ``False`` (and always for complex ``x``):
            all ``nfft`` FFT frequencies, in ``numpy.fft.fftfreq``'s order.
        scaling: ``"density"`` (units**2 / Hz) or ``"spectrum"`` (units**2).
        axis: the time axis (scipy's default is the last axis; ours is 0, the time axis).

    Returns:
        ``(freqs, power)``: ``power`` has the shape of ``x`` with the time axis replaced by
        the frequency axis, in the real float dtype of ``x`` (integers: JAX's default
        float). An empty ``x`` gives two empty arrays of its shape, as scipy returns.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import periodogram
        >>> freqs, power = periodogram(jnp.array([1.0, -1.0, 1.0, -1.0]))
        >>> freqs.tolist(), power.tolist()
        ([0.0, 0.25, 0.5], [0.0, 0.0, 4.0])

    Oracle: ``scipy.signal.periodogram`` with the same arguments.
    """
    owner = "periodogram"
    fs = _spectral_settings(owner, fs, scaling, return_onesided)
    detrend_ = _check_detrend(detrend, owner)
    x, axis = as_signal(x, axis, owner)
    if x.size == 0:
        return _empty(x.shape, x.dtype)
    n = x.shape[axis]
    window = "boxcar" if window is None else window
    if nfft is not None:
        nfft = check_int(nfft, "nfft", owner=owner)
        if nfft < n:
            x, n, nfft = lax.slice_in_dim(x, 0, nfft, axis=axis), nfft, None
    plan = _segmenting(owner, window, n, 0, nfft, n)
    return _welch(x, fs, plan, detrend_, return_onesided, scaling, axis, "mean")


def welch(
    x: jax.Array,
    fs: float = 1.0,
    window: WindowSpec = "hann",
    nperseg: int | None = None,
    noverlap: int | None = None,
    nfft: int | None = None,
    detrend: SpectralDetrend = "constant",
    return_onesided: bool = True,
    scaling: Scaling = "density",
    axis: int = 0,
    average: Average = "mean",
) -> tuple[jax.Array, jax.Array]:
    """Welch's power spectral density: the average periodogram of overlapping segments.

    Segments of ``nperseg`` samples start every ``nperseg - noverlap`` samples; a trailing
    part too short for a whole segment is dropped, as scipy does.

    Args:
        x: an array of any rank with time along ``axis``: real (float or int) or complex.
        fs: sampling frequency.
        window: a :data:`WindowSpec` (default ``"hann"``); values set ``nperseg``.
        nperseg: samples per segment (``None``: 256, or the window's length); longer than
            the signal: the signal's length, with a ``UserWarning``, as scipy does.
        noverlap: samples shared by consecutive segments, ``< nperseg`` (``None``:
            ``nperseg // 2``).
        nfft: FFT length of each segment, ``>= nperseg`` (zero padding; ``None``: nperseg).
        detrend: ``"constant"``, ``"linear"``, ``False``/``None``, or a function of a
            segment, applied to each segment.
        return_onesided: as in :func:`periodogram`.
        scaling: ``"density"`` or ``"spectrum"``.
        axis: the time axis (scipy's default is the last axis; ours is 0).
        average: ``"mean"`` or ``"median"`` (bias-corrected as scipy does) over segments.

    Returns:
        ``(freqs, power)`` with ``nfft // 2 + 1`` frequencies (one-sided) or ``nfft``, laid
        out as :func:`periodogram`'s.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import welch
        >>> freqs, power = welch(jnp.tile(jnp.array([1.0, -1.0]), 8), nperseg=4)
        >>> freqs.tolist(), [round(p, 4) for p in power.tolist()]
        ([0.0, 0.25, 0.5], [0.0, 1.3333, 2.6667])

    Oracle: ``scipy.signal.welch`` with the same arguments.
    """
    owner = "welch"
    fs = _spectral_settings(owner, fs, scaling, return_onesided)
    check_choice(average, "average", Average, owner=owner)
    detrend_ = _check_detrend(detrend, owner)
    x, axis = as_signal(x, axis, owner)
    if x.size == 0:
        return _empty(x.shape, x.dtype)
    plan = _segmenting(owner, window, nperseg, noverlap, nfft, x.shape[axis])
    return _welch(x, fs, plan, detrend_, return_onesided, scaling, axis, average)


def _welch(x, fs, plan, detrend_, return_onesided, scaling, axis, average):
    onesided = bool(return_onesided) and not jnp.iscomplexobj(x)
    power = _welch_power(
        x,
        _window_argument(plan.win, _real_dtype(x.dtype)),
        fs=fs,
        scaling=scaling,
        axis=axis,
        **plan.static(),
        detrend_=detrend_,
        onesided=onesided,
        average=average,
    )
    return _frequencies(plan.nfft, fs, onesided, _real_dtype(x.dtype)), power


def csd(
    x: jax.Array,
    y: jax.Array,
    fs: float = 1.0,
    window: WindowSpec = "hann",
    nperseg: int | None = None,
    noverlap: int | None = None,
    nfft: int | None = None,
    detrend: SpectralDetrend = "constant",
    return_onesided: bool = True,
    scaling: Scaling = "density",
    axis: int = 0,
    average: Average = "mean",
) -> tuple[jax.Array, jax.Array]:
    """Cross power spectral density ``Pxy`` by Welch's method: ``conj(X) * Y`` averaged.

    Settings as :func:`welch`'s. ``x`` and ``y`` may differ in length along ``axis`` (the
    shorter is padded with zeros) and their other axes broadcast, as scipy's do.

    Returns:
        ``(freqs, Pxy)``, ``Pxy`` complex (``complex64``, or ``complex128`` for float64).

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import csd
        >>> x = jnp.tile(jnp.array([1.0, -1.0]), 8)
        >>> freqs, pxy = csd(x, 2 * x, nperseg=4)
        >>> [round(float(p.real), 4) for p in pxy]
        [0.0, 2.6667, 5.3333]

    Oracle: ``scipy.signal.csd`` with the same arguments.
    """
    owner = "csd"
    fs = _spectral_settings(owner, fs, scaling, return_onesided)
    check_choice(average, "average", Average, owner=owner)
    detrend_ = _check_detrend(detrend, owner)
    x, axis_x = as_signal(x, axis, owner, "x")
    y, axis_y = as_signal(y, axis, owner, "y")
    outer_x = x.shape[:axis_x] + x.shape[axis_x + 1 :]
    outer_y = y.shape[:axis_y] + y.shape[axis_y + 1 :]
    try:
        outer = np.broadcast_shapes(outer_x, outer_y)
    except ValueError:
        raise ShapeError(
            f"{owner}: `x` and `y` must broadcast together outside axis {axis}, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        ) from None
    ndim = len(outer) + 1
    out_axis = axis if axis >= 0 else axis + ndim
    out_axis = min(max(out_axis, 0), ndim - 1)
    if x.size == 0 or y.size == 0:
        shape = list(outer)
        shape.insert(out_axis, min(x.shape[axis_x], y.shape[axis_y]))
        return _empty(tuple(shape), x.dtype)
    x, y = jnp.moveaxis(x, axis_x, -1), jnp.moveaxis(y, axis_y, -1)
    n = max(x.shape[-1], y.shape[-1])
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])
    y = jnp.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])])
    plan = _segmenting(owner, window, nperseg, noverlap, nfft, n)
    onesided = bool(return_onesided) and not (jnp.iscomplexobj(x) or jnp.iscomplexobj(y))
    real = _real_dtype(_complex_dtype(x.dtype, y.dtype))
    cross = _cross_power(
        x,
        y,
        _window_argument(plan.win, real),
        fs=fs,
        scaling=scaling,
        axis=out_axis,
        **plan.static(),
        detrend_=detrend_,
        onesided=onesided,
        average=average,
    )
    return _frequencies(plan.nfft, fs, onesided, real), cross


def coherence(
    x: jax.Array,
    y: jax.Array,
    fs: float = 1.0,
    window: WindowSpec = "hann",
    nperseg: int | None = None,
    noverlap: int | None = None,
    nfft: int | None = None,
    detrend: SpectralDetrend = "constant",
    axis: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Magnitude-squared coherence ``|Pxy|^2 / (Pxx Pyy)``, each by Welch's method.

    Settings as :func:`welch`'s; values in ``[0, 1]``: 1 where ``y`` is a linear filter
    of ``x`` at that frequency.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import coherence
        >>> x = jnp.sin(jnp.arange(64.0)) + jnp.cos(jnp.arange(64.0) / 3)
        >>> freqs, c = coherence(x, 3 * x, nperseg=16)
        >>> bool(jnp.allclose(c, 1.0, atol=1e-5))
        True

    Oracle: ``scipy.signal.coherence`` with the same arguments.
    """
    settings = dict(
        fs=fs, window=window, nperseg=nperseg, noverlap=noverlap, nfft=nfft, detrend=detrend,
        axis=axis,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # warned once, by csd below
        freqs, pxx = welch(x, **settings)
        _, pyy = welch(y, **settings)
    _, pxy = csd(x, y, **settings)
    return freqs, jnp.square(jnp.abs(pxy)) / pxx / pyy


def spectrogram(
    x: jax.Array,
    fs: float = 1.0,
    window: WindowSpec = ("tukey", 0.25),
    nperseg: int | None = None,
    noverlap: int | None = None,
    nfft: int | None = None,
    detrend: SpectralDetrend = "constant",
    return_onesided: bool = True,
    scaling: Scaling = "density",
    axis: int = 0,
    mode: SpectrogramMode = "psd",
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The spectrogram: a spectrum of every segment, consecutive segments overlapping.

    Settings as :func:`welch`'s, but ``noverlap`` defaults to ``nperseg // 8`` and the
    window to ``("tukey", 0.25)``, as scipy's; a ``detrend`` function gets all segments
    at once, ``[..., count, nperseg]`` with time moved to ``axis`` (as scipy calls it).

    Args:
        mode: ``"psd"`` (power, scaled as ``scaling``), ``"complex"`` (the STFT, scaled
            by the square root), ``"magnitude"``, ``"angle"`` or ``"phase"`` (the angle
            unwrapped along frequency).

    Returns:
        ``(freqs, times, Sxx)``: ``times`` are the segments' centres (in units of
        ``1 / fs``); ``Sxx`` has the frequency axis at ``axis`` and the segment axis last.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import spectrogram
        >>> freqs, times, sxx = spectrogram(jnp.sin(jnp.arange(256.0)), nperseg=64)
        >>> freqs.shape, times.tolist()[:2], sxx.shape
        ((33,), [32.0, 88.0], (33, 4))

    Oracle: ``scipy.signal.spectrogram`` with the same arguments.
    """
    owner = "spectrogram"
    fs = _spectral_settings(owner, fs, scaling, return_onesided)
    check_choice(mode, "mode", SpectrogramMode, owner=owner)
    detrend_ = _check_detrend(detrend, owner)
    x, axis = as_signal(x, axis, owner)
    if x.size == 0:
        return _empty(x.shape, x.dtype, parts=3)
    n = x.shape[axis]
    plan = _segmenting(owner, window, nperseg, noverlap, nfft, n, default_overlap=8)
    onesided = bool(return_onesided)
    if onesided and jnp.iscomplexobj(x):
        warnings.warn(
            "spectrogram: input data is complex, switching to return_onesided=False",
            UserWarning,
            stacklevel=2,
        )
        onesided = False
    real = _real_dtype(x.dtype)
    result = _segment_spectra(
        jnp.moveaxis(x, axis, -1),
        _window_argument(plan.win, real),
        fs=fs,
        scaling=scaling,
        axis=axis,
        **plan.static(),
        detrend_=detrend_,
        onesided=onesided,
        mode=mode,
    )
    times = np.arange(plan.nperseg / 2, n - plan.nperseg / 2 + 1, plan.hop) / float(fs)
    return _frequencies(plan.nfft, fs, onesided, real), jnp.asarray(times, real), result


Boundary = Literal["zeros", "even", "odd", "constant", None]
"""How :func:`stft` extends each end of the signal by ``nperseg // 2`` samples: zeros, a
mirror image (``even``), a point reflection (``odd``), the end value (``constant``), or
not at all."""

_PAD_MODES = {"zeros": ("constant", {}), "even": ("reflect", {}),
              "odd": ("reflect", {"reflect_type": "odd"}), "constant": ("edge", {})}  # fmt: skip


def stft(
    x: jax.Array,
    fs: float = 1.0,
    window: WindowSpec = "hann",
    nperseg: int = 256,
    noverlap: int | None = None,
    nfft: int | None = None,
    detrend: SpectralDetrend = False,
    return_onesided: bool = True,
    boundary: Boundary = "zeros",
    padded: bool = True,
    axis: int = 0,
    scaling: Literal["spectrum", "psd"] = "spectrum",
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The short-time Fourier transform: the FFT of every windowed segment.

    Settings as :func:`spectrogram`'s (``noverlap`` defaults to ``nperseg // 2``), plus:

    Args:
        boundary: a :data:`Boundary`: extend each end by ``nperseg // 2`` samples first,
            so the first segment is centred on the first sample (default ``"zeros"``).
        padded: append zeros so the last segment ends at the signal's end.
        scaling: ``"spectrum"`` (each bin the amplitude of its frequency) or ``"psd"``
            (``sum |Zxx|^2`` over frequency and time is the signal's energy).

    Returns:
        ``(freqs, times, Zxx)``: ``Zxx`` complex, the frequency axis at ``axis`` and the
        segment axis last; :func:`istft` inverts it.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import stft
        >>> freqs, times, zxx = stft(jnp.sin(jnp.arange(100.0)), nperseg=16)
        >>> freqs.shape, times.tolist()[:3], zxx.shape, str(zxx.dtype)
        ((9,), [0.0, 8.0, 16.0], (9, 14), 'complex64')

    Oracle: ``scipy.signal.stft`` with the same arguments.
    """
    owner = "stft"
    scaling = check_choice(scaling, "scaling", Literal["spectrum", "psd"], owner=owner)
    fs = check_number(fs, "fs", positive=True, owner=owner)
    check_bool(return_onesided, "return_onesided", owner=owner)
    check_choice(boundary, "boundary", Boundary, owner=owner)
    padded = check_bool(padded, "padded", owner=owner)
    detrend_ = _check_detrend(detrend, owner)
    x, axis = as_signal(x, axis, owner)
    if x.size == 0:
        return _empty(x.shape, x.dtype, parts=3)
    n = x.shape[axis]
    win, nperseg = _window_and_length(window, nperseg, n, owner)
    series = jnp.moveaxis(x, axis, -1)
    if boundary is not None:
        extension = nperseg // 2  # at most n // 2, as nperseg <= n: a mirror always fits
        mode, options = _PAD_MODES[boundary]
        series = jnp.pad(series, [(0, 0)] * (series.ndim - 1) + [(extension, extension)],
                         mode=mode, **options)  # fmt: skip
    plan = _segmenting(owner, win, nperseg, noverlap, nfft, nperseg)
    length = series.shape[-1]
    if padded:
        extra = (-(length - plan.nperseg) % plan.hop) % plan.nperseg
        series = jnp.pad(series, [(0, 0)] * (series.ndim - 1) + [(0, extra)])
        length += extra
    plan = plan._replace(count=(length - plan.noverlap) // plan.hop)
    onesided = bool(return_onesided)
    if onesided and jnp.iscomplexobj(x):
        warnings.warn(
            "stft: input data is complex, switching to return_onesided=False",
            UserWarning,
            stacklevel=2,
        )
        onesided = False
    real = _real_dtype(x.dtype)
    zxx = _segment_spectra(
        series,
        _window_argument(plan.win, real),
        fs=fs,
        scaling="density" if scaling == "psd" else "spectrum",
        axis=axis,
        **plan.static(),
        detrend_=detrend_,
        onesided=onesided,
        mode="complex",
    )
    times = np.arange(plan.nperseg / 2, length - plan.nperseg / 2 + 1, plan.hop) / float(fs)
    if boundary is not None:
        times -= (plan.nperseg / 2) / fs
    return _frequencies(plan.nfft, fs, onesided, real), jnp.asarray(times, real), zxx


def istft(
    Zxx: jax.Array,
    fs: float = 1.0,
    window: WindowSpec = "hann",
    nperseg: int | None = None,
    noverlap: int | None = None,
    nfft: int | None = None,
    input_onesided: bool = True,
    boundary: bool = True,
    time_axis: int = -1,
    freq_axis: int = -2,
    scaling: Literal["spectrum", "psd"] = "spectrum",
) -> tuple[jax.Array, jax.Array]:
    """The inverse of :func:`stft`: inverse FFTs of the segments, overlapped and added.

    The axes are scipy's (``Zxx`` of ``stft(x, axis=0)`` on ``[time, metrics]`` has its
    frequencies on axis 0: pass ``freq_axis=0``); so is the result's layout: the time axis
    replaces the frequency and segment axes, at ``time_axis`` unless that is the last.
    Where the windows' overlap-add vanishes (the NOLA condition fails) the signal cannot
    be recovered: a ``UserWarning`` says so, as scipy's.

    Args:
        Zxx: the STFT, at least 2-D.
        fs, window, nperseg, noverlap, nfft, scaling: as given to :func:`stft`;
            ``nperseg`` defaults to ``2 * (n_freqs - 1)`` (one-sided) or ``n_freqs``.
        input_onesided: ``Zxx`` holds the one-sided spectrum of a real signal.
        boundary: ``stft`` extended the signal: trim ``nperseg // 2`` samples each end.
        time_axis, freq_axis: the segment and frequency axes of ``Zxx``.

    Returns:
        ``(times, x)``; ``times`` has ``x.shape[0]`` entries, as scipy's.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import istft, stft
        >>> x = jnp.sin(jnp.arange(96.0) / 3)
        >>> _, _, zxx = stft(x, nperseg=16)
        >>> times, back = istft(zxx, nperseg=16)
        >>> bool(jnp.allclose(back[:96], x, atol=1e-5))
        True

    Oracle: ``scipy.signal.istft`` with the same arguments.
    """
    owner = "istft"
    fs = check_number(fs, "fs", positive=True, owner=owner)
    scaling = check_choice(scaling, "scaling", Literal["spectrum", "psd"], owner=owner)
    input_onesided = check_bool(input_onesided, "input_onesided", owner=owner)
    boundary = check_bool(boundary, "boundary", owner=owner)
    dtype = getattr(Zxx, "dtype", None)
    if dtype is not None and np.issubdtype(np.dtype(dtype), np.complexfloating):
        zxx = jnp.asarray(Zxx)
    else:
        zxx = as_float_array(Zxx, "Zxx", owner=owner, allow_empty=True)
        zxx = zxx.astype(_complex_dtype(zxx.dtype))
    if zxx.ndim < 2:
        raise ShapeError(f"{owner}: `Zxx` must be at least 2-D, got shape {tuple(zxx.shape)}")
    axes = {}
    for name, value in (("time_axis", time_axis), ("freq_axis", freq_axis)):
        axes[name] = check_int(
            value, name, minimum=-zxx.ndim, maximum=zxx.ndim - 1, owner=owner,
            why=f" for an array of shape {tuple(zxx.shape)}",
        ) % zxx.ndim  # fmt: skip
    t_axis, f_axis = axes["time_axis"], axes["freq_axis"]
    if t_axis == f_axis:
        raise ConfigError(
            f"{owner}: `time_axis` and `freq_axis` must differ, got {time_axis} and {freq_axis}"
        )
    nseg, nfreq = zxx.shape[t_axis], zxx.shape[f_axis]
    n_default = 2 * (nfreq - 1) if input_onesided else nfreq
    nperseg = n_default if nperseg is None else check_int(nperseg, "nperseg", owner=owner)
    if nfft is None:
        nfft = nperseg if input_onesided and nperseg == n_default + 1 else n_default
    else:
        nfft = check_int(nfft, "nfft", minimum=nperseg, owner=owner,
                         why=f" (at least nperseg={nperseg})")  # fmt: skip
    if noverlap is None:
        noverlap = nperseg // 2
    noverlap = check_int(noverlap, "noverlap", minimum=None, maximum=nperseg - 1, owner=owner,
                         why=f" (less than nperseg={nperseg})")  # fmt: skip
    hop = nperseg - noverlap
    if isinstance(window, str | tuple):
        win = _window_and_length(window, nperseg, nperseg, owner)[0]
    else:
        win, length = _window_and_length(window, None, nperseg, owner)
        if length != nperseg:
            raise ConfigError(f"{owner}: `window` must have nperseg={nperseg} values, got {length}")
    if nfft < 1 or nseg == 0:
        raise EmptyInputError(
            f"{owner}: `Zxx` must hold at least one segment and one frequency, got shape "
            f"{tuple(zxx.shape)}"
        )
    # The overlap-add of the squared window: it depends on the window only (host, float64).
    output_length = nperseg + (nseg - 1) * hop
    norm = np.zeros(output_length)
    for start in range(0, nseg * hop, hop):
        norm[start : start + nperseg] += win**2
    trim = slice(nperseg // 2, -(nperseg // 2)) if boundary else slice(None)
    norm = norm[trim]
    if np.sum(norm > 1e-10) != norm.size:
        warnings.warn(
            "NOLA condition failed, STFT may not be invertible."
            + (" Possibly due to missing boundary" if not boundary else ""),
            UserWarning,
            stacklevel=2,
        )
    if scaling == "spectrum":
        gain = float(np.sum(win))
    else:
        gain = float(np.sqrt(fs * np.sum(win**2)))
    real = _real_dtype(zxx.dtype)
    x = _overlap_add(
        jnp.moveaxis(zxx, (f_axis, t_axis), (-2, -1)),
        jnp.asarray(win, real),
        jnp.asarray(np.where(norm > 1e-10, norm, 1.0), real),
        gain=gain,
        nperseg=nperseg,
        hop=hop,
        nfft=nfft,
        onesided=input_onesided,
        trim=(trim.start, trim.stop),
    )
    if x.ndim > 1 and t_axis != zxx.ndim - 1:
        x = jnp.moveaxis(x, -1, t_axis - 1 if f_axis < t_axis else t_axis)
    return jnp.asarray(np.arange(x.shape[0]) / fs, real), x


@functools.partial(jax.jit, static_argnames=("gain", "nperseg", "hop", "nfft", "onesided", "trim"))
def _overlap_add(zxx, win, norm, *, gain, nperseg, hop, nfft, onesided, trim):
    """``[..., nfreq, nseg]`` in, the overlapped and added segments out (time last)."""
    if onesided:
        segments = jnp.fft.irfft(zxx, n=nfft, axis=-2)
    else:
        segments = jnp.fft.ifft(zxx, n=nfft, axis=-2)
    segments = segments[..., :nperseg, :] * gain  # [..., nperseg, nseg]
    segments = jnp.swapaxes(segments, -1, -2) * win.astype(segments.dtype)  # [..., nseg, nperseg]
    nseg = segments.shape[-2]
    index = (jnp.arange(nseg)[:, None] * hop + jnp.arange(nperseg)).reshape(-1)
    length = nperseg + (nseg - 1) * hop
    x = jnp.zeros((*segments.shape[:-2], length), segments.dtype)
    x = x.at[..., index].add(segments.reshape(*segments.shape[:-2], -1))
    x = x[..., slice(*trim)]
    return x / norm.astype(x.dtype)


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
