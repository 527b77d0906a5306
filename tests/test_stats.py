"""Drift statistics equal scipy (KS, Wasserstein) and a direct numpy PSI, on random and real data.

Every call goes through the jitted function; oracles run in float64 on the same values.
"""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest
import scipy.stats
import statsmodels.api as sm
from sklearn.datasets import load_diabetes, load_iris

from liam_core import (
    ConfigError,
    ConfigTypeError,
    EmptyInputError,
    InvalidTypeError,
    InvalidValueError,
    ShapeError,
)
from liam_core.algebra import energy_distance, ks_statistic, psi, wasserstein_1d

# Absolute tolerance against the float64 oracle. KS is a difference of two fractions
# (two roundings); Wasserstein and PSI are sums of up to ~1e3 rounded terms; values are O(1)
# after scaling by the data's spread (see ``scale``).
TOL = {np.float32: 2e-5, np.float64: 1e-12}

# (reference shape, current shape): 1-D and 2-D, equal and unequal sizes, even and odd.
SAMPLE_SHAPES = [((50,), (73,)), ((200,), (200,)), ((64, 1), (41, 1)), ((101, 7), (80, 7))]


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    with jax.enable_x64(request.param == np.float64):
        yield request.param


def one_dtype_each(rows):
    """For tables of settings: each row once, in float32 and float64 alternately (KS runs
    every shape in both). Halves the compile time of the suite."""
    return [
        pytest.param(*row, dtype, id="-".join([*map(str, row), dtype.__name__]).replace(" ", ""))
        for i, row in enumerate(rows)
        for dtype in [(np.float32, np.float64)[i % 2]]
    ]


def samples(rng, shapes, dtype, ties=False):
    """A reference sample and a shifted, wider current sample (rounded to force ties)."""
    reference = rng.normal(size=shapes[0])
    current = 0.3 + 1.2 * rng.normal(size=shapes[1])
    if ties:
        reference, current = np.round(reference, 1), np.round(current, 1)
    return reference.astype(dtype), current.astype(dtype)


def per_column(fn, *arrays):
    """A 1-D oracle on 1-D samples, or on every column of 2-D samples."""
    arrays = [None if a is None else np.asarray(a, np.float64) for a in arrays]
    if arrays[0].ndim == 1:
        return np.float64(fn(*arrays))
    columns = arrays[0].shape[1]
    return np.array([fn(*(None if a is None else a[:, j] for a in arrays)) for j in range(columns)])


def assert_matches(actual, expected, dtype, scale=1.0):
    actual = np.asarray(actual)
    assert actual.dtype == dtype
    assert actual.shape == np.shape(expected)
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype] * scale)


def numpy_psi(reference, current, bins=10, eps=1e-6):
    """The documented PSI convention, written directly in numpy (1-D samples)."""
    edges = np.quantile(reference, np.arange(1, bins) / bins)
    expected = np.bincount(np.digitize(reference, edges), minlength=bins) / reference.size
    actual = np.bincount(np.digitize(current, edges), minlength=bins) / current.size
    expected, actual = np.maximum(expected, eps), np.maximum(actual, eps)
    return np.sum((actual - expected) * np.log(actual / expected))


# --- Kolmogorov-Smirnov --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shapes", "dtype"), one_dtype_each([(shapes,) for shapes in SAMPLE_SHAPES + SAMPLE_SHAPES[3:]])
)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_ks_statistic_matches_scipy_ks_2samp(rng, shapes, ties, dtype):
    with jax.enable_x64(dtype == np.float64):
        reference, current = samples(rng, shapes, dtype, ties)
        expected = per_column(lambda a, b: scipy.stats.ks_2samp(a, b).statistic, reference, current)
        assert_matches(ks_statistic(reference, current), expected, dtype)


def test_ks_statistic_is_zero_for_identical_and_one_for_disjoint_samples(rng, dtype):
    a = rng.normal(size=(40, 3)).astype(dtype)
    assert np.all(np.asarray(ks_statistic(a, a)) == 0)
    np.testing.assert_allclose(ks_statistic(a, a + 100), 1, rtol=2 * np.finfo(dtype).eps)


def test_ks_statistic_counts_ties_as_scipy_does(dtype):
    reference = np.array([1, 1, 1, 2, 2, 3], dtype)
    current = np.array([1, 2, 2, 2, 3, 3, 3, 3], dtype)
    expected = scipy.stats.ks_2samp(reference, current).statistic
    assert float(ks_statistic(reference, current)) == pytest.approx(expected, abs=TOL[dtype])


# --- Wasserstein and energy distance (CDF distances) ---------------------------------------

