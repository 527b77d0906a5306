"""Training under ALDA: one step, the loop, early stopping, checkpoints, tracking, anomalies.

Runs in this process on simulated CPU devices; the tests that need another device count or
a killed process are in ``test_train_resume.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import shutil
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

from liam_core import (
    ConfigError,
    InvalidTypeError,
    InvalidValueError,
    LiamError,
    digest,
)
from liam_core.alda import LaborArray
from liam_core.data import SyntheticTelemetry
from liam_core.models import (
    MODELS,
    make_model,
    reconstruction_example_loss,
    trainable_filter,
)
from liam_core.testing import CompileCounter
from liam_core.train import (
    TASKS,
    CheckpointError,
    Checkpoints,
    MetricsLog,
    MlflowTracker,
    TaskSpec,
    TrackingSpec,
    TrainData,
    TrainSpec,
    TrainState,
    TrainStep,
    detection_quality,
    explain_top_anomalies,
    fit,
    task_for,
)

METRICS = ("productivity", "efficiency", "quality", "throughput")
VALUES = SyntheticTelemetry(3072, n_teams=4, seed=5, metrics=METRICS).rows().values
TRAIN, HELD_OUT = VALUES[:2560], VALUES[2560:]
SPEC = TrainSpec(
    steps=30, batch_size=512, eval_every=10, log_every=5, checkpoint_every=5, keep_checkpoints=3
)

# Reading an MLflow SQLite store with SQLAlchemy 2.1 warns about MLflow's own models (their
# `noload` relationships), not about anything here.
MLFLOW_SQLALCHEMY_WARNING = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


def autoencoder(seed: int = 0) -> eqx.Module:
    model = make_model("autoencoder", in_features=len(METRICS), latent=2, width=8, seed=seed)
    return model.with_normalization(TRAIN.mean(axis=0), TRAIN.std(axis=0))


def optimizer() -> optax.GradientTransformation:
    return optax.adam(optax.warmup_cosine_decay_schedule(0.0, 1e-2, 5, 30, 1e-4))


def train(run_dir: Path | None, *, labor: LaborArray | None = None, spec=SPEC, **kwargs):
    return fit(
        autoencoder(),
        optimizer(),
        TRAIN,
        loss=reconstruction_example_loss,
        labor=labor or LaborArray(2),
        spec=spec,
        eval_examples=HELD_OUT,
        checkpoint_dir=None if run_dir is None else run_dir / "checkpoints",
        metrics_path=None if run_dir is None else run_dir / "metrics.jsonl",
        **kwargs,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: a 30-step run that was never stopped."""
    return train(tmp_path_factory.mktemp("uninterrupted"))


# --------------------------------------------------------------------------- the step


@pytest.mark.slow
def test_a_step_gives_the_same_bits_on_1_2_and_4_devices_with_pmap_and_shard_map():
    # 8 devices against 2, in separate processes, are in test_train_resume.py.
    batch = TRAIN[:400]  # two chunks of 256 rows, the second one ragged
    digests = set()
    for labor in (
        LaborArray(1),
        LaborArray(2),
        LaborArray(2, executor="shard_map"),
        LaborArray(4),
    ):
        step = TrainStep(labor, optimizer(), loss=reconstruction_example_loss)
        model = autoencoder()
        opt_state = step.init(model)
        losses = []
        for _ in range(3):
            model, opt_state, loss = step(model, opt_state, batch)
            losses.append(loss)
        state = TrainState(model, opt_state, 3, 3, np.zeros(2, np.uint32))
        digests.add((state.digest(), digest(losses)))
    assert len(digests) == 1


