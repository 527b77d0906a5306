"""Losses: per-example primitives, and their batch forms (``jax.vmap`` of them).

The primitive is a **per-example** loss ``loss(model, example) -> scalar``: what a trainer
averages (``LaborArray.value_and_grad`` takes one), in its own fixed order, so the result
does not depend on how a batch is split across devices. Each is a module-level function
(one object each), so the programs compiled for it are shared by every trainer in the
process.

The batch losses (:func:`mse_loss`, :func:`cross_entropy_loss`, :func:`reconstruction_loss`)
check a batch ``[batch, features]`` and its targets, then ``jax.vmap`` the primitive over
its rows: one loss per row, never averaged. Row ``i`` of the result depends only on row
``i`` of the inputs, so padded rows can be masked out afterwards.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import InvalidTypeError, ShapeError
from ._autoencoder import Autoencoder
from ._checks import as_batch, as_float32
from ._mlp import MLPClassifier, MLPRegressor

# --------------------------------------------------------------------------- per example


def reconstruction_example_loss(model: Autoencoder, x: jax.Array) -> jax.Array:
    """An autoencoder's anomaly score of one example ``[in_features]``: its mean squared
    reconstruction error in standardized units (``model.anomaly_score(x)``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import Autoencoder, reconstruction_example_loss
        >>> model = Autoencoder(3, key=jax.random.key(0))
        >>> x = jnp.array([1.0, -2.0, 0.5])
        >>> bool(reconstruction_example_loss(model, x) == model.anomaly_score(x))
        True
    """
    return model.anomaly_score(x)


def squared_error_example_loss(
    model: MLPRegressor, example: tuple[jax.Array, jax.Array]
) -> jax.Array:
    """A regressor's squared error of one example ``(x, y)``, averaged over the targets.

    ``x`` is ``[in_features]``; ``y`` is ``[out_features]`` (a scalar when ``out_features``
    is 1).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import MLPRegressor, squared_error_example_loss
        >>> model = MLPRegressor(2, 1, depth=0, key=jax.random.key(0))
        >>> x = jnp.array([1.0, 2.0])
        >>> loss = squared_error_example_loss(model, (x, jnp.float32(0.0)))
        >>> bool(jnp.allclose(loss, model(x)[0] ** 2))
        True
    """
    x, y = example
    return jnp.mean((model(x) - jnp.reshape(y, (model.out_features,))) ** 2)


def cross_entropy_example_loss(
    model: MLPClassifier, example: tuple[jax.Array, jax.Array]
) -> jax.Array:
    """A classifier's negative log-likelihood of one example ``(x, label)``.

    A label outside ``[0, n_classes)`` gives NaN, so a bad label shows up in the trainer's
    loss instead of silently training on a clamped class. (The check is a value inside the
    program, not ``eqx.error_if``: that one does not trace under ``jax.shard_map``.) Pad a
    ragged batch with a valid label (0) and drop padded rows with ``jnp.where(mask, losses,
    0)``: multiplying by a mask keeps a NaN.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import MLPClassifier, cross_entropy_example_loss
        >>> model = MLPClassifier(3, 4, key=jax.random.key(0))
        >>> x = jnp.ones(3)
        >>> expected = -jax.nn.log_softmax(model.logits(x))[2]
        >>> bool(jnp.allclose(cross_entropy_example_loss(model, (x, 2)), expected))
        True
        >>> bool(jnp.isnan(cross_entropy_example_loss(model, (x, 9))))
        True
    """
    x, label = example
    log_probs = jax.nn.log_softmax(model.logits(x))
    index = jnp.clip(label, 0, model.n_classes - 1)
    valid = (label >= 0) & (label < model.n_classes)
    return jnp.where(valid, -log_probs[index], jnp.nan)


@eqx.filter_jit
def _per_row(loss: Any, model: eqx.Module, examples: Any) -> jax.Array:
    return jax.vmap(loss, in_axes=(None, 0))(model, examples)


# --------------------------------------------------------------------------- per batch


def mse_loss(model: MLPRegressor, x: Any, y: Any) -> jax.Array:
    """Squared error of each row, averaged over the targets: ``mean_j (model(x_i)_j - y_ij)**2``.

    The batch form of :func:`squared_error_example_loss`.

    Args:
        model: an :class:`MLPRegressor` (anything per-example with ``in_features`` and
            ``out_features``).
        x: ``[batch, in_features]`` inputs.
        y: ``[batch, out_features]`` targets; ``[batch]`` is accepted when ``out_features == 1``.

    Returns:
        ``[batch]`` float32 per-example losses.

    Raises:
        ShapeError: ``x`` or ``y`` does not have the shape above.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import MLPRegressor, mse_loss
        >>> model = MLPRegressor(3, 1, key=jax.random.key(0))
        >>> x = jnp.ones((5, 3))
        >>> losses = mse_loss(model, x, jnp.zeros(5))
        >>> losses.shape, bool(jnp.allclose(losses, jax.vmap(model)(x)[:, 0] ** 2))
        ((5,), True)
    """
    owner = "mse_loss"
    x = as_batch(x, owner=owner, in_features=model.in_features)
    y = as_float32(y, "y", owner=owner)
    batch, out_features = x.shape[0], model.out_features
    if y.shape == (batch,) and out_features == 1:
        y = y[:, None]
    if y.shape != (batch, out_features):
        raise ShapeError(
            f"{owner}: `y` must have shape (batch, out_features) = ({batch}, {out_features})"
            + (f" or ({batch},)" if out_features == 1 else "")
            + f", got shape {tuple(y.shape)}"
        )
    return _per_row(squared_error_example_loss, model, (x, y))


def cross_entropy_loss(model: MLPClassifier, x: Any, y: Any) -> jax.Array:
    """Negative log-likelihood of each row's label: ``-log softmax(model.logits(x_i))[y_i]``.

    The batch form of :func:`cross_entropy_example_loss`: a label outside
    ``[0, n_classes)`` gives a NaN loss for its row only.

    Args:
        model: an :class:`MLPClassifier` (anything with ``logits``, ``in_features`` and
            ``n_classes``).
        x: ``[batch, in_features]`` inputs.
        y: ``[batch]`` integer class labels in ``[0, n_classes)``.

    Returns:
        ``[batch]`` float32 per-example losses.

    Raises:
        ShapeError: ``x`` or ``y`` does not have the shape above.
        InvalidTypeError: ``y`` does not hold integers.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import MLPClassifier, cross_entropy_loss
        >>> model = MLPClassifier(3, 4, key=jax.random.key(0))
        >>> losses = cross_entropy_loss(model, jnp.ones((2, 3)), jnp.array([0, 9]))
        >>> losses.shape, bool(jnp.isnan(losses[1]))
        ((2,), True)
    """
    owner = "cross_entropy_loss"
    x = as_batch(x, owner=owner, in_features=model.in_features)
    y = y if isinstance(y, jax.Array) else np.asarray(y)
    if np.dtype(y.dtype) == np.bool_ or not np.issubdtype(np.dtype(y.dtype), np.integer):
        raise InvalidTypeError(
            f"{owner}: `y` must hold integer class labels in [0, {model.n_classes}), "
            f"got dtype {y.dtype}"
        )
    if y.shape != (x.shape[0],):
        raise ShapeError(
            f"{owner}: `y` must have shape (batch,) = ({x.shape[0]},), got shape {tuple(y.shape)}"
        )
    return _per_row(cross_entropy_example_loss, model, (x, jnp.asarray(y, dtype=jnp.int32)))


def reconstruction_loss(model: Autoencoder, x: Any) -> jax.Array:
    """Each row's anomaly score: its mean squared reconstruction error in standardized units.

    The batch form of :func:`reconstruction_example_loss`.

    Args:
        model: an :class:`Autoencoder` (anything with ``anomaly_score`` and ``in_features``).
        x: ``[batch, in_features]`` inputs in raw units.

    Returns:
        ``[batch]`` float32 per-example losses, equal to ``jax.vmap(model.anomaly_score)(x)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import Autoencoder, reconstruction_loss
        >>> model = Autoencoder(4, key=jax.random.key(0))
        >>> x = jnp.arange(12.0).reshape(3, 4)
        >>> bool(jnp.allclose(reconstruction_loss(model, x), jax.vmap(model.anomaly_score)(x)))
        True
    """
    x = as_batch(x, owner="reconstruction_loss", in_features=model.in_features)
    return _per_row(reconstruction_example_loss, model, x)
