"""A trained model in the form a server runs: a pure function of ``(weights, x)``.

``jax.export`` takes a ``jax.jit`` of a plain function whose arguments are arrays (an Equinox
module is not a serializable argument, and ``eqx.filter_jit`` cannot be exported). A
:class:`Servable` is that function, its named weights (the model's arrays plus what was
fitted around it: the input standardization, the anomaly threshold...), the names of the
features a row holds, and the name, dtype and per-row shape of every output. Raw metric rows
go in; everything a prediction needs is inside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .._errors import ShapeError
from ._weights import ModelSkeleton, model_from_arrays, model_to_arrays

Weights = Mapping[str, Any]
"""Named arrays: ``"model<path>"`` for the model's own arrays (``model.encoder.layers[0]...``),
plain names for what was fitted around it."""
Forward = Callable[[Weights, jax.Array], dict[str, jax.Array]]
"""``forward(weights, x)``: ``x`` is ``[batch, features]`` float32; every output has the batch
as its first dimension."""

MODEL_PREFIX = "model"


@dataclasses.dataclass(frozen=True)
class Output:
    """One named output: its dtype (a numpy name) and its shape after the batch dimension."""

    dtype: str
    shape: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True, eq=False)
class Servable:
    """A model as a pure function of named weights and a batch of raw rows.

    Attributes:
        task: what the model does (``anomaly_detection``, ``shift_classification``,
            ``regression``).
        weights: the named arrays ``forward`` and ``explain`` take (numpy, float32 or int).
        forward: ``forward(weights, x) -> {output name: array}``, traceable by ``jax.jit``.
        outputs: the name, dtype and per-row shape of each output of ``forward``.
        feature_names: the metric each column of ``x`` holds, in order.
        explain: ``explain(weights, x) -> {"attributions": [batch, features]}`` (``None``: the
            model has no per-feature explanation), traceable by ``jax.jit``.
        model_config: ``make_model(**model_config)`` rebuilds the model's structure (with the
            model's arrays in ``weights``, a re-export needs nothing else).
        explain_settings: the task settings ``explain`` was built with
            (``{"attribution_steps": 64}``), for a re-export.

    Example:
        >>> import jax, numpy as np
        >>> from liam_core.models import Autoencoder
        >>> from liam_core.train import AnomalyDetection, TaskSpec
        >>> model = Autoencoder(3, width=4, key=jax.random.key(0))
        >>> servable = AnomalyDetection(TaskSpec()).servable(
        ...     model, {"threshold": np.float32(1.0)}, ["cpu", "latency_ms", "errors"])
        >>> out = jax.jit(servable.forward)(servable.weights, np.zeros((2, 3), np.float32))
        >>> sorted(out), out["score"].shape, out["anomaly"].dtype
        (['anomaly', 'score'], (2,), dtype('bool'))
    """

    task: str
    weights: Mapping[str, np.ndarray]
    forward: Forward
    outputs: Mapping[str, Output]
    feature_names: tuple[str, ...]
    explain: Forward | None = None
    model_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    explain_settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


def model_weights(model: eqx.Module) -> tuple[dict[str, np.ndarray], ModelSkeleton]:
    """The model's arrays named ``"model<path>"``, and the skeleton that rebuilds it."""
    arrays, skeleton = model_to_arrays(model)
    return {
        MODEL_PREFIX + name: array for name, array in zip(skeleton.names, arrays, strict=True)
    }, skeleton


def rebuild(skeleton: ModelSkeleton, weights: Weights) -> eqx.Module:
    """The model of ``skeleton`` with its arrays taken from ``weights`` (also traced)."""
    missing = [name for name in skeleton.names if MODEL_PREFIX + name not in weights]
    if missing:
        raise ShapeError(f"the weights lack the model's arrays {missing}")
    return model_from_arrays(skeleton, [weights[MODEL_PREFIX + name] for name in skeleton.names])
