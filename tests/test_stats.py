"""Drift statistics equal scipy (KS test, Wasserstein) and a direct numpy PSI, on random and real data.

Every call goes through the jitted function; oracles run in float64 on the same values.
"""

from __future__ import annotations

import pickle
import re
import warnings

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
from liam_core.algebra import (
    KstestResult,
    energy_distance,
    ks_2samp,
    ks_statistic,
    psi,
    wasserstein_1d,
)
from liam_core.testing import CompileCounter

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


# --- Kolmogorov-Smirnov test: ks_2samp -----------------------------------------------------
#
# scipy.stats.ks_2samp is the oracle, on the same values. With x64 the statistic, its location
# and sign are scipy's bits, and p-values agree to KS_PVALUE_RTOL; without x64 everything is
# float32 (KS_PVALUE_RTOL_F32: the p-value recursions run in float32, ~1e-7 per step).

KS_PVALUE_RTOL = {"exact": 1e-12, "asymp": 1e-11}
# scipy's exact one-sided p-value divides path counts made of special.binom values (~5e-13
# relative each); its asymptotic two-sided one uses Pomeranz's recursion for n <= 140, whose
# error reaches ~8e-12 where the p-value is ~1e-3 (against 60-digit arithmetic, ours: 1e-12).
KS_PVALUE_RTOL_ONE_SIDED_EXACT = 5e-12
KS_PVALUE_RTOL_F32 = 2e-4
ALTERNATIVES = ["two-sided", "less", "greater"]
METHODS = ["auto", "exact", "asymp"]


def ks_samples(rng, n1, n2, columns=16, dtype=np.float64):
    """``[n1, columns]`` and ``[n2, columns]`` samples, a shift and a wider spread between them;
    the odd columns rounded to one decimal (ties within and across the samples), and one
    column of identical samples when the sizes agree."""
    a = rng.normal(size=(n1, columns))
    b = 0.4 * rng.normal(size=(1, columns)) + rng.uniform(0.8, 1.5, (1, columns)) * rng.normal(
        size=(n2, columns)
    )
    a[:, 1::2], b[:, 1::2] = np.round(a[:, 1::2], 1), np.round(b[:, 1::2], 1)
    if n1 == n2:
        b[:, 0] = a[:, 0]
    return a.astype(dtype), b.astype(dtype)


def scipy_ks(*args, **kwargs):
    """scipy's result and the RuntimeWarning messages it gave (scipy warns once per slice)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = scipy.stats.ks_2samp(*args, **kwargs)
    return result, {str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)}


def ours_ks(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ks_2samp(*args, **kwargs)
    return result, {str(w.message) for w in caught}


def assert_ks_matches_scipy(ours, expected, dtype, rtol, statistic_rtol=2e-7):
    """All four results; with x64 (float64 data) the statistic, location and sign bit for bit."""
    for name in ("statistic", "pvalue", "statistic_location", "statistic_sign"):
        value = np.asarray(getattr(ours, name))
        assert value.dtype == dtype, name
        assert value.shape == np.shape(getattr(expected, name)), name
    if dtype == np.float64:
        np.testing.assert_array_equal(ours.statistic, expected.statistic)
        np.testing.assert_array_equal(ours.statistic_location, expected.statistic_location)
        np.testing.assert_array_equal(ours.statistic_sign, expected.statistic_sign)
        np.testing.assert_allclose(ours.pvalue, expected.pvalue, rtol=rtol, atol=0)
    else:
        np.testing.assert_allclose(ours.statistic, expected.statistic, rtol=statistic_rtol)
        np.testing.assert_allclose(ours.pvalue, expected.pvalue, rtol=rtol, atol=1e-30)


def exact_gaps(a, b, at):
    """``n1 n2 (F1 - F2)`` at the values ``at`` (exact integers; F right-continuous)."""
    a, b = np.sort(a), np.sort(b)
    right = lambda s: np.searchsorted(s, at, side="right")  # noqa: E731
    return right(a) * len(b) - right(b) * len(a)


def assert_location_and_sign_are_scipys_up_to_ties(ours, a, b, alternative):
    """Without x64: the location is a value where the CDF gap is the statistic, with the
    sign scipy gives unless both tails tie (scipy breaks exact ties with float64 rounding)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    gaps = exact_gaps(a, b, np.concatenate([a, b]))
    high, low = gaps.max(), max(-gaps.min(), 0)
    expected_sign = {"less": -1, "greater": 1}.get(alternative, -1 if low > high else 1)
    assert float(ours.statistic_sign) == expected_sign
    at = exact_gaps(a, b, np.float64(ours.statistic_location))
    assert at == (high if expected_sign == 1 else -low)


