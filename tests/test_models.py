"""Models: per-example Equinox modules, per-row losses, integrated gradients, flat weights.

Trained briefly on bundled real data (scikit-learn's breast cancer, diabetes and iris sets).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import itertools
import re
import typing

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.metrics import roc_auc_score

from liam_core import (
    ConfigError,
    ConfigTypeError,
    EmptyInputError,
    InvalidTypeError,
    InvalidValueError,
    ShapeError,
)
from liam_core.models import (
    MODELS,
    Activation,
    Autoencoder,
    MLPClassifier,
    MLPRegressor,
    ModelSkeleton,
    Quadrature,
    Standardization,
    cross_entropy_example_loss,
    cross_entropy_loss,
    integrated_gradients,
    make_model,
    model_config,
    model_from_arrays,
    model_to_arrays,
    mse_loss,
    reconstruction_example_loss,
    reconstruction_loss,
    squared_error_example_loss,
    trainable_filter,
)
from liam_core.testing import CompileCounter

# One small instance of each model, by constructor, with the output shape of one example.
SMALL = {
    "regressor": (lambda key: MLPRegressor(5, 2, width=8, key=key), (2,)),
    "classifier": (lambda key: MLPClassifier(5, 3, width=8, key=key), (3,)),
    "autoencoder": (lambda key: Autoencoder(5, latent=2, width=8, key=key), (5,)),
}


@pytest.fixture(params=list(SMALL))
def small(request, getkey):
    build, out_shape = SMALL[request.param]
    return build(getkey()), out_shape


@functools.partial(jax.jit, static_argnames="method")
def apply(model, x, method="__call__"):
    """A per-example method of a model on one example, jitted (eager calls compile op by op)."""
    return getattr(model, method)(x)


@functools.partial(jax.jit, static_argnames="method")
def rows(model, x, method="__call__"):
    """A per-example method of a model mapped over the rows of ``x``, jitted."""
    return jax.vmap(getattr(model, method))(x)


def fit(model, per_example_loss, *data, steps: int, learning_rate: float):
    """Train with optax Adam on the mean of the per-example losses; return the trained model."""
    params, static = eqx.partition(model, trainable_filter(model))
    optimizer = optax.adam(learning_rate)

    def mean_loss(params, *data):
        return jnp.mean(per_example_loss(eqx.combine(params, static), *data))

    def step(_, carry):
        params, state = carry
        grads = jax.grad(mean_loss)(params, *data)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    # optax's bias correction mixes a Python float and an int32 count, which strict promotion refuses.
    with jax.numpy_dtype_promotion("standard"):
        params, _ = jax.jit(lambda p: jax.lax.fori_loop(0, steps, step, (p, optimizer.init(p))))(
            params
        )
    return eqx.combine(params, static)


# --- convention: one example in, map over batches with vmap -----------------------------------


def test_models_map_one_example_and_vmap_over_a_batch(small, rng):
    model, out_shape = small
    x = jnp.asarray(rng.normal(size=(7, 5)).astype(np.float32))
    one = apply(model, x[3])
    assert one.shape == out_shape and one.dtype == jnp.float32
    batch = rows(model, x)
    assert batch.shape == (7, *out_shape)
    for i in (0, 3, 6):  # row i of the batch is the model of example i
        np.testing.assert_allclose(batch[i], apply(model, x[i]), rtol=1e-6, atol=1e-7)
    assert not np.allclose(batch[0], batch[6])  # and the rows do differ


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_a_batch_passed_to_a_model_raises_shape_error_naming_both_shapes(small, jit):
    model, _ = small
    call = eqx.filter_jit(model) if jit else model
    with pytest.raises(ShapeError, match=r"\(5,\).*got shape \(7, 5\).*jax\.vmap"):
        call(jnp.ones((7, 5)))


@pytest.mark.parametrize("shape", [(4,), (6,), (), (1, 1, 5)])
def test_an_input_of_the_wrong_shape_raises_shape_error(small, shape):
    model, _ = small
    with pytest.raises(ShapeError, match=re.escape(f"(5,), got shape {shape}")):
        jax.vmap(model)(jnp.ones((2, *shape)))


def test_text_and_bool_inputs_raise_invalid_type_error(small):
    model, _ = small
    with pytest.raises(InvalidTypeError, match="real numbers"):
        model(np.array(["a"] * 5))
    with pytest.raises(InvalidTypeError, match="bool"):
        model(np.ones(5, dtype=bool))


def test_integer_and_float64_inputs_are_computed_in_float32(small):
    model, _ = small
    expected = apply(model, jnp.arange(5, dtype=jnp.float32))
    np.testing.assert_array_equal(apply(model, jnp.arange(5)), expected)
    with jax.enable_x64(True):
        as_float64 = apply(model, jnp.arange(5, dtype=jnp.float64))
    assert as_float64.dtype == jnp.float32
    np.testing.assert_array_equal(as_float64, expected)


INVALID_SETTINGS = [
    (MLPRegressor, {"in_features": 0, "out_features": 1}, "in_features", ">= 1"),
    (MLPRegressor, {"in_features": 3, "out_features": 0}, "out_features", ">= 1"),
    (MLPRegressor, {"in_features": 3, "out_features": 1, "width": 0}, "width", ">= 1"),
    (MLPRegressor, {"in_features": 3, "out_features": 1, "depth": -1}, "depth", ">= 0"),
    (
        MLPRegressor,
        {"in_features": 3, "out_features": 1, "activation": "swish"},
        "activation",
        "gelu",
    ),
    (MLPClassifier, {"in_features": 3, "n_classes": 1}, "n_classes", ">= 2"),
    (MLPClassifier, {"in_features": 3, "n_classes": 2, "width": -4}, "width", ">= 1"),
    (MLPClassifier, {"in_features": 3, "n_classes": 2, "depth": -1}, "depth", ">= 0"),
    (Autoencoder, {"in_features": 0}, "in_features", ">= 1"),
    (Autoencoder, {"in_features": 4, "latent": 5}, "latent", r"\[1, 4\]"),
    (Autoencoder, {"in_features": 4, "latent": 0}, "latent", r"\[1, 4\]"),
    (Autoencoder, {"in_features": 4, "width": 0}, "width", ">= 1"),
    (Autoencoder, {"in_features": 4, "depth": -2}, "depth", ">= 0"),
]


@pytest.mark.parametrize(
    ("cls", "settings", "field", "allowed"),
    INVALID_SETTINGS,
    ids=[f"{c.__name__}-{f}-{s[f]}" for c, s, f, _ in INVALID_SETTINGS],
)
def test_invalid_settings_raise_config_error_naming_the_field_and_allowed_values(
    cls, settings, field, allowed, getkey
):
    with pytest.raises(ConfigError, match=rf"{cls.__name__}: `{field}` must .*{allowed}"):
        cls(**settings, key=getkey())


@pytest.mark.parametrize("value", [2.5, "64", True, None])
def test_a_setting_of_the_wrong_type_raises_a_config_type_error(value, getkey):
    # A ConfigTypeError is both a ConfigError and an InvalidTypeError (a TypeError).
    with pytest.raises(ConfigTypeError, match="MLPRegressor: `width` must be an int >= 1, got"):
        MLPRegressor(3, 1, width=value, key=getkey())


def test_the_activation_setting_takes_exactly_the_activation_names(getkey):
    model = MLPRegressor(1, 1, depth=1, width=1, key=getkey())
    x = jnp.array([-0.7])
    outputs = {}
    for name in typing.get_args(Activation):
        # The same weights with another activation: only the function between layers changes.
        outputs[name] = float(dataclasses.replace(model.mlp, activation=name)(x)[0])
    assert len(set(outputs.values())) == len(outputs)  # every name is a different function
    with pytest.raises(ConfigError, match=r"`activation` must be one of 'relu', 'gelu'"):
        MLPRegressor(3, 1, activation="swish", key=getkey())


@pytest.mark.parametrize("cls", list(MODELS.values()), ids=list(MODELS))
def test_key_is_keyword_only_and_settings_are_static_fields(cls):
    parameters = inspect.signature(cls).parameters
    assert parameters["key"].kind is inspect.Parameter.KEYWORD_ONLY
    static = {f.name for f in dataclasses.fields(cls) if f.metadata.get("static", False)}
    assert static == set(parameters) - {"key"}


def test_models_are_pytrees_of_float32_arrays_only(small):
    model, _ = small
    leaves = jax.tree_util.tree_leaves(model)
    assert leaves and all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    np.testing.assert_array_equal(
        jax.jit(jax.vmap(model))(jnp.ones((2, 5))), jax.vmap(model)(jnp.ones((2, 5)))
    )


def test_classifier_probabilities_sum_to_one_and_predict_is_their_argmax(getkey):
    model = MLPClassifier(4, 5, width=16, key=getkey())
    x = jax.random.normal(getkey(), (20, 4))
    proba = rows(model, x, "predict_proba")
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    predicted = rows(model, x, "predict")
    assert predicted.dtype == jnp.int32
    np.testing.assert_array_equal(predicted, jnp.argmax(proba, axis=1))
    np.testing.assert_array_equal(predicted, jnp.argmax(rows(model, x, "logits"), axis=1))


def test_depth_zero_is_a_linear_model(getkey):
    model = MLPRegressor(3, 2, depth=0, key=getkey())
    (layer,) = model.mlp.layers
    x = jnp.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(apply(model, x), layer.weight @ x + layer.bias, rtol=1e-6)


# --- losses: one value per row, never averaged -------------------------------------------------

LOSS_CASES = {
    "mse": (
        lambda key: MLPRegressor(5, 2, width=8, key=key),
        mse_loss,
        lambda rng, n: (rng.normal(size=(n, 2)).astype(np.float32),),
    ),
    "cross_entropy": (
        lambda key: MLPClassifier(5, 3, width=8, key=key),
        cross_entropy_loss,
        lambda rng, n: (rng.integers(0, 3, size=n),),
    ),
    "reconstruction": (
        lambda key: Autoencoder(5, latent=2, width=8, key=key),
        reconstruction_loss,
        lambda rng, n: (),
    ),
}
# The primitive of each batch loss: a loss of one example, which the trainer averages.
EXAMPLE_LOSSES = {
    "mse": squared_error_example_loss,
    "cross_entropy": cross_entropy_example_loss,
    "reconstruction": reconstruction_example_loss,
}


@pytest.fixture(params=list(LOSS_CASES))
def loss_case(request, getkey, rng):
    build, loss, targets = LOSS_CASES[request.param]
    x = rng.normal(size=(16, 5)).astype(np.float32)
    return build(getkey()), loss, x, targets(rng, 16)


@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_each_batch_loss_is_the_vmap_of_its_per_example_loss(name, getkey, rng):
    build, loss, targets = LOSS_CASES[name]
    model, x, y = build(getkey()), rng.normal(size=(6, 5)).astype(np.float32), targets(rng, 6)
    example_loss = EXAMPLE_LOSSES[name]
    for i in (0, 5):
        example = x[i] if not y else (x[i], y[0][i])
        single = jax.jit(example_loss)(model, example)
        assert single.shape == ()
        np.testing.assert_allclose(loss(model, x, *y)[i], single, rtol=1e-6)


def test_losses_return_one_value_per_row_each_depending_only_on_its_row(loss_case):
    model, loss, x, targets = loss_case
    losses = loss(model, x, *targets)
    assert losses.shape == (16,)
    assert losses.dtype == jnp.float32
    for i in (0, 7, 15):
        row = loss(model, x[i : i + 1], *(t[i : i + 1] for t in targets))
        np.testing.assert_allclose(losses[i], row[0], rtol=1e-6)
    assert np.all(np.asarray(losses) >= 0)


def test_losses_refuse_a_single_example_or_the_wrong_number_of_features(loss_case):
    model, loss, x, targets = loss_case
    with pytest.raises(ShapeError, match=r"\(batch, 5\).*got shape \(5,\).*x\[None, :\]"):
        loss(model, x[0], *(t[0] for t in targets))
    with pytest.raises(ShapeError, match=r"\(batch, 5\).*got shape \(16, 4\)"):
        loss(model, x[:, :4], *targets)
    with pytest.raises(EmptyInputError):
        loss(model, x[:0], *(t[:0] for t in targets))


def test_losses_trace_under_shard_map_on_8_devices_and_match_the_unsharded_rows(loss_case):
    model, loss, x, targets = loss_case
    mesh = jax.make_mesh((8,), ("rows",))
    assert mesh.devices.size == 8
    sharded = [jax.device_put(a, NamedSharding(mesh, P("rows"))) for a in (x, *targets)]
    per_device = jax.shard_map(
        loss,
        mesh=mesh,
        in_specs=(P(), *([P("rows")] * len(sharded))),
        out_specs=P("rows"),
    )
    np.testing.assert_allclose(
        jax.jit(per_device)(model, *sharded), loss(model, x, *targets), rtol=1e-6
    )


def test_mse_loss_accepts_a_flat_target_only_for_one_output(getkey):
    x = jnp.ones((4, 3))
    one = MLPRegressor(3, 1, key=getkey())
    np.testing.assert_array_equal(
        mse_loss(one, x, jnp.zeros(4)), mse_loss(one, x, jnp.zeros((4, 1)))
    )
    two = MLPRegressor(3, 2, key=getkey())
    with pytest.raises(ShapeError, match=r"`y` must have shape .*\(4, 2\), got shape \(4,\)"):
        mse_loss(two, x, jnp.zeros(4))
    with pytest.raises(ShapeError, match=r"got shape \(3, 2\)"):
        mse_loss(two, x, jnp.zeros((3, 2)))


def test_cross_entropy_requires_integer_labels_one_per_row(getkey):
    model, x = MLPClassifier(3, 4, key=getkey()), jnp.ones((2, 3))
    with pytest.raises(InvalidTypeError, match=r"integer class labels in \[0, 4\)"):
        cross_entropy_loss(model, x, jnp.zeros(2))
    with pytest.raises(ShapeError, match=r"\(batch,\) = \(2,\), got shape \(2, 1\)"):
        cross_entropy_loss(model, x, jnp.zeros((2, 1), jnp.int32))


def test_cross_entropy_of_an_out_of_range_label_is_nan_for_that_row_only(getkey):
    model, x = MLPClassifier(3, 4, key=getkey()), jnp.ones((4, 3))
    losses = jax.jit(cross_entropy_loss)(model, x, jnp.array([0, -1, 4, 3]))
    np.testing.assert_array_equal(np.isnan(losses), [False, True, True, False])


def test_cross_entropy_matches_optax(getkey, rng):
    model = MLPClassifier(5, 3, width=8, key=getkey())
    x, y = rng.normal(size=(9, 5)).astype(np.float32), rng.integers(0, 3, size=9)
    expected = optax.softmax_cross_entropy_with_integer_labels(
        rows(model, x, "logits"), jnp.asarray(y)
    )
    np.testing.assert_allclose(cross_entropy_loss(model, x, y), expected, rtol=1e-5)


def test_reconstruction_loss_is_the_vmapped_anomaly_score(getkey, rng):
    model = Autoencoder(5, latent=2, width=8, key=getkey())
    x = jnp.asarray(rng.normal(size=(6, 5)).astype(np.float32))
    np.testing.assert_array_equal(reconstruction_loss(model, x), rows(model, x, "anomaly_score"))
    residual = (x - rows(model, x, "reconstruct")) / model.normalization.scale
    np.testing.assert_allclose(
        reconstruction_loss(model, x), jnp.mean(residual**2, axis=1), rtol=1e-5
    )


# --- the autoencoder's normalization buffer ----------------------------------------------------


def test_a_fresh_autoencoder_standardizes_with_the_identity(getkey):
    model = Autoencoder(3, key=getkey())
    np.testing.assert_array_equal(model.normalization.mean, np.zeros(3))
    np.testing.assert_array_equal(model.normalization.scale, np.ones(3))
    np.testing.assert_array_equal(model.baseline, np.zeros(3))
    assert model.latent == 1  # default max(1, in_features // 4)


def test_normalization_makes_anomaly_scores_independent_of_feature_units(getkey, rng):
    model = Autoencoder(4, latent=2, width=8, key=getkey())
    x = rng.normal(size=(10, 4)) * [1.0, 10.0, 0.1, 5.0] + [0.0, 100.0, -3.0, 7.0]
    units = np.array([1000.0, 0.01, 3.0, 1.0])  # e.g. seconds to milliseconds
    scores = reconstruction_loss(model.with_normalization(x.mean(0), x.std(0)), x)
    rescaled = x * units
    scores_in_new_units = reconstruction_loss(
        model.with_normalization(rescaled.mean(0), rescaled.std(0)), rescaled
    )
    np.testing.assert_allclose(scores, scores_in_new_units, rtol=1e-3, atol=1e-6)


def test_normalization_gets_no_gradient_and_is_not_trainable(getkey, rng):
    x = rng.normal(size=(8, 4)).astype(np.float32)
    model = Autoencoder(4, latent=2, key=getkey()).with_normalization(x.mean(0) + 1, x.std(0) * 2)
    grads = eqx.filter_grad(lambda m: jnp.mean(reconstruction_loss(m, x)))(model)
    np.testing.assert_array_equal(grads.normalization.mean, np.zeros(4))
    np.testing.assert_array_equal(grads.normalization.scale, np.zeros(4))
    spec = trainable_filter(model)
    assert spec.normalization == Standardization(False, False)
    assert all(jax.tree_util.tree_leaves(spec.encoder)[:2])
    trained = fit(model, reconstruction_loss, x, steps=3, learning_rate=0.1)
    np.testing.assert_array_equal(trained.normalization.mean, model.normalization.mean)
    assert not np.array_equal(trained.encoder.layers[0].weight, model.encoder.layers[0].weight)


def test_with_normalization_checks_shapes_and_values_and_keeps_constant_features(getkey):
    model = Autoencoder(3, key=getkey())
    with pytest.raises(ShapeError, match=r"`mean` must have shape .*\(3,\), got shape \(2,\)"):
        model.with_normalization(np.zeros(2), np.ones(3))
    with pytest.raises(ShapeError, match=r"`scale` must have shape .*\(3,\), got shape \(3, 1\)"):
        model.with_normalization(np.zeros(3), np.ones((3, 1)))
    with pytest.raises(InvalidValueError, match=r"`scale` must be finite and >= 0.*feature 1"):
        model.with_normalization(np.zeros(3), [1.0, -1.0, 1.0])
    with pytest.raises(InvalidValueError, match=r"`mean` must be finite.*feature 2"):
        model.with_normalization([0.0, 0.0, np.nan], np.ones(3))
    constant = model.with_normalization(np.zeros(3), [2.0, 0.0, 1.0])
    np.testing.assert_array_equal(constant.normalization.scale, [2.0, 1.0, 1.0])


# --- trained briefly on real data --------------------------------------------------------------


@pytest.fixture(scope="module")
def breast_cancer_autoencoder():
    """An autoencoder trained on 70% of the breast cancer set, and the held-out 30%."""
    x = load_breast_cancer().data.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    train, held_out = x[order[:400]], x[order[400:]]
    model = Autoencoder(x.shape[1], latent=4, width=32, key=jax.random.key(0))
    model = model.with_normalization(train.mean(axis=0), train.std(axis=0))
    return fit(model, reconstruction_loss, train, steps=300, learning_rate=1e-2), train, held_out


def _auc(model, inliers, outliers) -> float:
    scores = np.r_[reconstruction_loss(model, inliers), reconstruction_loss(model, outliers)]
    return roc_auc_score(np.r_[np.zeros(len(inliers)), np.ones(len(outliers))], scores)


def test_autoencoder_scores_injected_gross_outliers_above_held_out_inliers(
    breast_cancer_autoencoder, rng
):
    model, train, held_out = breast_cancer_autoencoder
    outliers = held_out.copy()
    rows = np.arange(len(held_out))
    for _ in range(2):  # shift two random features of each row by 5 training standard deviations
        columns = rng.integers(0, held_out.shape[1], size=len(held_out))
        signs = rng.choice([-1.0, 1.0], size=len(held_out))
        outliers[rows, columns] += (5 * signs * train.std(axis=0)[columns]).astype(np.float32)
    assert _auc(model, held_out, outliers) > 0.9


def test_autoencoder_scores_rows_with_broken_feature_correlations_above_inliers(
    breast_cancer_autoencoder, rng
):
    # Each column shuffled on its own: every value is realistic, only their combination is not.
    model, _, held_out = breast_cancer_autoencoder
    outliers = np.stack([rng.permutation(column) for column in held_out.T], axis=1)
    assert _auc(model, held_out, outliers) > 0.9


def test_mlp_regressor_fits_diabetes_better_than_predicting_the_mean():
    data = load_diabetes()
    x = data.data.astype(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = ((data.target - data.target.mean()) / data.target.std()).astype(np.float32)
    model = MLPRegressor(x.shape[1], 1, width=32, depth=1, key=jax.random.key(1))
    model = fit(model, mse_loss, x, y, steps=300, learning_rate=3e-3)
    r2 = 1 - float(jnp.mean(mse_loss(model, x, y))) / float(np.var(y))
    assert r2 > 0.4  # linear regression reaches 0.52 on all of diabetes; the mean scores 0


@pytest.mark.slow
def test_mlp_classifier_reaches_90_percent_train_accuracy_on_iris():
    data = load_iris()
    x = data.data.astype(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    model = MLPClassifier(4, 3, width=16, depth=1, key=jax.random.key(2))
    model = fit(model, cross_entropy_loss, x, data.target, steps=200, learning_rate=1e-2)
    accuracy = float(np.mean(np.asarray(rows(model, x, "predict")) == data.target))
    assert accuracy > 0.9


# --- compile once ------------------------------------------------------------------------------


def test_jitted_forward_loss_and_explanations_do_not_recompile_with_new_weights(getkey, rng):
    model = Autoencoder(5, latent=2, width=8, key=getkey())
    other = Autoencoder(5, latent=2, width=8, key=getkey()).with_normalization(
        np.ones(5, np.float32), np.full(5, 2.0, np.float32)
    )
    x = jnp.asarray(rng.normal(size=(8, 5)).astype(np.float32))
    forward = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))
    loss_and_grad = eqx.filter_jit(
        eqx.filter_value_and_grad(lambda m, x: jnp.sum(reconstruction_loss(m, x)))
    )
    calls = [
        lambda m: forward(m, x),
        lambda m: loss_and_grad(m, x),
        lambda m: integrated_gradients(m.anomaly_score, x, m.baseline, steps=8),
    ]
    for call in calls:
        with CompileCounter() as first:
            jax.block_until_ready(call(model))
        with CompileCounter() as second:
            jax.block_until_ready(call(other))
        assert first.count >= 1
        assert second.count == 0


# --- integrated gradients ----------------------------------------------------------------------


def _smooth_score(key):
    """A nonlinear scalar score with visible curvature along the path."""
    model = MLPRegressor(6, 1, width=16, depth=2, activation="tanh", key=key)
    return lambda x: 3.0 * model(x)[0]


@pytest.mark.parametrize("method", ["riemann_trapezoid", "riemann_middle", "gausslegendre"])
def test_ig_completeness_error_shrinks_as_steps_grow(method, getkey, rng):
    score = _smooth_score(getkey())
    x = jnp.asarray(rng.normal(size=(16, 6)).astype(np.float32) * 2)
    baseline = jnp.asarray(rng.normal(size=6).astype(np.float32))
    gap = jax.vmap(score)(x) - score(baseline)
    errors = []
    for steps in (2, 4, 16, 64):
        attributions = integrated_gradients(score, x, baseline, steps=steps, method=method)
        errors.append(float(jnp.max(jnp.abs(attributions.sum(axis=1) - gap))))
    assert errors[-1] < 1e-3 * float(jnp.max(jnp.abs(gap)))
    assert errors[0] > errors[-1] * 10
    assert all(later <= earlier * 1.01 + 1e-5 for earlier, later in itertools.pairwise(errors))


@pytest.mark.parametrize("method", typing.get_args(Quadrature))
def test_ig_of_a_linear_model_is_input_minus_baseline_times_weights(method, getkey, rng):
    model = MLPRegressor(6, 1, depth=0, key=getkey())
    w = model.mlp.layers[0].weight[0]
    x = jnp.asarray(rng.normal(size=(5, 6)).astype(np.float32))
    baseline = jnp.asarray(rng.normal(size=6).astype(np.float32))
    attributions = integrated_gradients(
        model, x, baseline, steps=7 if method != "gausslegendre" else 3, method=method, target=0
    )
    np.testing.assert_allclose(attributions, (x - baseline) * w, rtol=1e-6, atol=1e-7)


def _dot(w, x):
    return x @ w


@settings(max_examples=25, deadline=None)
@given(
    w=st.lists(st.floats(-10, 10, width=32), min_size=3, max_size=3),
    x=st.lists(st.floats(-100, 100, width=32), min_size=3, max_size=3),
)
def test_ig_linear_exactness_holds_for_any_weights_and_inputs(w, x):
    score = jax.tree_util.Partial(_dot, jnp.array(w, jnp.float32))
    attributions = integrated_gradients(score, jnp.array(x, jnp.float32), steps=16)
    expected = np.float32(x) * np.float32(w)
    np.testing.assert_allclose(attributions, expected, rtol=1e-5, atol=1e-5)


def test_ig_gives_zero_to_a_feature_the_model_ignores(getkey, rng):
    model = MLPRegressor(5, 1, width=16, key=getkey())
    first = model.mlp.layers[0]
    model = eqx.tree_at(lambda m: m.mlp.layers[0].weight, model, first.weight.at[:, 2].set(0.0))
    x = jnp.asarray(rng.normal(size=(4, 5)).astype(np.float32))
    attributions = integrated_gradients(model, x, steps=32, target=0)
    np.testing.assert_array_equal(attributions[:, 2], 0.0)
    assert np.all(np.abs(np.asarray(attributions[:, [0, 1, 3, 4]])).sum(axis=1) > 0)


def test_ig_gives_equal_attributions_to_symmetric_features(getkey, rng):
    model = MLPRegressor(4, 1, width=16, key=getkey())
    weight = model.mlp.layers[0].weight
    model = eqx.tree_at(lambda m: m.mlp.layers[0].weight, model, weight.at[:, 3].set(weight[:, 1]))
    x = rng.normal(size=(6, 4)).astype(np.float32)
    x[:, 3] = x[:, 1]
    attributions = integrated_gradients(model, x, steps=32, target=0)
    np.testing.assert_allclose(attributions[:, 1], attributions[:, 3], rtol=1e-5, atol=1e-7)


def test_ig_of_a_batch_equals_ig_of_each_example(getkey, rng):
    score = _smooth_score(getkey())
    x = rng.normal(size=(3, 6)).astype(np.float32)
    batch = integrated_gradients(score, x, steps=16)
    for i in range(3):
        single = integrated_gradients(score, x[i], steps=16)
        assert single.shape == (6,)
        np.testing.assert_allclose(batch[i], single, rtol=1e-6, atol=1e-7)


def test_ig_points_at_the_feature_that_makes_an_example_anomalous(breast_cancer_autoencoder):
    model, train, held_out = breast_cancer_autoencoder
    x = held_out[:8].copy()
    x[np.arange(8), np.arange(8)] += 8 * train.std(axis=0)[:8]  # row i: feature i is off
    attributions = integrated_gradients(model.anomaly_score, x, model.baseline, steps=64)
    np.testing.assert_array_equal(np.argmax(attributions, axis=1), np.arange(8))
    gap = reconstruction_loss(model, x) - model.anomaly_score(model.baseline)
    np.testing.assert_allclose(attributions.sum(axis=1), gap, rtol=2e-2)


def test_ig_target_explains_one_output_of_a_vector_score(getkey, rng):
    model = MLPClassifier(4, 3, width=8, key=getkey())
    x = rng.normal(size=(2, 4)).astype(np.float32)
    attributions = integrated_gradients(model.predict_proba, x, steps=64, target=2)
    gap = rows(model, x, "predict_proba")[:, 2] - apply(model, jnp.zeros(4), "predict_proba")[2]
    np.testing.assert_allclose(attributions.sum(axis=1), gap, rtol=1e-3, atol=1e-5)


def test_ig_rejects_bad_settings_and_shapes(getkey):
    model = Autoencoder(4, key=getkey())
    x = jnp.ones((3, 4))
    with pytest.raises(ConfigError, match="`method` must be one of"):
        integrated_gradients(model.anomaly_score, x, method="simpson")
    with pytest.raises(ConfigError, match="`steps` must be an int >= 2"):
        integrated_gradients(model.anomaly_score, x, steps=1)
    with pytest.raises(ShapeError, match=r"`baseline` must have shape \(4,\) or \(3, 4\)"):
        integrated_gradients(model.anomaly_score, x, jnp.zeros(3))
    with pytest.raises(ShapeError, match=r"one example \[features\] or a batch"):
        integrated_gradients(model.anomaly_score, jnp.ones((2, 3, 4)))
    with pytest.raises(ShapeError, match=r"one scalar per example, got shape \(4,\).*target"):
        integrated_gradients(model.reconstruct, x)
    with pytest.raises(ConfigError, match=r"`target` must index the outputs.*\[0, 4\)"):
        integrated_gradients(model.reconstruct, x, target=4)
    with pytest.raises(ShapeError, match=r"\(4,\), got shape \(5,\)"):
        integrated_gradients(model.anomaly_score, jnp.ones((3, 5)))


# --- weights as flat arrays, no pickle ---------------------------------------------------------


def test_a_model_round_trips_through_a_flat_list_of_numpy_arrays(small, rng):
    model, _ = small
    arrays, skeleton = model_to_arrays(model)
    assert isinstance(skeleton, ModelSkeleton)
    assert all(isinstance(a, np.ndarray) for a in arrays)
    assert len(arrays) == len(skeleton.names) == len(set(skeleton.names))
    rebuilt = model_from_arrays(skeleton, [a.copy() for a in arrays])
    x = jnp.asarray(rng.normal(size=(4, 5)).astype(np.float32))
    np.testing.assert_array_equal(rows(rebuilt, x), rows(model, x))


def test_model_from_arrays_takes_traced_arrays_as_an_exported_function_does(getkey, rng):
    model = Autoencoder(5, latent=2, width=8, key=getkey()).with_normalization(
        np.ones(5), np.full(5, 3.0)
    )
    arrays, skeleton = model_to_arrays(model)

    @jax.jit
    def score(arrays, x):
        return reconstruction_loss(model_from_arrays(skeleton, arrays), x)

    x = rng.normal(size=(3, 5)).astype(np.float32)
    np.testing.assert_allclose(score(arrays, x), reconstruction_loss(model, x), rtol=1e-6)


def test_model_from_arrays_rejects_the_wrong_count_shape_or_dtype(getkey):
    arrays, skeleton = model_to_arrays(MLPRegressor(3, 1, width=4, depth=1, key=getkey()))
    with pytest.raises(ShapeError, match="`arrays` must hold 4 arrays"):
        model_from_arrays(skeleton, arrays[:3])
    with pytest.raises(ShapeError, match=r"`\.mlp\.layers\[0\]\.weight` must have shape \(4, 3\)"):
        model_from_arrays(skeleton, [arrays[0].T, *arrays[1:]])
    with pytest.raises(InvalidTypeError, match="must have dtype float32, got float64"):
        model_from_arrays(skeleton, [arrays[0].astype(np.float64), *arrays[1:]])
    with pytest.raises(InvalidTypeError, match="ModelSkeleton"):
        model_from_arrays(arrays, skeleton)


def test_tree_serialise_leaves_round_trips_into_a_model_built_from_its_config(small, rng):
    model, _ = small
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, model)
    buffer.seek(0)
    like = make_model(**model_config(model), seed=123)
    restored = eqx.tree_deserialise_leaves(buffer, like)
    x = jnp.asarray(rng.normal(size=(2, 5)).astype(np.float32))
    np.testing.assert_array_equal(rows(restored, x), rows(model, x))


# --- registry for configs ----------------------------------------------------------------------


def test_make_model_builds_every_registered_model_from_plain_settings():
    settings = {
        "mlp_regressor": {"in_features": 4, "out_features": 2, "width": 8},
        "mlp_classifier": {"in_features": 4, "n_classes": 3, "depth": 1},
        "autoencoder": {"in_features": 4, "latent": 2},
    }
    assert set(settings) == set(MODELS)
    for name, kwargs in settings.items():
        model = make_model(name, seed=7, **kwargs)
        assert isinstance(model, MODELS[name])
        config = model_config(model)
        assert config["name"] == name and kwargs.items() <= config.items()
        same = make_model(**config, seed=7)
        assert all(
            np.array_equal(a, b)
            for a, b in zip(model_to_arrays(model)[0], model_to_arrays(same)[0], strict=True)
        )


def test_make_model_rejects_unknown_names_unknown_settings_and_missing_ones():
    with pytest.raises(ConfigError, match=r"make_model: `name` must be one of 'mlp_regressor'"):
        make_model("transformer", in_features=3)
    with pytest.raises(ConfigError, match=r"has no setting \['heads'\]"):
        make_model("autoencoder", in_features=3, heads=2)
    with pytest.raises(ConfigError, match=r"needs the settings \['n_classes'\]"):
        make_model("mlp_classifier", in_features=3)
    with pytest.raises(ConfigError, match="`seed` must be an int >= 0"):
        make_model("autoencoder", in_features=3, seed=-1)
    with pytest.raises(InvalidTypeError, match="model_config"):
        model_config(eqx.nn.Linear(2, 2, key=jax.random.key(0)))
