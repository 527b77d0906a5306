"""Multi-layer perceptrons for metrics: :class:`MLPRegressor` and :class:`MLPClassifier`.

Convention (the Equinox one): a model maps **one example** ``[in_features]`` to its output;
map it over a batch with ``jax.vmap(model)(x)``. Passing a batch, or an example with the
wrong number of features, raises :class:`~liam_core.ShapeError` while tracing, naming the
expected and the received shape. The batch losses in :mod:`liam_core.models` take batches
``[batch, features]`` and do the ``vmap`` themselves.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_choice, check_int
from ._checks import DTYPE, as_example


def _identity(x: jax.Array) -> jax.Array:
    return x


Activation = Literal["relu", "gelu", "silu", "tanh", "sigmoid", "softplus", "elu", "identity"]
"""The activations a model can use between its layers, by name."""

# Names, not callables, are the settings: they fit a config file and a model's exported metadata.
_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "elu": jax.nn.elu,
    "identity": _identity,
}


class Perceptron(eqx.Module):
    """Linear layers with a named activation between them: the body of every model here.

    Unlike ``eqx.nn.MLP`` it holds the activation by name (a static field), so the only
    pytree leaves are the layers' arrays and a model passes straight through ``jax.jit``,
    ``jax.pmap`` and ``jax.shard_map`` as an argument. It does not check shapes; the public
    models around it do. Build it with :func:`init_perceptrons`.
    """

    layers: tuple[eqx.nn.Linear, ...]
    activation: str = eqx.field(static=True)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``[sizes[0]] -> [sizes[-1]]``, the activation after every layer but the last."""
        function = _ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = function(layer(x))
        return self.layers[-1](x)


@eqx.filter_jit
def _init_perceptrons(
    architectures: tuple[tuple[int, ...], ...], activation: str, key: jax.Array
) -> tuple[Perceptron, ...]:
    # eqx.nn.Linear's own distribution, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias,
    # drawn in one go and in one compiled program per architecture: layer by layer, each draw
    # compiles on its own (seconds on a small CPU for a three-layer model).
    pairs = [list(itertools.pairwise(sizes)) for sizes in architectures]
    n_params = sum(n_out * (n_in + 1) for layers in pairs for n_in, n_out in layers)
    uniform = jax.random.uniform(key, (n_params,), DTYPE, -1.0, 1.0)
    perceptrons, offset = [], 0
    for layers in pairs:
        linears = []
        for n_in, n_out in layers:
            limit = 1.0 / math.sqrt(n_in)
            weight = uniform[offset : offset + n_out * n_in].reshape(n_out, n_in) * limit
            bias = uniform[offset + n_out * n_in : offset + n_out * (n_in + 1)] * limit
            offset += n_out * (n_in + 1)
            shape_only = eqx.filter_eval_shape(eqx.nn.Linear, n_in, n_out, dtype=DTYPE, key=key)
            linears.append(
                eqx.tree_at(lambda lin: (lin.weight, lin.bias), shape_only, (weight, bias))
            )
        perceptrons.append(Perceptron(tuple(linears), activation))
    return tuple(perceptrons)


def check_activation(activation: object, owner: str) -> Activation:
    """``activation`` if it is an :data:`Activation` name, else ``ConfigError`` naming ``owner``."""
    return check_choice(activation, "activation", Activation, owner=owner)


def init_perceptrons(
    owner: str,
    architectures: tuple[tuple[int, ...], ...],
    activation: Activation,
    *,
    key: jax.Array,
) -> tuple[Perceptron, ...]:
    """One :class:`Perceptron` per tuple of layer sizes, e.g. ``((4, 64, 64, 1),)``."""
    return _init_perceptrons(architectures, check_activation(activation, owner), key)