def pvalue_rtol(alternative, method):
    if method == "asymp":
        return KS_PVALUE_RTOL["asymp"]
    return KS_PVALUE_RTOL["exact"] if alternative == "two-sided" else KS_PVALUE_RTOL_ONE_SIDED_EXACT


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_ks_2samp_matches_scipy_for_every_alternative_and_method(rng, alternative, method):
    # 16 tests of 20 against 30 values each, half of them with ties (see ks_samples).
    with jax.enable_x64(True):
        a, b = ks_samples(rng, 20, 30)
        expected, expected_warnings = scipy_ks(a, b, alternative, method)
        ours, our_warnings = ours_ks(a, b, alternative, method)
        assert_ks_matches_scipy(ours, expected, np.float64, pvalue_rtol(alternative, method))
        assert our_warnings == expected_warnings


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("sizes", [(5, 7), (1, 3), (12, 12)], ids=["5x7", "1x3", "12x12"])
def test_ks_2samp_matches_scipy_on_small_samples_exactly(rng, sizes, alternative):
    # Unequal sizes take the lattice recursion, equal ones scipy's closed forms.
    with jax.enable_x64(True):
        a, b = ks_samples(rng, *sizes)
        expected, expected_warnings = scipy_ks(a, b, alternative)
        ours, our_warnings = ours_ks(a, b, alternative)
        assert_ks_matches_scipy(ours, expected, np.float64, pvalue_rtol(alternative, "exact"))
        assert our_warnings == expected_warnings


def test_ks_2samp_auto_switches_from_exact_to_asymp_past_10000_observations(rng):
    with jax.enable_x64(True):
        for n1, mode in [(10_000, "exact"), (10_001, "asymp")]:
            a, b = ks_samples(rng, n1, 9_000, columns=1)
            a, b = a[:, 0], b[:, 0] + 0.03
            expected, _ = scipy_ks(a, b)
            assert_ks_matches_scipy(ks_2samp(a, b), expected, np.float64, KS_PVALUE_RTOL[mode])


def test_ks_2samp_exact_two_sided_p_values_of_large_samples_match_scipy(rng):
    # 1200 x 1100 values: the recursion follows the band of cells the paths can still stay
    # in, unless a statistic is too large for it (the second call), then whole diagonals.
    with jax.enable_x64(True):
        a = rng.normal(size=(1200, 3))
        b = rng.normal(size=(1100, 3)) + np.array([0.0, 0.05, 0.1])
        for shift in (0.0, 1.0):
            b[:, 2] += shift
            expected, _ = scipy_ks(a, b)
            assert_ks_matches_scipy(ks_2samp(a, b), expected, np.float64, 1e-12)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_ks_2samp_matches_scipy_on_large_samples_asymptotically(rng, alternative):
    with jax.enable_x64(True):
        a, b = ks_samples(rng, 30_000, 20_000, columns=2)
        b = b + 0.02
        expected, _ = scipy_ks(a, b, alternative)
        assert_ks_matches_scipy(ks_2samp(a, b, alternative), expected, np.float64, 1e-11)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_ks_2samp_tests_along_any_axis_of_3d_samples(rng, axis):
    shape1, shape2 = [4, 5, 6], [4, 5, 6]
    shape1[axis], shape2[axis] = 9, 13
    with jax.enable_x64(True):
        a = np.round(rng.normal(size=shape1), 1)
        b = np.round(0.3 + rng.normal(size=shape2), 1)
        for keepdims in (False, True):  # keepdims: the tested axis stays, with length 1
            expected, _ = scipy_ks(a, b, axis=axis, keepdims=keepdims)
            ours = ks_2samp(a, b, axis=axis, keepdims=keepdims)
            assert_ks_matches_scipy(ours, expected, np.float64, 1e-12)


