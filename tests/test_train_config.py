"""The training job's Hydra configs and ``experiments/train.py``: compose, build, run, track."""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx
import optax
import pytest
import yaml
from _helpers import EXPERIMENTS, ROOT, run_python
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from liam_core import ConfigError
from liam_core.config import CONFIG_MODULE, train_settings
from liam_core.models import model_config
from liam_core.train import TrainSettings, run_training

TRAIN = EXPERIMENTS / "train.py"
MODELS = sorted(path.stem for path in (ROOT / "conf" / "model").glob("*.yaml"))
OPTIMIZERS = sorted(path.stem for path in (ROOT / "conf" / "optim").glob("*.yaml"))

# Reading an MLflow SQLite store with SQLAlchemy 2.1 warns about MLflow's own models (their
# `noload` relationships), not about anything here.
MLFLOW_SQLALCHEMY_WARNING = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


def _compose_train(overrides: list[str], tmp_path: Path):
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return compose(
            "train",
            overrides=[*overrides, f"hydra.runtime.output_dir={tmp_path}"],
            return_hydra_config=True,
        )


def _settings(overrides: list[str], tmp_path: Path) -> TrainSettings:
    cfg = _compose_train(overrides, tmp_path)
    HydraConfig.instance().set_config(cfg)
    return train_settings(cfg)


def test_the_groups_hold_every_model_and_some_optimizers():
    assert MODELS == ["autoencoder", "mlp_classifier", "mlp_regressor"]
    assert {"adam", "adamw_cosine", "sgd"} <= set(OPTIMIZERS)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_builds_its_model_from_target(model, tmp_path):
    built = _settings([f"model={model}"], tmp_path).model(in_features=6)
    assert isinstance(built, eqx.Module) and model_config(built)["name"] == model
    assert model_config(built)["in_features"] == 6  # `in_features: null` comes from the data


def test_a_model_config_that_sets_in_features_keeps_it(tmp_path):
    built = _settings(["model.in_features=5"], tmp_path).model(in_features=6)
    assert model_config(built)["in_features"] == 5


@pytest.mark.parametrize("optim", OPTIMIZERS)
def test_every_optim_config_builds_an_optax_transformation_with_its_schedule(optim, tmp_path):
    settings = _settings([f"optim={optim}", "train.steps=77"], tmp_path)
    optimizer = settings.optimizer()
    assert isinstance(optimizer, optax.GradientTransformation)
    if optim == "adamw_cosine":  # the schedule decays over ${train.steps}
        assert settings.resolved_config["optim"]["learning_rate"]["decay_steps"] == 77