class MLPRegressor(eqx.Module):
    """A multi-layer perceptron mapping one example ``[in_features]`` to ``[out_features]``.

    ``depth`` counts hidden layers: ``depth=0`` is a linear model ``W x + b``.

    Args:
        in_features: number of input features, >= 1.
        out_features: number of regression targets, >= 1.
        width: units per hidden layer, >= 1.
        depth: number of hidden layers, >= 0.
        activation: an :data:`Activation` name.
        key: a JAX PRNG key for the initial weights.

    Returns:
        A module; ``model(x)`` maps ``[in_features]`` to ``[out_features]`` (float32).

    Raises:
        ConfigError: a setting is out of range (the message names it and the allowed values).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import MLPRegressor
        >>> model = MLPRegressor(4, 2, width=8, key=jax.random.key(0))
        >>> model(jnp.ones(4)).shape, jax.vmap(model)(jnp.ones((10, 4))).shape
        ((2,), (10, 2))
    """

    mlp: Perceptron
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        width: int = 64,
        depth: int = 2,
        activation: Activation = "gelu",
        key: jax.Array,
    ) -> None:
        owner = type(self).__name__
        self.in_features = check_int(in_features, "in_features", owner=owner)
        self.out_features = check_int(out_features, "out_features", owner=owner)
        self.width = check_int(width, "width", owner=owner)
        self.depth = check_int(depth, "depth", minimum=0, owner=owner)
        self.activation = check_activation(activation, owner)
        sizes = (self.in_features, *(self.width,) * self.depth, self.out_features)
        (self.mlp,) = init_perceptrons(owner, (sizes,), self.activation, key=key)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Predict the targets of one example: ``[in_features] -> [out_features]``."""
        x = as_example(x, owner=type(self).__name__, in_features=self.in_features)
        return self.mlp(x)


class MLPClassifier(eqx.Module):
    """A multi-layer perceptron classifying one example ``[in_features]`` into ``n_classes``.

    ``model(x)`` and ``model.logits(x)`` give the unnormalized log-probabilities;
    ``predict_proba`` their softmax, ``predict`` the most likely class (int32).

    Args:
        in_features: number of input features, >= 1.
        n_classes: number of classes, >= 2.
        width: units per hidden layer, >= 1.
        depth: number of hidden layers, >= 0 (0 is multinomial logistic regression).
        activation: an :data:`Activation` name.
        key: a JAX PRNG key for the initial weights.

    Returns:
        A module mapping ``[in_features]`` to ``[n_classes]`` logits (float32).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import MLPClassifier
        >>> model = MLPClassifier(4, 3, width=8, depth=1, key=jax.random.key(0))
        >>> model.predict_proba(jnp.ones(4)).sum().round(4).item(), model.predict(jnp.ones(4)).dtype
        (1.0, dtype('int32'))
    """

    mlp: Perceptron
    in_features: int = eqx.field(static=True)
    n_classes: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        *,
        width: int = 64,
        depth: int = 2,
        activation: Activation = "gelu",
        key: jax.Array,
    ) -> None:
        owner = type(self).__name__
        self.in_features = check_int(in_features, "in_features", owner=owner)
        self.n_classes = check_int(n_classes, "n_classes", minimum=2, owner=owner)
        self.width = check_int(width, "width", owner=owner)
        self.depth = check_int(depth, "depth", minimum=0, owner=owner)
        self.activation = check_activation(activation, owner)
        sizes = (self.in_features, *(self.width,) * self.depth, self.n_classes)
        (self.mlp,) = init_perceptrons(owner, (sizes,), self.activation, key=key)

    def __call__(self, x: jax.Array) -> jax.Array:
        """The logits of one example: ``[in_features] -> [n_classes]``."""
        return self.logits(x)

    def logits(self, x: jax.Array) -> jax.Array:
        """Unnormalized log-probabilities of each class for one example, ``[n_classes]``."""
        x = as_example(x, owner=type(self).__name__, in_features=self.in_features)
        return self.mlp(x)

    def predict_proba(self, x: jax.Array) -> jax.Array:
        """Class probabilities of one example (softmax of the logits), ``[n_classes]``."""
        return jax.nn.softmax(self.logits(x))

    def predict(self, x: jax.Array) -> jax.Array:
        """The most likely class of one example, an int32 scalar."""
        return jnp.argmax(self.logits(x)).astype(jnp.int32)