def test_ks_2samp_broadcasts_the_other_axes_as_scipy_does(rng):
    # (6, 3) is padded to (1, 6, 3), tested along axis 1 against (2, 9, 1): the other axes
    # broadcast, (1, 3) with (2, 1), to a (2, 3) result.
    with jax.enable_x64(True):
        a, b = rng.normal(size=(6, 3)), rng.normal(size=(2, 9, 1)) - 0.5
        expected, _ = scipy_ks(a, b, axis=1)
        assert_ks_matches_scipy(ks_2samp(a, b, axis=1), expected, np.float64, 1e-12)


def test_ks_2samp_of_2d_samples_with_axis_none_tests_all_values(rng):
    with jax.enable_x64(True):
        a, b = rng.normal(size=(6, 4)), rng.normal(size=(5, 3)) + 0.5
        expected, _ = scipy_ks(a, b, axis=None)
        assert_ks_matches_scipy(ks_2samp(a, b, axis=None), expected, np.float64, 1e-12)
        kept = ks_2samp(a, b, axis=None, keepdims=True)
        assert kept.pvalue.shape == np.shape(scipy_ks(a, b, axis=None, keepdims=True)[0].pvalue)


@pytest.mark.parametrize(
    ("sizes", "alternative"),
    [((40, 40), "two-sided"), ((40, 40), "less"), ((520, 530), "two-sided"),
     ((520, 530), "greater")],
    ids=["40x40-two-sided", "40x40-less", "520x530-two-sided", "520x530-greater"],
)  # fmt: skip
def test_ks_2samp_in_float32_matches_scipy_to_float32_precision(rng, sizes, alternative):
    # Without x64: float32 data, results and computations. (520 x 530 one-sided: scipy's
    # path count overflows float64, both switch to asymp and warn.)
    a, b = ks_samples(rng, *sizes, columns=3, dtype=np.float32)
    expected, expected_warnings = scipy_ks(a, b, alternative)
    ours, our_warnings = ours_ks(a, b, alternative)
    assert_ks_matches_scipy(ours, expected, np.float32, KS_PVALUE_RTOL_F32)
    assert our_warnings == expected_warnings
    for column in range(a.shape[1]):
        one = KstestResult(*(v[column] for v in ours.__getnewargs__()))
        assert_location_and_sign_are_scipys_up_to_ties(one, a[:, column], b[:, column], alternative)


def test_ks_2samp_of_integer_samples_tests_them_as_floats(rng):
    with jax.enable_x64(True):
        a, b = rng.integers(0, 6, size=(20, 16)), rng.integers(1, 7, size=(30, 16))
        expected, _ = scipy_ks(a, b)
        ours = ks_2samp(a, b)
        assert_ks_matches_scipy(ours, expected, np.float64, 1e-12)


def test_ks_2samp_statistic_is_ks_statistic(rng):
    a, b = ks_samples(rng, 101, 80, columns=7, dtype=np.float32)
    np.testing.assert_allclose(ks_2samp(a, b).statistic, ks_statistic(a, b), rtol=2e-7)