def test_a_step_compiles_once_and_updates_only_trainable_parameters():
    step = TrainStep(LaborArray(2), optax.adam(1e-2), loss=reconstruction_example_loss)
    model = autoencoder()
    opt_state = step.init(model)
    model, opt_state, _ = step(model, opt_state, TRAIN[:512])
    with CompileCounter() as again:
        new_model, opt_state, loss = step(model, opt_state, TRAIN[512:1024])
        jax.block_until_ready(loss)
    assert again.count == 0
    frozen = eqx.filter(model, jax.tree_util.tree_map(lambda t: not t, trainable_filter(model)))
    frozen_after = eqx.filter(
        new_model, jax.tree_util.tree_map(lambda t: not t, trainable_filter(new_model))
    )
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            jax.tree_util.tree_leaves(frozen), jax.tree_util.tree_leaves(frozen_after), strict=True
        )
    )
    assert not np.array_equal(new_model.encoder.layers[0].weight, model.encoder.layers[0].weight)


# --------------------------------------------------------------------------- several steps per dispatch

BATCHES = [TRAIN[i * 400 : (i + 1) * 400] for i in range(6)]  # ragged: 2 chunks of 256 rows


def _multi_step_digest(labor: LaborArray, steps_per_dispatch: int) -> str:
    step = TrainStep(labor, optimizer(), loss=reconstruction_example_loss)
    model = autoencoder()
    opt_state, losses = step.init(model), []
    for start in range(0, len(BATCHES), steps_per_dispatch):
        model, opt_state, loss = step.run(
            model, opt_state, BATCHES[start : start + steps_per_dispatch]
        )
        losses.append(loss)
    return digest((eqx.filter(model, eqx.is_array), opt_state, np.concatenate(losses)))


def test_k_steps_in_one_dispatch_give_the_bytes_of_k_dispatches_of_one_step_on_1_2_and_8_devices():
    # Processes with 1 and 8 devices, under fit, are in test_train_resume.py.
    digests = {
        (repr(labor), k): _multi_step_digest(labor, k)
        for labor in (LaborArray(1), LaborArray(2, executor="shard_map"), LaborArray(8))
        for k in (1, 2, 6)
    }
    assert len(set(digests.values())) == 1, digests


def test_a_multi_step_dispatch_compiles_once_per_length_and_returns_one_loss_per_step():
    step = TrainStep(LaborArray(2), optax.adam(1e-2), loss=reconstruction_example_loss)
    model = autoencoder()
    opt_state = step.init(model)
    model, opt_state, losses = step.run(model, opt_state, BATCHES[:3])
    assert losses.shape == (3,) and losses.dtype == np.float32
    placed = step.put_many(BATCHES[3:])
    assert placed.n_steps == 3 and placed.n_rows == 400
    with CompileCounter() as again:
        model, opt_state, losses = step.run(model, opt_state, placed)
        jax.block_until_ready(losses)
    assert again.count == 0


def test_bad_multi_step_batches_raise_typed_errors_naming_what_is_wrong():
    step = TrainStep(LaborArray(2), optax.adam(1e-2), loss=reconstruction_example_loss)
    model = autoencoder()
    opt_state = step.init(model)
    with pytest.raises(InvalidTypeError, match=r"`batches` must be a non-empty sequence"):
        step.run(model, opt_state, [])
    with pytest.raises(InvalidTypeError, match=r"`batches` must be a non-empty sequence"):
        step.run(model, opt_state, TRAIN[:400])  # one batch, not a sequence of batches
    with pytest.raises(LiamError, match=r"batch 1 has \[\(\(300, 4\)"):
        step.run(model, opt_state, [TRAIN[:400], TRAIN[:300]])
    other = TrainStep(
        LaborArray(2, chunk_size=128), optax.adam(1e-2), loss=reconstruction_example_loss
    )
    with pytest.raises(ConfigError, match=r"placed for another home device or chunk_size"):
        step.run(model, opt_state, other.put_many(BATCHES[:2]))


def _fit_multi(run_dir: Path | None, steps_per_dispatch: int, **kwargs):
    spec = dataclasses.replace(SPEC, steps_per_dispatch=steps_per_dispatch)
    return train(run_dir, spec=spec, **kwargs)


@pytest.fixture(scope="module")
def uninterrupted_multi(tmp_path_factory):
    """The reference of the multi-step path: 30 steps, up to 4 per dispatch, never stopped."""
    return _fit_multi(tmp_path_factory.mktemp("uninterrupted_multi"), 4)


