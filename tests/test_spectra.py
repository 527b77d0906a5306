"""The spectra as drop-ins for scipy.signal: periodogram, welch, csd, coherence, spectrogram.

Every parameter of the scipy function, real and complex input, any axis of an N-D array,
empty input and short input as scipy treats them. liam-core's time axis defaults to 0
(scipy's to -1); every call here passes ``axis`` to scipy explicitly. Two oracles:
``scipy.signal`` (float64) and ``jax.scipy.signal`` (same dtype).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import jax.scipy.signal
import numpy as np
import pytest
import scipy.signal
import statsmodels.api as sm

from liam_core import ConfigError, ShapeError
from liam_core.algebra import coherence, csd, istft, periodogram, spectrogram, stft, welch
from liam_core.testing import CompileCounter

# Relative to the largest magnitude of the expected result; float64 to scipy's 1e-12.
TOL = {
    np.dtype(np.float32): 2e-5,
    np.dtype(np.complex64): 2e-5,
    np.dtype(np.float64): 1e-12,
    np.dtype(np.complex128): 1e-12,
}
DTYPES = [np.float32, np.float64, np.int32, np.complex64, np.complex128]


def signal(rng, shape, dtype, axis=0):
    """A trend, a cycle and noise along ``axis``, different in every other position."""
    n = shape[axis]
    t = np.arange(n).reshape([n if d == axis % len(shape) else 1 for d in range(len(shape))])
    x = 3.0 + t / max(n, 1) + np.sin(2 * np.pi * t / 7) + rng.normal(size=shape)
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * (np.cos(2 * np.pi * t / 5) + rng.normal(size=shape))
    if np.issubdtype(dtype, np.integer):
        x = np.round(10 * x)
    return x.astype(dtype)


def precision(dtype):
    """The dtype liam-core computes ``dtype`` in, and the tolerance that goes with it."""
    if np.issubdtype(dtype, np.integer):
        return TOL[np.dtype(jnp.result_type(float))]
    return TOL[np.dtype(dtype)]


def assert_close(actual, expected, tol):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


def x64_for(dtype):
    return jax.enable_x64(np.dtype(dtype) in (np.dtype(np.float64), np.dtype(np.complex128)))


def oracle_input(x):
    return np.asarray(x).astype(np.complex128 if np.iscomplexobj(x) else np.float64)


# --- windows: every form scipy.signal.get_window takes, and arrays -----------------------

WINDOWS = [
    "boxcar",
    "hann",
    "hamming",
    "blackman",
    "bartlett",
    "flattop",
    "nuttall",
    "cosine",
    "triang",
    ("tukey", 0.25),
    ("kaiser", 8.0),
    ("gaussian", 7.0),
    ("general_gaussian", 1.5, 7.0),
    ("dpss", 3.0),
]


@pytest.mark.parametrize("window", WINDOWS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_welch_takes_every_window_scipy_builds_by_name_or_tuple(rng, window, dtype):
    with x64_for(dtype):
        x = signal(rng, (300, 3), dtype)
        freqs, power = welch(x, fs=2.0, window=window, nperseg=64)
        expected_freqs, expected = scipy.signal.welch(
            oracle_input(x), fs=2.0, window=window, nperseg=64, axis=0
        )
        assert power.dtype == dtype and freqs.dtype == dtype
        assert_close(freqs, expected_freqs, TOL[np.dtype(dtype)])
        assert_close(power, expected, TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_window_given_as_values_sets_the_segment_length(rng, dtype):
    with x64_for(dtype):
        x = signal(rng, (200, 2), dtype)
        window = scipy.signal.windows.kaiser(50, 6.0) * np.linspace(0.5, 1.5, 50)  # asymmetric
        for call, oracle in [
            (lambda: welch(x, window=window), lambda: scipy.signal.welch(oracle_input(x), window=window, axis=0)),
            (lambda: welch(x, window=window, nperseg=50, noverlap=10), lambda: scipy.signal.welch(oracle_input(x), window=window, nperseg=50, noverlap=10, axis=0)),
            (lambda: periodogram(x[:50], window=window), lambda: scipy.signal.periodogram(oracle_input(x[:50]), window=window, axis=0)),
        ]:  # fmt: skip
            (freqs, power), (expected_freqs, expected) = call(), oracle()
            assert_close(freqs, expected_freqs, TOL[np.dtype(dtype)])
            assert_close(power, expected, TOL[np.dtype(dtype)])


def test_a_new_window_of_the_same_length_and_new_data_do_not_compile_again(rng):
    x = signal(rng, (256, 3), np.float32)
    welch(x, window=np.hanning(64), nperseg=64)
    with CompileCounter() as again:
        welch(x + 1, window=np.blackman(64), nperseg=64)
        welch(x * 2, window=("kaiser", 3.0), nperseg=64)
    assert again.count == 0


# --- periodogram: nfft, detrend, sides, scaling, every axis, every dtype -------------------

PERIODOGRAM_CASES = [
    dict(nfft=None),
    dict(nfft=200),  # longer than the signal: zero padding
    dict(nfft=64),  # shorter: the first nfft samples
    dict(nfft=101, window="hann", scaling="spectrum"),
    dict(detrend="linear", window=("tukey", 0.5), return_onesided=False),
    dict(detrend=False, window="flattop"),
    dict(detrend=None, scaling="spectrum", nfft=151),
    dict(window=None),  # None is boxcar
]


@pytest.mark.parametrize("settings", PERIODOGRAM_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_periodogram_matches_scipy_for_every_setting_and_dtype(rng, settings, dtype):
    with x64_for(dtype):
        x = signal(rng, (150, 3), dtype)
        freqs, power = periodogram(x, fs=4.0, axis=0, **settings)
        expected_freqs, expected = scipy.signal.periodogram(
            oracle_input(x), fs=4.0, axis=0, **settings
        )
        assert_close(freqs, expected_freqs, precision(dtype))
        assert_close(power, expected, precision(dtype))
        assert not np.iscomplexobj(np.asarray(power))


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((64,), 0), ((64,), -1), ((40, 3), 0), ((3, 40), 1), ((3, 40), -1), ((30, 2, 4), 0),
     ((2, 30, 4), 1), ((2, 4, 30), 2), ((2, 4, 30), -1), ((2, 3, 2, 33), 3)],
)  # fmt: skip
@pytest.mark.parametrize("function", ["periodogram", "welch"])
def test_spectra_run_along_any_axis_of_an_n_d_array(rng, shape, axis, function):
    x = signal(rng, shape, np.float32, axis=axis)
    settings = {} if function == "periodogram" else {"nperseg": 16, "noverlap": 5}
    ours = {"periodogram": periodogram, "welch": welch}[function]
    theirs = getattr(scipy.signal, function)
    freqs, power = ours(x, window="hann", axis=axis, **settings)
    expected_freqs, expected = theirs(oracle_input(x), window="hann", axis=axis, **settings)
    assert_close(freqs, expected_freqs, 2e-5)
    assert_close(power, expected, 2e-5)


def test_complex_input_gives_the_two_sided_spectrum_as_scipy_does(rng):
    x = signal(rng, (128, 2), np.complex64)
    for onesided in (True, False):
        freqs, power = welch(x, nperseg=32, return_onesided=onesided)
        expected_freqs, expected = scipy.signal.welch(
            oracle_input(x), nperseg=32, return_onesided=onesided, axis=0
        )
        assert freqs.shape == (32,) and power.dtype == np.float32
        assert_close(freqs, expected_freqs, 2e-5)
        assert_close(power, expected, 2e-5)


# --- welch: segments, overlap, nfft, averaging, detrend functions ---------------------------

WELCH_CASES = [
    dict(nperseg=64),
    dict(nperseg=64, noverlap=0, window="boxcar"),
    dict(nperseg=50, noverlap=49, detrend="linear"),
    dict(nperseg=33, noverlap=10, detrend=False, scaling="spectrum"),
    dict(nperseg=45, average="median", window="hamming", detrend="linear"),
    dict(nperseg=40, average="median", noverlap=0),  # an even count of segments
    dict(nperseg=32, nfft=100),
    dict(nperseg=32, nfft=63, return_onesided=False, average="median"),
    dict(nperseg=20, noverlap=-5),  # gaps between segments, as scipy allows
    dict(nperseg=301, noverlap=0),  # one segment: no averaging, no median bias
    dict(),  # nperseg 256
]


@pytest.mark.parametrize("settings", WELCH_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_welch_matches_scipy_for_every_setting_and_dtype(rng, settings, dtype):
    with x64_for(dtype):
        x = signal(rng, (301, 2), dtype)
        freqs, power = welch(x, fs=10.0, **settings)
        expected_freqs, expected = scipy.signal.welch(oracle_input(x), fs=10.0, axis=0, **settings)
        assert_close(freqs, expected_freqs, precision(dtype))
        assert_close(power, expected, precision(dtype))


def test_a_detrend_function_gets_each_segment_time_last_as_scipy_passes_it(rng):
    x = signal(rng, (200, 3), np.float64)
    with jax.enable_x64(True):
        _freqs, power = welch(
            x, nperseg=40, detrend=lambda s: s - jnp.median(s, axis=-1, keepdims=True)
        )
    _, expected = scipy.signal.welch(
        x, nperseg=40, detrend=lambda s: s - np.median(s, axis=-1, keepdims=True), axis=0
    )
    assert_close(power, expected, 1e-12)


@pytest.mark.parametrize("function", ["periodogram", "welch"])
def test_a_detrend_function_sees_every_series_of_a_segment_at_once_as_in_scipy(rng, function):
    # Removing the mean of all that it is given tells [metrics, nperseg] from [nperseg].
    x = signal(rng, (160, 3), np.float64)
    settings = {} if function == "periodogram" else {"nperseg": 40}
    with jax.enable_x64(True):
        _, power = {"periodogram": periodogram, "welch": welch}[function](
            x, detrend=lambda s: s - jnp.mean(s), **settings
        )
    _, expected = getattr(scipy.signal, function)(
        x, detrend=lambda s: s - np.mean(s), axis=0, **settings
    )
    assert_close(power, expected, 1e-12)


def test_a_detrend_function_that_changes_the_shape_is_refused(rng):
    x = signal(rng, (200, 3), np.float32)
    with pytest.raises(ShapeError, match="`detrend` must return a segment of the shape"):
        welch(x, nperseg=40, detrend=lambda s: s[..., :-1])


def test_a_segment_longer_than_the_signal_is_shortened_with_scipys_warning(rng):
    x = signal(rng, (50, 2), np.float32)
    with pytest.warns(UserWarning, match="nperseg=256 is greater than the signal length 50"):
        _freqs, power = welch(x)
    with pytest.warns(UserWarning):
        _expected_freqs, expected = scipy.signal.welch(oracle_input(x), axis=0)
    assert_close(power, expected, 2e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        welch(x, nperseg=50)  # exactly the length: no warning


@pytest.mark.parametrize(
    ("shape", "axis"), [((0,), 0), ((0, 3), 0), ((5, 0), 0), ((3, 0), 1), ((2, 0, 4), 1)]
)
def test_empty_input_gives_empty_arrays_of_its_shape_as_scipy_does(shape, axis):
    x = np.zeros(shape, np.float32)
    for ours, theirs in [(periodogram, scipy.signal.periodogram), (welch, scipy.signal.welch)]:
        freqs, power = ours(x, axis=axis)
        expected_freqs, expected = theirs(x, axis=axis)
        assert freqs.shape == expected_freqs.shape == shape
        assert power.shape == expected.shape == shape
    freqs, times, sxx = spectrogram(x, axis=axis)
    assert freqs.shape == times.shape == sxx.shape == shape


def test_a_single_sample_has_a_spectrum_as_in_scipy():
    x = np.array([2.5], np.float32)
    for settings in [{}, {"detrend": False}]:
        freqs, power = periodogram(x, **settings)
        expected_freqs, expected = scipy.signal.periodogram(x.astype(np.float64), **settings)
        assert_close(freqs, expected_freqs, 0)
        assert_close(power, expected, 2e-5)


@pytest.mark.parametrize(
    "settings",
    [
        dict(nperseg=64),
        dict(nperseg=64, noverlap=0, window="boxcar"),
        dict(nperseg=45, noverlap=20),
    ],
    ids=str,
)
def test_welch_agrees_with_jax_scipy_signal_welch(rng, settings):
    x = signal(rng, (500, 3), np.float32)
    freqs, power = welch(x, **settings)
    jax_freqs, jax_power = jax.scipy.signal.welch(jnp.asarray(x), axis=0, **settings)
    assert_close(freqs, jax_freqs, 2e-5)
    assert_close(power, jax_power, 2e-5)


# --- csd, coherence ------------------------------------------------------------------------

CSD_CASES = [
    dict(nperseg=64),
    dict(nperseg=50, noverlap=10, detrend="linear", scaling="spectrum"),
    dict(nperseg=32, nfft=80, average="median"),
    dict(nperseg=32, return_onesided=False, window=("tukey", 0.3)),
]


@pytest.mark.parametrize("settings", CSD_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_csd_matches_scipy_for_every_setting_and_dtype(rng, settings, dtype):
    with x64_for(dtype):
        x = signal(rng, (256, 2), dtype)
        y = (np.roll(x, 3, axis=0) + signal(rng, (256, 2), dtype)).astype(dtype)
        freqs, pxy = csd(x, y, fs=3.0, **settings)
        expected_freqs, expected = scipy.signal.csd(
            oracle_input(x), oracle_input(y), fs=3.0, axis=0, **settings
        )
        assert np.iscomplexobj(np.asarray(pxy))
        assert_close(freqs, expected_freqs, precision(dtype))
        assert_close(pxy, expected, precision(dtype))
        if dtype not in (np.float32, np.complex64):
            return  # jax.scipy.signal, the second oracle, in single precision only (it is slow)
        # jax.scipy.signal warns of complex input, and its median needs standard promotion
        with warnings.catch_warnings(), jax.numpy_dtype_promotion("standard"):
            warnings.simplefilter("ignore", UserWarning)
            _, jax_pxy = jax.scipy.signal.csd(
                jnp.asarray(x), jnp.asarray(y), fs=3.0, axis=0, **settings
            )
        assert_close(pxy, jax_pxy, precision(dtype))


def test_csd_pads_the_shorter_signal_and_broadcasts_the_other_axes(rng):
    x = signal(rng, (200, 3), np.float32)
    shorter = signal(rng, (150, 3), np.float32)
    _, pxy = csd(x, shorter, nperseg=64)
    _, expected = scipy.signal.csd(oracle_input(x), oracle_input(shorter), nperseg=64, axis=0)
    assert pxy.shape == expected.shape == (33, 3)
    assert_close(pxy, expected, 2e-5)
    one = signal(rng, (200, 1), np.float32)
    _, pxy = csd(x, one, nperseg=64)
    _, expected = scipy.signal.csd(oracle_input(x), oracle_input(one), nperseg=64, axis=0)
    assert pxy.shape == expected.shape == (33, 3)
    assert_close(pxy, expected, 2e-5)
    _, pxy = csd(x.T, one[:, 0], nperseg=64, axis=-1)
    _, expected = scipy.signal.csd(oracle_input(x.T), oracle_input(one[:, 0]), nperseg=64)
    assert_close(pxy, expected, 2e-5)


@pytest.mark.parametrize(
    "settings", [dict(nperseg=64), dict(nperseg=32, noverlap=8, window="hamming", nfft=64)], ids=str
)
def test_coherence_matches_scipy(rng, settings):
    x = signal(rng, (512, 2), np.float32)
    y = np.convolve(x[:, 0], [0.5, 1.0, 0.25], "same")[:, None] + 0.3 * rng.normal(size=(512, 2))
    freqs, c = coherence(x, y.astype(np.float32), fs=5.0, **settings)
    expected_freqs, expected = scipy.signal.coherence(
        oracle_input(x), y.astype(np.float64), fs=5.0, axis=0, **settings
    )
    assert_close(freqs, expected_freqs, 2e-5)
    np.testing.assert_allclose(c, expected, atol=5e-5)
    assert float(jnp.min(c)) >= 0 and float(jnp.max(c)) <= 1 + 1e-5


# --- spectrogram ---------------------------------------------------------------------------

SPECTROGRAM_CASES = [
    dict(),
    dict(nperseg=64, mode="complex"),
    dict(nperseg=64, noverlap=32, mode="magnitude", window="hann"),
    dict(nperseg=48, mode="angle", nfft=64),
    dict(nperseg=48, mode="phase", detrend=False),
    dict(nperseg=40, scaling="spectrum", return_onesided=False, detrend="linear"),
]


@pytest.mark.parametrize("settings", SPECTROGRAM_CASES, ids=str)
@pytest.mark.parametrize(
    ("shape", "axis"), [((600,), 0), ((600, 2), 0), ((2, 600), 1), ((2, 600, 3), 1)]
)
def test_spectrogram_matches_scipy_for_every_mode(rng, settings, shape, axis):
    with jax.enable_x64(True):
        x = signal(rng, shape, np.float64, axis=axis)
        freqs, times, sxx = spectrogram(x, fs=2.0, axis=axis, **settings)
    expected_freqs, expected_times, expected = scipy.signal.spectrogram(
        x, fs=2.0, axis=axis, **settings
    )
    assert_close(freqs, expected_freqs, 1e-12)
    assert_close(times, expected_times, 1e-12)
    if settings.get("mode") in ("angle", "phase"):
        # angles of bins whose magnitude is rounding noise are arbitrary: compare the rest
        magnitude = np.abs(
            scipy.signal.spectrogram(x, fs=2.0, axis=axis, **{**settings, "mode": "complex"})[2]
        )
        keep = magnitude > 1e-9 * magnitude.max()
        assert sxx.shape == expected.shape
        difference = np.angle(np.exp(1j * (np.asarray(sxx) - expected)))
        assert np.abs(difference[keep]).max() < 1e-9
    else:
        assert_close(sxx, expected, 1e-12)


def test_a_spectrogram_of_complex_input_is_two_sided_with_scipys_warning(rng):
    x = signal(rng, (300,), np.complex64)
    with pytest.warns(UserWarning, match="switching to return_onesided=False"):
        freqs, _times, sxx = spectrogram(x, nperseg=32)
    with pytest.warns(UserWarning):
        _, _, expected = scipy.signal.spectrogram(oracle_input(x), nperseg=32)
    assert freqs.shape == (32,)
    assert_close(sxx, expected, 2e-5)


# --- stft, istft ---------------------------------------------------------------------------

STFT_CASES = [
    dict(nperseg=32),
    dict(nperseg=32, noverlap=24, boundary="even", scaling="psd"),
    dict(nperseg=31, boundary="odd", padded=False, window=("tukey", 0.5)),
    dict(nperseg=16, boundary="constant", nfft=40, detrend="linear"),
    dict(nperseg=32, boundary=None, return_onesided=False),
    dict(nperseg=20, noverlap=0, window="boxcar", boundary=None, padded=False),
]


@pytest.mark.parametrize("settings", STFT_CASES, ids=str)
@pytest.mark.parametrize(
    "dtype", [np.float32, np.float64, np.complex128], ids=lambda d: np.dtype(d).name
)
@pytest.mark.parametrize(("shape", "axis"), [((200,), 0), ((200, 3), 0), ((2, 200), -1)])
def test_stft_matches_scipy(rng, settings, dtype, shape, axis):
    with x64_for(dtype), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # complex input: two-sided, in both
        x = signal(rng, shape, dtype, axis=axis)
        freqs, times, zxx = stft(x, fs=4.0, axis=axis, **settings)
        expected_freqs, expected_times, expected = scipy.signal.stft(
            oracle_input(x), fs=4.0, axis=axis, **settings
        )
    assert_close(freqs, expected_freqs, precision(dtype))
    assert_close(times, expected_times, precision(dtype))
    assert_close(zxx, expected, precision(dtype))


ISTFT_CASES = [
    dict(nperseg=32),
    dict(nperseg=32, noverlap=24, scaling="psd"),
    dict(nperseg=31, window=("tukey", 0.5)),
    dict(nperseg=16, nfft=40),
    dict(nperseg=32, onesided=False),
    dict(nperseg=20, noverlap=0, window="boxcar", boundary=False),
]


@pytest.mark.parametrize("settings", ISTFT_CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_istft_inverts_stft_as_scipy_does(rng, settings, dtype):
    settings = dict(settings)
    onesided = settings.pop("onesided", True)
    boundary = settings.pop("boundary", True)
    forward = dict(settings, return_onesided=onesided, boundary="zeros" if boundary else None)
    inverse = dict(settings, input_onesided=onesided, boundary=boundary)
    with x64_for(dtype), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # NOLA for the boxcar without overlap
        x = signal(rng, (300, 2), dtype)
        _, _, zxx = stft(x, fs=4.0, **forward)
        times, back = istft(zxx, fs=4.0, freq_axis=0, time_axis=-1, **inverse)
        _, _, expected_zxx = scipy.signal.stft(oracle_input(x), fs=4.0, axis=0, **forward)
        expected_times, expected = scipy.signal.istft(
            expected_zxx, fs=4.0, freq_axis=0, time_axis=-1, **inverse
        )
    assert_close(times, expected_times, TOL[np.dtype(dtype)])
    assert_close(back, expected, 20 * TOL[np.dtype(dtype)])  # two FFTs and a division
    np.testing.assert_allclose(  # and the round trip gives the signal back
        np.asarray(back)[:, :300].T, x, atol=2e-4 if dtype == np.float32 else 1e-10
    )


def test_istft_takes_its_axes_anywhere_and_puts_time_where_scipy_does(rng):
    with jax.enable_x64(True):
        x = signal(rng, (3, 160, 2), np.float64, axis=1)
        _, _, zxx = scipy.signal.stft(x, nperseg=16, axis=1)  # [3, freq, 2, segments]
        for time_axis, freq_axis in [(-1, 1), (3, 1), (1, 3)]:
            z = zxx if (time_axis, freq_axis) != (1, 3) else np.swapaxes(zxx, 1, 3)
            times, back = istft(z, nperseg=16, time_axis=time_axis, freq_axis=freq_axis)
            expected_times, expected = scipy.signal.istft(
                z, nperseg=16, time_axis=time_axis, freq_axis=freq_axis
            )
            assert_close(times, expected_times, 1e-12)
            assert_close(back, expected, 1e-12)


def test_istft_warns_as_scipy_where_the_windows_do_not_overlap_add_to_nonzero():
    zxx = np.ones((9, 10), np.complex64)
    window = np.r_[np.zeros(4), np.ones(8), np.zeros(4)]  # zero at both ends, no overlap
    with pytest.warns(UserWarning, match="NOLA condition failed"):
        istft(zxx, window=window, nperseg=16, noverlap=0, boundary=False)
    with pytest.warns(UserWarning, match="NOLA condition failed"):
        scipy.signal.istft(zxx, window=window, nperseg=16, noverlap=0, boundary=False)


# --- real data -----------------------------------------------------------------------------


def test_the_spectra_of_real_series_match_scipy():
    # Monthly sunspots and weekly CO2, shipped with statsmodels; a complex pair of them.
    sunspots = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float64)
    co2 = sm.datasets.co2.load_pandas().data["co2"].dropna().to_numpy(np.float64)[:2000]
    with jax.enable_x64(True):
        for x, settings in [
            (sunspots, dict(nperseg=64, window=("kaiser", 5.0), detrend="linear")),
            (co2, dict(nperseg=520, nfft=1024, average="median")),
            (co2[: sunspots.size] + 1j * sunspots, dict(nperseg=100)),
        ]:
            _, power = welch(x, fs=52.0, **settings)
            _, expected = scipy.signal.welch(x, fs=52.0, **settings)
            assert_close(power, expected, 1e-12)
        _, pxy = csd(co2[: sunspots.size], sunspots, nperseg=64)
        _, expected = scipy.signal.csd(co2[: sunspots.size], sunspots, nperseg=64)
        assert_close(pxy, expected, 1e-12)
        _, _, sxx = spectrogram(co2, nperseg=104)
        assert_close(sxx, scipy.signal.spectrogram(co2, nperseg=104)[2], 1e-12)


# --- errors: liam-core's types, scipy's builtins ------------------------------------------


REFUSED = [  # (function, settings): both liam-core and scipy refuse them with a ValueError
    ("welch", dict(nperseg=0)),
    ("welch", dict(nperseg=16, noverlap=16)),
    ("welch", dict(nperseg=16, nfft=8)),
    ("welch", dict(window="nosuch")),
    ("welch", dict(window=np.ones(8), nperseg=16)),
    ("welch", dict(window=np.ones((2, 8)))),
    ("periodogram", dict(window=np.ones(8))),
    ("spectrogram", dict(mode="db")),
    ("csd", dict(y=np.zeros((100, 2)))),
    ("stft", dict(boundary="mirror")),
    ("stft", dict(scaling="density")),
]


@pytest.mark.parametrize(("function", "settings"), REFUSED, ids=str)
def test_what_scipy_refuses_with_a_value_error_is_a_liam_error_and_a_value_error(
    rng, function, settings
):
    x = signal(rng, (100, 3), np.float32)
    ours = {"welch": welch, "periodogram": periodogram, "spectrogram": spectrogram, "csd": csd,
            "stft": stft}  # fmt: skip
    with pytest.raises(ValueError) as raised, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours[function](x, **settings)
    assert isinstance(raised.value, ConfigError | ShapeError)
    with pytest.raises(ValueError), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        getattr(scipy.signal, function)(oracle_input(x), axis=0, **settings)
