"""Matrix algebra and patterns follow numpy and scikit-learn, on random and real data."""

from __future__ import annotations

import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import statsmodels.api as sm
from scipy.spatial.distance import pdist
from sklearn.datasets import load_diabetes, load_digits, load_iris, load_wine
from sklearn.decomposition import PCA

from liam_core import (
    ConfigError,
    ConfigTypeError,
    EmptyInputError,
    InvalidTypeError,
    InvalidValueError,
    LiamError,
    ShapeError,
)
from liam_core.algebra import (
    _tall,
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
from liam_core.testing import CompileCounter


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
def test_rank_deficient_matrices_have_numpy_rank_and_a_condition_number_past_one_over_eps(
    matrix, rank
):
    # numpy's cond of a singular matrix is inf, or a huge finite number where rounding keeps
    # the smallest singular value above 0: both exceed 1 / eps (see _assert_singular).
    x = matrix.astype(np.float32)
    assert int(matrix_rank(x)) == np.linalg.matrix_rank(matrix) == rank
    if rank < min(matrix.shape):
        _assert_singular(cond(x), np.linalg.cond(x), np.float32)
    else:
        assert float(cond(x)) == pytest.approx(np.linalg.cond(matrix), rel=1e-5)


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


# ---------------------------------------------------------------------------------------
# Tall inputs (at least _tall.HOST_MIN_ROWS rows): on CPU the products run through numpy's BLAS
# ---------------------------------------------------------------------------------------


def _tall_digits(dtype) -> np.ndarray:
    """scikit-learn's digits repeated to 131,181 x 64 rows, far from zero (mean 1e3, spread
    5): a tall input, where centring before the products matters in float32."""
    x = np.tile(load_digits().data, (73, 1)) + 1e3
    assert x.shape[0] * x.shape[1] >= _tall.PRODUCT_MIN_ELEMENTS  # both products on the host
    return x.astype(dtype)


def test_tall_covariance_pca_and_whitening_match_numpy_and_scikit_learn(dtype):
    x = _tall_digits(dtype)
    reference = np.cov(x.astype(np.float64), rowvar=False)
    result = covariance(x)
    assert result.dtype == dtype
    np.testing.assert_allclose(result, reference, rtol=RTOL[dtype], atol=RTOL[dtype] * 30)
    model = PCA(5, svd_solver="covariance_eigh").fit(x.astype(np.float64))
    projection, state = pca(x, 5)
    assert projection.dtype == dtype
    scale = np.abs(model.transform(x)).max()
    np.testing.assert_allclose(projection, model.transform(x), atol=RTOL[dtype] * scale)
    np.testing.assert_allclose(
        state.explained_variance, model.explained_variance_, rtol=RTOL[dtype]
    )
    # the pixels that vary most (digits also has constant ones, which whitening leaves at 0)
    varying = x[:, np.std(x, axis=0) > 4]
    whitened = np.asarray(whiten(varying, method="zca"), np.float64)
    np.testing.assert_allclose(
        np.cov(whitened, rowvar=False), np.eye(varying.shape[1]), atol=RTOL[dtype] * 20
    )


def test_tall_products_run_through_numpy_on_cpu_from_their_measured_bounds_on():
    def callbacks(rows: int, columns: int = 64, fn=lambda x: (covariance(x), pca(x, 2)[0])) -> int:
        x = jax.ShapeDtypeStruct((rows, columns), jnp.float32)
        return jax.jit(fn).lower(x).as_text().count("python_cpu_callback")

    gram_rows = _tall.GRAM_MIN_WORK // 64**2
    product_rows = _tall.PRODUCT_MIN_ELEMENTS // 64
    assert callbacks(product_rows) == 3  # the covariance's Gram matrix, the PCA's, its projection
    assert callbacks(gram_rows) == 2  # the Gram matrices only
    assert callbacks(gram_rows - 1) == 0
    assert callbacks(product_rows, _tall.GRAM_MAX_COLUMNS + 1) == 1  # wide: the projection only
    # whitening projects onto all 64 axes, where XLA's dot was the faster: its Gram matrix only
    assert callbacks(product_rows, fn=whiten) == 1
    assert callbacks(product_rows, fn=lambda x: pca(x, _tall.PRODUCT_MAX_OUTPUTS + 1)[0]) == 1


def test_the_bits_of_tall_products_do_not_depend_on_the_number_of_threads(rng):
    x = (rng.normal(size=(50_001, 24)) * 3 + 7).astype(np.float32)  # a ragged last chunk
    mean = x.mean(axis=0)
    matrix = rng.normal(size=(24, 5)).astype(np.float32)
    gram = _tall.numpy_centered_gram(x, mean, workers=1)
    product = _tall.numpy_centered_product(x, mean, matrix, workers=1)
    for workers in (2, 3, 7):
        assert _tall.numpy_centered_gram(x, mean, workers=workers).tobytes() == gram.tobytes()
        assert (
            _tall.numpy_centered_product(x, mean, matrix, workers=workers).tobytes()
            == product.tobytes()
        )
    jitted = jax.jit(_tall._host_gram)(x, mean)  # the callback, with the pool's threads
    assert np.asarray(jitted).tobytes() == gram.tobytes()
    centered = (x - mean).astype(np.float64)
    reference = centered.T @ centered
    np.testing.assert_allclose(gram, reference, atol=1e-6 * np.abs(reference).max())


def test_tall_products_batch_under_vmap_and_differentiate_like_xlas(rng, monkeypatch):
    monkeypatch.setattr(_tall, "GRAM_MIN_WORK", 0)  # small inputs through the host path
    monkeypatch.setattr(_tall, "PRODUCT_MIN_ELEMENTS", 0)
    x = rng.normal(size=(2, 500, 3)).astype(np.float32)
    batched = jax.vmap(covariance)(x)
    for i in range(2):
        np.testing.assert_allclose(batched[i], np.cov(x[i], rowvar=False), rtol=1e-5, atol=1e-6)

    def energy(x, product):
        mean = x.mean(axis=0)
        gram = product(x, mean)
        return jnp.sum(gram**2) + jnp.sum(_tall.centered_product(x, mean, gram[:, :2]) ** 2)

    def xla_gram(x, mean):
        return (x - mean).T @ (x - mean)

    lowered = jax.jit(jax.grad(energy), static_argnums=1).lower(x[0], _tall.centered_gram)
    assert lowered.as_text().count("python_cpu_callback") == 2  # the primal's two products
    got = jax.grad(energy)(jnp.asarray(x[0]), _tall.centered_gram)
    want = jax.grad(energy)(jnp.asarray(x[0]), xla_gram)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.abs(want).max()))


