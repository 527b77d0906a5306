"""Weights as a flat list of arrays, and which of them an optimizer may change.

``jax.export`` cannot take an Equinox module as an argument; it takes arrays. A model is
split with ``eqx.partition`` into its arrays (in JAX's canonical pytree order) and a
skeleton holding everything else, so ``model_from_arrays(skeleton, arrays)`` rebuilds it,
also from traced arrays inside an exported function. Nothing here pickles: the arrays are
plain numeric arrays, and the skeleton is rebuilt from the model's settings
(:func:`~liam_core.models.model_config`, :func:`~liam_core.models.make_model`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import InvalidTypeError, ShapeError
from ._autoencoder import Standardization


@dataclasses.dataclass(frozen=True, eq=False)
class ModelSkeleton:
    """Everything of a model but its arrays, and the name, shape and dtype of each array.

    Attributes:
        static: the model with every array replaced by ``None``.
        treedef: the pytree structure of the arrays.
        names: each array's path in the model, e.g. ``.mlp.layers[0].weight``.
        shapes: each array's shape.
        dtypes: each array's dtype.
    """

    static: Any
    treedef: jax.tree_util.PyTreeDef
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]


def model_to_arrays(model: eqx.Module) -> tuple[list[np.ndarray], ModelSkeleton]:
    """Split a model into a flat list of numpy arrays and a :class:`ModelSkeleton`.

    Args:
        model: any Equinox module.

    Returns:
        ``(arrays, skeleton)``: host copies of the arrays in canonical pytree order, and what
        :func:`model_from_arrays` needs to put them back.

    Example:
        >>> import jax
        >>> from liam_core.models import MLPRegressor, model_to_arrays
        >>> arrays, skeleton = model_to_arrays(MLPRegressor(3, 1, width=4, depth=1, key=jax.random.key(0)))
        >>> [a.shape for a in arrays], skeleton.names[0]
        ([(4, 3), (4,), (1, 4), (1,)], '.mlp.layers[0].weight')
    """
    params, static = eqx.partition(model, eqx.is_array)
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    arrays = [np.asarray(leaf) for _, leaf in with_paths]
    skeleton = ModelSkeleton(
        static=static,
        treedef=treedef,
        names=tuple(jax.tree_util.keystr(path) for path, _ in with_paths),
        shapes=tuple(tuple(a.shape) for a in arrays),
        dtypes=tuple(a.dtype for a in arrays),
    )
    return arrays, skeleton


def model_from_arrays(skeleton: ModelSkeleton, arrays: Sequence[Any]) -> eqx.Module:
    """Rebuild a model from its skeleton and a flat list of arrays (numpy, JAX, or traced).

    Args:
        skeleton: from :func:`model_to_arrays` of a model with the same settings.
        arrays: one array per entry of ``skeleton.names``, in that order.

    Returns:
        The model, its arrays as JAX arrays (or the tracers given).

    Raises:
        ShapeError: the number of arrays, or an array's shape, differs from the skeleton.
        InvalidTypeError: an array's dtype differs from the skeleton.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.models import MLPRegressor, model_from_arrays, model_to_arrays
        >>> model = MLPRegressor(3, 1, key=jax.random.key(0))
        >>> rebuilt = model_from_arrays(*reversed(model_to_arrays(model)))
        >>> bool(jnp.all(rebuilt(jnp.ones(3)) == model(jnp.ones(3))))
        True
    """
    if not isinstance(skeleton, ModelSkeleton):
        raise InvalidTypeError(
            f"model_from_arrays: `skeleton` must be a ModelSkeleton from model_to_arrays, "
            f"got {type(skeleton).__name__}"
        )
    arrays = list(arrays)
    if len(arrays) != len(skeleton.names):
        raise ShapeError(
            f"model_from_arrays: `arrays` must hold {len(skeleton.names)} arrays "
            f"({', '.join(skeleton.names)}), got {len(arrays)}"
        )
    leaves = []
    for name, shape, dtype, array in zip(
        skeleton.names, skeleton.shapes, skeleton.dtypes, arrays, strict=True
    ):
        array = array if isinstance(array, jax.Array) else np.asarray(array)
        if tuple(array.shape) != shape:
            raise ShapeError(
                f"model_from_arrays: `{name}` must have shape {shape}, got {tuple(array.shape)}"
            )
        if np.dtype(array.dtype) != dtype:
            raise InvalidTypeError(
                f"model_from_arrays: `{name}` must have dtype {dtype}, got {array.dtype}"
            )
        leaves.append(jnp.asarray(array))
    return eqx.combine(jax.tree_util.tree_unflatten(skeleton.treedef, leaves), skeleton.static)


def trainable_filter(model: eqx.Module) -> Any:
    """A filter spec: ``True`` for each trainable parameter, ``False`` elsewhere.

    Floating arrays are trainable, except the buffers of a :class:`Standardization`
    (an autoencoder's normalization). Use it to split a model before differentiating, and
    with ``optax.masked`` so weight decay leaves the buffers alone.

    Args:
        model: any Equinox module.

    Returns:
        A pytree of bools with the structure of ``model``, for ``eqx.partition``.

    Example:
        >>> import equinox as eqx, jax
        >>> from liam_core.models import Autoencoder, trainable_filter
        >>> model = Autoencoder(4, latent=2, width=8, key=jax.random.key(0))
        >>> params, rest = eqx.partition(model, trainable_filter(model))
        >>> params.normalization.mean is None, rest.normalization.mean.shape
        (True, (4,))
    """

    def spec(node: Any) -> Any:
        if isinstance(node, Standardization):
            return jax.tree_util.tree_map(lambda _: False, node)
        return eqx.is_inexact_array(node)

    return jax.tree_util.tree_map(
        spec, model, is_leaf=lambda node: isinstance(node, Standardization)
    )
