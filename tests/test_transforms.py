"""Transforms compose like optax's: init/apply pairs, chain, >>, identity; fit once, apply anywhere."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from liam_core import CompileCounter, ConfigError
from liam_core.algebra import (
    Transform,
    chain,
    hamming,
    identity,
    rolling_mean,
    stateless,
    transforms,
)

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


def test_sign_hash_and_random_projection_keep_their_random_state_from_init():
    hasher = transforms.sign_hash(64, key=jax.random.key(0))
    state = hasher.init(REFERENCE)
    codes = hasher.apply(state, NEW)
    assert codes.shape == (NEW.shape[0], 2) and codes.dtype == jnp.uint32
    assert int(hamming(codes, hasher.apply(state, NEW)).diagonal().max()) == 0
    projector = transforms.random_projection(5, key=jax.random.key(1))
    assert _run(projector, REFERENCE, NEW).shape == (NEW.shape[0], 5)


def test_periodogram_transform_gives_the_power_of_every_column():
    power = _run(transforms.detrend("constant") >> transforms.periodogram(), NEW, NEW)
    assert power.shape == (NEW.shape[0] // 2 + 1, NEW.shape[1])


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
    gradient = jax.grad(lambda x: jnp.sum(pipeline.apply(state, x) ** 2))(jnp.asarray(NEW))
    assert gradient.shape == NEW.shape and bool(jnp.all(jnp.isfinite(gradient)))


def test_chain_refuses_what_is_not_a_transform():
    with pytest.raises(ConfigError, match="argument 1"):
        chain(identity(), lambda x: x)
    with pytest.raises(ConfigError, match="callable"):
        stateless(3)
    assert identity().__rshift__(3) is NotImplemented


def test_apply_with_the_wrong_state_says_what_init_returned():
    pipeline = transforms.standardize() >> transforms.rolling_mean(2)
    with pytest.raises(ConfigError, match="tuple of 2 states"):
        pipeline.apply((), NEW)