# ---------------------------------------------------------------------------------------
# matrix_rank and cond: drop-ins for np.linalg.matrix_rank and np.linalg.cond
# ---------------------------------------------------------------------------------------

NORM_ORDERS = [None, "fro", "nuc", np.inf, -np.inf, 1, -1, 2, -2]
SVD_ORDERS = [None, 2, -2]  # the orders numpy computes from the SVD, on any (..., m, n)
MATRIX_SHAPES = [(4, 4), (7, 3), (3, 7), (3, 4, 4), (2, 3, 5, 5)]
STACK = (2, 3, 5, 5)  # shared by several tests: the compiled programs are reused
EMPTY_SHAPES = [(0, 0), (0, 3), (3, 0), (2, 0, 0), (3, 0, 4), (0, 4, 4)]
X64 = {np.float64, np.int64, np.complex128}  # computed in float64: run under x64
# Relative tolerance against numpy for matrices of condition number <= 10 (see
# _conditioned), at most 5 x 5: perturbation theory bounds the error of the smallest
# singular value and of the inverse by about n * eps * cond, 6e-6 in float32 and 1e-14
# in float64; the tolerances leave a margin of 15 and of 100.
COND_RTOL = {32: 1e-4, 64: 1e-12}


def _bits(dtype) -> int:
    """The precision ``dtype`` is computed in (ints: the default float, float64 under x64)."""
    return 64 if dtype in X64 else 32


