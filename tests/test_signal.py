"""Signal operations equal their numpy / scipy / pandas / scikit-learn oracles, on random and real data.

Every call goes through the jitted function. Oracles run in float64 on the same values, and
results are compared with a tolerance scaled to the data (see ``TOL``).
"""

from __future__ import annotations

import re
import typing

import jax
import numpy as np
import pandas as pd
import pytest
import scipy.signal
import scipy.stats
import statsmodels.api as sm
from sklearn.datasets import load_diabetes
from sklearn.preprocessing import StandardScaler

from liam_core import (
    ConfigError,
    ConfigTypeError,
    EmptyInputError,
    InvalidTypeError,
    InvalidValueError,
    ShapeError,
)
from liam_core.algebra import (
    Average,
    ConvolveMode,
    DetrendKind,
    Scaling,
    SpectrogramMode,
    _spectra,
    convolve,
    csd,
    detrend,
    dominant_period,
    periodogram,
    rolling_mean,
    rolling_std,
    spectrogram,
    standardize,
    welch,
)
from liam_core.testing import CompileCounter

# Tolerance against a float64 oracle, relative to the largest magnitude of the expected
# result: float32 rounds at 6e-8 per operation and these ops accumulate up to ~1e3
# roundings (sums, FFT butterflies), so 2e-5 leaves a margin of ~10x; float64 gets 1e-11.
TOL = {np.float32: 2e-5, np.float64: 1e-11}

# 1-D, a single column, several columns; even and odd lengths.
SHAPES = [(64,), (65,), (64, 1), (65, 7)]


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    with jax.enable_x64(request.param == np.float64):
        yield request.param


def one_dtype_each(rows):
    """For tables of settings: each row once, in float32 and float64 alternately (the
    shape tables run every shape in both). Halves the compile time of the suite."""
    return [
        pytest.param(*row, dtype, id="-".join([*map(str, row), dtype.__name__]).replace(" ", ""))
        for i, row in enumerate(rows)
        for dtype in [(np.float32, np.float64)[i % 2]]
    ]


def random_series(rng, shape, dtype, offset=3.0):
    """Noise with a trend and a per-column scale, so detrending and scaling matter."""
    n = shape[0]
    trend = np.linspace(0, 2, n).reshape((n,) + (1,) * (len(shape) - 1))
    scale = rng.uniform(0.5, 4, size=shape[1:])
    return (offset + trend + scale * rng.normal(size=shape)).astype(dtype)


def assert_matches(actual, expected, dtype, tol=None, scale=None):
    """Same dtype and shape, and close to the float64 oracle relative to its magnitude
    (or to ``scale``, for results that are rounding noise around 0)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    tol = TOL[dtype] if tol is None else tol
    if scale is None:
        scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def per_column(fn, x):
    """Apply a 1-D oracle to every column of a 1-D or 2-D array (time on axis 0)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return fn(x)
    return np.stack([fn(x[:, j]) for j in range(x.shape[1])], axis=-1)


def pandas_rolling(x, window, stat, **kwargs):
    frame = pd.DataFrame(np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1))
    result = getattr(frame.rolling(window), stat)(**kwargs).to_numpy()[window - 1 :]
    return result.reshape((result.shape[0], *x.shape[1:]))


# --- standardize ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_standardize_matches_sklearn_standard_scaler(rng, shape, dtype):
    x = random_series(rng, shape, dtype)
    expected = StandardScaler().fit_transform(x.astype(np.float64).reshape(shape[0], -1))
    assert_matches(standardize(x), expected.reshape(shape), dtype)


@pytest.mark.parametrize("ddof", [1, 5])
def test_standardize_with_ddof_matches_scipy_zscore(rng, ddof, dtype):
    x = random_series(rng, (65, 7), dtype)
    assert_matches(
        standardize(x, ddof=ddof), scipy.stats.zscore(x.astype(np.float64), ddof=ddof), dtype
    )


def test_standardize_along_axis_1_standardizes_each_row(rng, dtype):
    x = random_series(rng, (5, 40), dtype)
    expected = StandardScaler().fit_transform(x.astype(np.float64).T).T
    assert_matches(standardize(x, axis=1), expected, dtype)