CDF_DISTANCES = {
    "wasserstein_1d": (wasserstein_1d, scipy.stats.wasserstein_distance),
    "energy_distance": (energy_distance, scipy.stats.energy_distance),
}


@pytest.mark.parametrize("distance", sorted(CDF_DISTANCES))
@pytest.mark.parametrize(
    ("shapes", "weighted", "dtype"),
    one_dtype_each(
        [
            (SAMPLE_SHAPES[0], False),
            (SAMPLE_SHAPES[2], True),
            (SAMPLE_SHAPES[3], True),
            (SAMPLE_SHAPES[3], False),
        ]
    ),
)
def test_cdf_distances_match_scipy(rng, distance, shapes, weighted, dtype):
    ours, oracle = CDF_DISTANCES[distance]
    with jax.enable_x64(dtype == np.float64):
        u, v = samples(rng, shapes, dtype, ties=weighted)
        u_weights = rng.uniform(0, 3, size=u.shape).astype(dtype) if weighted else None
        v_weights = rng.uniform(0, 3, size=v.shape).astype(dtype) if weighted else None
        expected = per_column(oracle, u, v, u_weights, v_weights)
        assert_matches(ours(u, v, u_weights, v_weights), expected, dtype)


@pytest.mark.parametrize("distance", sorted(CDF_DISTANCES))
def test_cdf_distance_weights_may_be_given_for_one_side_only(rng, distance, dtype):
    ours, oracle = CDF_DISTANCES[distance]
    u, v = samples(rng, ((30,), (45,)), dtype)
    weights = rng.uniform(0, 1, size=30).astype(dtype)
    expected = oracle(u, v, u_weights=weights)
    assert_matches(ours(u, v, u_weights=weights), expected, dtype)


def test_wasserstein_1d_of_a_shifted_sample_is_the_shift(rng, dtype):
    u = rng.normal(size=(300, 2)).astype(dtype)
    result = np.asarray(wasserstein_1d(u, u + dtype(2.5)))
    np.testing.assert_allclose(result, 2.5, rtol=TOL[dtype] * 10)
    assert np.all(np.asarray(wasserstein_1d(u, u)) == 0)
    assert np.all(np.asarray(energy_distance(u, u)) == 0)


def test_energy_distance_is_the_root_of_szekelys_energy(rng):
    # scipy's definition: sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) over the empirical laws.
    x, y = rng.normal(size=60), rng.normal(1.0, 2.0, size=45)
    energy = 2 * np.abs(x[:, None] - y).mean() - np.abs(x[:, None] - x).mean()
    energy -= np.abs(y[:, None] - y).mean()
    with jax.enable_x64(True):
        assert float(energy_distance(x, y)) == pytest.approx(np.sqrt(energy), rel=1e-12)


@pytest.mark.parametrize("distance", sorted(CDF_DISTANCES))
@pytest.mark.parametrize(
    "weights", [[1.0, -1.0, 1.0], [0.0, 0.0, 0.0]], ids=["negative", "zero-sum"]
)
def test_cdf_distances_with_invalid_weights_are_refused(distance, weights):
    u = np.array([0.0, 1.0, 2.0], np.float32)
    with pytest.raises(
        InvalidValueError,
        match=rf"{distance}: `u_weights` must be non-negative with a positive sum",
    ):
        CDF_DISTANCES[distance][0](u, u + 1, u_weights=np.array(weights, np.float32))


@pytest.mark.parametrize("distance", sorted(CDF_DISTANCES))
@pytest.mark.parametrize(
    "weights", [[1.0, -1.0, 1.0], [0.0, 0.0, 0.0]], ids=["negative", "zero-sum"]
)
def test_cdf_distances_with_invalid_weights_are_nan_inside_an_outer_jit(distance, weights):
    # Weights are runtime values: they cannot raise inside a jitted program.
    u = np.array([0.0, 1.0, 2.0], np.float32)
    value = jax.jit(CDF_DISTANCES[distance][0])(u, u + 1, np.array(weights, np.float32))
    assert np.isnan(float(value))


# --- PSI -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shapes", "bins", "eps", "dtype"),
    one_dtype_each(
        [
            (SAMPLE_SHAPES[0], 10, 1e-6),
            (SAMPLE_SHAPES[2], 4, 1e-4),
            # 20 bins of 101 observations: edges fall on observations (numpy's float64
            # positions put some just above them), in both dtypes.
            (SAMPLE_SHAPES[3], 20, 1e-3),
            (SAMPLE_SHAPES[3], 20, 1e-3),
        ]
    ),
)
def test_psi_matches_the_direct_numpy_formula(rng, shapes, bins, eps, dtype):
    with jax.enable_x64(dtype == np.float64):
        reference, current = samples(rng, shapes, dtype)
        expected = per_column(lambda a, b: numpy_psi(a, b, bins, eps), reference, current)
        assert_matches(psi(reference, current, bins=bins, eps=eps), expected, dtype, scale=10)


