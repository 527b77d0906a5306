"""The training job: devices, data, model and optimizer in; a trained model and evidence out.

:func:`run_training` takes typed settings only (Hydra stays in ``config.py`` and
``experiments/``). The model and the optimizer arrive as zero-argument factories, built
only after the backend is configured: building a model computes with JAX, and the simulated
device count is fixed as soon as JAX computes anything.

What it trains and measures depends on the model: the model's class picks its
:class:`~liam_core.train.Task` (:func:`~liam_core.train.task_for`), which prepares the
examples, names the per-example loss and evaluates the trained model (anomaly detection
for an autoencoder, shift classification for a classifier, regression for a regressor).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax

from .._checks import check_choice, quote
from .._digest import digest
from .._errors import ConfigError, ConfigTypeError, EmptyInputError, InvalidTypeError
from .._evidence import mesh_summary, plot_training_curves, start_backend, write_json
from ..alda import LaborArray, SchedulerSpec
from ..data import Batch, DataSpec, concat_batches, open_source
from ..mesh import MeshSpec
from ..models import Servable, model_config
from ._interrupt import TrainingInterrupted
from ._loop import TrainResult, fit
from ._run_dir import RunLock, fingerprint, typed_config
from ._spec import TrainSpec
from ._step import check_optimizer
from ._tasks import Evaluation, Prepared, Split, Task, TaskSpec, task_for
from ._tracking import MlflowTracker, TrackingKind, flatten_params


@dataclasses.dataclass(frozen=True)
class TrackingSpec:
    """Where metrics go besides ``metrics.jsonl`` (``tracking:`` in the config).

    Args:
        kind: a :data:`TrackingKind`: ``"jsonl"`` (the run folder only) or ``"mlflow"``
            (also an MLflow store).
        tracking_uri: the MLflow store, e.g. ``sqlite:////abs/mlruns/mlflow.db``.
        experiment: the MLflow experiment name.
    """

    kind: TrackingKind = "jsonl"
    tracking_uri: str | None = None
    experiment: str = "liam-core"

    def __post_init__(self) -> None:
        check_choice(self.kind, "tracking.kind", TrackingKind)
        for name, nullable in (("tracking_uri", True), ("experiment", False)):
            value = getattr(self, name)
            if (value is None and not nullable) or (
                value is not None and (not isinstance(value, str) or not value)
            ):
                raise ConfigTypeError(
                    f"`tracking.{name}` must be a non-empty string{' or null' if nullable else ''}"
                    f", got {type(value).__name__}: {quote(value)}"
                )
        if self.kind == "mlflow" and not self.tracking_uri:
            raise ConfigError(
                "tracking.kind='mlflow' needs tracking.tracking_uri, e.g. sqlite:///mlruns/mlflow.db"
            )


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything the training job needs.

    Args:
        mesh: the devices (:class:`~liam_core.mesh.MeshSpec`).
        alda: the scheduler settings (:class:`~liam_core.alda.SchedulerSpec`).
        data: the data (:class:`~liam_core.data.DataSpec`).
        model: a factory of the model, called with ``in_features=`` (the number of metrics
            its task feeds it), e.g. ``lambda in_features: make_model("autoencoder",
            in_features=in_features)``. The factory of a Hydra config keeps an
            ``in_features`` the config sets (a mismatch with the data is then an error).
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
        export: called with the trained model as a :class:`~liam_core.models.Servable`,
            what the run says about it (config, digest, metrics) and the run folder, after
            the evaluation; what it returns is the report's ``export`` entry.
            :class:`liam_core.serve.ExportSpec` writes the run's bundle (``<run dir>/model``)
            and publishes it (the command line always passes one); ``None``: no export.
    """

    mesh: MeshSpec
    data: DataSpec
    model: Callable[..., eqx.Module]
    optimizer: Callable[[], optax.GradientTransformation]
    alda: SchedulerSpec = dataclasses.field(default_factory=SchedulerSpec)
    train: TrainSpec = dataclasses.field(default_factory=TrainSpec)
    task: TaskSpec = dataclasses.field(default_factory=TaskSpec)
    tracking: TrackingSpec = dataclasses.field(default_factory=TrackingSpec)
    output_dir: Path = Path(".")
    progress: bool = True
    compilation_cache_dir: str | None = None
    resolved_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stop_at: int | None = None
    export: Callable[[Servable, Mapping[str, Any], Path], Mapping[str, Any]] | None = None


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