def _conditioned(rng, shape, dtype, *, deficient=False):
    """Matrices ``u @ diag(s) @ vh`` with random unitary ``u``, ``vh`` and ``s`` in [1, 10].

    Their condition number is known and moderate, so numpy and liam-core agree to rounding.
    ``deficient``: every other matrix of the stack gets a last column (a last row, if wide)
    equal to its first: an exact linear dependency. Ints are ``rint(4 * x)``, still well
    conditioned.
    """
    *stack, m, n = shape
    k = min(m, n)
    is_complex = np.issubdtype(dtype, np.complexfloating)

    def gaussian(*size):
        g = rng.normal(size=size)
        return g + 1j * rng.normal(size=size) if is_complex else g

    u = np.linalg.qr(gaussian(*stack, m, k))[0]
    v = np.linalg.qr(gaussian(*stack, n, k))[0]
    s = rng.uniform(1, 10, size=(*stack, k))
    x = (u * s[..., None, :]) @ np.swapaxes(v.conj(), -1, -2)
    if np.issubdtype(dtype, np.integer):
        x = np.rint(4 * x)
    x = x.astype(dtype)
    if deficient and m >= n:
        x.reshape(-1, m, n)[::2, :, -1] = x.reshape(-1, m, n)[::2, :, 0]
    elif deficient:  # wide: the rank is that of the rows
        x.reshape(-1, m, n)[::2, -1] = x.reshape(-1, m, n)[::2, 0]
    return x


def _x64(dtype):
    return jax.enable_x64(dtype in X64)


def _assert_singular(ours, theirs, dtype) -> None:
    """numpy's cond of a singular matrix is inf, or a huge number made of rounding (its
    smallest singular value is eps-sized noise): both must exceed 1 / eps of the dtype."""
    limit = 1 / np.finfo(dtype).eps
    for value in (np.asarray(ours, np.float64), np.asarray(theirs, np.float64)):
        assert np.all(value >= limit), value


def test_matrix_rank_and_cond_have_numpys_signatures():
    for ours, theirs in ((matrix_rank, np.linalg.matrix_rank), (cond, np.linalg.cond)):
        ours, theirs = inspect.signature(ours), inspect.signature(theirs)
        assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
            (p.name, p.kind, p.default) for p in theirs.parameters.values()
        ]


@pytest.mark.parametrize("deficient", [False, True], ids=["full-rank", "rank-deficient"])
@pytest.mark.parametrize("shape", MATRIX_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_matrix_rank_matches_numpy_on_matrices_and_stacks(rng, dtype, shape, deficient):
    x = _conditioned(rng, shape, dtype, deficient=deficient)
    with _x64(dtype):
        rank = matrix_rank(x)
        assert rank.dtype == jnp.result_type(int)  # int64 under x64, as numpy's
        assert rank.shape == shape[:-2]
        np.testing.assert_array_equal(rank, np.linalg.matrix_rank(x))
    if deficient:
        assert np.asarray(rank).min() == min(shape[-2:]) - 1


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.complex64, np.complex128], ids=str)
def test_matrix_rank_matches_numpy_on_int_and_complex_input(rng, dtype):
    x = _conditioned(rng, STACK, dtype, deficient=True)
    with _x64(dtype):  # ints: in the default float, float32 without x64
        np.testing.assert_array_equal(matrix_rank(x), np.linalg.matrix_rank(x))


@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
def test_empty_matrices_have_rank_0_and_no_condition_number_as_in_numpy(shape):
    x = np.ones(shape, np.float32)
    rank = matrix_rank(x)
    np.testing.assert_array_equal(rank, np.linalg.matrix_rank(x))
    assert rank.shape == np.shape(np.linalg.matrix_rank(x))
    if shape[-2] * shape[-1] == 0:
        with pytest.raises(np.linalg.LinAlgError):
            np.linalg.cond(x)
        with pytest.raises(EmptyInputError, match=re.escape(f"got shape {shape}")) as error:
            cond(x)
        assert isinstance(error.value, np.linalg.LinAlgError)
    else:  # a stack of no matrices: an empty result, as numpy's
        for p in (None, 1):
            result = cond(x, p)
            assert result.shape == np.linalg.cond(x, p).shape == (0,)
            assert result.dtype == np.float32


