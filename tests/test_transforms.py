"""Transforms compose like optax's: init/apply pairs, chain, >>, identity; fit once, apply anywhere."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from sklearn.datasets import load_diabetes
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from liam_core import ConfigError
from liam_core.algebra import (
    Transform,
    chain,
    identity,
    pca,
    random_hyperplanes,
    random_projection_matrix,
    rolling_mean,
    sign_hash,
    standardize,
    stateless,
    transforms,
    whiten,
)
from liam_core.testing import CompileCounter

DATA = load_diabetes().data.astype(np.float32)
REFERENCE, NEW = DATA[:300], DATA[300:]


def _run(transform: Transform, reference, new):
    return transform.apply(transform.init(reference), new)


def test_a_fitted_pipeline_applies_the_reference_state_to_new_data_like_scikit_learn():
    pipeline = transforms.standardize() >> transforms.pca(n_components=3)
    scaler = StandardScaler().fit(REFERENCE)
    reference_pca = PCA(3, svd_solver="covariance_eigh").fit(scaler.transform(REFERENCE))
    expected = reference_pca.transform(scaler.transform(NEW))
    np.testing.assert_allclose(_run(pipeline, REFERENCE, NEW), expected, atol=2e-4)


def test_rshift_is_chain_and_chain_is_associative():
    a, b, c = transforms.standardize(), transforms.rolling_mean(4), transforms.whiten()
    expected = _run(chain(a, b, c), REFERENCE, NEW)
    for composed in (a >> b >> c, a >> (b >> c), chain(chain(a, b), c)):
        np.testing.assert_allclose(_run(composed, REFERENCE, NEW), expected, rtol=1e-5, atol=1e-5)


def test_identity_is_neutral_on_both_sides():
    t = transforms.standardize() >> transforms.rolling_mean(8)
    expected = _run(t, REFERENCE, NEW)
    for composed in (identity() >> t, t >> identity(), chain(t), chain(identity(), t)):
        np.testing.assert_array_equal(_run(composed, REFERENCE, NEW), expected)
    np.testing.assert_array_equal(_run(chain(), REFERENCE, NEW), NEW)


def test_stateless_transforms_equal_their_functions():
    np.testing.assert_array_equal(
        _run(transforms.rolling_mean(5), REFERENCE, NEW), rolling_mean(NEW, 5)
    )
    doubled = stateless(lambda x: 2 * x)
    np.testing.assert_array_equal(_run(doubled, REFERENCE, NEW), 2 * NEW)


def test_standardize_transform_is_the_standardize_function_fitted_once():
    scaler = transforms.standardize()
    state = scaler.init(REFERENCE)
    # On its reference window: the function's result (one implementation; the two compile
    # as two programs or one, so they may differ in the last bit).
    np.testing.assert_allclose(
        scaler.apply(state, REFERENCE), standardize(REFERENCE), rtol=1e-6, atol=1e-6
    )
    # On new data: the reference's mean and scale, as a fitted StandardScaler.
    expected = StandardScaler().fit(REFERENCE.astype(np.float64)).transform(NEW)
    np.testing.assert_allclose(scaler.apply(state, NEW), expected, rtol=1e-5, atol=1e-5)


def test_standardize_transform_keeps_scale_one_for_a_constant_reference_column():
    reference = REFERENCE.copy()
    reference[:, 2] = 0.25
    scaler = transforms.standardize()
    state = scaler.init(reference)
    assert np.all(np.asarray(scaler.apply(state, reference))[:, 2] == 0)
    expected = StandardScaler().fit(reference.astype(np.float64)).transform(NEW)
    np.testing.assert_allclose(scaler.apply(state, NEW), expected, rtol=1e-5, atol=1e-5)


def test_pca_and_whiten_transforms_are_the_functions_fitted_once():
    projection, fitted = pca(REFERENCE, 3, whiten=True)
    projector = transforms.pca(3, whiten=True)
    state = projector.init(REFERENCE)
    for field, value in fitted._asdict().items():
        np.testing.assert_array_equal(getattr(state, field), value)
    np.testing.assert_array_equal(projector.apply(state, REFERENCE), projection)
    whitener = transforms.whiten("pca")
    np.testing.assert_array_equal(
        _run(whitener, REFERENCE, REFERENCE), whiten(REFERENCE, method="pca")
    )


def test_sign_hash_transform_reuses_the_hyperplanes_drawn_by_init():
    hasher = transforms.sign_hash(64, key=jax.random.key(0))
    planes = hasher.init(REFERENCE)
    # The state is the hyperplanes of the key, whatever window init saw.
    np.testing.assert_array_equal(planes, random_hyperplanes(10, 64, key=jax.random.key(0)))
    np.testing.assert_array_equal(hasher.init(NEW), planes)
    codes = hasher.apply(planes, NEW)
    assert codes.shape == (NEW.shape[0], 2) and codes.dtype == jnp.uint32
    # apply hashes with exactly those hyperplanes, not freshly drawn ones.
    np.testing.assert_array_equal(codes, sign_hash(NEW, planes))
    other = random_hyperplanes(10, 64, key=jax.random.key(1))
    assert not np.array_equal(codes, sign_hash(NEW, other))
    assert not np.array_equal(hasher.apply(other, NEW), codes)


def test_random_projection_transform_reuses_the_matrix_drawn_by_init():
    projector = transforms.random_projection(5, key=jax.random.key(1), kind="sparse")
    matrix = projector.init(REFERENCE)
    expected = random_projection_matrix(10, 5, key=jax.random.key(1), kind="sparse")
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_allclose(projector.apply(matrix, NEW), NEW @ np.asarray(matrix).T, rtol=1e-5)


def scipy_power(x, **settings):
    return scipy.signal.periodogram(np.asarray(x, np.float64), axis=0, **settings)[1]


@pytest.mark.parametrize(
    "settings", [{}, {"fs": 4.0, "window": "hann", "scaling": "spectrum", "detrend": "linear"}]
)
def test_periodogram_transform_gives_the_scipy_power_of_every_column(settings):
    detrended = scipy.signal.detrend(NEW.astype(np.float64), axis=0, type="constant")
    power = _run(transforms.detrend("constant") >> transforms.periodogram(**settings), NEW, NEW)
    expected = scipy_power(detrended, **settings)
    assert power.shape == expected.shape == (NEW.shape[0] // 2 + 1, NEW.shape[1])
    np.testing.assert_allclose(power, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


def test_a_chained_apply_is_one_xla_program():
    pipeline = transforms.standardize() >> transforms.rolling_mean(8) >> transforms.pca(2)
    state = pipeline.init(REFERENCE)
    new = jnp.asarray(NEW)
    with CompileCounter() as first_call:
        jax.block_until_ready(pipeline.apply(state, new))
    assert first_call.count == 1


def test_a_chained_pipeline_can_be_jitted_and_differentiated_as_a_whole():
    pipeline = transforms.standardize() >> transforms.pca(2)
    state = pipeline.init(REFERENCE)

    def energy(x):  # a scalar function of the pipeline's output
        return jnp.sum(pipeline.apply(state, x) ** 2)

    value, gradient = jax.jit(jax.value_and_grad(energy))(jnp.asarray(NEW))
    # Oracle: the same fitted pipeline in scikit-learn, float64. The projection is linear,
    # p = ((x - mean) / scale - pca_mean) @ components.T, so d(sum p^2)/dx = 2 p components / scale.
    scaler = StandardScaler().fit(REFERENCE.astype(np.float64))
    reference_pca = PCA(2, svd_solver="covariance_eigh").fit(scaler.transform(REFERENCE))
    projection = reference_pca.transform(scaler.transform(NEW.astype(np.float64)))
    expected_gradient = 2 * projection @ reference_pca.components_ / scaler.scale_
    np.testing.assert_allclose(value, np.sum(projection**2), rtol=1e-5)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(jax.jit(pipeline.apply)(state, NEW), projection, atol=2e-4)


def test_chain_refuses_what_is_not_a_transform():
    with pytest.raises(ConfigError, match="chain: argument 1 must be a Transform"):
        chain(identity(), lambda x: x)
    with pytest.raises(ConfigError, match="stateless: `fn` must be callable, got int: 3"):
        stateless(3)
    assert identity().__rshift__(3) is NotImplemented


def test_apply_with_the_wrong_state_says_what_init_returned():
    pipeline = transforms.standardize() >> transforms.rolling_mean(2)
    with pytest.raises(ConfigError, match="`states` must be the tuple of 2 states"):
        pipeline.apply((), NEW)


def test_factories_refuse_unknown_settings_when_built():
    with pytest.raises(ConfigError, match=r"transforms\.detrend: `type` must be one of"):
        transforms.detrend("quadratic")
    with pytest.raises(ConfigError, match=r"transforms\.whiten: `method` must be one of"):
        transforms.whiten("cholesky")
