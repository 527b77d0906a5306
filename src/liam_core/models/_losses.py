"""Per-example losses for a data-parallel trainer: each returns one loss per row, ``[batch]``.

They never average: the trainer reduces rows itself, in its own fixed order, so the result
does not depend on how a batch is split across devices. Each loss takes a batch
``[batch, features]`` and maps the per-example model over its rows with ``jax.vmap``;
row ``i`` of the result depends only on row ``i`` of the inputs, so padded rows can be
masked out afterwards.
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


def mse_loss(model: MLPRegressor, x: Any, y: Any) -> jax.Array:
    """Squared error of each row, averaged over the targets: ``mean_j (model(x_i)_j - y_ij)**2``.

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
        >>> mse_loss(model, jnp.ones((5, 3)), jnp.zeros(5)).shape
        (5,)
    """
    owner = "mse_loss"
    x = as_batch(x, owner=owner, in_features=model.in_features)
    y = as_float32(y, "y")
    batch, out_features = x.shape[0], model.out_features
    if y.shape == (batch,) and out_features == 1:
        y = y[:, None]
    if y.shape != (batch, out_features):
        raise ShapeError(
            f"{owner}: `y` must have shape (batch, out_features) = ({batch}, {out_features})"
            + (f" or ({batch},)" if out_features == 1 else "")
            + f", got shape {tuple(y.shape)}"
        )
    return _mse(model, x, y)


@eqx.filter_jit
def _mse(model: MLPRegressor, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((jax.vmap(model)(x) - y) ** 2, axis=-1)


def cross_entropy_loss(model: MLPClassifier, x: Any, y: Any) -> jax.Array:
    """Negative log-likelihood of each row's label: ``-log softmax(model.logits(x_i))[y_i]``.

    A label outside ``[0, n_classes)`` gives a NaN loss for its row, so a bad label shows
    up in the trainer's loss instead of silently training on a clamped class. (The check
    is a value inside the program, not ``eqx.error_if``: that one does not trace under
    ``jax.shard_map``.) Pad a ragged batch with a valid label (0) and drop padded rows with
    ``jnp.where(mask, losses, 0)``: multiplying by a mask keeps a NaN.

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
    return _cross_entropy(model, x, jnp.asarray(y, dtype=jnp.int32))


@eqx.filter_jit
def _cross_entropy(model: MLPClassifier, x: jax.Array, y: jax.Array) -> jax.Array:
    log_probs = jax.nn.log_softmax(jax.vmap(model.logits)(x), axis=-1)
    index = jnp.clip(y, 0, model.n_classes - 1)
    picked = jnp.take_along_axis(log_probs, index[:, None], axis=-1)[:, 0]
    valid = (y >= 0) & (y < model.n_classes)
    return jnp.where(valid, -picked, jnp.nan)


def reconstruction_loss(model: Autoencoder, x: Any) -> jax.Array:
    """Each row's anomaly score: its mean squared reconstruction error in standardized units.

    Args:
        model: an :class:`Autoencoder` (anything with ``anomaly_score`` and ``in_features``).
        x: ``[batch, in_features]`` inputs in raw units.

    Returns:
        ``[batch]`` float32 per-example losses, equal to ``jax.vmap(model.anomaly_score)(x)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import Autoencoder, reconstruction_loss
        >>> model = Autoencoder(4, key=jax.random.key(0))
        >>> reconstruction_loss(model, jnp.zeros((3, 4))).shape
        (3,)
    """
    x = as_batch(x, owner="reconstruction_loss", in_features=model.in_features)
    return _reconstruction(model, x)


@eqx.filter_jit
def _reconstruction(model: Autoencoder, x: jax.Array) -> jax.Array:
    return jax.vmap(model.anomaly_score)(x)