@pytest.mark.parametrize(
    "vector",
    [np.ones(3), np.zeros(3), np.array(0.0), np.array(-2.5), np.zeros(0),
     np.array([0.0, np.nan]), np.array([0, 1j]), np.array([False, True]), np.array([0, 0])],
    ids=["ones", "zeros", "scalar-0", "scalar", "empty", "nan", "complex", "bool", "int-zeros"],
)  # fmt: skip
def test_rank_of_a_vector_or_scalar_is_whether_any_entry_is_nonzero(vector):
    rank = matrix_rank(vector)
    assert rank.shape == ()
    assert int(rank) == np.linalg.matrix_rank(vector) == int(not np.all(vector == 0))


def test_nested_lists_and_tuples_are_matrices_and_tolerances_as_in_numpy():
    matrix, tol = ((1.0, 2.0), (2.0, 4.0)), (0.5, 1e-6)  # jit sees tuples as pytrees
    np.testing.assert_array_equal(matrix_rank(matrix, tol), np.linalg.matrix_rank(matrix, tol))
    np.testing.assert_array_equal(matrix_rank([list(row) for row in matrix]), 1)
    assert float(cond(((2.0, 0.0), (0.0, 1.0)), 1)) == np.linalg.cond(((2.0, 0.0), (0.0, 1.0)), 1)


def test_tol_plays_no_part_in_the_rank_of_a_vector_as_in_numpy():
    vector = np.array([0.0, 1e-3])
    assert int(matrix_rank(vector, tol=1.0)) == np.linalg.matrix_rank(vector, tol=1.0) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.complex64], ids=str)
def test_hermitian_rank_matches_numpy_from_the_lower_triangle(rng, dtype):
    with _x64(dtype):
        factor = _conditioned(rng, (*STACK[:-1], 3), dtype)  # [2, 3, 5, 3]: rank 3 of 5
        hermitian = factor @ np.swapaxes(factor.conj(), -1, -2)
        # numpy's eigvalsh reads the lower triangle only: garbage above it changes nothing.
        garbage = hermitian + np.triu(np.full((5, 5), 7.0), 1).astype(dtype)
        for x in (hermitian, garbage):
            expected = np.linalg.matrix_rank(x, hermitian=True)
            np.testing.assert_array_equal(matrix_rank(x, hermitian=True), expected)
            np.testing.assert_array_equal(expected, 3)
        np.testing.assert_array_equal(
            matrix_rank(hermitian, rtol=1e-3, hermitian=True),
            np.linalg.matrix_rank(hermitian, rtol=1e-3, hermitian=True),
        )


def _graded_stack() -> np.ndarray:
    """Three 4 x 4 matrices with singular values 10, 1, 1e-2, 1e-4, rotated."""
    q = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 4, 4)))[0]
    return ((q * np.array([10.0, 1.0, 1e-2, 1e-4])) @ np.swapaxes(q, -1, -2)).astype(np.float32)


TOLERANCES = {  # values on both sides of the singular values 10, 1, 1e-2, 1e-4
    "scalar": 5e-3,
    "negative": -1.0,  # every singular value is above it, as in numpy
    "nan": np.nan,  # no singular value is above it, as in numpy
    "per-matrix": np.array([0.5, 5e-3, 5e-5]),
    "broadcast-to-(2, 3)": np.array([[2.0], [5e-5]]),
}


@pytest.mark.parametrize("keyword", ["tol", "rtol"])
@pytest.mark.parametrize("name", list(TOLERANCES))
def test_tol_and_rtol_are_scalars_or_arrays_broadcast_over_the_stack_as_in_numpy(name, keyword):
    x = _graded_stack()
    value = TOLERANCES[name] / (10 if keyword == "rtol" else 1)  # rtol is relative to s[0]
    expected = np.linalg.matrix_rank(x, **{keyword: value})
    rank = matrix_rank(x, **{keyword: value})
    assert rank.shape == expected.shape
    np.testing.assert_array_equal(rank, expected)


@pytest.mark.parametrize("p", NORM_ORDERS, ids=str)
def test_cond_matches_numpy_for_every_p(rng, p):
    with jax.enable_x64(True):
        x = _conditioned(rng, STACK, np.float64)
        result = cond(x, p)
        assert result.dtype == np.float64 and result.shape == STACK[:-2]
        np.testing.assert_allclose(result, np.linalg.cond(x, p), rtol=COND_RTOL[64])


