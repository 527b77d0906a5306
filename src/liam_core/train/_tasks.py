"""What the training job does with each kind of model: one small class per task.

A task knows three things about its model: how to make examples from the data
(:meth:`~Task.prepare`), the per-example loss it trains with (:attr:`~Task.example_loss`),
and what to measure once it is trained (:meth:`~Task.evaluate`). :func:`task_for` picks the
task of a model from the model's class, in one table (:data:`TASKS`):

* :class:`AnomalyDetection` (an :class:`~liam_core.models.Autoencoder`): every metric in,
  the reconstruction error is the anomaly score; the threshold is a quantile of the scores
  of the held-out rows, and precision, recall and F1 are measured against the injected
  anomalies, with integrated-gradients explanations of the top anomalies.
* :class:`ShiftClassification` (an :class:`~liam_core.models.MLPClassifier`): predicts the
  work shift of each record from its standardized metrics (accuracy).
* :class:`Regression` (an :class:`~liam_core.models.MLPRegressor`): predicts the metric
  ``task.target`` from the other, standardized, metrics (R²).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import equinox as eqx
import jax
import numpy as np

from .._checks import check_int, quote
from .._errors import ConfigError, ConfigTypeError
from .._evidence import detection_quality, downsample_max, plot_scores
from ..alda import LaborArray
from ..data import ANOMALY_KINDS, SHIFTS, Batch, DataSpec, SyntheticTelemetry
from ..models import (
    Autoencoder,
    MLPClassifier,
    MLPRegressor,
    Output,
    Servable,
    cross_entropy_example_loss,
    integrated_gradients,
    model_config,
    model_weights,
    rebuild,
    reconstruction_example_loss,
    squared_error_example_loss,
)
from ._anomaly import anomaly_scores, explain_top_anomalies


def _fraction(value: Any, name: str) -> float:
    """``value`` as a float in the open interval (0, 1).

    ``liam_core._checks.check_number`` has inclusive bounds only; this is the same check and
    message with exclusive ones.
    """
    expected = "a finite number in (0, 1)"
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ConfigTypeError(
            f"`{name}` must be {expected}, got {type(value).__name__}: {quote(value)}"
        )
    if not 0 < value < 1:  # NaN fails too
        raise ConfigError(f"`{name}` must be {expected}, got {quote(value)}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What the job does with the data around training (``task:`` in the config).

    Args:
        train_fraction: the first rows trained on, a fraction in (0, 1).
        eval_fraction: the rows after them, held out for evaluation, early stopping and
            (autoencoder) the anomaly threshold; ``train_fraction + eval_fraction <= 1``.
        threshold_quantile: quantile of the held-out scores above which a row is flagged.
        top_anomalies: how many of the highest-scoring rows to explain, >= 0.
        attribution_steps: integrated-gradients path points, >= 2.
        target: the metric an ``mlp_regressor`` predicts from the others.

    Example:
        >>> from liam_core.train import TaskSpec
        >>> TaskSpec(threshold_quantile=1.5)
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: `task.threshold_quantile` must be a finite number in (0, 1), got 1.5
    """

    train_fraction: float = 0.4
    eval_fraction: float = 0.1
    threshold_quantile: float = 0.999
    top_anomalies: int = 10
    attribution_steps: int = 64
    target: str | None = None

    def __post_init__(self) -> None:
        for name in ("train_fraction", "eval_fraction", "threshold_quantile"):
            _fraction(getattr(self, name), f"task.{name}")
        if self.train_fraction + self.eval_fraction > 1:
            raise ConfigError(
                f"`task.train_fraction + task.eval_fraction` must be <= 1, got "
                f"{self.train_fraction} + {self.eval_fraction}"
            )
        check_int(self.top_anomalies, "task.top_anomalies", minimum=0)
        check_int(self.attribution_steps, "task.attribution_steps", minimum=2)
        if self.target is not None and (not isinstance(self.target, str) or not self.target):
            raise ConfigTypeError(
                f"`task.target` must be a metric name or null, got "
                f"{type(self.target).__name__}: {quote(self.target)}"
            )


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A model made ready for the data, and its examples (every row, in order).

    Attributes:
        model: the model to train (an autoencoder gets its standardization here).
        examples: an array ``[rows, features]`` or a pytree ``(x, y)`` of row-major arrays.
        normalization: how the inputs were standardized, for the report (``None``: inside
            the model, or not at all).
    """

    model: eqx.Module
    examples: Any
    normalization: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Split:
    """The rows of the job: all of them, and where training and evaluation are.

    Attributes:
        batch: every row of the data.
        n_train: rows ``[0, n_train)`` are trained on.
        n_eval: rows ``[n_train, n_train + n_eval)`` are held out for evaluation.
    """

    batch: Batch
    n_train: int
    n_eval: int

    @property
    def held_out(self) -> slice:
        """The held-out rows."""
        return slice(self.n_train, self.n_train + self.n_eval)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What a task measured: the task's part of the report.

    Attributes:
        report: entries of the report besides the common ones (``{"anomalies": ...}``).
        summary: the headline numbers (``report["summary"]``, sent to trackers).
        numeric: arrays whose digests go into the report (``scores``, ``predictions``).
        curves: data for the task's plots (``report["curves"]``; not written to JSON).
    """

    report: dict[str, Any]
    summary: dict[str, Any]
    numeric: dict[str, Any]
    curves: dict[str, Any] = dataclasses.field(default_factory=dict)