def test_fit_gives_one_digest_and_one_history_for_every_steps_per_dispatch_above_1(
    uninterrupted_multi,
):
    # Dispatches end on evaluations (every 10) and checkpoints (every 5): 3 steps, then 2, ...
    other = _fit_multi(None, 3, labor=LaborArray(8))
    assert other.digest() == uninterrupted_multi.digest()
    assert other.history == uninterrupted_multi.history
    assert [r["step"] for r in other.history if "loss" in r] == list(range(5, 31, 5))


@pytest.mark.parametrize("stop_at", [13, 22])
def test_a_multi_step_run_stopped_between_checkpoints_resumes_to_the_same_digest(
    uninterrupted_multi, tmp_path, stop_at
):
    stopped = _fit_multi(tmp_path, 4, stop_at=stop_at)
    assert stopped.state.step == stop_at  # a dispatch also ends at stop_at
    resumed = _fit_multi(tmp_path, 4, labor=LaborArray(1))
    assert resumed.resumed_from == stop_at and resumed.state.step == SPEC.steps
    assert resumed.digest() == uninterrupted_multi.digest()
    untimed = [[{k: v for k, v in r.items() if k != "time"} for r in run.history]
               for run in (resumed, uninterrupted_multi)]  # fmt: skip
    assert untimed[0] == untimed[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_task_of_every_model_has_a_per_example_loss_that_trains_it(name):
    x = (TRAIN - TRAIN.mean(axis=0)) / TRAIN.std(axis=0)
    settings = {
        "autoencoder": ({"in_features": 4, "width": 8}, x),
        "mlp_regressor": ({"in_features": 3, "out_features": 1, "width": 8}, (x[:, 1:], x[:, 0])),
        "mlp_classifier": (
            {"in_features": 4, "n_classes": 2, "width": 8},
            (x, (x[:, 0] > 0).astype(np.int32)),
        ),
    }
    model_settings, examples = settings[name]
    model = make_model(name, seed=0, **model_settings)
    task = task_for(model)
    assert type(task) is TASKS[MODELS[name]]
    spec = TrainSpec(steps=40, batch_size=512, eval_every=0, log_every=5, checkpoint_every=0)
    result = fit(
        model, optax.adam(1e-2), examples, loss=task.example_loss, labor=LaborArray(2), spec=spec
    )
    losses = [record["loss"] for record in result.history]
    assert losses[-1] < 0.8 * losses[0]


def test_a_model_without_a_task_is_refused_naming_the_models_that_have_one():
    assert set(TASKS) == set(MODELS.values())
    with pytest.raises(ConfigError, match=r"no task for a Linear; `model` must be one of \['Auto"):
        task_for(eqx.nn.Linear(2, 1, key=jax.random.key(0)))


def test_fit_and_train_step_need_the_loss_spelled_out():
    with pytest.raises(TypeError, match="loss"):
        TrainStep(LaborArray(2), optimizer())
    with pytest.raises(TypeError, match="loss"):
        fit(autoencoder(), optimizer(), TRAIN, labor=LaborArray(2), spec=SPEC)
    with pytest.raises(InvalidTypeError, match="TrainStep: `loss` must be a per-example loss"):
        TrainStep(LaborArray(2), optimizer(), loss="mse")


# --------------------------------------------------------------------------- the loop


def test_fit_logs_every_k_steps_evaluates_every_k_steps_and_writes_jsonl(uninterrupted, tmp_path):
    history = uninterrupted.history
    assert [r["step"] for r in history if "loss" in r] == [5, 10, 15, 20, 25, 30]
    assert [r["step"] for r in history if "eval_loss" in r] == [10, 20, 30]
    assert history[-1]["loss"] < history[0]["loss"]
    state = uninterrupted.state
    assert (state.step, state.position, state.stopped) == (30, 30, False)
    assert state.best_eval == min(r["eval_loss"] for r in history if "eval_loss" in r)


def test_the_data_order_is_a_function_of_the_rng_and_the_position():
    data = TrainData(np.arange(10)[:, None], batch_size=4, shuffle=True)
    key = np.array([0, 7], np.uint32)
    epoch = np.concatenate([data.batch(p, rng=key) for p in range(2)]).ravel()
    assert len(set(epoch.tolist())) == 8  # 2 whole batches, no repeats, 2 rows left out
    again = TrainData(np.arange(10)[:, None], batch_size=4, shuffle=True)
    assert np.array_equal(again.batch(1, rng=key), data.batch(1, rng=key))
    assert not np.array_equal(data.batch(2, rng=key), data.batch(0, rng=key))  # a new epoch


def test_early_stopping_ends_the_run_after_patience_evaluations_without_improvement(tmp_path):
    spec = dataclasses.replace(SPEC, steps=100, eval_every=5, patience=2)
    result = fit(
        autoencoder(),
        optax.sgd(0.0),  # nothing improves after the first evaluation
        TRAIN,
        loss=reconstruction_example_loss,
        labor=LaborArray(2),
        spec=spec,
        eval_examples=HELD_OUT,
        checkpoint_dir=tmp_path / "checkpoints",
    )
    assert result.stopped_early and result.state.step == 15
    assert (result.state.best_step, result.state.evals_since_best) == (5, 2)
    again = fit(
        autoencoder(),
        optax.sgd(0.0),
        TRAIN,
        loss=reconstruction_example_loss,
        labor=LaborArray(2),
        spec=spec,
        eval_examples=HELD_OUT,
        checkpoint_dir=tmp_path / "checkpoints",
    )
    assert again.steps_this_call == 0 and again.digest() == result.digest()


def test_a_nan_loss_stops_the_run_with_an_error_naming_the_step():
    x = TRAIN / TRAIN.std(axis=0)
    labels = np.full(len(x), 5, np.int32)  # out of range for 2 classes: NaN losses
    model = make_model("mlp_classifier", in_features=4, n_classes=2, width=8, seed=0)
    spec = TrainSpec(steps=10, batch_size=512, eval_every=0, log_every=5, checkpoint_every=0)
    with pytest.raises(InvalidValueError, match="training loss is nan at step 5"):
        fit(
            model,
            optax.adam(1e-2),
            (x, labels),
            loss=task_for(model).example_loss,
            labor=LaborArray(2),
            spec=spec,
        )


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"steps": 0}, r"`train.steps` must be an int >= 1, got 0"),
        ({"batch_size": 2.0}, r"`train.batch_size` must be an int >= 1, got float: 2.0"),
        ({"eval_every": -1}, r"`train.eval_every` must be an int >= 0, got -1"),
        ({"patience": 0}, r"`train.patience` must be an int >= 1, got 0"),
        ({"patience": 2, "eval_every": 0}, r"train.patience=2 stops early on evaluations"),
        ({"min_delta": float("nan")}, r"`train.min_delta` must be a finite number >= 0, got nan"),
        ({"keep_checkpoints": 0}, r"`train.keep_checkpoints` must be an int >= 1, got 0"),
        ({"shuffle": "yes"}, r"`train.shuffle` must be True or False, got str: 'yes'"),
        ({"seed": -1}, r"`train.seed` must be an int >= 0, got -1"),
        ({"steps_per_dispatch": 0}, r"`train.steps_per_dispatch` must be an int >= 1, got 0"),
        ({"steps_per_dispatch": 2.0}, r"`train.steps_per_dispatch` must be an int >= 1, got fl"),
    ],
)
def test_invalid_train_settings_raise_a_config_error_naming_the_setting(settings, match):
    with pytest.raises(ConfigError, match=match):
        TrainSpec(**settings)