@pytest.mark.parametrize("p", [None, 1], ids=["svd", "norm"])
@pytest.mark.parametrize(
    "dtype", [np.float32, np.int32, np.int64, np.complex64, np.complex128], ids=str
)
def test_cond_matches_numpy_on_every_dtype(rng, dtype, p):
    x = _conditioned(rng, (3, 4, 4), dtype)
    with _x64(dtype):
        result = cond(x, p)
        assert result.dtype == (np.float64 if _bits(dtype) == 64 else np.float32)  # real
        np.testing.assert_allclose(result, np.linalg.cond(x, p), rtol=COND_RTOL[_bits(dtype)])


@pytest.mark.parametrize(
    ("shape", "p"), [((4, 4), None), ((7, 3), None), ((3, 7), None), ((7, 3), -2), ((3, 7), 2)]
)
def test_cond_from_the_svd_takes_tall_wide_and_square_matrices(rng, shape, p):
    with jax.enable_x64(True):
        x = _conditioned(rng, shape, np.float64)
        np.testing.assert_allclose(cond(x, p), np.linalg.cond(x, p), rtol=COND_RTOL[64])


def _singular_stack() -> np.ndarray:
    """Singular 5 x 5 matrices, in the shape of ``STACK``."""
    dependent = np.arange(25.0).reshape(5, 5)  # rank 2
    return np.stack([
        [np.zeros((5, 5)), np.ones((5, 5)), dependent],  # zeros: every singular value is 0
        [np.diag([1.0, 1, 1, 1, 0]), dependent.T, np.triu(np.ones((5, 5)), 1)],
    ])  # fmt: skip


@pytest.mark.parametrize("p", NORM_ORDERS, ids=str)
def test_cond_of_singular_matrices_is_inf_or_past_one_over_eps_as_in_numpy(p):
    with jax.enable_x64(True):
        x = _singular_stack()
        result = np.asarray(cond(x, p)).ravel()
        if p == "nuc":  # numpy's SVD of the failed inverse does not converge: see below
            expected = np.full(6, np.inf)
        else:
            expected = np.linalg.cond(x, p).ravel()
        if p == -2:  # s.min() / s.max(): the reciprocal of a huge number, or 0 / 0 -> inf
            assert result[0] == expected[0] == np.inf
            with np.errstate(divide="ignore"):
                result, expected = 1 / result[1:], 1 / expected[1:]
        _assert_singular(result, expected, np.float64)
        if p not in SVD_ORDERS:  # the inverse fails: inf, as numpy
            np.testing.assert_array_equal(result, np.inf)


def test_cond_nuc_of_a_singular_matrix_is_inf_where_numpys_svd_fails_to_converge():
    x = np.ones((4, 4))
    with pytest.raises(np.linalg.LinAlgError, match="SVD did not converge"):
        np.linalg.cond(x, "nuc")
    assert float(cond(x, "nuc")) == np.inf


def _nan_stack() -> np.ndarray:
    return np.stack([np.eye(2), np.ones((2, 2)), np.zeros((2, 2)), [[np.nan, 1.0], [1, 1]]])


def test_a_nan_raises_numpys_linalg_error_where_numpy_does_and_is_nan_otherwise():
    stack = _nan_stack()
    with pytest.raises(InvalidValueError, match=re.escape("`A` must not hold NaN")) as error:
        matrix_rank(stack)
    assert isinstance(error.value, np.linalg.LinAlgError)
    assert "index (3, 0, 0)" in str(error.value)
    for p in SVD_ORDERS:
        with pytest.raises(np.linalg.LinAlgError):
            np.linalg.cond(stack, p)
        with pytest.raises(InvalidValueError, match=re.escape("cond: `x` must not hold NaN")):
            cond(stack, p)
    for p in (1, "fro"):  # numpy: NaN for the matrix with a NaN, inf for singular ones
        expected = np.linalg.cond(stack, p)
        np.testing.assert_allclose(cond(stack, p), expected, rtol=COND_RTOL[32])
        np.testing.assert_array_equal(np.isnan(expected), [False, False, False, True])
        np.testing.assert_array_equal(np.isinf(expected), [False, True, True, False])


