"""Per-example losses, one per registered model: what ``LaborArray.value_and_grad`` averages.

Each is a module-level function ``loss(model, example) -> scalar`` (one object each), so the
ALDA programs built for it are shared by every trainer in the process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._errors import ConfigError, InvalidTypeError
from ..models import model_config


def reconstruction_example_loss(model: Any, x: jax.Array) -> jax.Array:
    """An autoencoder's anomaly score of one example: its mean squared reconstruction error."""
    return model.anomaly_score(x)


def squared_error_example_loss(model: Any, example: tuple[jax.Array, jax.Array]) -> jax.Array:
    """A regressor's squared error of one example ``(x, y)``, averaged over the targets."""
    x, y = example
    return jnp.mean((model(x) - jnp.reshape(y, (model.out_features,))) ** 2)


def cross_entropy_example_loss(model: Any, example: tuple[jax.Array, jax.Array]) -> jax.Array:
    """A classifier's negative log-likelihood of one example ``(x, label)``.

    A label outside ``[0, n_classes)`` gives NaN (as :func:`liam_core.models.cross_entropy_loss`),
    so a bad label shows in the loss; padded rows hold label 0 and are masked out.
    """
    x, label = example
    log_probs = jax.nn.log_softmax(model.logits(x))
    index = jnp.clip(label, 0, model.n_classes - 1)
    valid = (label >= 0) & (label < model.n_classes)
    return jnp.where(valid, -log_probs[index], jnp.nan)


EXAMPLE_LOSSES: Mapping[str, Callable[[Any, Any], jax.Array]] = MappingProxyType(
    {
        "autoencoder": reconstruction_example_loss,
        "mlp_regressor": squared_error_example_loss,
        "mlp_classifier": cross_entropy_example_loss,
    }
)
"""The per-example loss of each model name of :data:`liam_core.models.MODELS`."""


def example_loss_for(model: eqx.Module) -> Callable[[Any, Any], jax.Array]:
    """The per-example loss that trains ``model`` (see :data:`EXAMPLE_LOSSES`).

    Example:
        >>> import jax
        >>> from liam_core.models import Autoencoder
        >>> from liam_core.train import example_loss_for
        >>> example_loss_for(Autoencoder(4, key=jax.random.key(0))).__name__
        'reconstruction_example_loss'
    """
    try:
        name = model_config(model)["name"]
    except InvalidTypeError as error:
        raise ConfigError(
            f"no built-in loss for a {type(model).__name__}; pass `loss=` "
            f"(a per-example loss(model, example)) or use one of {list(EXAMPLE_LOSSES)}"
        ) from error
    return EXAMPLE_LOSSES[name]