def test_train_settings_that_pass_are_normalized_to_plain_python_values():
    spec = TrainSpec(steps=np.int64(10), min_delta=0, shuffle=np.bool_(False))
    assert (type(spec.steps), spec.steps) == (int, 10)
    assert (type(spec.min_delta), type(spec.shuffle)) == (float, bool)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"train_fraction": 1.0}, r"`task.train_fraction` must be a finite number in \(0, 1\)"),
        ({"eval_fraction": float("nan")}, r"`task.eval_fraction` must be .* in \(0, 1\), got nan"),
        ({"threshold_quantile": "0.9"}, r"`task.threshold_quantile` must be .*, got str: '0.9'"),
        ({"train_fraction": 0.8, "eval_fraction": 0.3}, r"`task.train_fraction \+ task.eval_f"),
        ({"top_anomalies": -1}, r"`task.top_anomalies` must be an int >= 0, got -1"),
        ({"attribution_steps": 1}, r"`task.attribution_steps` must be an int >= 2, got 1"),
        ({"target": 3}, r"`task.target` must be a metric name or null, got int: 3"),
    ],
)
def test_invalid_task_settings_raise_a_config_error_naming_the_setting(settings, match):
    with pytest.raises(ConfigError, match=match):
        TaskSpec(**settings)