def test_psi_with_heavily_tied_values_matches_numpy(rng, dtype):
    # Tied quantiles make empty bins on both sides: each adds (eps - eps) * log(1) = 0.
    reference = rng.integers(0, 4, size=500).astype(dtype)
    current = rng.integers(0, 5, size=300).astype(dtype)
    assert_matches(psi(reference, current), numpy_psi(reference, current), dtype, scale=10)


def test_psi_is_zero_for_identical_samples_and_large_for_a_shifted_one(rng, dtype):
    reference = rng.normal(size=(1_000, 3)).astype(dtype)
    assert np.all(np.asarray(psi(reference, reference)) == 0)
    resampled = rng.normal(size=(1_000, 3)).astype(dtype)
    assert np.all(np.asarray(psi(reference, resampled)) < 0.1)  # same law: "stable"
    shifted = reference + dtype(1.0)
    assert np.all(np.asarray(psi(reference, shifted)) > 0.25)  # "major shift"


def test_drift_statistics_propagate_nan():
    clean = np.arange(10.0, dtype=np.float32)
    dirty = clean.copy()
    dirty[3] = np.nan
    for statistic in (ks_statistic, wasserstein_1d, energy_distance, psi):
        assert np.isnan(float(statistic(clean, dirty)))
        assert np.isnan(float(statistic(dirty, clean)))


def test_mixed_dtypes_promote_to_the_wider_float_and_integers_take_the_other_float(rng):
    # (All three statistics share this promotion; one of them shows it.)
    with jax.enable_x64(True):
        a = rng.normal(size=20).astype(np.float32)
        assert ks_statistic(a, rng.normal(size=25)).dtype == np.float64
        assert ks_statistic(np.arange(7), a).dtype == np.float32
        assert ks_statistic(np.arange(7), np.arange(5)).dtype == np.float64  # default float


# --- real data -----------------------------------------------------------------------------


def halves(data):
    """First and second half of the rows: a 'reference' period and a 'current' period."""
    middle = data.shape[0] // 2
    return data[:middle], data[middle:]


REAL_PAIRS = {
    # Two halves of the same tabular sample: little drift.
    "diabetes-halves": lambda: halves(load_diabetes().data),
    # Setosa against versicolor flowers: the petal columns do not overlap at all.
    "iris-setosa-vs-versicolor": lambda: (load_iris().data[:50], load_iris().data[50:100]),
    # Sunspot numbers 1700-1853 against 1854-2008.
    "sunspots-halves": lambda: halves(
        sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    ),
    # Weekly CO2, 1958-1979 against 1980-2001: a rising level, drift everywhere.
    "co2-halves": lambda: halves(sm.datasets.co2.load_pandas().data["co2"].dropna().to_numpy()),
}


# Each pair in one dtype, to bound the compile time.
REAL_CASES = [
    ("diabetes-halves", np.float32),
    ("iris-setosa-vs-versicolor", np.float64),
    ("sunspots-halves", np.float64),
    ("co2-halves", np.float32),
]


@pytest.mark.parametrize(
    ("name", "dtype"), REAL_CASES, ids=[f"{n}-{d.__name__}" for n, d in REAL_CASES]
)
def test_drift_statistics_match_their_oracles_on_real_data(name, dtype):
    with jax.enable_x64(dtype == np.float64):
        check_drift_statistics_on(*(np.asarray(a, dtype) for a in REAL_PAIRS[name]()), dtype)


def check_drift_statistics_on(reference, current, dtype):
    scale = float(np.max(np.abs(np.concatenate([reference, current]))))
    assert_matches(
        ks_statistic(reference, current),
        per_column(lambda a, b: scipy.stats.ks_2samp(a, b).statistic, reference, current),
        dtype,
    )
    assert_matches(
        wasserstein_1d(reference, current),
        per_column(scipy.stats.wasserstein_distance, reference, current),
        dtype,
        scale=scale,
    )
    assert_matches(
        energy_distance(reference, current),
        per_column(scipy.stats.energy_distance, reference, current),
        dtype,
        scale=np.sqrt(scale),
    )
    assert_matches(
        psi(reference, current), per_column(numpy_psi, reference, current), dtype, scale=20
    )


