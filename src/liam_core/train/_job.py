"""The training job: devices, data, model and optimizer in; a trained model and evidence out.

:func:`run_training` takes typed settings only (Hydra stays in ``config.py`` and
``experiments/``). The model and the optimizer arrive as zero-argument factories, built
only after the backend is configured: building a model computes with JAX, and the simulated
device count is fixed as soon as JAX computes anything.

What it trains depends on the model:

* ``autoencoder``: anomaly detection on all metrics. It trains on the first rows
  (``task.train_fraction``), evaluates and stops early on the next ones
  (``task.eval_fraction``), takes the ``task.threshold_quantile`` of their scores as the
  threshold (a reference the model never trained on), scores every row through ALDA's
  ``map``, and reports precision, recall and F1 against the injected anomalies, with
  integrated-gradients explanations of the top anomalies.
* ``mlp_classifier``: predicts the work shift of each record from its metrics (accuracy).
* ``mlp_regressor``: predicts the metric ``task.target`` from the others (R²).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax

from .._digest import digest
from .._errors import ConfigError, EmptyInputError, InvalidTypeError
from .._files import to_jsonable, write_atomically
from ..alda import LaborArray
from ..data import (
    ANOMALY_KINDS,
    SHIFTS,
    Batch,
    DataSpec,
    SyntheticTelemetry,
    concat_batches,
    open_source,
)
from ..mesh import MeshSpec, configure_backend
from ..models import model_config
from ._anomaly import anomaly_scores, detection_quality, explain_top_anomalies
from ._loop import TrainResult, fit
from ._spec import TrainSpec
from ._step import check_optimizer
from ._tracking import TRACKING, MlflowTracker, flatten_params


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What the job does with the data around training (``task:`` in the config).

    Args:
        train_fraction: the first rows trained on, a fraction in (0, 1).
        eval_fraction: the rows after them, held out for evaluation, early stopping and
            (autoencoder) the anomaly threshold; ``train_fraction + eval_fraction <= 1``.
        threshold_quantile: quantile of the held-out scores above which a row is flagged.
        top_anomalies: how many of the highest-scoring rows to explain.
        attribution_steps: integrated-gradients path points.
        target: the metric an ``mlp_regressor`` predicts from the others.
    """

    train_fraction: float = 0.4
    eval_fraction: float = 0.1
    threshold_quantile: float = 0.999
    top_anomalies: int = 10
    attribution_steps: int = 64
    target: str | None = None

    def __post_init__(self) -> None:
        for name in ("train_fraction", "eval_fraction", "threshold_quantile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
                raise ConfigError(f"task.{name} must be a number in (0, 1), got {value!r}")
        if self.train_fraction + self.eval_fraction > 1:
            raise ConfigError(
                f"task.train_fraction + task.eval_fraction must be <= 1, got "
                f"{self.train_fraction} + {self.eval_fraction}"
            )
        for name, low in (("top_anomalies", 0), ("attribution_steps", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"task.{name} must be an int >= {low}, got {value!r}")
        if self.target is not None and not isinstance(self.target, str):
            raise ConfigError(f"task.target must be a metric name or null, got {self.target!r}")


@dataclasses.dataclass(frozen=True)
class TrackingSpec:
    """Where metrics go besides ``metrics.jsonl`` (``tracking:`` in the config).

    Args:
        kind: ``"jsonl"`` (the run folder only) or ``"mlflow"`` (also an MLflow store).
        tracking_uri: the MLflow store, e.g. ``sqlite:////abs/mlruns/mlflow.db``.
        experiment: the MLflow experiment name.
    """

    kind: str = "jsonl"
    tracking_uri: str | None = None
    experiment: str = "liam-core"

    def __post_init__(self) -> None:
        if self.kind not in TRACKING:
            raise ConfigError(f"tracking.kind must be one of {TRACKING}, got {self.kind!r}")
        if self.kind == "mlflow" and not self.tracking_uri:
            raise ConfigError(
                "tracking.kind='mlflow' needs tracking.tracking_uri, e.g. sqlite:///mlruns/mlflow.db"
            )


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything the training job needs.

    Args:
        mesh: the devices (:class:`~liam_core.mesh.MeshSpec`).
        data: the data (:class:`~liam_core.data.DataSpec`).
        model: a zero-argument factory of the model, e.g.
            ``lambda: make_model("autoencoder", in_features=8)``.
        optimizer: a zero-argument factory of the optax transformation.
        train: the loop settings (:class:`TrainSpec`).
        task: what is trained and measured (:class:`TaskSpec`).
        tracking: :class:`TrackingSpec`.
        output_dir: the run folder: report, plots, metrics, checkpoints. A run started again
            in the same folder resumes from its newest usable checkpoint.
        progress: show a progress bar.
        compilation_cache_dir: JAX's persistent compilation cache (``None``: off).
        resolved_config: the resolved config, recorded with the run.
        stop_at: stop after this step (and its checkpoint), as a preempted job would.
    """

    mesh: MeshSpec
    data: DataSpec
    model: Callable[[], eqx.Module]
    optimizer: Callable[[], optax.GradientTransformation]
    train: TrainSpec = dataclasses.field(default_factory=TrainSpec)
    task: TaskSpec = dataclasses.field(default_factory=TaskSpec)
    tracking: TrackingSpec = dataclasses.field(default_factory=TrackingSpec)
    output_dir: Path = Path(".")
    progress: bool = True
    compilation_cache_dir: str | None = None
    resolved_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stop_at: int | None = None


def _load(spec: DataSpec) -> tuple[Batch, str]:
    opened = open_source(spec, batch_size=65_536)
    batches = list(opened.batches())
    if not batches:
        raise EmptyInputError(f"{opened.description} yielded no rows; nothing to train on")
    batch = concat_batches(batches)
    if batch.mask is not None:
        keep = batch.mask.all(axis=1)
        batch = dataclasses.replace(
            batch,
            **{name: array[keep] for name, array in batch.arrays().items()},
        )
    return batch, opened.description


def _standardize(x: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    mean = reference.mean(axis=0, dtype=np.float64)
    scale = reference.std(axis=0, dtype=np.float64)
    scale = np.where(scale > 0, scale, 1.0)
    z = ((x - mean) / scale).astype(np.float32)
    return z, {"mean": mean.tolist(), "scale": scale.tolist()}


def _examples(
    model: eqx.Module, batch: Batch, task: TaskSpec, n_train: int
) -> tuple[str, eqx.Module, Any, dict[str, Any]]:
    """The task of ``model``, the model made ready for the data, and its examples."""
    name = model_config(model)["name"]
    values, names = batch.values, list(batch.metric_names)
    train_values = values[:n_train]
    if name == "autoencoder":
        _check_features(model.in_features, len(names), names)
        mean = train_values.mean(axis=0, dtype=np.float64).astype(np.float32)
        scale = train_values.std(axis=0, dtype=np.float64).astype(np.float32)
        return "anomaly_detection", model.with_normalization(mean, scale), values, {}
    if name == "mlp_classifier":
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
        x, norm = _standardize(values, train_values)
        return "shift_classification", model, (x, batch.shift.astype(np.int32)), norm
    if task.target not in names:
        raise ConfigError(
            f"model=mlp_regressor predicts task.target from the other metrics; task.target "
            f"must be one of {names}, got {task.target!r}"
        )
    column = names.index(task.target)
    inputs = [j for j in range(len(names)) if j != column]
    _check_features(model.in_features, len(inputs), [names[j] for j in inputs])
    if model.out_features != 1:
        raise ConfigError(f"model.out_features must be 1 (one target), got {model.out_features}")
    x, norm = _standardize(values[:, inputs], train_values[:, inputs])
    y, target_norm = _standardize(values[:, [column]], train_values[:, [column]])
    return "regression", model, (x, y[:, 0]), {"inputs": norm, "target": target_norm}


def _check_features(in_features: int, n: int, names: list[str]) -> None:
    if in_features != n:
        raise ConfigError(
            f"model.in_features={in_features}, but the data give {n} input metrics {names}; "
            f"set model.in_features={n}"
        )


def _rows(examples: Any, start: int, stop: int) -> Any:
    return jax.tree_util.tree_map(lambda a: a[start:stop], examples)


def run_training(settings: TrainSettings) -> dict[str, Any]:
    """The training job: set up devices, train (or resume), measure, write the evidence.

    Must run before anything else in the process computes with JAX (like
    :func:`liam_core.analysis.run_analysis`). Writes to ``settings.output_dir``:
    ``report.json``, ``config.json``, ``metrics.jsonl``, ``training_curves.png`` (and
    ``anomaly_scores.png`` for an autoencoder) and ``checkpoints/``.

    Returns:
        The report as a dict.
    """
    configure_backend(settings.mesh)
    if settings.compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(settings.compilation_cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if settings.mesh.processes.is_multiprocess:
        raise ConfigError(
            "the training job runs in one process (its checkpoints are written by one "
            "writer); use a single-process mesh such as mesh=cpu8 or mesh=gpu"
        )
    labor = LaborArray.from_spec(settings.mesh)
    batch, description = _load(settings.data)
    task, train = settings.task, settings.train
    n_rows = batch.n_rows
    n_train = int(n_rows * task.train_fraction)
    n_eval = int(n_rows * task.eval_fraction)
    if n_train < train.batch_size or n_eval < 1:
        raise ConfigError(
            f"task.train_fraction={task.train_fraction} of {n_rows} rows gives {n_train} "
            f"training rows, fewer than train.batch_size={train.batch_size} (or no "
            "evaluation rows); use more data or a smaller batch"
        )
    model = settings.model()
    if not isinstance(model, eqx.Module):
        raise InvalidTypeError(
            f"model must build an Equinox module (e.g. `_target_: liam_core.models.make_model`), "
            f"got {type(model).__name__}"
        )
    optimizer = check_optimizer(settings.optimizer())
    kind, model, examples, normalization = _examples(model, batch, task, n_train)

    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    trackers: list[Any] = []
    tracker = None
    if settings.tracking.kind == "mlflow":
        tracker = MlflowTracker(
            str(settings.tracking.tracking_uri),
            experiment=settings.tracking.experiment,
            run_name=output_dir.name,
            tags={"task": kind, "output_dir": str(output_dir.absolute())},
        )
        tracker.log_params(flatten_params(settings.resolved_config))
        tracker.log_config(settings.resolved_config)
        trackers.append(tracker)
    try:
        result = fit(
            model,
            optimizer,
            _rows(examples, 0, n_train),
            labor=labor,
            spec=train,
            eval_examples=_rows(examples, n_train, n_train + n_eval),
            checkpoint_dir=output_dir / "checkpoints",
            metrics_path=output_dir / "metrics.jsonl",
            trackers=trackers,
            progress=settings.progress,
            stop_at=settings.stop_at,
            checkpoint_metadata={"model": model_config(model)},
        )
        report = _report(
            settings, kind, result, labor, batch, examples, description, n_train, n_eval
        )
        report["normalization"] = normalization or None
        report["outputs"] = _write(report, result, output_dir, settings.resolved_config)
        if tracker is not None:
            final = {k: v for k, v in report["summary"].items() if isinstance(v, int | float)}
            tracker.log_metrics(result.state.step, final)
            tracker.log_artifacts(
                [output_dir / name for name in ("metrics.jsonl", *report["outputs"].values())]
            )
            report["mlflow"] = {"tracking_uri": tracker.tracking_uri, "run_id": tracker.run_id}
            tracker.close("FINISHED")
            tracker = None
    finally:
        if tracker is not None:
            tracker.close("FAILED")
    return report


def _report(
    settings: TrainSettings,
    kind: str,
    result: TrainResult,
    labor: LaborArray,
    batch: Batch,
    examples: Any,
    description: str,
    n_train: int,
    n_eval: int,
) -> dict[str, Any]:
    state, model = result.state, result.model
    losses = [
        [r["step"], r.get("loss", math.nan), r.get("eval_loss", math.nan)] for r in result.history
    ]
    training = {
        "steps": state.step,
        "target_steps": settings.train.steps,
        "stopped_early": state.stopped,
        "best_eval_loss": state.best_eval if math.isfinite(state.best_eval) else None,
        "best_step": state.best_step,
        "final_loss": next((r["loss"] for r in reversed(result.history) if "loss" in r), None),
        "resumed_from": result.resumed_from,
        "skipped_checkpoints": list(result.skipped_checkpoints),
        "steps_this_run": result.steps_this_call,
        "seconds": result.seconds,
        "batch_size": settings.train.batch_size,
        "train_rows": n_train,
        "eval_rows": n_eval,
    }
    report: dict[str, Any] = {
        "task": kind,
        "source": description,
        "n_rows": batch.n_rows,
        "metrics": list(batch.metric_names),
        "model": model_config(model),
        "mesh": {
            "name": settings.mesh.name,
            "axes": settings.mesh.resolve(len(settings.mesh.devices())),
            "executor": settings.mesh.executor,
            "chunk_size": settings.mesh.chunk_size,
            "devices": len(settings.mesh.devices()),
        },
        "training": training,
        "curves": {"step_loss_eval_loss": losses},
    }
    model_arrays = jax.device_get(jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)))
    numeric: dict[str, Any] = {"model": model_arrays, "state": state.arrays()}
    if kind == "anomaly_detection":
        anomalies, scores = _anomalies(settings, model, labor, batch, n_train, n_eval)
        report["anomalies"] = anomalies
        numeric["scores"] = scores
        report["summary"] = {
            "precision": anomalies["precision"],
            "recall": anomalies["recall"],
            "f1": anomalies["f1"],
        }
        report["curves"]["scores"] = _downsample_max(scores, 2000)
        report["curves"]["threshold"] = anomalies["threshold"]
    elif kind == "shift_classification":
        x, y = examples

        def predict(rows: jax.Array) -> jax.Array:
            return jax.vmap(model.predict)(rows)

        predicted = np.asarray(labor.map(predict, x[n_train : n_train + n_eval]))
        accuracy = float(np.mean(predicted == y[n_train : n_train + n_eval]))
        numeric["predictions"] = predicted
        report["summary"] = {"eval_accuracy": accuracy, "classes": len(SHIFTS)}
    else:
        x, y = examples

        def predict(rows: jax.Array) -> jax.Array:
            return jax.vmap(model)(rows)[:, 0]

        held_x, held_y = x[n_train : n_train + n_eval], y[n_train : n_train + n_eval]
        predicted = np.asarray(labor.map(predict, held_x), np.float64)
        residual = float(np.sum((predicted - held_y) ** 2))
        total = float(np.sum((held_y - held_y.mean()) ** 2))
        numeric["predictions"] = predicted
        report["summary"] = {"eval_r2": 1 - residual / total if total > 0 else math.nan}
    report["summary"].update(
        {"best_eval_loss": training["best_eval_loss"], "final_loss": training["final_loss"]}
    )
    report["summary"] = {k: v for k, v in report["summary"].items() if v is not None}
    numeric["curves"] = np.asarray(losses, np.float64)
    report["digests"] = {name: digest(value) for name, value in numeric.items()}
    report["digest"] = digest({k: v for k, v in numeric.items() if k != "state"})
    return report


def _anomalies(
    settings: TrainSettings,
    model: eqx.Module,
    labor: LaborArray,
    batch: Batch,
    n_train: int,
    n_eval: int,
) -> tuple[dict[str, Any], np.ndarray]:
    task = settings.task
    scores = anomaly_scores(model, batch.values, labor=labor)
    reference = scores[n_train : n_train + n_eval]
    threshold = float(np.quantile(reference.astype(np.float64), task.threshold_quantile))
    flagged = scores > threshold
    anomalies: dict[str, Any] = {
        "threshold": threshold,
        "threshold_quantile": task.threshold_quantile,
        "reference_rows": [n_train, n_train + n_eval],
        "n_flagged": int(flagged.sum()),
    }
    names = list(batch.metric_names)
    if batch.anomaly is not None:
        truth = (batch.anomaly != 0).any(axis=1)
        anomalies.update(detection_quality(flagged, truth))
        parts = {"train": (0, n_train), "reference": (n_train, n_train + n_eval)}
        parts["unseen"] = (n_train + n_eval, batch.n_rows)
        drift_start = _drift_start(settings.data, batch.n_rows)
        if drift_start is not None and 0 < drift_start < batch.n_rows:
            parts["before_drift"] = (0, drift_start)
            parts["after_drift"] = (drift_start, batch.n_rows)
        anomalies["by_part"] = {
            part: {"rows": [a, b], **detection_quality(flagged[a:b], truth[a:b])}
            for part, (a, b) in parts.items()
            if b > a
        }
        kinds = batch.anomaly.max(axis=1)
        anomalies["recall_by_kind"] = {
            name: float(flagged[kinds == code].mean()) if np.any(kinds == code) else None
            for code, name in enumerate(ANOMALY_KINDS)
            if code
        }
    if task.top_anomalies:
        anomalies["explanations"] = explain_top_anomalies(
            model,
            batch.values,
            scores,
            names,
            top=task.top_anomalies,
            steps=task.attribution_steps,
            anomaly=batch.anomaly,
        )
        for entry in anomalies["explanations"]["rows"]:
            row = entry["row"]
            if batch.team is not None:
                entry["team"] = int(batch.team[row])
            if batch.timestamps is not None:
                entry["time"] = str(batch.timestamps[row])
    return anomalies, scores


def _drift_start(spec: DataSpec, n_rows: int) -> int | None:
    if spec.kind != "synthetic":
        return None
    telemetry = SyntheticTelemetry(**spec.settings)
    if telemetry.drift_level == 0 and telemetry.drift_trend == 0:
        return None
    return telemetry.drift_start if telemetry.drift_start is not None else n_rows // 2


def _downsample_max(values: np.ndarray, points: int) -> list[float]:
    width = max(1, -(-values.shape[0] // points))
    padded = np.pad(values.astype(np.float64), (0, -values.shape[0] % width))
    return padded.reshape(-1, width).max(axis=1).tolist()


def _write(
    report: dict[str, Any], result: TrainResult, output_dir: Path, config: Mapping[str, Any]
) -> dict[str, str]:
    from ._plots import plot_scores, plot_training_curves

    curves = report["curves"]
    paths = {
        "curves": plot_training_curves(
            curves["step_loss_eval_loss"],
            result.state.best_step,
            output_dir / "training_curves.png",
        )
    }
    if "scores" in curves:
        paths["scores"] = plot_scores(
            curves["scores"], curves["threshold"], output_dir / "anomaly_scores.png"
        )
    paths["config"] = write_atomically(
        output_dir / "config.json", json.dumps(to_jsonable(config), indent=2).encode()
    )
    outputs = {name: str(path) for name, path in paths.items()}
    outputs["report"] = str(output_dir / "report.json")
    saved = {k: v for k, v in report.items() if k != "curves"}
    saved["outputs"] = outputs
    write_atomically(output_dir / "report.json", json.dumps(to_jsonable(saved), indent=2).encode())
    return outputs