def test_other_invalid_inputs_raise_typed_errors_naming_what_is_wrong():
    with pytest.raises(
        ConfigError, match=r"`train.batch_size` must be an int in \[1, 2560\] \(the training rows\)"
    ):
        fit(
            autoencoder(),
            optax.adam(1e-2),
            TRAIN,
            loss=reconstruction_example_loss,
            labor=LaborArray(2),
            spec=TrainSpec(),
        )
    with pytest.raises(InvalidTypeError, match=r"optax\.GradientTransformation"):
        TrainStep(LaborArray(2), "adam", loss=reconstruction_example_loss)
    with pytest.raises(InvalidTypeError, match="fit: `model` must be an Equinox module"):
        fit(
            {"w": np.ones(2)},
            optax.adam(1e-2),
            TRAIN,
            loss=reconstruction_example_loss,
            labor=LaborArray(2),
            spec=SPEC,
        )
    with pytest.raises(ConfigError, match="fit: `stop_at` must be an int >= 1 or None, got 0"):
        train(None, stop_at=0)
    with pytest.raises(ConfigError, match=r"`tracking.kind` must be one of 'jsonl', 'mlflow'"):
        TrackingSpec(kind="wandb")
    with pytest.raises(ConfigError, match=r"tracking.kind='mlflow' needs tracking.tracking_uri"):
        TrackingSpec(kind="mlflow")


# --------------------------------------------------------------------------- checkpoints


def test_a_stopped_run_resumed_in_process_ends_with_the_same_digest(uninterrupted, tmp_path):
    first = train(tmp_path, stop_at=12)
    assert first.state.step == 12
    resumed = train(tmp_path)
    assert resumed.resumed_from == 12 and resumed.steps_this_call == 18
    assert resumed.digest() == uninterrupted.digest()
    logged = [(r["step"], r.get("loss"), r.get("eval_loss")) for r in resumed.history]
    assert logged == [(r["step"], r.get("loss"), r.get("eval_loss")) for r in uninterrupted.history]


def test_checkpoints_keep_the_last_n_hold_no_pickle_and_record_the_run(tmp_path):
    train(tmp_path)
    checkpoints = Checkpoints(tmp_path / "checkpoints", keep=3)
    assert checkpoints.steps == [20, 25, 30]
    meta = checkpoints.metadata(30)
    checkpoints.close()
    assert (meta["step"], meta["position"]) == (30, 30)
    assert meta["names"]["model"][0].startswith(".encoder.layers[0]")
    files = [path for path in (tmp_path / "checkpoints").rglob("*") if path.is_file()]
    assert files
    for path in files:
        head = path.read_bytes()[:2]
        assert not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5), path  # pickle
        assert path.suffix not in (".pkl", ".pickle", ".npy")