class Task:
    """The part of the training job that depends on the model (subclass it per task).

    Attributes:
        name: the task's name in the report (``report["task"]``) and in trackers.
        example_loss: the per-example ``loss(model, example)`` the model trains with.
    """

    name: ClassVar[str]
    example_loss: ClassVar[Callable[[Any, Any], jax.Array]]

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec

    def input_names(self, batch: Batch) -> list[str]:
        """The metrics the model reads, in order (its ``in_features`` is their number)."""
        return list(batch.metric_names)

    def prepare(self, model: eqx.Module, split: Split) -> Prepared:
        """The model made ready for the data, and the examples of every row."""
        raise NotImplementedError

    def evaluate(
        self,
        model: eqx.Module,
        prepared: Prepared,
        split: Split,
        *,
        labor: LaborArray,
        data: DataSpec,
    ) -> Evaluation:
        """Measure the trained ``model`` (rows through ``labor``)."""
        raise NotImplementedError

    def plots(self, curves: Mapping[str, Any], output_dir: Path) -> dict[str, Path]:
        """Write the task's own plots (beside the training curves); their paths by name."""
        return {}

    def serving_state(self, prepared: Prepared, evaluation: Evaluation) -> dict[str, np.ndarray]:
        """What was fitted around the model that a prediction needs (standardization,
        threshold), as named float32 arrays: the second argument of :meth:`servable`."""
        raise NotImplementedError

    def servable(
        self, model: eqx.Module, state: Mapping[str, Any], feature_names: Sequence[str]
    ) -> Servable:
        """The trained ``model`` with its fitted ``state`` as a pure function of raw rows."""
        raise NotImplementedError


def _check_features(in_features: int, n: int, names: list[str]) -> None:
    if in_features != n:
        raise ConfigError(
            f"model.in_features={in_features}, but the data give {n} input metrics {names}; "
            f"set model.in_features={n}"
        )