def test_iris_petals_separate_the_species_completely():
    setosa, versicolor = load_iris().data[:50], load_iris().data[50:100]
    petal_length, petal_width = 2, 3
    ks = np.asarray(ks_statistic(setosa, versicolor))
    assert ks[petal_length] == 1 and ks[petal_width] == 1
    assert np.all(np.asarray(psi(setosa, versicolor))[[petal_length, petal_width]] > 10)


def test_co2_drifts_more_than_two_halves_of_a_shuffled_sample(rng):
    co2 = sm.datasets.co2.load_pandas().data["co2"].dropna().to_numpy(np.float32)
    early, late = halves(co2)
    mixed_early, mixed_late = halves(rng.permutation(co2))
    assert (
        float(ks_statistic(early, late)) > 0.9 > 0.1 > float(ks_statistic(mixed_early, mixed_late))
    )
    assert float(psi(early, late)) > 0.25 > 0.1 > float(psi(mixed_early, mixed_late))
    assert float(wasserstein_1d(early, late)) > 10 * float(wasserstein_1d(mixed_early, mixed_late))


# --- bad settings and shapes ---------------------------------------------------------------

a10 = np.zeros(10, np.float32)

BAD_INPUTS = [
    # (call, error, the message: owner, argument, what was expected, what was given)
    (lambda: psi(a10, a10, bins=1), ConfigError, "psi: `bins` must be an int >= 2, got 1"),
    (lambda: psi(a10, a10, bins=2.5), ConfigTypeError, "psi: `bins` must be an int >= 2, got float: 2.5"),
    (lambda: psi(a10, a10, eps=0.0), ConfigError, "psi: `eps` must be a finite number in (0, 1), got 0.0"),
    (lambda: psi(a10, a10, eps=1.0), ConfigError, "psi: `eps` must be a finite number in (0, 1), got 1.0"),
    (lambda: psi(a10, a10, eps="small"), ConfigTypeError, "psi: `eps` must be a finite number in (0, 1), got str: 'small'"),
    (lambda: ks_statistic(a10, np.zeros((10, 2))), ShapeError, "ks_statistic: `reference` and `current` must both be 1-D, or both 2-D with the same number of columns, got shapes (10,) and (10, 2)"),
    (lambda: ks_statistic(np.zeros((5, 3)), np.zeros((5, 2))), ShapeError, "both 2-D with the same number of columns, got shapes (5, 3) and (5, 2)"),
    (lambda: ks_statistic(np.zeros((2, 2, 2)), np.zeros((2, 2, 2))), ShapeError, "ks_statistic: `reference` must be 1-D or 2-D ([n] or [n, columns]), got shape (2, 2, 2)"),
    (lambda: ks_statistic(a10, np.zeros(0)), EmptyInputError, "ks_statistic: `current` must hold at least one observation, got shape (0,)"),
    (lambda: wasserstein_1d(np.zeros(0), a10), EmptyInputError, "wasserstein_1d: `u_values` must hold at least one observation"),
    (lambda: wasserstein_1d(a10, a10, u_weights=np.ones(9)), ShapeError, "wasserstein_1d: `u_weights` must have the shape of `u_values` (10,), got shape (9,)"),
    (lambda: wasserstein_1d(a10, a10, v_weights=np.ones((10, 1))), ShapeError, "`v_weights` must have the shape of `v_values` (10,), got shape (10, 1)"),
    (lambda: psi(a10.astype(np.complex64), a10), InvalidTypeError, "psi: `reference` must be an array of real numbers (float or int), got dtype complex64"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "named"), BAD_INPUTS)
def test_bad_settings_raise_a_typed_error_naming_the_argument(call, error, named):
    with pytest.raises(error, match=re.escape(named)):
        call()


def test_ks_statistic_handles_samples_whose_size_product_exceeds_int32():
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(65_536, 2)).astype(np.float32)
    current = (rng.normal(size=(65_536, 2)) + 0.05).astype(np.float32)
    expected = [scipy.stats.ks_2samp(reference[:, j], current[:, j]).statistic for j in range(2)]
    np.testing.assert_allclose(ks_statistic(reference, current), expected, rtol=1e-5)


def test_wasserstein_handles_samples_whose_size_product_exceeds_int32():
    rng = np.random.default_rng(6)
    u = rng.normal(size=65_536).astype(np.float32)
    v = (rng.normal(size=65_536) + 0.5).astype(np.float32)
    expected = scipy.stats.wasserstein_distance(u, v)
    np.testing.assert_allclose(wasserstein_1d(u, v), expected, rtol=1e-4)
