"""Export bundles, the in-process predictor, the model repository and the edge artifact, as a
specification: raw rows in, named outputs out, every file hashed, nothing recompiled."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import jax
import numpy as np
import optax
import pandas as pd
import pytest
from _helpers import ROOT, clean_env

from liam_core import (
    BundleError,
    EmptyInputError,
    InvalidTypeError,
    InvalidValueError,
    MissingMetricError,
    ShapeError,
    UnknownMetricError,
)
from liam_core.data import DataSpec
from liam_core.mesh import MeshSpec
from liam_core.models import make_model
from liam_core.serve import (
    ExportSpec,
    ModelRepository,
    Predictor,
    export_bundle,
    load_bundle,
    reexport,
    verify_bundle,
)
from liam_core.testing import CompileCounter
from liam_core.train import (
    AnomalyDetection,
    Regression,
    ShiftClassification,
    TaskSpec,
    TrainSettings,
    TrainSpec,
    run_training,
)

EXAMPLE = ROOT / "examples" / "metrics.csv"
FEATURES = ["cpu", "latency_ms", "errors"]


def example_rows() -> np.ndarray:
    """Real rows: the shipped example's metrics, complete rows only."""
    frame = pd.read_csv(EXAMPLE, usecols=FEATURES).dropna()
    return frame.to_numpy(np.float32)


@pytest.fixture(scope="module")
def autoencoder():
    rows = example_rows()
    model = make_model("autoencoder", in_features=3, width=16, latent=2, seed=1)
    model = model.with_normalization(rows.mean(axis=0), rows.std(axis=0))
    return model


@pytest.fixture(scope="module")
def bundle_dir(autoencoder, tmp_path_factory):
    servable = AnomalyDetection(TaskSpec(attribution_steps=16)).servable(
        autoencoder, {"threshold": np.float32(3.0)}, FEATURES
    )
    return export_bundle(
        servable, tmp_path_factory.mktemp("export") / "model", run={"digest": "abc"}
    )


@pytest.fixture(scope="module")
def predictor(bundle_dir):
    return Predictor.load(bundle_dir, max_batch_size=16)


# --------------------------------------------------------------------------- the bundle


def test_a_bundle_holds_hashed_files_and_a_manifest_that_describes_its_model(bundle_dir):
    names = sorted(path.name for path in bundle_dir.iterdir())
    assert names == ["SHA256SUMS", "explain.jaxexport", "forward.jaxexport", "manifest.json",
                     "model.onnx", "weights.npz"]  # fmt: skip
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    assert manifest["outputs"] == [
        {"name": "anomaly", "datatype": "BOOL", "shape": [-1]},
        {"name": "score", "datatype": "FP32", "shape": [-1]},
    ]
    assert manifest["feature_names"] == FEATURES and manifest["task"] == "anomaly_detection"
    assert manifest["functions"]["forward"]["platforms"] == ["cpu", "cuda"]
    assert manifest["functions"]["explain"]["outputs"] == {
        "attributions": {"datatype": "FP32", "shape": [-1, 3]}
    }
    assert manifest["versions"]["jax"] == jax.__version__
    assert manifest["run"] == {"digest": "abc"} and manifest["model"]["name"] == "autoencoder"
    sums = dict(
        line.split("  ")[::-1] for line in (bundle_dir / "SHA256SUMS").read_text().splitlines()
    )
    assert sorted(sums) == [name for name in names if name != "SHA256SUMS"]
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=bundle_dir, capture_output=True)
    assert check.returncode == 0, check.stdout  # the coreutils tool reads it
    with np.load(bundle_dir / "weights.npz", allow_pickle=False) as weights:
        assert "threshold" in weights.files and weights["threshold"] == np.float32(3.0)