def _model_and_task(settings: TrainSettings, batch: Batch) -> tuple[eqx.Module, Task]:
    """The model, built for the data, and its task.

    The model's class decides the task (:func:`task_for`), and the task decides which metrics
    the model reads: the factory is called with ``in_features`` = their number (all metrics,
    or all but a regression target), which fills a config's ``in_features: null``.
    """

    def build(in_features: int) -> eqx.Module:
        model = settings.model(in_features=in_features)
        if not isinstance(model, eqx.Module):
            raise InvalidTypeError(
                "model must build an Equinox module (e.g. `_target_: "
                f"liam_core.models.make_model`), got {type(model).__name__}"
            )
        return model

    n_metrics = len(batch.metric_names)
    model = build(n_metrics)
    task = task_for(model, settings.task)
    n_inputs = len(task.input_names(batch))
    if n_inputs != n_metrics:
        model = build(n_inputs)
    return model, task


def _rows(examples: Any, start: int, stop: int) -> Any:
    return jax.tree_util.tree_map(lambda a: a[start:stop], examples)


def run_training(settings: TrainSettings) -> dict[str, Any]:
    """The training job: set up devices, train (or resume), measure, write the evidence.

    Must run before anything else in the process computes with JAX (like
    :func:`liam_core.analysis.run_analysis`). Writes to ``settings.output_dir``:
    ``report.json``, ``config.json``, ``metrics.jsonl``, ``training_curves.png`` (and
    ``anomaly_scores.png`` for an autoencoder) and ``checkpoints/``.

    One process at a time: the run folder is locked (:class:`RunLock`) for the whole job,
    so a second process on it fails at once with a :class:`RunLockedError`. Checkpoints
    already in the folder are resumed, refused or set aside as ``settings.train.resume``
    says (:class:`TrainSpec`), comparing their :func:`fingerprint` with this run's. A SIGINT
    or SIGTERM stops training between two steps with a checkpoint; the job then prints one
    line on stderr (the step, and how to resume) and exits (``SystemExit``) with status 130
    or 143, as a command stopped by that signal does.

    Returns:
        The report as a dict.

    Raises:
        RunLockedError: another process runs in ``settings.output_dir``.
        ResumeError: its checkpoints were written by a run with other settings or data.
    """
    with RunLock(settings.output_dir):
        try:
            return _run_training(settings)
        except TrainingInterrupted as stop:
            line = f"{stop}; run the same command again to resume from it"
            logging.getLogger("liam_core.train").info("%s", line)  # the log file
            print(line, file=sys.stderr)
            raise SystemExit(stop.exit_status) from None


def _run_training(settings: TrainSettings) -> dict[str, Any]:
    if settings.mesh.processes.is_multiprocess:
        raise ConfigError(
            "the training job runs in one process (its checkpoints are written by one "
            "writer); use a single-process mesh such as mesh=cpu8 or mesh=gpu"
        )
    start_backend(settings.mesh, compilation_cache_dir=settings.compilation_cache_dir)
    labor = LaborArray(settings.mesh, **settings.alda.options())
    batch, description = _load(settings.data)
    train = settings.train
    n_rows = batch.n_rows
    n_train = int(n_rows * settings.task.train_fraction)
    n_eval = int(n_rows * settings.task.eval_fraction)
    if n_train < train.batch_size or n_eval < 1:
        raise ConfigError(
            f"task.train_fraction={settings.task.train_fraction} of {n_rows} rows gives "
            f"{n_train} training rows, fewer than train.batch_size={train.batch_size} (or no "
            "evaluation rows); use more data or a smaller batch"
        )
    split = Split(batch, n_train, n_eval)
    model, task = _model_and_task(settings, batch)
    optimizer = check_optimizer(settings.optimizer())
    prepared = task.prepare(model, split)
    run_fingerprint = fingerprint(
        settings.resolved_config
        or typed_config(
            train=settings.train, data=settings.data, task=settings.task, alda=settings.alda
        ),
        data=batch.arrays(),
        model=prepared.model,
    )

    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    trackers: list[Any] = []
    tracker = None
    if settings.tracking.kind == "mlflow":
        tracker = MlflowTracker(
            str(settings.tracking.tracking_uri),
            experiment=settings.tracking.experiment,
            run_name=output_dir.name,
            tags={"task": task.name, "output_dir": str(output_dir.absolute())},
        )
        tracker.log_params(flatten_params(settings.resolved_config))
        tracker.log_config(settings.resolved_config)
        trackers.append(tracker)
    try:
        result = fit(
            prepared.model,
            optimizer,
            _rows(prepared.examples, 0, n_train),
            loss=task.example_loss,
            labor=labor,
            spec=train,
            eval_examples=_rows(prepared.examples, n_train, n_train + n_eval),
            checkpoint_dir=output_dir / "checkpoints",
            metrics_path=output_dir / "metrics.jsonl",
            trackers=trackers,
            progress=settings.progress,
            stop_at=settings.stop_at,
            checkpoint_metadata={"model": model_config(prepared.model)},
            fingerprint=run_fingerprint,
        )
        evaluation = task.evaluate(result.model, prepared, split, labor=labor, data=settings.data)
        report = _report(settings, task, result, evaluation, split, description)
        report["normalization"] = prepared.normalization or None
        if settings.export is not None:
            names = task.input_names(split.batch)
            report["export"] = _export(settings, task, result, prepared, evaluation, report, names)
        report["outputs"] = _write(report, task, result, output_dir, settings.resolved_config)
        if tracker is not None:
            final = {k: v for k, v in report["summary"].items() if isinstance(v, int | float)}
            tracker.log_metrics(result.state.step, final)
            tracker.log_artifacts(
                [output_dir / name for name in ("metrics.jsonl", *report["outputs"].values())]
            )
            report["mlflow"] = {"tracking_uri": tracker.tracking_uri, "run_id": tracker.run_id}
            if "export" in report:
                report["mlflow"]["model"] = tracker.log_model_bundle(
                    Path(report["export"]["bundle"]),
                    report["export"].get("name") or f"liam-{task.name}",
                    alias=report["export"]["alias"],
                )
            tracker.close("FINISHED")
            tracker = None
    finally:
        if tracker is not None:
            tracker.close("FAILED")
    return report