def test_ks_2samp_nan_policy_propagate_makes_a_test_with_a_nan_nan(rng):
    with jax.enable_x64(True):
        a, b = ks_samples(rng, 20, 30)
        a[4, 1] = np.nan
        expected, _ = scipy_ks(a, b)
        ours = ks_2samp(a, b)
        assert_ks_matches_scipy(ours, expected, np.float64, 1e-12)
        assert all(np.isnan(np.asarray(v)[1]) for v in ours.__getnewargs__())


def test_ks_2samp_nan_policy_omit_drops_each_tests_nans(rng):
    with jax.enable_x64(True):
        a, b = rng.normal(size=(10, 4)), rng.normal(size=(12, 4)) + 0.4
        a[4, 1], a[7, 2], b[:, 3] = np.nan, np.nan, np.nan  # lengths (10, 12), (9, 12), (10, 0)
        expected, expected_warnings = scipy_ks(a, b, nan_policy="omit")
        ours, our_warnings = ours_ks(a, b, nan_policy="omit")
        assert_ks_matches_scipy(ours, expected, np.float64, 1e-12)
        # Column 3 has no values left: NaN, with scipy's warning.
        assert our_warnings == {f"ks_2samp: {m}" for m in expected_warnings}
        one_d, _ = scipy_ks(a[:, 1], b[:, 1], nan_policy="omit")
        assert_ks_matches_scipy(
            ks_2samp(a[:, 1], b[:, 1], nan_policy="omit"), one_d, np.float64, 1e-12
        )


def test_ks_2samp_nan_policy_raise_names_the_sample_with_the_nan():
    a = np.arange(6.0)
    b = np.array([0.5, np.nan, 2.5])
    with pytest.raises(
        InvalidValueError,
        match=re.escape(
            "ks_2samp: `data2` must hold no NaN with nan_policy='raise', got nan at index (1,)"
        ),
    ):
        ks_2samp(a, b, nan_policy="raise")
    assert issubclass(InvalidValueError, ValueError)  # what scipy raises
    assert np.isfinite(float(ks_2samp(a, b[[0, 2]], nan_policy="raise").pvalue))


@pytest.mark.parametrize(
    ("shape1", "shape2", "expected_shape", "message"),
    [
        ((0,), (4,), (), "One or more sample arguments is too small"),
        ((3, 2), (0, 2), (2,), "All axis-slices of one or more sample arguments are too small"),
    ],
)
def test_ks_2samp_of_an_empty_sample_is_nan_with_scipys_warning(
    shape1, shape2, expected_shape, message
):
    with pytest.warns(RuntimeWarning, match=re.escape(f"ks_2samp: {message}")):
        result = ks_2samp(np.ones(shape1, np.float32), np.ones(shape2, np.float32))
    for value in result.__getnewargs__():
        assert value.shape == expected_shape and np.isnan(np.asarray(value)).all()
    expected, _ = scipy_ks(np.ones(shape1), np.ones(shape2))
    assert np.isnan(expected.pvalue).all() and np.shape(expected.pvalue) == expected_shape


def test_ks_2samp_with_no_tests_to_run_returns_empty_results():
    result = ks_2samp(np.ones((4, 0)), np.ones((3, 0)))
    assert result.statistic.shape == result.pvalue.shape == (0,)


def test_ks_2samp_falls_back_to_asymp_with_scipys_warning_where_the_exact_method_fails():
    # Two samples of 7 one step apart: the exact equal-size recursion rounds to just above 1.
    with jax.enable_x64(True):
        a = np.arange(7.0)
        expected, expected_warnings = scipy_ks(a, a + 0.5)
        assert expected_warnings == {
            "ks_2samp: Exact calculation unsuccessful. Switching to method=asymp."
        }
        with pytest.warns(RuntimeWarning, match="Exact calculation unsuccessful"):
            ours = ks_2samp(a, a + 0.5)
        assert_ks_matches_scipy(ours, expected, np.float64, 1e-12)
        assert float(ours.pvalue) < 1  # the asymptotic p-value, not the exact 1
        inside_jit = jax.jit(ks_2samp)(a, a + 0.5)  # the same fallback, without the warning
        assert float(inside_jit.pvalue) == pytest.approx(expected.pvalue, rel=1e-12)