def tampered(bundle_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(bundle_dir), str(copy)], check=True)
    return copy


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: (d / "weights.npz").write_bytes((d / "weights.npz").read_bytes()[:-7]),
         r"weights\.npz: its sha256 differs .*truncated or was changed"),
        (lambda d: (d / "forward.jaxexport").write_bytes(b"\0" + (d / "forward.jaxexport").read_bytes()[1:]),
         r"forward\.jaxexport: its sha256 differs"),
        (lambda d: (d / "explain.jaxexport").unlink(), r"explain\.jaxexport: missing from the bundle"),
        (lambda d: (d / "notes.txt").write_text("hi"), r"notes\.txt: a file the bundle's hashes do not list"),
        (lambda d: (d / "SHA256SUMS").unlink(), r"SHA256SUMS: unreadable"),
        (lambda d: (d / "manifest.json").write_text("{}"), r"manifest\.json: its sha256 differs"),
    ],
    ids=["truncated-weights", "changed-function", "missing-file", "extra-file", "no-sums", "manifest"],
)  # fmt: skip
def test_a_tampered_or_truncated_bundle_is_refused_naming_the_file(
    bundle_dir, tmp_path, change, message
):
    copy = tampered(bundle_dir, tmp_path)
    change(copy)
    with pytest.raises(BundleError, match=message):
        Predictor.load(copy)


