"""The run folder: one process at a time, resuming only what the checkpoints belong to, stops.

A checkpoint records the fingerprint of the run that wrote it (the settings that change the
result, a sha256 of the data, the code); ``train.resume`` says what a run does with
checkpoints of another fingerprint. A SIGINT or SIGTERM stops the loop between two steps
with a checkpoint. The tests that need a second process (a real lock holder, a killed one,
the exit status of a stopped job) are in ``test_train_resume.py``; peers that never come, in
``test_distributed.py``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from pathlib import Path

import optax
import pytest

from liam_core import ConfigError, LiamError
from liam_core.alda import LaborArray
from liam_core.data import DataSpec, SyntheticTelemetry
from liam_core.mesh import MeshSpec
from liam_core.models import make_model, reconstruction_example_loss
from liam_core.train import (
    RESUMABLE,
    ResumeError,
    RunLock,
    RunLockedError,
    TaskSpec,
    TrainingInterrupted,
    TrainSettings,
    TrainSpec,
    fingerprint,
    fit,
    run_training,
)
from liam_core.train._run_dir import fingerprint_changes

METRICS = ("productivity", "efficiency", "quality", "throughput")
VALUES = SyntheticTelemetry(2048, n_teams=4, seed=5, metrics=METRICS).rows().values
TRAIN, HELD_OUT = VALUES[:1536], VALUES[1536:]
SPEC = TrainSpec(steps=10, batch_size=256, eval_every=5, log_every=5, checkpoint_every=5)
CONFIG = {
    "model": {"name": "autoencoder", "width": 8, "latent": 2, "seed": 0},
    "optim": {"_target_": "optax.adam", "learning_rate": 0.01},
    "data": {"kind": "synthetic", "n_records": 2048, "seed": 5},
    "train": {"steps": 10, "batch_size": 256, "seed": 0, "shuffle": True, "log_every": 5},
    "alda": {"chunk_size": 256, "max_in_flight": 16},
    "mesh": {"name": "cpu8", "axes": {"data": -1}},
}


def autoencoder(width: int = 8):
    model = make_model("autoencoder", in_features=len(METRICS), latent=2, width=width, seed=0)
    return model.with_normalization(TRAIN.mean(axis=0), TRAIN.std(axis=0))


def changed(config: dict, key: str, value) -> dict:
    """``config`` with the dotted ``key`` set to ``value`` (a deep copy)."""
    config = json.loads(json.dumps(config))
    *path, last = key.split(".")
    node = config
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value
    return config


def train(run_dir: Path, *, config=CONFIG, data=TRAIN, spec=SPEC, width=8, **kwargs):
    model = autoencoder(width)
    return fit(
        model,
        optax.adam(config["optim"]["learning_rate"]),
        data,
        loss=reconstruction_example_loss,
        labor=LaborArray(2),
        spec=spec,
        eval_examples=HELD_OUT,
        checkpoint_dir=run_dir / "checkpoints",
        metrics_path=run_dir / "metrics.jsonl",
        fingerprint=fingerprint(config, data=data, model=model),
        **kwargs,
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, object]:
    """A run folder whose 10-step run finished (checkpoints of steps 5 and 10)."""
    run_dir = tmp_path_factory.mktemp("finished")
    return run_dir, train(run_dir)


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    """A copy of the finished run's folder."""
    shutil.copytree(finished[0], tmp_path / "run")
    return tmp_path / "run"


# --------------------------------------------------------------------------- the fingerprint


def test_the_fingerprint_holds_what_changes_the_result_and_leaves_out_how_far_or_where():
    base = fingerprint(CONFIG, data=TRAIN, model=autoencoder())
    assert {"optim.learning_rate", "model.width", "data.seed", "train.seed"} <= set(base)
    assert {"data.sha256", "code.liam_core", "code.model", "code.model_config"} <= set(base)
    assert not [key for key in base if key.startswith(("mesh.", "train.steps", "alda.max"))]
    for key, value in [
        ("train.steps", 500),
        ("train.log_every", 1),
        ("train.resume", "force"),
        ("mesh.axes.data", 2),
        ("alda.max_in_flight", 4),
        ("progress", False),
    ]:
        assert fingerprint(changed(CONFIG, key, value), data=TRAIN, model=autoencoder()) == base
    for key, value in [
        ("train.seed", 1),
        ("train.batch_size", 512),
        ("train.shuffle", False),
        ("alda.chunk_size", 128),
    ]:
        other = fingerprint(changed(CONFIG, key, value), data=TRAIN, model=autoencoder())
        assert [k for k in base if base[k] != other[k]] == [key]
    assert (
        fingerprint(CONFIG, data=TRAIN[1:], model=autoencoder())["data.sha256"]
        != (base["data.sha256"])
    )
    assert set(RESUMABLE) >= {"train.steps", "mesh", "paths", "tracking", "stop_at"}