def test_ks_2samp_method_exact_switches_to_asymp_when_the_lattice_is_too_large():
    # lcm(46341, 46342) is past int32: scipy warns and uses asymp, on every call.
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=46_341).astype(np.float32), rng.normal(size=46_342).astype(np.float32)
    expected, expected_warnings = scipy_ks(a, b, method="exact")
    assert len(expected_warnings) == 1
    with pytest.warns(RuntimeWarning, match=re.escape(expected_warnings.pop())):
        ours = ks_2samp(a, b, method="exact")
    # Without x64 and n1 n2 past int32 the CDF gaps are float32 differences (as ks_statistic's).
    assert_ks_matches_scipy(ours, expected, np.float32, KS_PVALUE_RTOL_F32, statistic_rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"alternative": "g"}, ConfigError, "ks_2samp: `alternative` must be one of 'two-sided', 'less', 'greater', got 'g'"),
        ({"method": "Exact"}, ConfigError, "ks_2samp: `method` must be one of 'auto', 'exact', 'asymp', got 'Exact'"),
        ({"nan_policy": "drop"}, ConfigError, "ks_2samp: `nan_policy` must be one of 'propagate', 'omit', 'raise', got 'drop'"),
        ({"keepdims": 1}, ConfigTypeError, "ks_2samp: `keepdims` must be True or False, got int: 1"),
        ({"axis": 2}, ConfigError, "ks_2samp: `axis` must be an int in [-2, 1], got 2"),
        ({"axis": 0.0}, ConfigTypeError, "ks_2samp: `axis` must be an int, got float: 0.0"),
    ],
)  # fmt: skip
def test_ks_2samp_bad_settings_raise_a_typed_error_naming_the_setting(kwargs, error, named):
    with pytest.raises(error, match=re.escape(named)):
        ks_2samp(np.zeros((5, 2)), np.ones((4, 2)), **kwargs)
    assert issubclass(error, ValueError)


def test_ks_2samp_bad_samples_raise_a_typed_error_naming_them():
    with pytest.raises(
        ShapeError,
        match=re.escape(
            "ks_2samp: `data1` and `data2` must broadcast together along every axis but `axis` (0), got shapes (5, 3) and (4, 2)"
        ),
    ):
        ks_2samp(np.zeros((5, 3)), np.zeros((4, 2)))
    with pytest.raises(
        InvalidTypeError,
        match=re.escape(
            "ks_2samp: `data2` must be an array of real numbers (float or int), got dtype <U1"
        ),
    ):
        ks_2samp(np.zeros(3), np.array(["a"]))
    assert issubclass(ShapeError, ValueError) and issubclass(InvalidTypeError, TypeError)


def test_ks_2samp_result_unpacks_like_scipys_and_is_a_pytree():
    a, b = np.arange(6.0, dtype=np.float32), np.arange(8.0, dtype=np.float32) + 2.5
    expected = scipy.stats.ks_2samp(a, b, "greater")
    result = jax.jit(lambda x, y: ks_2samp(x, y, "greater"))(a, b)  # in and out of jit
    assert isinstance(result, KstestResult)
    statistic, pvalue = result  # a tuple of two, like scipy's
    assert len(result) == len(expected) == 2
    assert float(statistic) == pytest.approx(expected.statistic, rel=1e-6)
    assert float(pvalue) == pytest.approx(expected.pvalue, rel=1e-6)
    assert float(result.statistic_location) == expected.statistic_location
    assert list(result._asdict()) == ["statistic", "pvalue", "statistic_location", "statistic_sign"]
    assert repr(result).startswith("KstestResult(statistic=")
    leaves, tree = jax.tree_util.tree_flatten(result)
    assert len(leaves) == 4
    again = jax.tree_util.tree_unflatten(tree, leaves)
    assert isinstance(again, KstestResult) and again.statistic_sign is leaves[3]
    assert pickle.loads(pickle.dumps(result)).statistic_location == result.statistic_location