def _export(
    settings: TrainSettings,
    task: Task,
    result: TrainResult,
    prepared: Prepared,
    evaluation: Evaluation,
    report: Mapping[str, Any],
    feature_names: list[str],
) -> dict[str, Any]:
    """The trained model as a servable, handed to ``settings.export`` with the run's record."""
    servable = task.servable(result.model, task.serving_state(prepared, evaluation), feature_names)
    run = {
        "task": task.name,
        "source": report["source"],
        "digest": report["digest"],
        "summary": report["summary"],
        "training": {k: report["training"][k] for k in ("steps", "best_step", "best_eval_loss")},
        "config": dict(settings.resolved_config),
    }
    return dict(settings.export(servable, run, Path(settings.output_dir)))


def _report(
    settings: TrainSettings,
    task: Task,
    result: TrainResult,
    evaluation: Evaluation,
    split: Split,
    description: str,
) -> dict[str, Any]:
    """The report: what every task reports (training, model, mesh), then the task's part."""
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
        "set_aside": list(result.set_aside),
        "steps_this_run": result.steps_this_call,
        "seconds": result.seconds,
        "batch_size": settings.train.batch_size,
        "steps_per_dispatch": settings.train.steps_per_dispatch,
        "train_rows": split.n_train,
        "eval_rows": split.n_eval,
    }
    report: dict[str, Any] = {
        "task": task.name,
        "source": description,
        "n_rows": split.batch.n_rows,
        "metrics": list(split.batch.metric_names),
        "model": model_config(model),
        "mesh": mesh_summary(settings.mesh, settings.alda.chunk_size, devices="count"),
        "training": training,
        "curves": {"step_loss_eval_loss": losses, **evaluation.curves},
        **evaluation.report,
    }
    summary = {
        **evaluation.summary,
        "best_eval_loss": training["best_eval_loss"],
        "final_loss": training["final_loss"],
    }
    report["summary"] = {k: v for k, v in summary.items() if v is not None}
    model_arrays = jax.device_get(jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)))
    numeric: dict[str, Any] = {
        "model": model_arrays,
        "state": state.arrays(),
        **evaluation.numeric,
        "curves": np.asarray(losses, np.float64),
    }
    report["digests"] = {name: digest(value) for name, value in numeric.items()}
    report["digest"] = digest({k: v for k, v in numeric.items() if k != "state"})
    return report


def _write(
    report: dict[str, Any],
    task: Task,
    result: TrainResult,
    output_dir: Path,
    config: Mapping[str, Any],
) -> dict[str, str]:
    """The plots, ``config.json``, then ``report.json`` (without the curves), listing them all."""
    curves = report["curves"]
    paths = {
        "curves": plot_training_curves(
            curves["step_loss_eval_loss"],
            result.state.best_step,
            output_dir / "training_curves.png",
        ),
        **task.plots(curves, output_dir),
        "config": write_json(output_dir / "config.json", config),
    }
    outputs = {name: str(path) for name, path in paths.items()}
    outputs["report"] = str(output_dir / "report.json")
    saved = {k: v for k, v in report.items() if k != "curves"}
    saved["outputs"] = outputs
    write_json(output_dir / "report.json", saved)
    return outputs