def test_the_anomaly_experiment_sets_its_data_and_task(tmp_path):
    settings = _settings(["experiment=anomaly"], tmp_path)
    assert settings.data.n_records == 200_000
    assert (settings.train.steps, settings.task.threshold_quantile) == (300, 0.999)
    assert settings.tracking.kind == "jsonl" and settings.output_dir == tmp_path


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.batch_size=0", "`train.batch_size` must be an int >= 1, got 0"),
        ("+train.bogus=1", r"train has unknown fields \['bogus'\]"),
        (
            "task.threshold_quantile=1.5",
            r"`task.threshold_quantile` must be a finite number in \(0, 1\), got 1.5",
        ),
        ("tracking.kind=wandb", "`tracking.kind` must be one of 'jsonl', 'mlflow', got 'wandb'"),
        ("tracking.tracking_uri=null", "tracking.kind='mlflow' needs tracking.tracking_uri"),
    ],
)
def test_invalid_overrides_raise_a_config_error_naming_the_field(override, match, tmp_path):
    overrides = ["tracking=mlflow", override] if "tracking_uri" in override else [override]
    with pytest.raises(ConfigError, match=match):
        _settings(overrides, tmp_path)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("model.width=0", "`width` must be an int >= 1, got 0"),
        ("model.name=transformer", "`name` must be one of"),
        ("optim._target_=optax.no_such_optimizer", "`optim._target_` must name a function"),
    ],
)
def test_a_bad_target_setting_fails_when_built_naming_the_group(override, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        settings = _settings([override], tmp_path)  # an unknown target: refused already here
        if override.startswith("optim"):
            settings.optimizer()
        else:
            settings.model(in_features=8)


def test_a_model_that_does_not_fit_the_data_is_refused_before_training(tmp_path):
    settings = _settings(
        ["model.in_features=5", "data.n_records=20000", "paths.cache_dir=null"],
        tmp_path,
    )
    with pytest.raises(ConfigError, match=r"model.in_features=5, but the data give 8 input"):
        run_training(settings)
    assert not (tmp_path / "report.json").exists()


@MLFLOW_SQLALCHEMY_WARNING
@pytest.mark.slow
def test_a_multirun_trains_on_two_meshes_to_one_digest_and_tracks_both_in_mlflow(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    result = run_python(
        TRAIN,
        [
            "-m",
            "mesh=cpu1,cpu4x2",
            "experiment=anomaly",
            "data.n_records=20000",
            "train.batch_size=1024",
            "train.steps=40",
            "train.eval_every=10",
            "train.checkpoint_every=20",
            "tracking=mlflow",
            f"tracking.tracking_uri={uri}",
            "progress=false",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("sweep/*/report.json"))]
    assert [r["mesh"]["name"] for r in reports] == ["cpu1", "cpu4x2"]
    assert len({r["digest"] for r in reports}) == 1
    for report in reports:
        anomalies = report["anomalies"]
        assert {"precision", "recall", "f1", "threshold"} <= set(anomalies)
        assert 0 <= anomalies["f1"] <= 1 and anomalies["n_true_anomalies"] > 0
        top = anomalies["explanations"]["rows"][0]
        assert top["top_metrics"][0]["metric"] in report["metrics"]
        folder = Path(report["outputs"]["report"]).parent
        assert {"training_curves.png", "anomaly_scores.png", "config.json", "metrics.jsonl"} <= {
            path.name for path in folder.iterdir()
        }
        assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["20", "40"]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("liam-core").experiment_id])
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["train.batch_size"] == "1024"
        assert {"loss", "eval_loss", "precision", "recall", "f1"} <= set(run.data.metrics)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.json", "report.json", "training_curves.png", "metrics.jsonl"} <= artifacts
        bundle = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
        assert {"model/manifest.json", "model/forward.jaxexport", "model/SHA256SUMS"} <= bundle
    # Each run registered its bundle as a version of one model; the alias is on the newest.
    versions = client.search_model_versions("name='liam-anomaly_detection'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert {v.run_id for v in versions} == {run.info.run_id for run in runs}
    latest = client.get_model_version_by_alias("liam-anomaly_detection", "latest-trained")
    assert int(latest.version) == 2


def test_the_anomaly_search_minimizes_the_validation_loss_with_optuna(tmp_path):
    cfg = _compose_train(["hparams_search=anomaly_optuna"], tmp_path)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert set(sweeper.params) == {"model.width", "model.latent", "optim.learning_rate"}
    assert cfg.optimized_metric == "training.best_eval_loss"
    assert cfg.data.n_records == 200_000  # the anomaly experiment


@pytest.mark.slow
def test_an_optuna_search_runs_each_trial_in_a_child_and_reports_the_best(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_python(
        TRAIN,
        [
            "hparams_search=anomaly_optuna",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=3",
            "data.n_records=20000",
            "train.batch_size=1024",
            "train.steps=30",
            "train.eval_every=10",
            "train.checkpoint_every=0",
            "task.top_anomalies=0",
            "progress=false",
            f"hydra.sweep.dir={sweep}",
        ],
        timeout=400,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = {
        path.parent.name: json.loads(path.read_text())["training"]["best_eval_loss"]
        for path in sweep.glob("*/report.json")
    }
    assert sorted(trials) == ["0", "1", "2"]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(trials.values()))
    assert set(best["best_params"]) == {"model.width", "model.latent", "optim.learning_rate"}
