"""Matrix algebra and patterns follow numpy and scikit-learn, on random and real data."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import statsmodels.api as sm
from scipy.spatial.distance import pdist
from sklearn.datasets import load_diabetes, load_digits, load_iris, load_wine
from sklearn.decomposition import PCA

from liam_core import ConfigError, EmptyInputError, InvalidTypeError, ShapeError
from liam_core.algebra import (
    cond,
    correlation,
    covariance,
    matrix_rank,
    pca,
    random_projection,
    random_projection_matrix,
    svd_patterns,
    transforms,
    whiten,
)


def longley() -> np.ndarray:
    """Longley's macroeconomic data: the classic ill-conditioned regression matrix."""
    return sm.datasets.longley.load_pandas().exog.to_numpy(dtype=np.float64)


REAL_DATASETS = {
    "iris": lambda: load_iris().data,
    "wine": lambda: load_wine().data,
    "diabetes": lambda: load_diabetes().data,
    "digits": lambda: load_digits().data,
    "longley": longley,
}
SHAPES = [(2, 2), (7, 3), (3, 7), (64, 16), (101, 5)]
# Relative tolerance of each dtype against a float64 numpy oracle.
RTOL = {np.float32: 2e-4, np.float64: 1e-10}


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    if request.param == np.float64:
        with jax.enable_x64(True):
            yield request.param
    else:
        yield request.param


def _random(rng, shape, dtype):
    return (rng.normal(size=shape) * rng.uniform(0.5, 5, size=shape[-1])).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
def test_covariance_and_correlation_match_numpy(rng, shape, dtype):
    x = _random(rng, shape, dtype)
    result = covariance(x)
    assert result.dtype == dtype
    np.testing.assert_allclose(result, np.cov(x, rowvar=False), rtol=RTOL[dtype], atol=1e-6)
    np.testing.assert_allclose(
        covariance(x, ddof=0), np.cov(x, rowvar=False, ddof=0), rtol=RTOL[dtype], atol=1e-6
    )
    np.testing.assert_allclose(
        correlation(x), np.corrcoef(x, rowvar=False), rtol=RTOL[dtype], atol=1e-6
    )


def test_correlation_of_a_constant_column_is_nan_as_in_numpy():
    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]], np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.corrcoef(x, rowvar=False)
    np.testing.assert_array_equal(np.isnan(correlation(x)), np.isnan(expected))


@pytest.mark.parametrize("shape", SHAPES)
def test_rank_cond_and_singular_values_match_numpy(rng, shape, dtype):
    x = _random(rng, shape, dtype)
    patterns = svd_patterns(x)
    assert int(patterns["rank"]) == np.linalg.matrix_rank(x)
    np.testing.assert_allclose(
        patterns["singular_values"], np.linalg.svd(x, compute_uv=False), rtol=RTOL[dtype] * 10
    )
    np.testing.assert_allclose(cond(x), np.linalg.cond(x), rtol=RTOL[dtype] * 100)
    s = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    tolerance = s.max() * max(shape) * np.finfo(dtype).eps
    assert float(patterns["tolerance"]) == pytest.approx(tolerance, rel=RTOL[dtype] * 10)


@pytest.mark.parametrize("name", sorted(REAL_DATASETS))
def test_patterns_match_numpy_on_real_data(name):
    with jax.enable_x64(True):
        x = REAL_DATASETS[name]()
        patterns = svd_patterns(x)
        assert int(patterns["rank"]) == np.linalg.matrix_rank(x)
        assert int(matrix_rank(x)) == np.linalg.matrix_rank(x)
        if np.linalg.matrix_rank(x) == min(x.shape):
            np.testing.assert_allclose(cond(x), np.linalg.cond(x), rtol=1e-8)
        else:  # digits has constant-zero pixels
            assert np.isinf(float(cond(x)))
        s = np.linalg.svd(x, compute_uv=False)
        np.testing.assert_allclose(patterns["explained_variance_ratio"], s**2 / np.sum(s**2))
        p = s / s.sum()
        entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
        assert float(patterns["effective_rank"]) == pytest.approx(np.exp(entropy))