@pytest.mark.parametrize("value", [0.0, 3.3, -1e6, 1e-30])
def test_standardize_gives_exact_zeros_for_a_constant_column(rng, value, dtype):
    x = rng.normal(size=(33, 3)).astype(dtype)
    x[:, 1] = value
    result = np.asarray(standardize(x))
    assert np.all(result[:, 1] == 0)
    assert np.all(np.isfinite(result))
    np.testing.assert_allclose(result, StandardScaler().fit_transform(x), atol=TOL[dtype] * 10)


def test_standardize_keeps_float32_accurate_when_the_mean_dwarfs_the_spread(rng):
    x = (1e4 + rng.normal(size=(20_000, 2))).astype(np.float32)
    # The float32 values as given, standardized exactly: the reference the op must reach.
    expected = scipy.stats.zscore(x.astype(np.float64))
    assert_matches(standardize(x), expected, np.float32, tol=1e-4)


# --- detrend -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "kind"),
    [
        ((64,), "linear"),
        ((65,), "constant"),
        ((64, 1), "linear"),
        ((65, 7), "constant"),
        ((65, 7), "linear"),
    ],
)
def test_detrend_matches_scipy(rng, shape, kind, dtype):
    x = random_series(rng, shape, dtype)
    expected = scipy.signal.detrend(x.astype(np.float64), axis=0, type=kind)
    assert_matches(detrend(x, type=kind), expected, dtype)


@pytest.mark.parametrize("kind", ["linear", "constant"])
def test_detrend_along_axis_1_and_of_a_single_sample(rng, kind, dtype):
    x = random_series(rng, (4, 30), dtype)
    expected = scipy.signal.detrend(x.astype(np.float64), axis=1, type=kind)
    assert_matches(detrend(x, type=kind, axis=1), expected, dtype)
    single = np.array([[2.5, -1.0]], dtype)
    expected = scipy.signal.detrend(single, axis=0, type=kind)  # zeros, up to rounding
    assert_matches(detrend(single, type=kind), expected, dtype, scale=2.5)


def test_detrend_removes_an_exact_line_to_rounding(dtype):
    t = np.arange(1000, dtype=dtype)
    line = (3.0 + 0.25 * t).astype(dtype)
    assert np.max(np.abs(np.asarray(detrend(line)))) < 50 * np.finfo(dtype).eps * 250


# --- rolling windows -----------------------------------------------------------------------

# Windows of one term, of one fused level (<= 16 terms), of two levels with and without a
# remainder, and of the whole series; on every shape.
ROLLING_MEAN_CASES = [
    ((64,), 1),
    ((65,), 16),
    ((64, 1), 17),
    ((65, 7), 7),
    ((65, 7), 50),
    ((64,), 64),
]


@pytest.mark.parametrize(("shape", "window"), ROLLING_MEAN_CASES)
def test_rolling_mean_matches_pandas_without_the_leading_nans(rng, shape, window, dtype):
    x = random_series(rng, shape, dtype)
    result = rolling_mean(x, window)
    assert result.shape == (shape[0] - window + 1, *shape[1:])
    assert_matches(result, pandas_rolling(x, window, "mean"), dtype)


def exact_rolling_std(x, window, ddof=1):
    """Two-pass standard deviation of every window, in float64."""
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), window, axis=0)
    return np.std(windows, axis=-1, ddof=ddof)


def assert_rolling_std_matches(actual, x, window, dtype, ddof=1):
    """Close to the exact two-pass value, and to pandas, whose online update (add the new
    sample, remove the old) itself drifts by ~1e-10 relative in float64 on long series."""
    assert_matches(actual, exact_rolling_std(x, window, ddof), dtype)
    pandas_rtol = max(TOL[dtype], 1e-8)
    expected = pandas_rolling(x, window, "std", ddof=ddof)
    np.testing.assert_allclose(
        actual, expected, rtol=pandas_rtol, atol=pandas_rtol * np.max(expected)
    )


@pytest.mark.parametrize(
    ("shape", "window", "ddof"),
    [((64,), 2, 1), ((65, 7), 16, 0), ((65, 7), 17, 1), ((64, 1), 50, 0)],
)
def test_rolling_std_matches_pandas_without_the_leading_nans(rng, shape, window, ddof, dtype):
    x = random_series(rng, shape, dtype)
    assert_rolling_std_matches(rolling_std(x, window, ddof=ddof), x, window, dtype, ddof)


def test_rolling_mean_and_std_along_axis_1(rng, dtype):
    x = random_series(rng, (3, 40), dtype)
    assert_matches(rolling_mean(x, 5, axis=1), pandas_rolling(x.T, 5, "mean").T, dtype)
    assert_matches(rolling_std(x, 5, axis=1), exact_rolling_std(x.T, 5).T, dtype)