def test_one_step_per_dispatch_is_left_out_so_checkpoints_from_before_the_setting_resume():
    # Checkpoints written before `train.steps_per_dispatch` existed ran one step per dispatch.
    base = fingerprint(CONFIG, data=TRAIN, model=autoencoder())
    one = changed(CONFIG, "train.steps_per_dispatch", 1)
    assert fingerprint(one, data=TRAIN, model=autoencoder()) == base
    four = fingerprint(
        changed(CONFIG, "train.steps_per_dispatch", 4), data=TRAIN, model=autoencoder()
    )
    assert fingerprint_changes(base, four) == {"train.steps_per_dispatch": ("(none)", "4")}


@pytest.mark.parametrize(
    ("key", "value", "width", "shown"),
    [
        ("optim.learning_rate", 0.001, 8, "optim.learning_rate 0.01 -> 0.001"),
        ("data.seed", 6, 8, "data.seed 5 -> 6"),
        ("model.width", 16, 16, "model.width 8 -> 16"),
    ],
    ids=["learning-rate", "data-seed", "model-width"],
)
def test_a_run_with_other_settings_refuses_to_resume_naming_the_key_and_the_options(
    run_dir, key, value, width, shown
):
    with pytest.raises(ResumeError) as error:
        train(run_dir, config=changed(CONFIG, key, value), width=width)
    message = str(error.value)
    assert "\n" not in message and shown in message
    assert "train.resume=never" in message and "train.resume=force" in message
    assert key in error.value.changes and isinstance(error.value, ConfigError | LiamError)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["10", "5"]


def test_other_data_refuses_to_resume_naming_its_digest(run_dir):
    with pytest.raises(ResumeError, match=r"data\.sha256 \"[0-9a-f]{6}.* -> \""):
        train(run_dir, data=TRAIN[::-1].copy())


def test_a_longer_run_resumes_a_finished_shorter_one(run_dir, tmp_path):
    longer = TrainSpec(steps=15, batch_size=256, eval_every=5, log_every=5, checkpoint_every=5)
    config = changed(CONFIG, "train.steps", 15)
    result = train(run_dir, config=config, spec=longer)
    assert (result.resumed_from, result.state.step, result.steps_this_call) == (10, 15, 5)
    straight = train(tmp_path / "straight", config=config, spec=longer)
    assert result.digest() == straight.digest()


def test_resume_never_starts_fresh_and_sets_the_old_checkpoints_and_metrics_aside(
    finished, run_dir
):
    old_metrics = (run_dir / "metrics.jsonl").read_text()
    spec = TrainSpec(**{**_fields(SPEC), "resume": "never"})
    result = train(run_dir, config=changed(CONFIG, "optim.learning_rate", 0.001), spec=spec)
    assert result.resumed_from is None and result.state.step == 10
    aside = sorted(p.name for p in run_dir.iterdir() if "set-aside" in p.name)
    assert len(aside) == 2 and sorted(Path(p).name for p in result.set_aside) == aside
    (folder,) = [p for p in run_dir.iterdir() if p.name.startswith("checkpoints-set-aside-")]
    assert sorted(p.name for p in folder.iterdir()) == ["10", "5"]
    (metrics,) = run_dir.glob("metrics-set-aside-*.jsonl")
    assert metrics.read_text() == old_metrics
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["10", "5"]
    assert result.digest() != finished[1].digest()  # trained afresh, with the new rate


def test_resume_force_resumes_whatever_changed_and_logs_what(run_dir, caplog):
    spec = TrainSpec(**{**_fields(SPEC), "resume": "force"})
    with caplog.at_level(logging.WARNING, logger="liam_core.train"):
        result = train(run_dir, config=changed(CONFIG, "optim.learning_rate", 0.001), spec=spec)
    assert result.resumed_from == 10 and result.steps_this_call == 0
    assert "optim.learning_rate 0.01 -> 0.001" in caplog.text


def test_a_checkpoint_without_a_fingerprint_is_not_resumed_by_a_run_that_has_one(tmp_path):
    fit(
        autoencoder(),
        optax.adam(0.01),
        TRAIN,
        loss=reconstruction_example_loss,
        labor=LaborArray(2),
        spec=SPEC,
        checkpoint_dir=tmp_path / "checkpoints",
    )
    with pytest.raises(ResumeError, match=r"optim\.learning_rate \(none\) -> 0\.01"):
        train(tmp_path)