def test_longley_is_ill_conditioned_in_float32_and_float64_alike():
    x = longley()
    assert float(cond(x.astype(np.float32))) == pytest.approx(np.linalg.cond(x), rel=1e-2)


@pytest.mark.parametrize(
    ("matrix", "rank"),
    [
        (np.zeros((3, 4)), 0),
        (np.eye(5), 5),
        (np.ones((4, 6)), 1),
        (np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]), 2),
    ],
)
def test_rank_deficient_matrices_have_numpy_rank_and_infinite_condition(matrix, rank):
    assert int(matrix_rank(matrix.astype(np.float32))) == np.linalg.matrix_rank(matrix) == rank
    assert np.isinf(float(cond(matrix.astype(np.float32)))) == (rank < min(matrix.shape))


def test_an_explicit_tolerance_is_used_as_numpy_does():
    x = np.diag([10.0, 1.0, 1e-3]).astype(np.float32)
    for tol in (1e-4, 1e-2, 5.0):
        assert int(matrix_rank(x, tol=tol)) == np.linalg.matrix_rank(x, tol=tol)


def test_patterns_work_on_a_stack_of_matrices(rng):
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    x[1, :, 2] = x[1, :, 0]
    np.testing.assert_array_equal(matrix_rank(x), np.linalg.matrix_rank(x))


@pytest.mark.parametrize("name", sorted(REAL_DATASETS))
@pytest.mark.parametrize("n_components", [1, 2, None])
def test_pca_matches_scikit_learn_exactly_including_signs(name, n_components):
    with jax.enable_x64(True):
        x = REAL_DATASETS[name]()
        reference = PCA(n_components, svd_solver="covariance_eigh").fit(x)
        projection, state = pca(x, n_components)
        np.testing.assert_allclose(projection, reference.transform(x), rtol=1e-6, atol=1e-8)
        # Axes of a zero eigenvalue (digits' constant pixels) are arbitrary: skip those.
        defined = reference.explained_variance_ > 1e-10
        np.testing.assert_allclose(
            state.components[defined], reference.components_[defined], atol=1e-8
        )
        np.testing.assert_allclose(
            state.explained_variance_ratio, reference.explained_variance_ratio_, atol=1e-12
        )
        np.testing.assert_allclose(
            state.explained_variance, reference.explained_variance_, rtol=1e-8, atol=1e-10
        )
        np.testing.assert_allclose(
            state.singular_values, reference.singular_values_, rtol=1e-8, atol=1e-5
        )


def test_pca_in_float32_matches_scikit_learn_up_to_float32_precision():
    x = load_wine().data
    reference = PCA(3, svd_solver="covariance_eigh").fit(x)
    projection, _ = pca(x.astype(np.float32), 3)
    assert projection.dtype == jnp.float32
    scale = np.abs(reference.transform(x)).max()
    np.testing.assert_allclose(projection, reference.transform(x), atol=1e-5 * scale)


def test_a_fitted_pca_projects_new_data_like_scikit_learn(rng):
    with jax.enable_x64(True):
        x = load_diabetes().data
        reference = PCA(4, svd_solver="covariance_eigh", whiten=True).fit(x[:300])
        projector = transforms.pca(4, whiten=True)
        state = projector.init(x[:300])
        np.testing.assert_allclose(
            projector.apply(state, x[300:]), reference.transform(x[300:]), atol=1e-8
        )


@pytest.mark.parametrize("method", ["zca", "pca"])
def test_whitened_data_has_identity_covariance(method):
    with jax.enable_x64(True):
        x = load_wine().data
        np.testing.assert_allclose(
            np.cov(np.asarray(whiten(x, method=method)), rowvar=False), np.eye(13), atol=1e-8
        )


def test_zca_whitening_is_symmetric_and_pca_whitening_matches_scikit_learn_up_to_sign():
    with jax.enable_x64(True):
        x = load_iris().data
        state = transforms.whiten("zca").init(x)
        np.testing.assert_allclose(state.matrix, state.matrix.T, atol=1e-10)
        ours = np.asarray(whiten(x, method="pca"))[:, ::-1]  # eigh order is ascending
        theirs = PCA(whiten=True, svd_solver="covariance_eigh").fit_transform(x)
        np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-8)