def test_rolling_mean_stays_accurate_in_float32_on_a_long_series_far_from_zero(rng):
    # A running sum over 1e5 rows of values near 1e4 would lose ~3 digits in float32;
    # sums of at most 16 terms per level keep the error at a few ulps of the data.
    x = (1e4 + rng.normal(size=(100_000,))).astype(np.float32)
    window = 300
    cumulative = np.concatenate([[0.0], np.cumsum(x.astype(np.float64))])
    expected = (cumulative[window:] - cumulative[:-window]) / window
    error = np.max(np.abs(np.asarray(rolling_mean(x, window)) - expected))
    assert error < 20 * np.finfo(np.float32).eps * 1e4


def test_rolling_std_stays_accurate_when_the_mean_dwarfs_the_spread(rng):
    x = (1e4 + 0.01 * rng.normal(size=(5_000,))).astype(np.float32)
    expected = pandas_rolling(x, 64, "std")
    # The spread (0.01) is 1e-6 of the level; a sum-of-squares formula would return noise.
    np.testing.assert_allclose(np.asarray(rolling_std(x, 64)), expected, rtol=1e-2)


def test_rolling_std_of_a_constant_window_is_exactly_zero(dtype):
    x = np.array([1.0, 2.0, 7.5, 7.5, 7.5, 7.5, 3.0], dtype)
    result = np.asarray(rolling_std(x, 4))
    assert result[2] == 0.0 and result.shape == (4,)


# --- convolve ------------------------------------------------------------------------------

# Kernel lengths: one tap, short (one fused sum), even and odd, longer than 64 taps (XLA's
# convolution), and longer than the series (scipy swaps the operands for "valid").
CONVOLVE_CASES = [
    ((65,), 1, "same"),
    ((64, 7), 4, "full"),
    ((65, 1), 9, "valid"),
    ((64, 7), 70, "same"),
    ((65,), 70, "full"),
    ((40, 2), 100, "valid"),
    ((40,), 100, "same"),
]


@pytest.mark.parametrize(("shape", "taps", "mode", "dtype"), one_dtype_each(CONVOLVE_CASES))
def test_convolve_matches_scipy_per_column_and_numpy_for_short_kernels(
    rng, shape, taps, mode, dtype
):
    with jax.enable_x64(dtype == np.float64):
        check_convolve(rng, shape, taps, mode, dtype)


def check_convolve(rng, shape, taps, mode, dtype):
    x = random_series(rng, shape, dtype)
    kernel = rng.normal(size=taps).astype(dtype)
    result = convolve(x, kernel, mode=mode)
    expected = per_column(lambda c: scipy.signal.convolve(c, kernel.astype(np.float64), mode), x)
    assert_matches(result, expected, dtype)
    if taps <= shape[0]:
        expected = per_column(lambda c: np.convolve(c, kernel.astype(np.float64), mode), x)
        assert_matches(result, expected, dtype)


def test_convolve_along_axis_1_and_casts_the_kernel_to_the_data_dtype(rng, dtype):
    x = random_series(rng, (3, 30), dtype)
    kernel = np.array([1, 2, 1])  # integers: cast to x's float dtype
    expected = per_column(lambda c: np.convolve(c, [1.0, 2.0, 1.0], "same"), x.T).T
    assert_matches(convolve(x, kernel, mode="same", axis=1), expected, dtype)


# --- periodogram ---------------------------------------------------------------------------


def scipy_periodogram(x, **kwargs):
    return scipy.signal.periodogram(np.asarray(x, np.float64), axis=0, **kwargs)


@pytest.mark.parametrize(
    ("shape", "window", "dtype"),
    one_dtype_each(
        [
            ((64,), "boxcar"),
            ((65,), "hann"),
            ((64, 1), "hann"),
            ((65, 7), "boxcar"),
            ((65, 7), "hann"),
            ((64,), "hann"),
        ]
    ),
)
def test_periodogram_matches_scipy_on_every_shape(rng, shape, window, dtype):
    with jax.enable_x64(dtype == np.float64):
        x = random_series(rng, shape, dtype)
        freqs, power = periodogram(x, fs=4.0, window=window)
        expected_freqs, expected_power = scipy_periodogram(x, fs=4.0, window=window)
        assert_matches(freqs, expected_freqs, dtype)
        assert_matches(power, expected_power, dtype)


