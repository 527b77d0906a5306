"""The training job's tasks (one per model class) and ``run_training`` from Python.

A task prepares the examples, names the per-example loss and measures the trained model;
the measurements are checked against scikit-learn and numpy. The Hydra side of the job is
in ``test_train_config.py``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import optax
import pytest
from sklearn.metrics import r2_score

from liam_core import ConfigError
from liam_core._evidence import to_jsonable
from liam_core.alda import LaborArray
from liam_core.data import SHIFTS, DataSpec, SyntheticTelemetry
from liam_core.mesh import MeshSpec
from liam_core.models import (
    MODELS,
    cross_entropy_example_loss,
    make_model,
    reconstruction_example_loss,
    squared_error_example_loss,
)
from liam_core.train import (
    AnomalyDetection,
    Regression,
    ShiftClassification,
    Split,
    TaskSpec,
    TrainSettings,
    TrainSpec,
    run_training,
    task_for,
)

N_ROWS = 3000
BATCH = SyntheticTelemetry(N_ROWS, n_teams=4, seed=5).rows()
N_METRICS = len(BATCH.metric_names)
SPLIT = Split(BATCH, n_train=1200, n_eval=300)
DATA = DataSpec(kind="synthetic", n_records=N_ROWS, n_teams=4, seed=5)
SETTINGS = {
    "autoencoder": {"in_features": N_METRICS, "latent": 2, "width": 8},
    "mlp_classifier": {"in_features": N_METRICS, "n_classes": len(SHIFTS), "width": 8},
    "mlp_regressor": {"in_features": N_METRICS - 1, "out_features": 1, "width": 8},
}


def model(name: str, **changes):
    return make_model(name, seed=0, **{**SETTINGS[name], **changes})


def test_the_model_class_picks_the_task_and_its_per_example_loss():
    expected = {
        "autoencoder": (AnomalyDetection, "anomaly_detection", reconstruction_example_loss),
        "mlp_classifier": (ShiftClassification, "shift_classification", cross_entropy_example_loss),
        "mlp_regressor": (Regression, "regression", squared_error_example_loss),
    }
    assert set(expected) == set(MODELS)
    spec = TaskSpec(target="quality")
    for name, (cls, task_name, loss) in expected.items():
        task = task_for(model(name), spec)
        assert type(task) is cls and task.name == task_name
        assert task.example_loss is loss and task.spec is spec


def test_anomaly_detection_standardizes_the_autoencoder_with_the_training_rows():
    prepared = AnomalyDetection(TaskSpec()).prepare(model("autoencoder"), SPLIT)
    train = BATCH.values[: SPLIT.n_train]
    norm = prepared.model.normalization
    np.testing.assert_array_equal(
        norm.mean, train.mean(axis=0, dtype=np.float64).astype(np.float32)
    )
    np.testing.assert_array_equal(
        norm.scale, train.std(axis=0, dtype=np.float64).astype(np.float32)
    )
    assert prepared.examples is BATCH.values and prepared.normalization is None


def test_the_classifier_gets_standardized_metrics_and_the_shift_codes():
    prepared = ShiftClassification(TaskSpec()).prepare(model("mlp_classifier"), SPLIT)
    x, y = prepared.examples
    train = BATCH.values[: SPLIT.n_train].astype(np.float64)
    np.testing.assert_allclose(x[: SPLIT.n_train].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(prepared.normalization["mean"], train.mean(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(y, BATCH.shift.astype(np.int32))
    assert x.dtype == np.float32 and y.dtype == np.int32


def test_the_regressor_predicts_the_target_from_the_other_metrics():
    target = BATCH.metric_names[2]
    prepared = Regression(TaskSpec(target=target)).prepare(model("mlp_regressor"), SPLIT)
    x, y = prepared.examples
    others = [j for j in range(N_METRICS) if j != 2]
    train = BATCH.values[: SPLIT.n_train].astype(np.float64)
    mean, scale = train[:, 2].mean(), train[:, 2].std()
    np.testing.assert_allclose(y, (BATCH.values[:, 2] - mean) / scale, rtol=1e-5, atol=1e-5)
    expected_x = (BATCH.values[:, others] - train[:, others].mean(0)) / train[:, others].std(0)
    np.testing.assert_allclose(x, expected_x, rtol=1e-5, atol=1e-5)
    assert prepared.normalization["target"]["mean"] == [pytest.approx(mean, rel=1e-12)]


@pytest.mark.parametrize(
    ("name", "changes", "task", "match"),
    [
        (
            "autoencoder",
            {"in_features": 5},
            TaskSpec(),
            r"model.in_features=5, but the data give 8",
        ),
        ("mlp_classifier", {"n_classes": 2}, TaskSpec(), r"model.n_classes must be 3"),
        ("mlp_regressor", {}, TaskSpec(target="nope"), r"task.target\s+must be one of \["),
        ("mlp_regressor", {"out_features": 2}, TaskSpec(target="quality"), "must be 1"),
    ],
)
def test_a_model_that_does_not_fit_the_data_is_refused_naming_the_setting(
    name, changes, task, match
):
    with pytest.raises(ConfigError, match=match):
        task_for(model(name, **changes), task).prepare(model(name, **changes), SPLIT)


def test_the_classifier_needs_data_with_shifts():
    split = dataclasses.replace(SPLIT, batch=dataclasses.replace(BATCH, shift=None))
    with pytest.raises(ConfigError, match="the data have no shifts"):
        ShiftClassification(TaskSpec()).prepare(model("mlp_classifier"), split)


def test_the_regression_r2_and_the_classification_accuracy_match_their_definitions():
    labor = LaborArray(2)
    held = SPLIT.held_out
    task = Regression(TaskSpec(target="quality"))
    regressor = model("mlp_regressor")
    prepared = task.prepare(regressor, SPLIT)
    evaluation = task.evaluate(regressor, prepared, SPLIT, labor=labor, data=DATA)
    x, y = prepared.examples
    predicted = np.asarray([float(regressor(row)[0]) for row in x[held][:5]])
    np.testing.assert_allclose(evaluation.numeric["predictions"][:5], predicted, rtol=1e-6)
    expected = r2_score(y[held].astype(np.float64), evaluation.numeric["predictions"])
    # The job takes the mean of the float32 targets in float32: agreement to float32 precision.
    assert evaluation.summary["eval_r2"] == pytest.approx(expected, rel=1e-5)

    task = ShiftClassification(TaskSpec())
    classifier = model("mlp_classifier")
    prepared = task.prepare(classifier, SPLIT)
    evaluation = task.evaluate(classifier, prepared, SPLIT, labor=labor, data=DATA)
    x, y = prepared.examples
    predicted = evaluation.numeric["predictions"]
    assert predicted.shape == (SPLIT.n_eval,)
    assert [int(classifier.predict(row)) for row in x[held][:5]] == predicted[:5].tolist()
    assert evaluation.summary == {
        "eval_accuracy": float(np.mean(predicted == y[held])),
        "classes": 3,
    }


def test_anomaly_detection_flags_above_the_held_out_quantile_and_measures_against_truth():
    labor = LaborArray(2)
    task = AnomalyDetection(TaskSpec(threshold_quantile=0.9, top_anomalies=2, attribution_steps=4))
    prepared = task.prepare(model("autoencoder"), SPLIT)
    evaluation = task.evaluate(prepared.model, prepared, SPLIT, labor=labor, data=DATA)
    scores = evaluation.numeric["scores"]
    anomalies = evaluation.report["anomalies"]
    threshold = float(np.quantile(scores[SPLIT.held_out].astype(np.float64), 0.9))
    assert anomalies["threshold"] == threshold
    assert anomalies["n_flagged"] == int(np.sum(scores > threshold))
    truth = (BATCH.anomaly != 0).any(axis=1)
    true_positives = int(np.sum((scores > threshold) & truth))
    assert anomalies["precision"] == true_positives / anomalies["n_flagged"]
    assert evaluation.summary == {k: anomalies[k] for k in ("precision", "recall", "f1")}
    assert set(anomalies["by_part"]) >= {"train", "reference", "unseen"}
    assert len(anomalies["explanations"]["rows"]) == 2
    assert evaluation.curves["threshold"] == threshold


def test_the_job_builds_each_model_for_the_metrics_its_task_feeds_it(tmp_path):
    from liam_core.train._job import _model_and_task

    for name, n_inputs in (("autoencoder", N_METRICS), ("mlp_regressor", N_METRICS - 1)):
        built, task = _model_and_task(_settings(name, tmp_path), BATCH)
        assert built.in_features == n_inputs == len(task.input_names(BATCH))
    regression = Regression(TaskSpec(target="quality"))
    assert "quality" not in regression.input_names(BATCH)


def _settings(name: str, output_dir, **changes) -> TrainSettings:
    return TrainSettings(
        mesh=MeshSpec(axes={"data": -1}, name="cpu8"),
        data=DATA,
        model=lambda in_features: model(name, in_features=in_features),
        optimizer=lambda: optax.adam(1e-2),
        train=TrainSpec(steps=10, batch_size=512, eval_every=5, log_every=5, checkpoint_every=5),
        task=TaskSpec(target="quality", top_anomalies=2, attribution_steps=4),
        output_dir=output_dir,
        progress=False,
        **changes,
    )


@pytest.mark.slow
def test_run_training_writes_its_report_and_a_rerun_resumes_to_the_same_digest(tmp_path):
    # The autoencoder, whose task writes the most (anomalies, explanations, a second plot);
    # each run compiles for 8 devices, so the other tasks are measured above, without the job.
    name = "autoencoder"
    report = run_training(_settings(name, tmp_path))
    task = task_for(model(name))
    assert report["task"] == task.name and report["training"]["steps"] == 10
    assert report["mesh"] == {
        "name": "cpu8",
        "axes": {"data": 8},
        "executor": "pmap",
        "chunk_size": 256,
        "devices": 8,
    }
    plots = {"training_curves.png", "anomaly_scores.png"}
    files = {path.name for path in tmp_path.iterdir()}
    assert {"report.json", "config.json", "metrics.jsonl", "checkpoints"} | plots == files
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved == to_jsonable({k: v for k, v in report.items() if k != "curves"})
    again = run_training(_settings(name, tmp_path))
    assert again["training"]["resumed_from"] == 10 and again["training"]["steps_this_run"] == 0
    assert again["digest"] == report["digest"] and again["summary"] == report["summary"]