def test_a_save_cut_short_leaves_no_checkpoint_and_its_temporary_folder_is_removed(
    uninterrupted, tmp_path
):
    train(tmp_path, stop_at=10)
    # What orbax leaves when the process dies mid-save: a temporary folder, never renamed.
    partial = tmp_path / "checkpoints" / "15.orbax-checkpoint-tmp"
    (partial / "state").mkdir(parents=True)
    (partial / "state" / "manifest.ocdbt").write_bytes(b"\x00" * 10)
    with Checkpoints(tmp_path / "checkpoints") as checkpoints:
        assert checkpoints.steps == [5, 10]
    resumed = train(tmp_path)
    assert resumed.resumed_from == 10 and resumed.digest() == uninterrupted.digest()
    assert not partial.exists()


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(0, len(data), 3):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _damage(step_dir: Path, how: str) -> None:
    files = sorted(path for path in step_dir.rglob("*") if path.is_file())
    if how == "truncate":
        for path in files:
            if "state" in path.parts:
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garble_arrays":
        for path in files:
            if path.parent.name == "d":
                _garble(path)
    elif how == "no_manifest":  # killed after orbax's rename, before the manifest
        (step_dir / "liam-manifest.json").unlink()
    elif how == "garble_metadata":
        (step_dir / "meta" / "metadata").write_text('{"format": ')
    elif how == "delete_arrays":
        shutil.rmtree(step_dir / "state")
    elif how == "flip_one_value":
        # Valid files whose numbers changed: only the digest written beside them can tell.
        step = int(step_dir.name)
        with Checkpoints(step_dir.parent) as checkpoints:
            original = checkpoints.metadata(step)["digest"]
            state = checkpoints.restore(_template(), step)
        shutil.rmtree(step_dir)
        bias = state.model.decoder.layers[0].bias
        changed = eqx.tree_at(lambda m: m.decoder.layers[0].bias, state.model, bias + 1)
        with Checkpoints(step_dir.parent) as checkpoints:
            checkpoints.save(dataclasses.replace(state, model=changed))
        meta_path = step_dir / "meta" / "metadata"
        meta = json.loads(meta_path.read_text())
        meta["digest"] = original
        meta_path.write_text(json.dumps(meta))
        manifest_path = step_dir / "liam-manifest.json"
        manifest = json.loads(manifest_path.read_text())
        data = meta_path.read_bytes()
        manifest["files"]["meta/metadata"] = [len(data), hashlib.sha256(data).hexdigest()]
        manifest_path.write_text(json.dumps(manifest))
    else:
        raise AssertionError(how)


def _template() -> TrainState:
    step = TrainStep(LaborArray(2), optimizer(), loss=reconstruction_example_loss)
    model = autoencoder()
    return TrainState(model, step.init(model), 0, 0, np.zeros(2, np.uint32))


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("truncate", "bytes, .* were written"),
        ("garble_arrays", "does not hold the bytes written"),
        ("garble_metadata", "file meta/metadata has"),
        ("delete_arrays", "file state/.* is missing"),
        ("no_manifest", "its save did not finish"),
        ("flip_one_value", "do not match the digest written with them"),
    ],
)
def test_a_corrupt_newest_checkpoint_is_reported_and_the_previous_one_is_used(
    how, reason, uninterrupted, tmp_path, caplog
):
    train(tmp_path, stop_at=20)
    _damage(tmp_path / "checkpoints" / "20", how)
    with caplog.at_level(logging.WARNING, logger="liam_core.train"):
        resumed = train(tmp_path)
    assert resumed.resumed_from == 15
    (skipped,) = resumed.skipped_checkpoints
    assert "checkpoint of step 20" in skipped and "is corrupt or partial" in skipped
    assert re.search(reason, skipped), skipped
    assert any("checkpoint of step 20" in message for message in caplog.messages)
    assert (tmp_path / "checkpoints-corrupt" / "20").is_dir()  # kept aside, as evidence
    assert resumed.digest() == uninterrupted.digest()