def test_a_nan_inside_an_outer_jit_gives_rank_0_and_cond_nan():
    stack = _nan_stack()
    ranks, conditions = jax.jit(lambda x: (matrix_rank(x), cond(x)))(stack)
    np.testing.assert_array_equal(ranks, [2, 1, 0, 0])
    np.testing.assert_array_equal(np.isnan(conditions), [False, False, False, True])


def test_an_infinite_entry_gives_rank_0_and_cond_inf_as_in_numpy():
    x = _nan_stack()
    x[3, 0, 0] = np.inf
    np.testing.assert_array_equal(matrix_rank(x), np.linalg.matrix_rank(x))
    np.testing.assert_array_equal(matrix_rank(x), [2, 1, 0, 0])
    for p in (None, 2, -2, "fro", 1):  # the identity, then the matrix with an inf
        expected = np.linalg.cond(x, p)
        result = np.asarray(cond(x, p))
        np.testing.assert_allclose(result[[0, 3]], expected[[0, 3]], rtol=COND_RTOL[32])
        assert np.isinf(expected[3])


def test_matrix_rank_and_cond_match_numpy_on_diabetes_data_its_covariance_and_blocks():
    with jax.enable_x64(True):
        data = load_diabetes().data  # [442, 10]
        blocks = data[:440].reshape(4, 110, 10)
        covariances = np.stack(
            [np.cov(data, rowvar=False)] + [np.cov(b, rowvar=False) for b in blocks[:3]]
        )
        for x in (data, blocks):
            np.testing.assert_array_equal(matrix_rank(x), np.linalg.matrix_rank(x))
            np.testing.assert_allclose(cond(x), np.linalg.cond(x), rtol=1e-12)
        for hermitian in (False, True):
            np.testing.assert_array_equal(
                matrix_rank(covariances, hermitian=hermitian),
                np.linalg.matrix_rank(covariances, hermitian=hermitian),
            )
        # The covariances have condition numbers up to about 1e3, so the error bound
        # n * eps * cond is about 2e-12: 1e-11 relative.
        assert np.linalg.cond(covariances).max() < 2e3
        for p in (None, 1, "nuc"):
            expected = np.linalg.cond(covariances, p)
            np.testing.assert_allclose(cond(covariances, p), expected, rtol=1e-11)


def test_new_values_of_x_and_tol_at_the_same_shapes_do_not_compile_again(rng):
    x = rng.normal(size=(3, 4, 4)).astype(np.float32)
    per_matrix = np.array([0.1, 1.0, 10.0], np.float32)
    calls = [
        lambda x, t: matrix_rank(x, tol=t),
        lambda x, t: matrix_rank(x, rtol=t),
        lambda x, t: matrix_rank(x, tol=per_matrix * t),
        lambda x, t: cond(x + t, 1),
    ]
    for call in calls:
        jax.block_until_ready(call(x, 0.5))
        with CompileCounter() as again:
            jax.block_until_ready(call(2 * x + 1, 0.125))
            jax.block_until_ready(call(x[::-1].copy(), 3.0))
        assert again.count == 0


def test_matrix_rank_and_cond_compose_under_jit_and_vmap(rng):
    x = _conditioned(rng, (3, 4, 4), np.float32, deficient=True)

    @jax.jit
    def both(x, tol):
        return matrix_rank(x, tol=tol), jax.vmap(lambda m: cond(m, 1))(x)

    rank, condition = both(x, 1e-3)
    np.testing.assert_array_equal(rank, np.linalg.matrix_rank(x, tol=1e-3))
    _assert_singular(condition[::2], np.linalg.cond(x[::2], 1), np.float32)
    np.testing.assert_allclose(condition[1], np.linalg.cond(x[1], 1), rtol=COND_RTOL[32])