def test_train_resume_must_be_one_of_its_policies():
    with pytest.raises(ConfigError, match=r"^`train.resume` must be one of 'auto', 'never', "):
        TrainSpec(resume="sometimes")


def _fields(spec: TrainSpec) -> dict:
    import dataclasses

    return {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)}


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_between_steps_with_a_checkpoint_and_it_resumes_exactly(
    finished, tmp_path, signum
):
    def signal_at_step_7(state):
        if state.step == 7:
            os.kill(os.getpid(), signum)

    with pytest.raises(TrainingInterrupted) as stopped:
        train(tmp_path, on_step=signal_at_step_7)
    stop = stopped.value
    assert (stop.step, stop.signal_name) == (7, signum.name)
    assert stop.exit_status == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    assert stop.checkpoint == (tmp_path / "checkpoints" / "7").absolute()
    assert "stopped by" in str(stop) and "at step 7" in str(stop)
    assert signal.getsignal(signum) in (signal.default_int_handler, signal.SIG_DFL)
    resumed = train(tmp_path)
    assert (resumed.resumed_from, resumed.state.step) == (7, 10)
    assert resumed.digest() == finished[1].digest()


# --------------------------------------------------------------------------- the lock


def test_a_run_folder_lock_refuses_a_second_holder_and_is_free_again_once_released(tmp_path):
    with RunLock(tmp_path) as lock:
        assert lock.held and (tmp_path / "run.lock").exists()
        holder = json.loads((tmp_path / "run.lock").read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(
            RunLockedError, match=rf"another process is running .*pid {os.getpid()}"
        ):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / "run.lock").exists()
    with RunLock(tmp_path):
        pass


def test_the_lock_file_of_a_dead_process_does_not_block(tmp_path):
    (tmp_path / "run.lock").write_text('{"pid": 999999, "host": "gone", "since": "then"}\n')
    with RunLock(tmp_path) as lock:  # a file without a flock on it is no lock
        assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
        assert lock.held


def test_the_training_job_refuses_a_locked_run_folder_before_writing_anything(tmp_path):
    settings = TrainSettings(
        mesh=MeshSpec(axes={"data": -1}, name="cpu8"),
        data=DataSpec(kind="synthetic", n_records=2000, n_teams=4, seed=5),
        model=lambda in_features: make_model("autoencoder", in_features=in_features, width=8),
        optimizer=lambda: optax.adam(1e-2),
        train=TrainSpec(steps=10, batch_size=256),
        task=TaskSpec(),
        output_dir=tmp_path,
        progress=False,
    )
    with RunLock(tmp_path), pytest.raises(RunLockedError, match=str(tmp_path)):
        run_training(settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_training_job_refuses_to_resume_another_learning_rate_and_resumes_more_steps(
    tmp_path,
):
    def settings(learning_rate: float, steps: int, resume: str = "auto") -> TrainSettings:
        config = changed(
            changed(CONFIG, "optim.learning_rate", learning_rate), "train.steps", steps
        )
        return TrainSettings(
            mesh=MeshSpec(axes={"data": -1}, name="cpu8"),
            data=DataSpec(kind="synthetic", n_records=3000, n_teams=4, seed=5),
            model=lambda in_features: make_model(
                "autoencoder", in_features=in_features, width=8, latent=2, seed=0
            ),
            optimizer=lambda: optax.adam(learning_rate),
            train=TrainSpec(
                steps=steps,
                batch_size=512,
                eval_every=5,
                log_every=5,
                checkpoint_every=5,
                resume=resume,
            ),
            task=TaskSpec(top_anomalies=2, attribution_steps=4),
            output_dir=tmp_path,
            progress=False,
            resolved_config=config,
        )

    first = run_training(settings(0.01, 10))
    assert first["training"]["steps"] == 10
    with pytest.raises(ResumeError, match=r"optim\.learning_rate 0\.01 -> 0\.001"):
        run_training(settings(0.001, 10))
    longer = run_training(settings(0.01, 15))
    assert longer["training"]["resumed_from"] == 10 and longer["training"]["steps"] == 15
    fresh = run_training(settings(0.001, 10, resume="never"))
    assert fresh["training"]["resumed_from"] is None and len(fresh["training"]["set_aside"]) == 2
    assert not (tmp_path / "run.lock").exists()
