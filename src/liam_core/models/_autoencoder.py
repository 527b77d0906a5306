"""An autoencoder for anomaly detection on metrics, with a built-in per-feature standardization.

Same convention as the MLPs: the module works on **one example** ``[in_features]``; map it
over a batch with ``jax.vmap``. The standardization (``mean``, ``scale``) is a buffer, not a
parameter: it is set from training data with :meth:`Autoencoder.with_normalization`, the
forward pass stops its gradient, and :func:`~liam_core.models.trainable_filter` leaves it out
of what an optimizer updates.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from .._errors import InvalidValueError, ShapeError
from ._checks import DTYPE, as_example, as_float32
from ._mlp import Activation, Perceptron, check_activation, init_perceptrons


class Standardization(eqx.Module):
    """A per-feature affine map ``z = (x - mean) / scale``: a non-trainable buffer.

    Both arrays are read through ``jax.lax.stop_gradient``, so a gradient with respect to
    them is exactly zero; :func:`~liam_core.models.trainable_filter` marks them ``False`` so
    optimizers with weight decay leave them alone too.

    Args:
        mean: ``[features]`` per-feature center.
        scale: ``[features]`` per-feature positive scale.

    Returns:
        A module with ``standardize(x)`` and ``unstandardize(z)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.models import Standardization
        >>> norm = Standardization(jnp.array([1.0, 2.0]), jnp.array([2.0, 4.0]))
        >>> norm.standardize(jnp.array([3.0, 2.0])).tolist()
        [1.0, 0.0]
    """

    mean: jax.Array
    scale: jax.Array

    def standardize(self, x: jax.Array) -> jax.Array:
        """Map raw features to standardized ones: ``(x - mean) / scale``."""
        return (x - jax.lax.stop_gradient(self.mean)) / jax.lax.stop_gradient(self.scale)

    def unstandardize(self, z: jax.Array) -> jax.Array:
        """Map standardized features back to raw units: ``z * scale + mean``."""
        return z * jax.lax.stop_gradient(self.scale) + jax.lax.stop_gradient(self.mean)


def _check_normalization(
    in_features: int, mean: jax.Array, scale: jax.Array
) -> tuple[jax.Array, jax.Array]:
    for name, value in (("mean", mean), ("scale", scale)):
        if value.shape != (in_features,):
            raise ShapeError(
                f"Autoencoder.with_normalization: `{name}` must have shape (in_features,) = "
                f"({in_features},), got shape {tuple(value.shape)}"
            )
    if isinstance(mean, jax.core.Tracer) or isinstance(scale, jax.core.Tracer):
        # Values are unknown while tracing: only the constant-feature rule can be applied.
        return mean, jnp.where(scale > 0, scale, jnp.ones_like(scale))
    mean_np, scale_np = np.asarray(mean), np.asarray(scale)
    bad_mean = np.flatnonzero(~np.isfinite(mean_np))
    if bad_mean.size:
        raise InvalidValueError(
            f"Autoencoder.with_normalization: `mean` must be finite, got {mean_np[bad_mean[0]]} "
            f"for feature {bad_mean[0]}"
        )
    bad_scale = np.flatnonzero(~np.isfinite(scale_np) | (scale_np < 0))
    if bad_scale.size:
        raise InvalidValueError(
            "Autoencoder.with_normalization: `scale` must be finite and >= 0, got "
            f"{scale_np[bad_scale[0]]} for feature {bad_scale[0]}"
        )
    # A constant feature (scale 0) is left unscaled, as scikit-learn's StandardScaler does.
    return mean, jnp.asarray(np.where(scale_np > 0, scale_np, np.ones_like(scale_np)))


class Autoencoder(eqx.Module):
    """An MLP autoencoder whose reconstruction error of one example is its anomaly score.

    ``encode`` maps standardized features to ``latent`` codes through ``depth`` hidden layers
    of ``width`` units; ``decode`` mirrors it. Scores are computed in standardized units,
    so once :meth:`with_normalization` is set from training data they do not depend on the
    units of each feature. A fresh model's standardization is the identity (mean 0, scale 1).

    Args:
        in_features: number of input features, >= 1.
        latent: size of the bottleneck, ``1 <= latent <= in_features``; default
            ``max(1, in_features // 4)``.
        width: units per hidden layer of the encoder and of the decoder, >= 1.
        depth: hidden layers of the encoder and of the decoder, >= 0.
        activation: an :data:`~liam_core.models.Activation` name.
        key: a JAX PRNG key for the initial weights.

    Returns:
        A module; ``model(x)`` is ``model.reconstruct(x)``, ``[in_features] -> [in_features]``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import Autoencoder
        >>> model = Autoencoder(6, latent=2, width=16, key=jax.random.key(0))
        >>> model = model.with_normalization(jnp.full(6, 10.0), jnp.full(6, 2.0))
        >>> x = jnp.arange(6.0)
        >>> model.reconstruct(x).shape, model.anomaly_score(x).shape, model.latent
        ((6,), (), 2)
    """

    encoder: Perceptron
    decoder: Perceptron
    normalization: Standardization
    in_features: int = eqx.field(static=True)
    latent: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        *,
        latent: int | None = None,
        width: int = 64,
        depth: int = 1,
        activation: Activation = "gelu",
        key: jax.Array,
    ) -> None:
        owner = type(self).__name__
        self.in_features = check_int(in_features, "in_features", owner=owner)
        if latent is None:
            latent = max(1, self.in_features // 4)
        self.latent = check_int(
            latent, "latent", maximum=self.in_features, owner=owner, why=" (at most in_features)"
        )
        self.width = check_int(width, "width", owner=owner)
        self.depth = check_int(depth, "depth", minimum=0, owner=owner)
        self.activation = check_activation(activation, owner)
        hidden = (self.width,) * self.depth
        self.encoder, self.decoder = init_perceptrons(
            owner,
            ((self.in_features, *hidden, self.latent), (self.latent, *hidden, self.in_features)),
            self.activation,
            key=key,
        )
        self.normalization = Standardization(
            jnp.asarray(np.zeros(self.in_features, DTYPE)),
            jnp.asarray(np.ones(self.in_features, DTYPE)),
        )

    def with_normalization(self, mean: jax.Array, scale: jax.Array) -> Autoencoder:
        """Return a copy that standardizes features with ``(x - mean) / scale``.

        Set it from training data, e.g. ``x.mean(axis=0)`` and ``x.std(axis=0)``. A feature
        with ``scale == 0`` (constant in training) is left unscaled, as in scikit-learn.

        Args:
            mean: ``[in_features]`` per-feature center.
            scale: ``[in_features]`` per-feature scale, finite and >= 0.

        Returns:
            A new :class:`Autoencoder` with the same weights and the new buffer.

        Raises:
            ShapeError: ``mean`` or ``scale`` is not ``[in_features]``.
            InvalidValueError: a value is not finite, or a scale is negative (checked when
                the values are concrete).

        Example:
            >>> import jax, numpy as np
            >>> from liam_core.models import Autoencoder
            >>> x = np.array([[1.0, 10.0], [3.0, 10.0]])
            >>> model = Autoencoder(2, key=jax.random.key(0))
            >>> model = model.with_normalization(x.mean(axis=0), x.std(axis=0))
            >>> model.normalization.scale.tolist()
            [1.0, 1.0]
        """
        owner = "Autoencoder.with_normalization"
        mean, scale = as_float32(mean, "mean", owner=owner), as_float32(scale, "scale", owner=owner)
        mean, scale = _check_normalization(self.in_features, mean, scale)
        return eqx.tree_at(lambda m: m.normalization, self, Standardization(mean, scale))

    @property
    def baseline(self) -> jax.Array:
        """The normalization mean: the reference example for explanations, ``[in_features]``.

        It is the point whose standardized features are all zero, the natural baseline of
        :func:`~liam_core.models.integrated_gradients` for this model.
        """
        return jax.lax.stop_gradient(self.normalization.mean)

    def encode(self, x: jax.Array) -> jax.Array:
        """The latent code of one example: ``[in_features] -> [latent]``."""
        x = as_example(x, owner=type(self).__name__, in_features=self.in_features)
        return self.encoder(self.normalization.standardize(x))

    def reconstruct(self, x: jax.Array) -> jax.Array:
        """Reconstruct one example in its raw units: ``[in_features] -> [in_features]``."""
        return self.normalization.unstandardize(self.decoder(self.encode(x)))

    def __call__(self, x: jax.Array) -> jax.Array:
        """Same as :meth:`reconstruct`."""
        return self.reconstruct(x)

    def anomaly_score(self, x: jax.Array) -> jax.Array:
        """Mean squared reconstruction error of one example in standardized units, a scalar.

        Equal to ``mean(((x - reconstruct(x)) / scale) ** 2)``; higher means more unusual.
        """
        x = as_example(x, owner=type(self).__name__, in_features=self.in_features)
        z = self.normalization.standardize(x)
        return jnp.mean((self.decoder(self.encoder(z)) - z) ** 2)