LINALG_BAD_INPUT = [  # (call, error, the message; all numpy errors are ValueError or TypeError)
    (lambda: matrix_rank(np.eye(2), tol=1.0, rtol=1.0), ConfigError, "matrix_rank: `tol` and `rtol` must not both be set"),
    (lambda: matrix_rank(np.eye(2), hermitian="yes"), ConfigTypeError, "matrix_rank: `hermitian` must be True or False, got str: 'yes'"),
    (lambda: matrix_rank(np.ones((2, 3)), hermitian=True), ShapeError, "matrix_rank: `A` must be square [..., n, n] with hermitian=True, got shape (2, 3)"),
    (lambda: matrix_rank(np.ones((3, 2, 2)), tol=np.ones(2)), ShapeError, "matrix_rank: `tol` must be a number or an array that broadcasts against the stack shape (3,)"),
    (lambda: matrix_rank(np.eye(2), rtol="a"), InvalidTypeError, "matrix_rank: `rtol` must be a real number or an array of them (float or int), got dtype <U1"),
    (lambda: matrix_rank(np.eye(2), tol=1j), InvalidTypeError, "matrix_rank: `tol` must be a real number or an array of them (float or int), got dtype complex"),
    (lambda: matrix_rank(np.array([["a"]])), InvalidTypeError, "matrix_rank: `A` must be an array of numbers (bool, int, float or complex), got dtype <U1"),
    (lambda: matrix_rank(np.eye(2, dtype=np.float16)), InvalidTypeError, "matrix_rank: `A` must be float32, float64, complex64 or complex128"),
    (lambda: cond(np.ones(3)), ShapeError, "cond: `x` must be at least 2-D [..., m, n], got shape (3,)"),
    (lambda: cond(np.ones((2, 3)), 1), ShapeError, "cond: `x` must be square [..., n, n] for p=1 (only p=None, 2 and -2 take rectangular matrices), got shape (2, 3)"),
    (lambda: cond(np.eye(2), 3), ConfigError, "cond: `p` must be one of None, 'fro', 'nuc', inf, -inf, 1, -1, 2, -2, got 3"),
    (lambda: cond(np.eye(2), "f2"), ConfigError, "cond: `p` must be one of None, 'fro', 'nuc', inf, -inf, 1, -1, 2, -2, got 'f2'"),
    (lambda: cond(np.eye(2), [1]), ConfigTypeError, "cond: `p` must be one of None, 'fro', 'nuc', inf, -inf, 1, -1, 2, -2, got list: [1]"),
    (lambda: cond([["a", "b"]]), InvalidTypeError, "cond: `x` must be an array of numbers (bool, int, float or complex), got dtype <U1"),
    (lambda: cond([[1.0, 2.0], [3.0]]), InvalidTypeError, "cond: `x` must be an array of numbers (bool, int, float or complex), got list that numpy cannot convert"),
    (lambda: cond(np.array([[1, None]], dtype=object)), InvalidTypeError, "cond: `x` must be an array of numbers (bool, int, float or complex), got dtype object"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "match"), LINALG_BAD_INPUT)
def test_matrix_rank_and_cond_refuse_what_numpy_refuses_with_a_typed_error(call, error, match):
    with pytest.raises(error, match=re.escape(match)) as raised:
        call()
    assert isinstance(raised.value, LiamError)


def test_the_errors_numpy_raises_as_linalg_error_are_linalg_errors_too():
    calls = [
        (lambda m: m.cond(np.ones(3)), ShapeError),
        (lambda m: m.cond(np.ones((0, 3))), EmptyInputError),
        (lambda m: m.cond(np.ones((2, 3)), "fro"), ShapeError),
        (lambda m: m.matrix_rank(np.ones((2, 3)), hermitian=True), ShapeError),
        (lambda m: m.matrix_rank([[np.nan, 0.0], [0.0, 1.0]]), InvalidValueError),
        (lambda m: m.cond([[np.nan, 0.0], [0.0, 1.0]], -2), InvalidValueError),
    ]
    ours = type("ours", (), {"cond": staticmethod(cond), "matrix_rank": staticmethod(matrix_rank)})
    for call, error in calls:
        with pytest.raises(np.linalg.LinAlgError):
            call(np.linalg)
        with pytest.raises(error) as raised:
            call(ours)
        assert isinstance(raised.value, np.linalg.LinAlgError)


def test_equal_spellings_of_p_give_the_same_condition_number(rng):
    with jax.enable_x64(True):
        x = _conditioned(rng, STACK, np.float64)
        same = [(2.0, 2), (np.float64(np.inf), np.inf), ("f", "fro"), (np.int64(-1), -1)]
        for spelling, p in same:  # numpy's norm takes 'f' for 'fro'
            np.testing.assert_array_equal(cond(x, spelling), cond(x, p))
        np.testing.assert_array_equal(cond(x, 2), cond(x))