# Every window, detrend, scaling and sidedness, each in more than one combination.
PERIODOGRAM_SETTINGS = [
    ("boxcar", False, "density", False),
    ("boxcar", "linear", "spectrum", True),
    ("hann", "constant", "spectrum", False),
    ("hann", False, "density", True),
    ("hamming", "linear", "density", True),
    ("blackman", "constant", "density", True),
    ("blackman", "linear", "spectrum", False),
    ("bartlett", False, "spectrum", True),
    ("bartlett", "constant", "density", False),
]


@pytest.mark.parametrize(
    ("window", "detrend_", "scaling", "onesided", "dtype"), one_dtype_each(PERIODOGRAM_SETTINGS)
)
def test_periodogram_matches_scipy_for_every_setting(
    rng, window, detrend_, scaling, onesided, dtype
):
    settings = dict(window=window, detrend=detrend_, scaling=scaling, return_onesided=onesided)
    with jax.enable_x64(dtype == np.float64):
        x = random_series(rng, (65, 3), dtype)
        freqs, power = periodogram(x, fs=2.0, **settings)
        expected_freqs, expected_power = scipy_periodogram(x, fs=2.0, **settings)
        assert_matches(freqs, expected_freqs, dtype)
        assert_matches(power, expected_power, dtype)


@pytest.fixture
def paired_ffts(monkeypatch):
    """Pair real FFTs on every Bluestein length, not only on long ones (fresh traces)."""
    monkeypatch.setattr(_spectra, "_PAIRED_FFT_MIN_LENGTH", 0)
    jax.clear_caches()
    yield
    jax.clear_caches()


def fft_kinds(fn, x) -> set[str]:
    """The FFT types (``FFT``, ``RFFT``, ...) in the program ``jax.jit(fn)`` lowers ``x`` to."""
    return set(re.findall(r"stablehlo\.fft .*?type = (\w+)", jax.jit(fn).lower(x).as_text()))


@pytest.mark.parametrize("shape", [(1009, 7), (2284, 2)])
def test_periodogram_matches_scipy_on_lengths_with_a_large_prime_factor(
    rng, shape, dtype, paired_ffts
):
    # These lengths take the path that shares one complex FFT between two columns.
    x = random_series(rng, shape, dtype)
    assert fft_kinds(lambda x: periodogram(x)[1], x) == {"FFT"}
    freqs, power = periodogram(x, window="hann", detrend="linear")
    expected_freqs, expected_power = scipy_periodogram(x, window="hann", detrend="linear")
    assert_matches(freqs, expected_freqs, dtype)
    assert_matches(power, expected_power, dtype)


def test_periodogram_keeps_a_quiet_column_accurate_next_to_a_loud_one(rng, dtype, paired_ffts):
    # Columns of very different scale share complex FFTs on a prime length; each column's
    # spectrum must still be accurate relative to its own magnitude.
    x = rng.normal(size=(1009, 3)).astype(dtype)
    x[:, 0] *= 1e6
    x[:, 1] *= 1e-4
    _, power = periodogram(x)
    _, expected = scipy_periodogram(x)
    for column in range(3):
        assert_matches(np.asarray(power)[:, column], expected[:, column], dtype)


def test_periodogram_along_axis_1_puts_frequencies_on_axis_1(rng, dtype):
    x = random_series(rng, (3, 64), dtype)
    freqs, power = periodogram(x, window="hann", axis=1)
    expected_freqs, expected_power = scipy.signal.periodogram(
        x.astype(np.float64), window="hann", axis=1
    )
    assert_matches(freqs, expected_freqs, dtype)
    assert_matches(power, expected_power, dtype)


# --- welch ---------------------------------------------------------------------------------

WELCH_SETTINGS = [
    dict(nperseg=64),
    dict(nperseg=64, noverlap=0, window="boxcar"),
    dict(nperseg=50, noverlap=49, detrend="linear"),
    dict(nperseg=33, noverlap=10, detrend=False, scaling="spectrum"),
    dict(nperseg=45, average="median", window="hamming", detrend="linear"),
    dict(nperseg=301, noverlap=0),  # one segment: no averaging, no median bias
]