def rewrite_manifest(directory: Path, edit) -> None:
    """Change the manifest and recompute every hash (a consistent, but other, bundle)."""
    from liam_core.serve._bundle import sha256_file

    manifest = json.loads((directory / "manifest.json").read_text())
    edit(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    names = sorted(p.name for p in directory.iterdir() if p.name != "SHA256SUMS")
    sums = "".join(f"{sha256_file(directory / name)}  {name}\n" for name in names)
    (directory / "SHA256SUMS").write_text(sums)


def test_a_bundle_past_the_compatibility_window_says_how_to_reexport_and_reexport_works(
    bundle_dir, predictor, tmp_path
):
    copy = tampered(bundle_dir, tmp_path)

    def too_old(manifest):
        manifest["functions"]["forward"]["calling_convention_version"] = 1

    rewrite_manifest(copy, too_old)
    with pytest.raises(
        BundleError, match=r"calling convention 1 .*Re-export it from its weights.*reexport"
    ):
        load_bundle(copy)  # fmt: skip
    reexport(copy)
    rows = example_rows()[:50]
    again = Predictor.load(copy, max_batch_size=16).predict(rows, explain=True)
    expected = predictor.predict(rows, explain=True)
    for name in ("score", "anomaly", "attributions"):
        np.testing.assert_array_equal(again[name], expected[name])
    assert json.loads((copy / "manifest.json").read_text())["run"] == {"digest": "abc"}


def test_an_unknown_bundle_format_is_refused(bundle_dir, tmp_path):
    copy = tampered(bundle_dir, tmp_path)
    rewrite_manifest(copy, lambda manifest: manifest.update(format=99))
    with pytest.raises(BundleError, match="bundle format 99; this liam-core reads format 1"):
        verify_bundle(copy)


# --------------------------------------------------------------------------- the predictor


def test_the_predictor_gives_the_models_scores_on_real_rows(autoencoder, predictor):
    rows = example_rows()[:1000]
    out = predictor.predict(rows)
    expected = np.asarray(jax.vmap(autoencoder.anomaly_score)(rows))
    np.testing.assert_allclose(out["score"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["anomaly"], out["score"] > 3.0)
    assert out["score"].dtype == np.float32 and out["anomaly"].dtype == np.bool_


def test_the_predictor_compiles_each_bucket_once_at_load_and_never_again(predictor):
    assert predictor.buckets == (1, 2, 4, 8, 16)
    assert predictor.compilations == 2 * len(predictor.buckets)  # forward and explain
    rows = example_rows()
    with CompileCounter() as compiles:
        for n in (1, 2, 3, 5, 16, 17, 40, 1):
            predictor.predict(rows[:n])
        predictor.predict(rows[:7], explain=True)
    assert compiles.count == 0 and predictor.compilations == 10


def test_a_single_row_and_named_records_are_rows_too(predictor):
    rows = example_rows()[:3]
    expected = predictor.predict(rows)["score"]
    # bucket 1 against bucket 4: XLA may vectorize differently, within a float32 rounding
    np.testing.assert_allclose(predictor.predict(rows[0])["score"], expected[:1], rtol=1e-6)
    records = [dict(zip(FEATURES, map(float, row), strict=True)) for row in rows]
    np.testing.assert_array_equal(predictor.predict(records)["score"], expected)
    columns = pd.DataFrame(rows, columns=FEATURES)
    np.testing.assert_array_equal(predictor.predict(columns)["score"], expected)


def test_attributions_say_which_metric_drove_a_score(predictor, autoencoder):
    rows = example_rows()[:200]
    spike = rows[100].copy()
    spike[1] *= 25  # a latency spike
    out = predictor.predict(np.vstack([rows[99], spike]), explain=True)
    attributions = out["attributions"]
    assert attributions.shape == (2, 3)
    assert int(np.argmax(np.abs(attributions[1]))) == FEATURES.index("latency_ms")
    baseline = float(autoencoder.anomaly_score(autoencoder.baseline))
    np.testing.assert_allclose(attributions.sum(axis=1), out["score"] - baseline, rtol=0.05)


@pytest.mark.parametrize(
    "x, error, message",
    [
        ([[1.0, 2.0]], ShapeError, r"`x` must have shape \[batch, 3\] .*got \[1, 2\]"),
        (np.zeros((0, 3)), EmptyInputError, "`x` has no rows"),
        ([[1.0, np.nan, 2.0]], InvalidValueError, r"`x` row 0, feature `latency_ms` must be a finite number, got nan"),
        ([[1.0, 2.0, 1e39]], InvalidValueError, r"feature `errors`: 1e\+39 does not fit float32"),
        ([["a", "b", "c"]], InvalidTypeError, "`x` must hold real numbers"),
        ({"cpu": [1.0], "latency_ms": [2.0]}, MissingMetricError, "errors"),
        ({"cpu": [1.0], "latency_ms": [2.0], "errors": [0.0], "disk": [1.0]}, UnknownMetricError, "disk"),
    ],
    ids=["shape", "empty", "nan", "overflow", "text", "missing-metric", "unknown-metric"],
)  # fmt: skip
def test_bad_rows_get_a_typed_error_naming_row_and_feature(predictor, x, error, message):
    with pytest.raises(error, match=message):
        predictor.predict(x)


def test_a_classifier_and_a_regressor_serve_from_raw_rows(tmp_path):
    rows = example_rows()[:300]
    mean, scale = rows.mean(axis=0), rows.std(axis=0)
    classifier = make_model("mlp_classifier", in_features=3, n_classes=3, width=8, seed=2)
    servable = ShiftClassification(TaskSpec()).servable(
        classifier, {"mean": mean, "scale": scale}, FEATURES
    )
    out = Predictor.load(export_bundle(servable, tmp_path / "c", edge=False)).predict(rows)
    z = (rows - mean) / scale
    np.testing.assert_allclose(
        out["probabilities"], jax.vmap(classifier.predict_proba)(z), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(out["shift"], np.argmax(out["probabilities"], axis=1))
    regressor = make_model("mlp_regressor", in_features=2, out_features=1, width=8, seed=3)
    state = {
        "mean": mean[:2],
        "scale": scale[:2],
        "target_mean": mean[2:],
        "target_scale": scale[2:],
    }
    servable = Regression(TaskSpec(target="errors")).servable(regressor, state, FEATURES[:2])
    out = Predictor.load(export_bundle(servable, tmp_path / "r", edge=False)).predict(rows[:, :2])
    expected = jax.vmap(regressor)(z[:, :2])[:, 0] * scale[2] + mean[2]
    np.testing.assert_allclose(out["prediction"], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(InvalidValueError, match="has no attributions"):
        Predictor.load(tmp_path / "r").predict(rows[:, :2], explain=True)


# --------------------------------------------------------------------------- the repository


def test_publishing_makes_numbered_versions_and_refuses_a_bad_bundle(bundle_dir, tmp_path):
    repo = ModelRepository(tmp_path / "repo")
    assert [repo.publish(bundle_dir, "ops") for _ in range(2)] == [1, 2]
    assert repo.models() == ["ops"] and repo.versions("ops") == [1, 2]
    assert repo.path("ops") == tmp_path / "repo" / "ops" / "2"
    verify_bundle(repo.path("ops", 1))
    bad = tampered(bundle_dir, tmp_path)
    (bad / "weights.npz").write_bytes(b"junk")
    with pytest.raises(BundleError, match=r"weights\.npz"):
        repo.publish(bad, "ops")
    assert repo.versions("ops") == [1, 2]
    assert sorted(p.name for p in (tmp_path / "repo" / "ops").iterdir()) == ["1", "2"]
    with pytest.raises(BundleError, match="no version 7"):
        repo.path("ops", 7)


def test_concurrent_publishers_get_distinct_versions(bundle_dir, tmp_path):
    repo = ModelRepository(tmp_path / "repo")
    versions: list[int] = []
    threads = [
        threading.Thread(target=lambda: versions.append(repo.publish(bundle_dir, "ops")))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == [1, 2, 3, 4, 5, 6] and repo.versions("ops") == [1, 2, 3, 4, 5, 6]


# --------------------------------------------------------------------------- the edge artifact

EDGE_RUNNER = """
import json, sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
names = [output.name for output in session.get_outputs()]
outputs = dict(zip(names, session.run(names, {"x": x})))
np.savez(sys.argv[3], **outputs)
print(json.dumps(sorted(m for m in ("jax", "jaxlib", "liam_core", "equinox") if m in sys.modules)))
"""


def test_the_edge_artifact_runs_without_jax_and_matches_the_predictor(
    bundle_dir, predictor, tmp_path
):
    rows = example_rows()[::7][:2000]
    np.save(tmp_path / "x.npy", rows)
    (tmp_path / "run.py").write_text(EDGE_RUNNER)
    ran = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "run.py"), str(bundle_dir / "model.onnx"),
         str(tmp_path / "x.npy"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, env=clean_env(), timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == []  # neither jax nor liam_core
    expected = predictor.predict(rows)
    with np.load(tmp_path / "out.npz") as edge:
        np.testing.assert_allclose(edge["score"], expected["score"], rtol=1e-5, atol=1e-5)
        agree = edge["anomaly"] == expected["anomaly"]
        near = np.abs(expected["score"] - 3.0) < 1e-4  # a score on the threshold may flip
        assert (agree | near).all()


# --------------------------------------------------------------------------- the training job


def test_a_training_run_writes_its_bundle_and_publishes_it(tmp_path):
    settings = TrainSettings(
        mesh=MeshSpec(axes={"data": -1}, name="cpu8"),
        data=DataSpec(kind="synthetic", n_records=4000, n_teams=4, seed=5),
        model=lambda in_features: make_model(
            "autoencoder", in_features=in_features, width=8, latent=2
        ),
        optimizer=lambda: optax.adam(1e-2),
        train=TrainSpec(steps=10, batch_size=256, eval_every=5),
        task=TaskSpec(top_anomalies=3, attribution_steps=8),
        output_dir=tmp_path / "run",
        progress=False,
        export=ExportSpec(repository=str(tmp_path / "repo"), name="ops", edge=False),
    )
    report = run_training(settings)
    assert report["export"] == {"bundle": str(tmp_path / "run" / "model"), "edge": False,
                                "alias": "latest-trained",
                                "repository": str(tmp_path / "repo"), "name": "ops", "version": 1}  # fmt: skip
    manifest = verify_bundle(tmp_path / "repo" / "ops" / "1")
    assert manifest["run"]["digest"] == report["digest"]
    assert manifest["run"]["summary"] == report["summary"]
    assert manifest["feature_names"] == report["metrics"]
    predictor = Predictor.load(tmp_path / "repo" / "ops" / "1")
    threshold = report["anomalies"]["threshold"]
    assert float(predictor.bundle.weights["threshold"]) == np.float32(threshold)
    from liam_core.data import SyntheticTelemetry

    batch = SyntheticTelemetry(4000, n_teams=4, seed=5).rows()
    for entry in report["anomalies"]["explanations"]["rows"]:
        row = batch.values[entry["row"]]
        assert predictor.predict(row)["score"][0] == pytest.approx(entry["score"], rel=1e-5)