def test_when_no_checkpoint_can_be_used_the_error_names_each_and_nothing_is_moved(tmp_path):
    train(tmp_path, stop_at=10)
    for step in (5, 10):
        _damage(tmp_path / "checkpoints" / str(step), "garble_metadata")
    with pytest.raises(CheckpointError, match=r"no usable checkpoint in .*step 10.*step 5"):
        train(tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["10", "5"]
    assert issubclass(CheckpointError, LiamError)


def test_a_checkpoint_of_another_model_is_refused_not_skipped(tmp_path):
    train(tmp_path, stop_at=5)
    other = make_model("autoencoder", in_features=4, latent=2, width=16, seed=0)
    with pytest.raises(ConfigError, match="written by another model or optimizer"):
        fit(
            other,
            optimizer(),
            TRAIN,
            loss=reconstruction_example_loss,
            labor=LaborArray(2),
            spec=SPEC,
            checkpoint_dir=tmp_path / "checkpoints",
        )


def test_resuming_with_another_batch_size_is_refused_as_it_would_see_other_batches(tmp_path):
    train(tmp_path, stop_at=5)
    with pytest.raises(ConfigError, match=r"'batch_size': 512.*this run has .*'batch_size': 256"):
        train(tmp_path, spec=dataclasses.replace(SPEC, batch_size=256))


# --------------------------------------------------------------------------- tracking


def test_the_metrics_file_of_a_resumed_run_drops_records_past_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    for step in (5, 10, 15):
        log.log_metrics(step, {"loss": 1.0 / step})
    with path.open("a") as file:
        file.write('{"step": 20, "lo')  # a line cut short by a kill
    assert [r["step"] for r in MetricsLog(path, resume_step=10).records()] == [5, 10]
    assert MetricsLog(path).records() == []  # a fresh run starts a fresh file
    log.log_metrics(1, {"loss": math.inf})
    assert json.loads(path.read_text())["loss"] == "inf"


@MLFLOW_SQLALCHEMY_WARNING
@pytest.mark.slow
def test_mlflow_tracking_writes_params_metrics_artifacts_and_config_to_a_sqlite_store(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    tracker = MlflowTracker(uri, experiment="tests", run_name="small")
    tracker.log_params({"optim.learning_rate": 0.01, "train.steps": 30})
    tracker.log_config({"train": {"steps": 30}})
    result = train(tmp_path, trackers=[tracker])
    tracker.log_artifacts([tmp_path / "metrics.jsonl"])
    tracker.close()
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"optim.learning_rate": "0.01", "train.steps": "30"}
    history = client.get_metric_history(tracker.run_id, "eval_loss")
    assert [(m.step, m.value) for m in history] == [
        (r["step"], r["eval_loss"]) for r in result.history if "eval_loss" in r
    ]
    artifacts = {a.path for a in client.list_artifacts(tracker.run_id)}
    assert artifacts == {"config.json", "metrics.jsonl"}
    assert (tmp_path / "mlruns" / "artifacts").is_dir()  # beside the database, not in the cwd


# --------------------------------------------------------------------------- anomalies


def test_detection_quality_counts_precision_recall_and_f1():
    flagged = np.array([1, 1, 1, 0, 0, 0], bool)
    truth = np.array([1, 1, 0, 1, 0, 0], bool)
    assert detection_quality(flagged, truth) == {
        "n_rows": 6,
        "n_flagged": 3,
        "n_true_anomalies": 3,
        "true_positives": 2,
        "precision": 2 / 3,
        "recall": 2 / 3,
        "f1": pytest.approx(2 / 3),
    }
    assert detection_quality(np.zeros(3, bool), np.zeros(3, bool))["f1"] == 0.0


def test_explanations_attribute_a_spike_to_its_metric(uninterrupted):
    model = uninterrupted.model
    x = HELD_OUT.copy()
    scale = TRAIN.std(axis=0)
    x[7, 2] += 12 * scale[2]  # a spike in `quality`
    x[9] = 0.0  # a dropout: every metric reads 0
    scores = np.asarray(jax.vmap(model.anomaly_score)(x))
    anomaly = np.zeros(x.shape, np.int8)
    anomaly[7, 2], anomaly[9] = 1, 3
    explained = explain_top_anomalies(model, x, scores, METRICS, top=2, anomaly=anomaly)
    rows = {entry["row"]: entry for entry in explained["rows"]}
    assert set(rows) == {7, 9}
    assert rows[7]["top_metrics"][0]["metric"] == "quality"
    assert rows[7]["attribution_sum"] == pytest.approx(
        float(scores[7] - model.anomaly_score(model.baseline)), rel=0.05
    )
    assert explained["top_metric_hit_rate"] == 1.0 and explained["judged_rows"] == 1