@pytest.mark.parametrize(
    ("settings", "shape", "dtype"),
    one_dtype_each([(s, [(301,), (301, 3)][i // 2 % 2]) for i, s in enumerate(WELCH_SETTINGS)]),
)
def test_welch_matches_scipy(rng, settings, shape, dtype):
    with jax.enable_x64(dtype == np.float64):
        x = random_series(rng, shape, dtype)
        freqs, power = welch(x, fs=10.0, **settings)
        expected_freqs, expected_power = scipy.signal.welch(
            x.astype(np.float64), fs=10.0, axis=0, **settings
        )
        assert_matches(freqs, expected_freqs, dtype)
        assert_matches(power, expected_power, dtype)


def test_welch_along_axis_1(rng, dtype):
    x = random_series(rng, (2, 200), dtype)
    freqs, power = welch(x, nperseg=32, axis=1)
    expected_freqs, expected_power = scipy.signal.welch(x.astype(np.float64), nperseg=32, axis=1)
    assert_matches(freqs, expected_freqs, dtype)
    assert_matches(power, expected_power, dtype)


# --- dominant_period -----------------------------------------------------------------------


def test_dominant_period_of_a_sine_is_its_period(dtype):
    t = np.arange(240, dtype=dtype)
    x = np.stack([np.sin(2 * np.pi * t / 12), np.cos(2 * np.pi * t / 40), t % 8], axis=1)
    result = dominant_period(x.astype(dtype), fs=1.0)
    assert result.dtype == dtype
    np.testing.assert_allclose(result, [12.0, 40.0, 8.0], rtol=1e-5)
    # With fs samples per unit of time, the period is in those units.
    np.testing.assert_allclose(dominant_period(x[:, 0], fs=12.0), 1.0, rtol=1e-5)


def test_dominant_period_of_a_constant_series_is_refused_naming_its_column(dtype):
    x = np.ones((50, 2), dtype)
    x[:, 1] = np.arange(50) % 5
    with pytest.raises(InvalidValueError, match="at column 0"):
        dominant_period(x)


def test_dominant_period_of_a_constant_series_is_nan_inside_an_outer_jit(dtype):
    # Values cannot be checked while tracing: there NaN marks the series without a period.
    x = np.ones((50, 2), dtype)
    x[:, 1] = np.arange(50) % 5
    result = np.asarray(jax.jit(dominant_period)(x))
    assert np.isnan(result[0]) and result[1] == pytest.approx(5.0)


@pytest.mark.parametrize(("shape", "dtype"), one_dtype_each([((65,),), ((64, 7),)]))
def test_dominant_period_matches_the_scipy_periodogram_peak(rng, shape, dtype):
    with jax.enable_x64(dtype == np.float64):
        x = random_series(rng, shape, dtype)
        freqs, power = scipy_periodogram(x, fs=3.0)
        expected = 1 / freqs[1:][np.argmax(power[1:], axis=0)]
        assert_matches(dominant_period(x, fs=3.0), expected, dtype)


# --- real data shipped inside PyPI packages ------------------------------------------------


def sunspots():
    """Yearly sunspot numbers, 1700-2008 (statsmodels)."""
    return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float64)


def co2_weekly():
    """Weekly Mauna Loa CO2 (ppm), 1958-2001, missing weeks dropped (statsmodels)."""
    return sm.datasets.co2.load_pandas().data["co2"].dropna().to_numpy(np.float64)


def elnino_monthly():
    """Monthly sea-surface temperature of the El Nino region, 1950-2010 (statsmodels)."""
    frame = sm.datasets.elnino.load_pandas().data.drop(columns="YEAR")
    return frame.to_numpy(np.float64).ravel()


REAL_DATASETS = {
    "sunspots": sunspots,
    "co2": co2_weekly,
    "elnino-by-month": lambda: (
        sm.datasets.elnino.load_pandas().data.drop(columns="YEAR").to_numpy()
    ),
    "diabetes": lambda: load_diabetes().data,
}


# Each dataset in one dtype (the long co2 series in both), to bound the compile time.
REAL_CASES = [
    ("sunspots", np.float32),
    ("co2", np.float32),
    ("co2", np.float64),
    ("elnino-by-month", np.float64),
    ("diabetes", np.float32),
]


@pytest.mark.parametrize(
    ("name", "dtype"), REAL_CASES, ids=[f"{n}-{d.__name__}" for n, d in REAL_CASES]
)
def test_every_signal_op_matches_its_oracle_on_real_data(name, dtype):
    with jax.enable_x64(dtype == np.float64):
        check_every_op_on(REAL_DATASETS[name]().astype(dtype), dtype)


def check_every_op_on(x, dtype):
    x64 = x.astype(np.float64)
    n = x.shape[0]
    window = 12  # a year of monthly data
    flat = x64.reshape(n, -1)

    assert_matches(standardize(x), StandardScaler().fit_transform(flat).reshape(x.shape), dtype)
    assert_matches(detrend(x), scipy.signal.detrend(x64, axis=0), dtype)
    assert_matches(rolling_mean(x, window), pandas_rolling(x, window, "mean"), dtype)
    assert_rolling_std_matches(rolling_std(x, window), x, window, dtype)
    kernel = np.hanning(7).astype(dtype)
    expected = per_column(lambda c: np.convolve(c, kernel.astype(np.float64), "same"), x)
    assert_matches(convolve(x, kernel, mode="same"), expected, dtype)
    settings = dict(window="hann", detrend="linear", scaling="spectrum")
    freqs, power = periodogram(x, **settings)
    expected_freqs, expected_power = scipy_periodogram(x, **settings)
    assert_matches(freqs, expected_freqs, dtype)
    assert_matches(power, expected_power, dtype)
    nperseg = min(64, n)
    freqs, power = welch(x, nperseg=nperseg)
    expected_freqs, expected_power = scipy.signal.welch(x64, nperseg=nperseg, axis=0)
    assert_matches(freqs, expected_freqs, dtype)
    assert_matches(power, expected_power, dtype)


# The cycles of real series, in float32 (the precision they would be monitored in).


def test_the_sunspot_cycle_is_about_eleven_years():
    period = float(dominant_period(sunspots().astype(np.float32), fs=1.0))
    assert 10.0 < period < 12.0


def test_co2_has_a_yearly_cycle_once_its_trend_is_removed():
    weekly = co2_weekly().astype(np.float32)
    # Without detrending, the rise over 43 years dominates (the longest period wins).
    assert float(dominant_period(weekly)) == pytest.approx(weekly.shape[0], rel=1e-5)
    weeks = float(dominant_period(detrend(weekly)))
    assert 50.0 < weeks < 55.0


def test_el_nino_sea_temperature_has_a_twelve_month_cycle():
    months = float(dominant_period(elnino_monthly().astype(np.float32)))
    assert months == pytest.approx(12.0, rel=1e-5)


def test_the_benchmark_pipeline_runs_as_one_jitted_program(rng):
    # standardize -> rolling mean -> power spectrum of every column, traced together.
    x = rng.normal(size=(2_000, 8)).astype(np.float32)

    @jax.jit
    def pipeline(x):
        return periodogram(rolling_mean(standardize(x), 32))[1]

    smoothed = pandas_rolling(scipy.stats.zscore(x.astype(np.float64)), 32, "mean")
    assert_matches(pipeline(x), scipy_periodogram(smoothed)[1], np.float32)


# --- dtypes and compilation ----------------------------------------------------------------

OPS = {
    "standardize": lambda x: standardize(x),
    "detrend": lambda x: detrend(x),
    "rolling_mean": lambda x: rolling_mean(x, 3),
    "rolling_std": lambda x: rolling_std(x, 3),
    "convolve": lambda x: convolve(x, np.ones(3, np.float32)),
    "periodogram": lambda x: periodogram(x)[1],
    "welch": lambda x: welch(x, nperseg=8)[1],
    "dominant_period": lambda x: dominant_period(x),
}


@pytest.mark.parametrize("op", OPS)
def test_every_op_promotes_integers_to_the_default_float_and_compiles_once_per_shape(rng, op):
    # (Float input keeps its dtype: every oracle comparison above checks it.)
    first, second = (rng.integers(0, 9, size=(37, 3)) for _ in range(2))
    assert OPS[op](first).dtype == np.float32
    with CompileCounter() as again:
        OPS[op](second)
    assert again.count == 0


def test_integers_become_float64_under_x64():
    with jax.enable_x64(True):
        assert standardize(np.arange(6).reshape(3, 2)).dtype == np.float64


# --- the FFT cost model is the CPU's --------------------------------------------------------


def test_only_long_series_share_complex_ffts(rng):
    # Measured on XLA CPU: pairing is slower below ~2e5 points, faster above.
    short = random_series(rng, (1009, 4), np.float32)
    assert fft_kinds(lambda x: periodogram(x)[1], short) == {"RFFT"}
    long = jax.ShapeDtypeStruct((200_003, 4), np.float32)  # a prime length
    assert long.shape[0] >= _spectra._PAIRED_FFT_MIN_LENGTH
    assert _spectra._rfft_uses_bluestein(long.shape[0])
    assert fft_kinds(lambda x: periodogram(x)[1], long) == {"FFT"}


def test_off_the_cpu_backend_every_length_takes_the_plain_real_fft(rng, monkeypatch):
    # The Bluestein cost model was measured on XLA CPU only; elsewhere it must not apply.
    assert _spectra._rfft_uses_bluestein(1009)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert not any(_spectra._rfft_uses_bluestein(n) for n in (1009, 2284, 999_969))
    # A shape no other test traces, so the patched backend is read while tracing.
    x = random_series(rng, (1013, 3), np.float32)
    _, power = periodogram(x, window="hann")
    assert_matches(power, scipy_periodogram(x, window="hann")[1], np.float32)


# --- allowed values ------------------------------------------------------------------------


LITERAL_SETTINGS = [  # (type, a call with the setting, the setting's name)
    (SpectrogramMode, lambda value: spectrogram(x32, nperseg=8, mode=value), "spectrogram: `mode`"),
    (Scaling, lambda value: welch(x32, nperseg=8, scaling=value), "welch: `scaling`"),
    (Average, lambda value: welch(x32, nperseg=8, average=value), "welch: `average`"),
    (DetrendKind, lambda value: detrend(x32, type=value), "detrend: `type`"),
    (ConvolveMode, lambda value: convolve(x32, np.ones(3), mode=value), "convolve: `mode`"),
]


@pytest.mark.parametrize(("allowed", "call", "setting"), LITERAL_SETTINGS)
def test_a_refused_setting_lists_exactly_the_values_of_its_literal_type(allowed, call, setting):
    # (Every value is accepted: the settings tables above run each one.)
    listed = ", ".join(repr(value) for value in typing.get_args(allowed))
    with pytest.raises(ConfigError, match=re.escape(f"{setting} must be one of {listed}, got")):
        call("unknown")


# --- bad settings --------------------------------------------------------------------------

x32 = np.zeros((20, 3), np.float32)
AXIS = "`axis` must be an int in [-2, 1] for an array of shape (20, 3), got"
WINDOW = "rolling_mean: `window` must be an int in [1, 20] (the length of axis 0), got"

BAD_SETTINGS = [
    # (call, error, the message: owner, argument, what was expected, what was given)
    (lambda: standardize(x32, ddof=20), ConfigError, "standardize: `ddof` must be an int in [0, 19] (n - ddof must be > 0, n=20), got 20"),
    (lambda: standardize(x32, axis=2), ConfigError, f"standardize: {AXIS} 2"),
    (lambda: standardize(np.zeros((2, 2, 2))), ShapeError, "standardize: `x` must be 1-D or 2-D ([time] or [time, metrics]), got shape (2, 2, 2)"),
    (lambda: standardize(np.zeros((0, 3))), EmptyInputError, "standardize: `x` must hold at least one sample along axis 0, got shape (0, 3)"),
    (lambda: standardize(np.zeros(3, np.complex64)), InvalidTypeError, "standardize: `x` must be an array of real numbers (float or int), got dtype complex64"),
    (lambda: standardize(np.zeros(3, bool)), InvalidTypeError, "standardize: `x` must be an array of real numbers (float or int), got dtype bool"),
    (lambda: detrend(x32, type="quadratic"), ConfigError, "detrend: `type` must be one of 'constant', 'linear', got 'quadratic'"),
    (lambda: rolling_mean(x32, 0), ConfigError, f"{WINDOW} 0"),
    (lambda: rolling_mean(x32, 21), ConfigError, f"{WINDOW} 21"),
    (lambda: rolling_mean(x32, 2.0), ConfigTypeError, f"{WINDOW} float: 2.0"),
    (lambda: rolling_mean(x32, True), ConfigTypeError, f"{WINDOW} bool: True"),
    (lambda: rolling_mean(x32, 3, axis=-3), ConfigError, f"rolling_mean: {AXIS} -3"),
    (lambda: rolling_std(x32, 3, ddof=3), ConfigError, "rolling_std: `ddof` must be an int in [0, 2] (window - ddof must be > 0, window=3), got 3"),
    (lambda: rolling_std(x32, 3, ddof=-1), ConfigError, "rolling_std: `ddof` must be an int in [0, 2] (window - ddof must be > 0, window=3), got -1"),
    (lambda: convolve(x32, np.ones(3), mode="circular"), ConfigError, "convolve: `mode` must be one of 'full', 'same', 'valid', got 'circular'"),
    (lambda: convolve(x32, np.ones((3, 1))), ShapeError, "convolve: `kernel` must be 1-D, got shape (3, 1)"),
    (lambda: convolve(x32, np.ones(0)), EmptyInputError, "convolve: `kernel` must hold at least one value, got shape (0,)"),
    (lambda: periodogram(x32, window="kaiser"), ConfigError, "periodogram: `window` must be a window scipy.signal.get_window builds (a name such as 'hann', or a name and its parameters such as ('tukey', 0.25)) or an array of nperseg values, got 'kaiser' ("),
    (lambda: periodogram(x32, window=("hann", [1])), ConfigError, "periodogram: `window` must be a window scipy.signal.get_window builds"),
    (lambda: periodogram(x32, window=np.ones(19)), ConfigError, "periodogram: `nperseg` must equal the length of `window` (19), got 20"),
    (lambda: welch(x32, window=np.ones((2, 4))), ShapeError, "welch: `window` must be a 1-D array of at least one value, got shape (2, 4)"),
    (lambda: welch(x32, window=np.ones(21)), ConfigError, "welch: `window` must not be longer than the signal (20 samples along the time axis), got 21 values"),
    (lambda: welch(x32, window=np.array(["a"] * 4)), InvalidTypeError, "welch: `window` must be an array of real numbers (float or int), got dtype <U1"),
    (lambda: welch(x32, window=np.array([1.0, np.nan])), InvalidValueError, "welch: `window` must hold finite values, got a NaN or inf"),
    (lambda: periodogram(x32, detrend="cubic"), ConfigError, "periodogram: `detrend` must be one of 'constant', 'linear', False, None or a function of a segment, got 'cubic'"),
    (lambda: periodogram(x32, nfft=0), ConfigError, "periodogram: `nfft` must be an int >= 1, got 0"),
    (lambda: periodogram(np.float32(1.0)), ShapeError, "periodogram: `x` must have a time axis, got a scalar (shape ())"),
    (lambda: welch(x32, nperseg=8, nfft=4), ConfigError, "welch: `nfft` must be an int >= 8 (at least nperseg=8), got 4"),
    (lambda: welch(x32, nperseg=8, return_onesided="yes"), ConfigTypeError, "welch: `return_onesided` must be"),
    (lambda: csd(x32, np.zeros((20, 2))), ShapeError, "csd: `x` and `y` must broadcast together outside axis 0, got shapes (20, 3) and (20, 2)"),
    (lambda: spectrogram(x32, mode="db"), ConfigError, "spectrogram: `mode` must be one of 'psd', 'complex', 'magnitude', 'angle', 'phase', got 'db'"),
    (lambda: periodogram(x32, scaling="psd"), ConfigError, "periodogram: `scaling` must be one of 'density', 'spectrum', got 'psd'"),
    (lambda: periodogram(x32, fs=0.0), ConfigError, "periodogram: `fs` must be a finite number > 0, got 0.0"),
    (lambda: periodogram(x32, fs=float("nan")), ConfigError, "periodogram: `fs` must be a finite number > 0, got nan"),
    (lambda: periodogram(x32, fs="1"), ConfigTypeError, "periodogram: `fs` must be a finite number > 0, got str: '1'"),
    (lambda: welch(x32, nperseg=0), ConfigError, "welch: `nperseg` must be an int >= 1, got 0"),
    (lambda: welch(x32, nperseg=8, noverlap=8), ConfigError, "welch: `noverlap` must be an int <= 7 (less than nperseg=8), got 8"),
    (lambda: welch(x32, nperseg=8, average="max"), ConfigError, "welch: `average` must be one of 'mean', 'median', got 'max'"),
    (lambda: dominant_period(np.ones(1)), ShapeError, "dominant_period: `x` must hold at least 2 samples along axis 0, got shape (1,)"),
    (lambda: dominant_period(x32, fs=-1.0), ConfigError, "dominant_period: `fs` must be a finite number > 0, got -1.0"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "message"), BAD_SETTINGS)
def test_bad_settings_raise_a_typed_error_naming_the_argument(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_bad_settings_are_refused_while_tracing_inside_an_outer_jit():
    @jax.jit
    def outer(x):
        return rolling_mean(x, 50)

    with pytest.raises(ConfigError, match=re.escape(f"{WINDOW} 50")):
        outer(x32)