def test_ks_2samp_inside_jit_refuses_the_nan_policies_that_read_values():
    with pytest.raises(
        ConfigError, match=re.escape("ks_2samp: `nan_policy` must be 'propagate' on traced samples")
    ):
        jax.jit(lambda x: ks_2samp(x, x, nan_policy="omit"))(np.ones(4, np.float32))


def test_ks_2samp_a_second_call_with_new_values_compiles_nothing(rng):
    a, b = ks_samples(rng, 101, 80, columns=7, dtype=np.float32)
    jax.block_until_ready(ks_2samp(a, b))
    with CompileCounter() as again:
        jax.block_until_ready(ks_2samp(a + 1, b * 2))
        jax.block_until_ready(ks_2samp(a, b, method="exact"))  # what 'auto' picks here
    assert again.count == 0


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


# The real pairs in their dtypes, against scipy: two-sided tests of each
# column (exact for all four: each sample has at most 1113 values).
@pytest.mark.parametrize(
    ("name", "dtype"), REAL_CASES, ids=[f"{n}-{d.__name__}" for n, d in REAL_CASES]
)
def test_ks_2samp_matches_scipy_on_real_data(name, dtype):
    with jax.enable_x64(dtype == np.float64):
        reference, current = (np.asarray(a, dtype) for a in REAL_PAIRS[name]())
        expected, _ = scipy_ks(reference, current)
        rtol = KS_PVALUE_RTOL["exact"] if dtype == np.float64 else KS_PVALUE_RTOL_F32
        assert_ks_matches_scipy(ks_2samp(reference, current), expected, dtype, rtol)


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


# --------------------------------------------------------------------------- the sorts


def test_the_sorts_give_the_bits_of_lax_sort_with_signed_zeros_nans_and_ties():
    import jax.numpy as jnp
    from jax import lax

    from liam_core.algebra._sorting import sort, sort_by_key

    rng = np.random.default_rng(5)
    atoms = np.array([0.0, -0.0, 1.0, -1.0, np.nan, -np.nan, np.inf, -np.inf, 2.5], np.float32)
    for _ in range(60):
        x = rng.choice(atoms, size=(int(rng.integers(1, 200)), int(rng.integers(1, 4))))
        payload = np.float32(np.nan) * -1  # another NaN's bits
        x[rng.random(x.shape) < 0.2] = payload
        for axis in (0, 1):
            got = np.asarray(jax.jit(lambda v, a=axis: sort(v, axis=a))(x))
            want = np.asarray(jnp.sort(jnp.asarray(x), axis=axis))
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        rows = jnp.arange(x.shape[0])[:, None] + jnp.zeros(x.shape, jnp.int32)
        got = jax.jit(lambda k, r: sort_by_key(k, r, axis=0))(x, rows)
        want = lax.sort((jnp.asarray(x), rows), dimension=0, num_keys=1, is_stable=True)
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))


def test_the_sorts_keep_float64_under_enable_x64_and_batch_under_vmap():
    import jax.numpy as jnp

    from liam_core.algebra._sorting import sort

    x = np.random.default_rng(6).normal(size=(3, 50, 2))
    with jax.enable_x64(True):  # the callback reads XLA's float64 buffer in place
        got = jax.jit(sort)(jnp.asarray(x, jnp.float64))
        assert got.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(got), np.sort(x, axis=0))
    batched = jax.vmap(lambda v: sort(v, axis=0))(jnp.asarray(x, jnp.float32))
    np.testing.assert_array_equal(np.asarray(batched), np.sort(x.astype(np.float32), axis=1))