@pytest.mark.parametrize("kind", ["gaussian", "sparse"])
def test_random_projection_preserves_pairwise_distances_on_real_data(kind):
    x = load_digits().data[:300].astype(np.float32)
    projected = random_projection(x, 1024, key=jax.random.key(7), kind=kind)
    ratio = pdist(np.asarray(projected)) / pdist(x)
    assert np.median(np.abs(ratio - 1)) < 0.03
    assert np.all(np.abs(ratio - 1) < 0.2)  # Johnson-Lindenstrauss with eps = 0.2


def test_random_projection_matrices_have_scikit_learn_scale():
    gaussian = random_projection_matrix(400, 200, key=jax.random.key(0))
    assert float(jnp.std(gaussian)) == pytest.approx(1 / np.sqrt(200), rel=0.02)
    sparse = np.asarray(random_projection_matrix(400, 200, key=jax.random.key(0), kind="sparse"))
    assert np.count_nonzero(sparse) / sparse.size == pytest.approx(1 / 20, rel=0.05)
    np.testing.assert_allclose(np.abs(sparse[sparse != 0]), np.sqrt(20 / 200), rtol=1e-6)


def test_same_key_same_projection_and_different_key_different_projection():
    x = np.ones((3, 10), np.float32)
    a = random_projection(x, 4, key=jax.random.key(1))
    np.testing.assert_array_equal(a, random_projection(x, 4, key=jax.random.key(1)))
    assert not np.array_equal(a, random_projection(x, 4, key=jax.random.key(2)))


BAD_INPUT = [  # (call, error, the message: owner, argument, what was expected)
    (lambda: covariance(np.ones(5)), ShapeError, "covariance: `x` must be 2-D, got shape (5,)"),
    (lambda: covariance(np.ones((0, 3))), EmptyInputError, "covariance: `x` must hold at least one value"),
    (lambda: covariance(np.ones((1, 3))), ConfigError, "covariance: `ddof` must be an int in [0, 0] (n - ddof must be > 0, n=1), got 1"),
    (lambda: covariance(np.ones((4, 3)), ddof=-1), ConfigError, "covariance: `ddof` must be an int in [0, 3]"),
    (lambda: covariance(np.array([["a"]])), InvalidTypeError, "covariance: `x` must be an array of real numbers"),
    (lambda: covariance(np.ones((3, 3), bool)), InvalidTypeError, "`x` must be an array of real numbers (float or int), got dtype bool"),
    (lambda: correlation(np.ones((1, 3))), ConfigError, "correlation: `x` must have at least 2 rows"),
    (lambda: svd_patterns(np.ones(3)), ConfigError, "svd_patterns: `x` must be a matrix, at least 2-D"),
    (lambda: pca(np.ones((5, 3)), 4), ConfigError, "pca: `n_components` must be an int in [1, 3] (the number of columns), got 4"),
    (lambda: pca(np.ones((5, 3)), 0), ConfigError, "pca: `n_components` must be an int in [1, 3]"),
    (lambda: pca(np.ones((1, 3)), 1), ConfigError, "pca: `x` must have at least 2 rows to estimate a covariance"),
    (lambda: transforms.pca().apply(transforms.pca().init(np.eye(3)), np.ones((2, 4))), ConfigError, "transforms.pca: `x` must have the 3 columns the PCA was fitted on"),
    (lambda: whiten(np.eye(3), method="cholesky"), ConfigError, "whiten: `method` must be one of 'zca', 'pca', got 'cholesky'"),
    (lambda: random_projection(np.eye(3), 0, key=jax.random.key(0)), ConfigError, "`n_components` must be an int >= 1, got 0"),
    (lambda: random_projection(np.eye(3), 2, key=jax.random.key(0), kind="x"), ConfigError, "`kind` must be one of 'gaussian', 'sparse', got 'x'"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUT)
def test_bad_input_raises_a_typed_error_naming_the_argument(call, error, match):
    with pytest.raises(error, match=re.escape(match)):
        call()


def test_operations_compose_under_an_outer_jit(rng):
    x = rng.normal(size=(50, 4)).astype(np.float32)

    @jax.jit
    def pipeline(x):
        projection, _ = pca(x, 2)
        return svd_patterns(covariance(projection))["rank"]

    assert int(pipeline(x)) == 2
