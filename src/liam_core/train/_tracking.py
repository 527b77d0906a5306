"""Where a run's numbers go: a JSONL file in the run folder, always; MLflow when asked.

:class:`MetricsLog` appends one JSON object per record to ``metrics.jsonl``. A resumed run
first rewrites the file (atomically) without the records past the step it resumes from, so
the file of a run that was killed and resumed reads like the file of a run that never was.

:class:`MlflowTracker` sends parameters, metrics, artifacts and the resolved config to an
MLflow tracking store, e.g. a local SQLite file (``sqlite:///path/mlflow.db``); no server is
needed. It needs the ``track`` extra (``mlflow-skinny``, ``sqlalchemy``, ``alembic``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from .._checks import quote
from .._errors import ConfigError
from .._evidence import to_jsonable, write_atomically

TrackingKind = Literal["jsonl", "mlflow"]
"""Values of the ``tracking`` setting: ``jsonl`` only, or ``mlflow`` as well."""


class Tracker(Protocol):
    """What the training loop reports to, besides the JSONL file."""

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` at ``step``."""


class MetricsLog:
    """Append-only ``metrics.jsonl``: one ``{"step": ..., "time": ..., <metric>: ...}`` per line.

    Args:
        path: the JSONL file.
        resume_step: keep the existing records up to this step (a resumed run) and drop the
            later ones and any line cut short by a crash; ``0`` or ``None`` starts afresh.

    Example:
        >>> import tempfile, pathlib
        >>> from liam_core.train import MetricsLog
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl"
        >>> log = MetricsLog(path)
        >>> log.log_metrics(10, {"loss": 0.5}); log.log_metrics(20, {"loss": 0.25})
        >>> [record["loss"] for record in MetricsLog(path, resume_step=10).records()]
        [0.5]
    """

    def __init__(self, path: str | os.PathLike[str], *, resume_step: int | None = None) -> None:
        self.path = Path(path)
        kept = []
        if resume_step and self.path.exists():
            kept = [
                r
                for r in self._read()
                if isinstance(r.get("step"), int) and r["step"] <= resume_step
            ]
        text = "".join(json.dumps(record) + "\n" for record in kept)
        write_atomically(self.path, text.encode())

    def _read(self) -> list[dict[str, Any]]:
        records = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(record, dict):
                records.append(record)
        return records

    def records(self) -> list[dict[str, Any]]:
        """Every record so far, in order."""
        return self._read()

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append one record (flushed at once, so a killed run keeps what it logged)."""
        record = {"step": int(step), "time": round(time.time(), 3)}
        record.update({name: to_jsonable(float(value)) for name, value in metrics.items()})
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")
            file.flush()


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    # MLflow's SQLAlchemy models still use the `noload` strategy, which SQLAlchemy 2.1 marks
    # deprecated; the warning is theirs, not ours, and says nothing about this run.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r".*``noload`` loader strategy is deprecated",
            category=DeprecationWarning,
        )
        yield


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow parameters: ``{"optim.learning_rate": "0.001", ...}``.

    Example:
        >>> from liam_core.train import flatten_params
        >>> flatten_params({"model": {"width": 16, "_target_": "make_model"}, "tags": [1, 2]})
        {'model.width': '16', 'model._target_': 'make_model', 'tags': '[1, 2]'}
    """
    params: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            params.update(flatten_params(value, f"{name}."))
        else:
            params[name] = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return params


class MlflowTracker:
    """One MLflow run in a tracking store: parameters, metrics, artifacts, the resolved config.

    Args:
        tracking_uri: the store, e.g. ``sqlite:////abs/path/mlflow.db``.
        experiment: the MLflow experiment name (created on first use).
        run_name: the run's name.
        artifact_root: where the experiment stores artifacts when it is created (default: an
            ``artifacts`` folder beside a SQLite file; MLflow's own default is the current
            folder).
        tags: tags of the run.

    Example (needs the ``track`` extra)::

        tracker = MlflowTracker("sqlite:///mlruns/mlflow.db", experiment="liam-core")
        tracker.log_params({"optim.learning_rate": "0.001"})
        tracker.log_metrics(10, {"loss": 0.5})
        tracker.close("FINISHED")
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        experiment: str = "liam-core",
        run_name: str | None = None,
        artifact_root: str | os.PathLike[str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(tracking_uri, str) or not tracking_uri:
            raise ConfigError(
                f"`mlflow.tracking_uri` must be a non-empty URI, got {quote(tracking_uri)}"
            )
        try:
            from mlflow import MlflowClient
        except ImportError as error:
            raise ConfigError(
                f"tracking=mlflow needs the `track` extra: pip install 'liam-core[track]' ({error})"
            ) from None
        if tracking_uri.startswith("sqlite:///"):
            database = Path(tracking_uri.removeprefix("sqlite:///"))
            database.parent.mkdir(parents=True, exist_ok=True)
            if artifact_root is None:
                artifact_root = database.parent / "artifacts"
        self.tracking_uri = tracking_uri
        with _quiet_mlflow():
            self._client = MlflowClient(tracking_uri=tracking_uri)
            found = self._client.get_experiment_by_name(experiment)
            if found is None:
                location = Path(artifact_root).absolute().as_uri() if artifact_root else None
                experiment_id = self._client.create_experiment(
                    experiment, artifact_location=location
                )
            else:
                experiment_id = found.experiment_id
            run = self._client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.experiment_id = experiment_id
        self.run_id = run.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters (values become text, cut to MLflow's 6000-character limit)."""
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        with _quiet_mlflow():
            for start in range(0, len(items), 100):  # MLflow takes at most 100 per batch
                self._client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record finite metrics at ``step`` (MLflow stores no NaN or infinity)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(name, float(value), now, int(step))
            for name, value in metrics.items()
            if math.isfinite(float(value))
        ]
        if items:
            with _quiet_mlflow():
                self._client.log_batch(self.run_id, metrics=items)

    def log_config(self, config: Mapping[str, Any], name: str = "config.json") -> None:
        """Store the resolved config as a JSON artifact."""
        with _quiet_mlflow():
            self._client.log_dict(self.run_id, dict(config), name)

    def log_artifacts(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        """Copy files (reports, plots, the metrics file) into the run's artifacts."""
        with _quiet_mlflow():
            for path in paths:
                self._client.log_artifact(self.run_id, str(path))

    def log_model_bundle(
        self, bundle: str | os.PathLike[str], name: str, *, alias: str
    ) -> dict[str, Any]:
        """Log an export bundle as the run's ``model`` artifacts and register it as a new
        version of ``name`` in MLflow's model registry (same store), with ``alias``."""
        with _quiet_mlflow():
            self._client.log_artifacts(self.run_id, str(bundle), artifact_path="model")
            from mlflow.exceptions import MlflowException

            try:
                self._client.create_registered_model(name)
            except MlflowException:  # it exists already
                pass
            run = self._client.get_run(self.run_id)
            version = self._client.create_model_version(
                name, f"{run.info.artifact_uri}/model", run_id=self.run_id
            )
            self._client.set_registered_model_alias(name, alias, version.version)
        return {"registered_model": name, "version": int(version.version), "alias": alias}

    def close(self, status: str = "FINISHED") -> None:
        """End the run with ``FINISHED``, ``FAILED`` or ``KILLED``."""
        with _quiet_mlflow():
            self._client.set_terminated(self.run_id, status=status)