def _standardize(x: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    mean = reference.mean(axis=0, dtype=np.float64)
    scale = reference.std(axis=0, dtype=np.float64)
    scale = np.where(scale > 0, scale, 1.0)
    z = ((x - mean) / scale).astype(np.float32)
    return z, {"mean": mean.tolist(), "scale": scale.tolist()}


class AnomalyDetection(Task):
    """An autoencoder on every metric; its reconstruction error is the anomaly score."""

    name = "anomaly_detection"
    example_loss = staticmethod(reconstruction_example_loss)

    def prepare(self, model: Autoencoder, split: Split) -> Prepared:
        """The autoencoder standardizes with the training rows' mean and scale (float32)."""
        batch = split.batch
        names = self.input_names(batch)
        _check_features(model.in_features, len(names), names)
        train_values = batch.values[: split.n_train]
        mean = train_values.mean(axis=0, dtype=np.float64).astype(np.float32)
        scale = train_values.std(axis=0, dtype=np.float64).astype(np.float32)
        return Prepared(model.with_normalization(mean, scale), batch.values)

    def evaluate(
        self,
        model: Autoencoder,
        prepared: Prepared,
        split: Split,
        *,
        labor: LaborArray,
        data: DataSpec,
    ) -> Evaluation:
        """Scores of every row, the threshold from the held-out ones, quality, explanations."""
        spec, batch = self.spec, split.batch
        scores = anomaly_scores(model, batch.values, labor=labor)
        reference = scores[split.held_out]
        threshold = float(np.quantile(reference.astype(np.float64), spec.threshold_quantile))
        flagged = scores > threshold
        anomalies: dict[str, Any] = {
            "threshold": threshold,
            "threshold_quantile": spec.threshold_quantile,
            "reference_rows": [split.n_train, split.n_train + split.n_eval],
            "n_flagged": int(flagged.sum()),
        }
        if batch.anomaly is not None:
            anomalies.update(self._quality(flagged, split, data))
        if spec.top_anomalies:
            anomalies["explanations"] = self._explanations(model, scores, batch)
        return Evaluation(
            report={"anomalies": anomalies},
            summary={key: anomalies[key] for key in ("precision", "recall", "f1")}
            if "f1" in anomalies
            else {},
            numeric={"scores": scores},
            curves={"scores": downsample_max(scores, 2000).tolist(), "threshold": threshold},
        )

    def _quality(self, flagged: np.ndarray, split: Split, data: DataSpec) -> dict[str, Any]:
        batch, n_train, n_eval = split.batch, split.n_train, split.n_eval
        truth = (batch.anomaly != 0).any(axis=1)
        quality: dict[str, Any] = dict(detection_quality(flagged, truth))
        parts = {"train": (0, n_train), "reference": (n_train, n_train + n_eval)}
        parts["unseen"] = (n_train + n_eval, batch.n_rows)
        drift_start = _drift_start(data, batch.n_rows)
        if drift_start is not None and 0 < drift_start < batch.n_rows:
            parts["before_drift"] = (0, drift_start)
            parts["after_drift"] = (drift_start, batch.n_rows)
        quality["by_part"] = {
            part: {"rows": [a, b], **detection_quality(flagged[a:b], truth[a:b])}
            for part, (a, b) in parts.items()
            if b > a
        }
        kinds = batch.anomaly.max(axis=1)
        quality["recall_by_kind"] = {
            name: float(flagged[kinds == code].mean()) if np.any(kinds == code) else None
            for code, name in enumerate(batch.anomaly_names or ANOMALY_KINDS)
            if code
        }
        return quality

    def _explanations(self, model: Autoencoder, scores: np.ndarray, batch: Batch) -> dict:
        explanations = explain_top_anomalies(
            model,
            batch.values,
            scores,
            list(batch.metric_names),
            top=self.spec.top_anomalies,
            steps=self.spec.attribution_steps,
            anomaly=batch.anomaly,
        )
        for entry in explanations["rows"]:
            row = entry["row"]
            if batch.entity is not None:
                entry["entity"] = batch.entity_names[int(batch.entity[row])]
            if batch.timestamps is not None:
                entry["time"] = str(batch.timestamps[row])
        return explanations

    def serving_state(self, prepared: Prepared, evaluation: Evaluation) -> dict[str, np.ndarray]:
        """The threshold (the standardization is inside the autoencoder)."""
        return {"threshold": np.float32(evaluation.report["anomalies"]["threshold"])}

    def servable(
        self, model: Autoencoder, state: Mapping[str, Any], feature_names: Sequence[str]
    ) -> Servable:
        """``score`` (the reconstruction error), ``anomaly`` (``score > threshold``), and
        per-feature integrated-gradient ``attributions`` of the score (``explain``)."""
        weights, skeleton = model_weights(model)
        weights["threshold"] = _float32_scalar(state, "threshold")
        steps = self.spec.attribution_steps

        def forward(weights: Mapping[str, Any], x: jax.Array) -> dict[str, jax.Array]:
            score = jax.vmap(rebuild(skeleton, weights).anomaly_score)(x)
            return {"score": score, "anomaly": score > weights["threshold"]}

        def explain(weights: Mapping[str, Any], x: jax.Array) -> dict[str, jax.Array]:
            rebuilt = rebuild(skeleton, weights)
            attributions = integrated_gradients(
                rebuilt.anomaly_score, x, rebuilt.baseline, steps=steps
            )
            return {"attributions": attributions}

        return Servable(
            task=self.name,
            weights=weights,
            forward=forward,
            explain=explain,
            outputs={"score": Output("float32"), "anomaly": Output("bool")},
            feature_names=tuple(feature_names),
            model_config=model_config(model),
            explain_settings={"attribution_steps": steps},
        )

    def plots(self, curves: Mapping[str, Any], output_dir: Path) -> dict[str, Path]:
        """``anomaly_scores.png``: the scores of every row (maximum per bin), the threshold."""
        path = plot_scores(
            curves["scores"],
            curves["threshold"],
            output_dir / "anomaly_scores.png",
            ylabel="reconstruction error",
            log_scale=True,
        )
        return {"scores": path}


def _drift_start(spec: DataSpec, n_rows: int) -> int | None:
    """The first row after the injected drift of synthetic data (``None``: no drift)."""
    if spec.kind != "synthetic":
        return None
    telemetry = SyntheticTelemetry(**spec.options())
    if telemetry.drift_level == 0 and telemetry.drift_trend == 0:
        return None
    return telemetry.drift_start if telemetry.drift_start is not None else n_rows // 2


class ShiftClassification(Task):
    """A classifier of the work shift of each record from its standardized metrics."""

    name = "shift_classification"
    example_loss = staticmethod(cross_entropy_example_loss)

    def prepare(self, model: MLPClassifier, split: Split) -> Prepared:
        """Inputs standardized with the training rows' statistics; labels the shift codes."""
        batch = split.batch
        names = self.input_names(batch)
        if batch.shift is None:
            raise ConfigError(
                "model=mlp_classifier predicts the work shift of each record, but the data "
                "have no shifts; use data=synthetic"
            )
        if model.n_classes != len(SHIFTS):
            raise ConfigError(
                f"model.n_classes must be {len(SHIFTS)} (the work shifts {list(SHIFTS)}), "
                f"got {model.n_classes}"
            )
        _check_features(model.in_features, len(names), names)
        x, norm = _standardize(batch.values, batch.values[: split.n_train])
        return Prepared(model, (x, batch.shift.astype(np.int32)), norm)

    def evaluate(
        self,
        model: MLPClassifier,
        prepared: Prepared,
        split: Split,
        *,
        labor: LaborArray,
        data: DataSpec,
    ) -> Evaluation:
        """The accuracy of the predicted shifts of the held-out rows."""
        x, y = prepared.examples

        def predict(rows: jax.Array) -> jax.Array:
            return jax.vmap(model.predict)(rows)

        predicted = np.asarray(labor.map(predict, x[split.held_out]))
        accuracy = float(np.mean(predicted == y[split.held_out]))
        return Evaluation(
            report={},
            summary={"eval_accuracy": accuracy, "classes": len(SHIFTS)},
            numeric={"predictions": predicted},
        )

    def serving_state(self, prepared: Prepared, evaluation: Evaluation) -> dict[str, np.ndarray]:
        """The inputs' standardization."""
        return _standardization_state(prepared.normalization, "")

    def servable(
        self, model: MLPClassifier, state: Mapping[str, Any], feature_names: Sequence[str]
    ) -> Servable:
        """``probabilities`` of each shift and the most likely ``shift`` (its code)."""
        weights, skeleton = model_weights(model)
        weights.update(_standardization_weights(state, "", len(feature_names)))

        def forward(weights: Mapping[str, Any], x: jax.Array) -> dict[str, jax.Array]:
            z = (x - weights["mean"]) / weights["scale"]
            probabilities = jax.vmap(rebuild(skeleton, weights).predict_proba)(z)
            return {
                "probabilities": probabilities,
                "shift": jax.numpy.argmax(probabilities, axis=1).astype(np.int32),
            }

        return Servable(
            task=self.name,
            weights=weights,
            forward=forward,
            outputs={
                "probabilities": Output("float32", (model.n_classes,)),
                "shift": Output("int32"),
            },
            feature_names=tuple(feature_names),
            model_config=model_config(model),
        )


class Regression(Task):
    """A regressor of the metric ``task.target`` from the other metrics (all standardized)."""

    name = "regression"
    example_loss = staticmethod(squared_error_example_loss)

    def input_names(self, batch: Batch) -> list[str]:
        """Every metric but ``task.target``."""
        names, target = list(batch.metric_names), self.spec.target
        if target not in names:
            raise ConfigError(
                f"model=mlp_regressor predicts task.target from the other metrics; task.target "
                f"must be one of {names}, got {quote(target)}"
            )
        return [name for name in names if name != target]

    def prepare(self, model: MLPRegressor, split: Split) -> Prepared:
        """Inputs and target standardized with the training rows' statistics."""
        batch, target = split.batch, self.spec.target
        values, names = batch.values, list(batch.metric_names)
        train_values = values[: split.n_train]
        input_names = self.input_names(batch)
        column = names.index(target)
        inputs = [names.index(name) for name in input_names]
        _check_features(model.in_features, len(inputs), input_names)
        if model.out_features != 1:
            raise ConfigError(
                f"model.out_features must be 1 (one target), got {model.out_features}"
            )
        x, norm = _standardize(values[:, inputs], train_values[:, inputs])
        y, target_norm = _standardize(values[:, [column]], train_values[:, [column]])
        return Prepared(model, (x, y[:, 0]), {"inputs": norm, "target": target_norm})

    def evaluate(
        self,
        model: MLPRegressor,
        prepared: Prepared,
        split: Split,
        *,
        labor: LaborArray,
        data: DataSpec,
    ) -> Evaluation:
        """R² of the predicted (standardized) target on the held-out rows."""
        x, y = prepared.examples

        def predict(rows: jax.Array) -> jax.Array:
            return jax.vmap(model)(rows)[:, 0]

        held_x, held_y = x[split.held_out], y[split.held_out]
        predicted = np.asarray(labor.map(predict, held_x), np.float64)
        residual = float(np.sum((predicted - held_y) ** 2))
        total = float(np.sum((held_y - held_y.mean()) ** 2))
        return Evaluation(
            report={},
            summary={"eval_r2": 1 - residual / total if total > 0 else math.nan},
            numeric={"predictions": predicted},
        )

    def serving_state(self, prepared: Prepared, evaluation: Evaluation) -> dict[str, np.ndarray]:
        """The standardization of the inputs and of the target."""
        norm = prepared.normalization
        return {
            **_standardization_state(norm["inputs"], ""),
            **_standardization_state(norm["target"], "target_"),
        }

    def servable(
        self, model: MLPRegressor, state: Mapping[str, Any], feature_names: Sequence[str]
    ) -> Servable:
        """The ``prediction`` of ``task.target`` in its own units."""
        weights, skeleton = model_weights(model)
        weights.update(_standardization_weights(state, "", len(feature_names)))
        weights.update(_standardization_weights(state, "target_", 1))

        def forward(weights: Mapping[str, Any], x: jax.Array) -> dict[str, jax.Array]:
            z = (x - weights["mean"]) / weights["scale"]
            y = jax.vmap(rebuild(skeleton, weights))(z)
            return {"prediction": (y * weights["target_scale"] + weights["target_mean"])[:, 0]}

        return Servable(
            task=self.name,
            weights=weights,
            forward=forward,
            outputs={"prediction": Output("float32")},
            feature_names=tuple(feature_names),
            model_config=model_config(model),
        )


def _float32_scalar(state: Mapping[str, Any], name: str) -> np.ndarray:
    if name not in state:
        raise ConfigError(f"the serving state must hold `{name}`, got {sorted(state)}")
    value = np.asarray(state[name], np.float32)
    if value.shape != () or not np.isfinite(value):
        raise ConfigError(
            f"the serving state's `{name}` must be a finite number, got {quote(value)}"
        )
    return value


def _standardization_state(norm: Mapping[str, Any] | None, prefix: str) -> dict[str, np.ndarray]:
    """``mean``/``scale`` of a task's normalization (``_standardize``) as float32 arrays."""
    if norm is None:
        raise ConfigError("the task fitted no standardization to serve with")
    return {
        prefix + "mean": np.asarray(norm["mean"], np.float32),
        prefix + "scale": np.asarray(norm["scale"], np.float32),
    }


def _standardization_weights(
    state: Mapping[str, Any], prefix: str, n: int
) -> dict[str, np.ndarray]:
    out = {}
    for name in (prefix + "mean", prefix + "scale"):
        if name not in state:
            raise ConfigError(f"the serving state must hold `{name}`, got {sorted(state)}")
        value = np.asarray(state[name], np.float32)
        if value.shape != (n,) or not np.isfinite(value).all():
            raise ConfigError(
                f"the serving state's `{name}` must be {n} finite numbers, got {quote(value)}"
            )
        out[name] = value
    if (out[prefix + "scale"] <= 0).any():
        raise ConfigError(f"the serving state's `{prefix}scale` must be > 0")
    return out


TASKS: Mapping[type[eqx.Module], type[Task]] = MappingProxyType(
    {
        Autoencoder: AnomalyDetection,
        MLPClassifier: ShiftClassification,
        MLPRegressor: Regression,
    }
)
"""The task of each model class: the one place where a model decides what the job does."""


def task_for(model: eqx.Module, spec: TaskSpec | None = None) -> Task:
    """The :class:`Task` that trains and measures ``model`` (see :data:`TASKS`).

    Example:
        >>> import jax
        >>> from liam_core.models import Autoencoder
        >>> from liam_core.train import task_for
        >>> task = task_for(Autoencoder(4, key=jax.random.key(0)))
        >>> task.name, task.example_loss.__name__
        ('anomaly_detection', 'reconstruction_example_loss')
    """
    task = TASKS.get(type(model))
    if task is None:
        raise ConfigError(
            f"the training job has no task for a {type(model).__name__}; `model` must be one of "
            f"{[cls.__name__ for cls in TASKS]} (e.g. from liam_core.models.make_model)"
        )
    return task(spec if spec is not None else TaskSpec())
