"""Resuming is exact: a run killed at any step, or moved to another device count, ends the same.

Each run is a subprocess (``tests/workers/train_worker.py``) because JAX fixes the device
count when its backend starts, and because only a real process can be killed with SIGKILL,
stopped with SIGINT or SIGTERM, or hold a run folder's lock against another. The reference
is a run on 2 devices that was never interrupted.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from _helpers import EXPERIMENTS, WORKERS, clean_env, kill, run_python, start_python

from liam_core.train import RunLock

WORKER = WORKERS / "train_worker.py"
TIMEOUT_S = 180
STEPS = 40  # the worker's default; checkpoints every 5 steps, the newest 3 kept

pytestmark = pytest.mark.slow


def _start(devices: int, run_dir: Path, *extra: str) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    # stderr to a file: a pipe nobody reads while the test follows stdout could fill up.
    with (run_dir / f"stderr-{devices}.txt").open("a") as stderr:
        return start_python(
            WORKER,
            ["--devices", str(devices), "--run-dir", str(run_dir), *extra],
            env=clean_env(),
            stderr=stderr,
        )


def _run(devices: int, run_dir: Path, *extra: str) -> dict[str, Any]:
    process = _start(devices, run_dir, *extra)
    try:
        stdout, _ = process.communicate(timeout=TIMEOUT_S)
    finally:
        kill([process])
    stderr = (run_dir / f"stderr-{devices}.txt").read_text()
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Any]:
    result = _run(2, tmp_path_factory.mktemp("reference"))
    assert result["step"] == STEPS and result["resumed_from"] is None
    return result


def test_a_run_killed_with_sigkill_at_a_random_step_resumes_to_the_same_digest(reference, tmp_path):
    kill_at = random.randint(6, STEPS - 6)  # after the first checkpoint, before the end
    process = _start(2, tmp_path, "--step-delay", "0.03")
    try:
        for line in process.stdout:
            if line.strip() == f"step {kill_at}":
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=TIMEOUT_S)
    finally:
        kill([process])
    assert process.returncode == -signal.SIGKILL, f"the run ended before step {kill_at}"
    assert (tmp_path / "run.lock").exists()  # the dead run's lock file: no lock, no block
    resumed = _run(2, tmp_path)
    context = f"killed at step {kill_at}, resumed from {resumed['resumed_from']}"
    assert resumed["resumed_from"] is not None and resumed["resumed_from"] >= kill_at - 5, context
    # A kill between orbax's rename and the manifest leaves a step that never counted.
    assert all("its save did not finish" in skipped for skipped in resumed["skipped"]), context
    assert resumed["digest"] == reference["digest"], context
    assert resumed["losses"] == reference["losses"], context  # metrics.jsonl reads the same


def test_a_run_stopped_on_8_devices_and_resumed_on_2_ends_with_the_same_digest(reference, tmp_path):
    stopped = _run(8, tmp_path, "--stop-at", "17")
    assert (stopped["devices"], stopped["step"]) == (8, 17)
    resumed = _run(2, tmp_path)
    assert (resumed["devices"], resumed["resumed_from"], resumed["step"]) == (2, 17, STEPS)
    assert resumed["digest"] == reference["digest"]
    assert resumed["losses"] == reference["losses"]


MULTI_STEP_RUN = """
import sys
import jax
jax.config.update("jax_num_cpu_devices", int(sys.argv[1]))
jax.config.update("jax_numpy_dtype_promotion", "strict")
import optax
from liam_core.alda import LaborArray
from liam_core.data import SyntheticTelemetry
from liam_core.models import make_model, reconstruction_example_loss
from liam_core.train import TrainSpec, fit
values = SyntheticTelemetry(3072, n_teams=4, seed=5).rows().values
model = make_model("autoencoder", in_features=values.shape[1], latent=2, width=8, seed=0)
spec = TrainSpec(steps=23, batch_size=512, eval_every=10, checkpoint_every=0, seed=3,
                 steps_per_dispatch=int(sys.argv[2]))
result = fit(model, optax.adam(1e-2), values[:2560], loss=reconstruction_example_loss,
             labor=LaborArray(), spec=spec, eval_examples=values[2560:])
print(result.digest())
"""


def test_a_multi_step_run_gives_the_same_digest_in_processes_with_1_2_and_8_devices(tmp_path):
    script = tmp_path / "multi_step_run.py"
    script.write_text(MULTI_STEP_RUN)
    digests = set()
    for devices, steps_per_dispatch in ((1, 4), (2, 6), (8, 4)):
        done = run_python(script, [str(devices), str(steps_per_dispatch)], timeout=TIMEOUT_S)
        assert done.returncode == 0, done.stderr[-3000:]
        digests.add(done.stdout.strip().splitlines()[-1])
    assert len(digests) == 1, digests


def _signal_at(step: int, signum: int, run_dir: Path) -> int:
    """Start a run, send it ``signum`` once it reports ``step``; its exit status."""
    process = _start(2, run_dir, "--step-delay", "0.03")
    try:
        for line in process.stdout:
            if line.strip() == f"step {step}":
                os.kill(process.pid, signum)
                break
        process.wait(timeout=TIMEOUT_S)
    finally:
        kill([process])
    return process.returncode


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_or_sigterm_saves_a_checkpoint_exits_with_its_status_and_resumes_exactly(
    reference, tmp_path, signum
):
    returncode = _signal_at(12, signum, tmp_path)  # 12: between two periodic checkpoints
    stderr = (tmp_path / "stderr-2.txt").read_text()
    assert returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if "stopped by" in line]
    found = re.fullmatch(
        rf"stopped by {signum.name} at step (\d+) \(checkpoint saved in .*\)", line
    )
    assert found, line
    stopped = int(found[1])
    assert 12 <= stopped <= 14  # the step running when the signal came, finished
    assert str(stopped) in {path.name for path in (tmp_path / "checkpoints").iterdir()}
    resumed = _run(2, tmp_path)
    assert (resumed["resumed_from"], resumed["step"]) == (stopped, STEPS)
    assert resumed["digest"] == reference["digest"]
    assert resumed["losses"] == reference["losses"]


def test_a_second_process_on_a_locked_run_folder_fails_at_once_and_the_first_ends_intact(
    reference, tmp_path
):
    first = _start(2, tmp_path, "--step-delay", "0.25")  # about 10 s of training
    try:
        for line in first.stdout:
            if line.strip() == "step 2":
                break
        second = run_python(
            WORKER, ["--devices", "1", "--run-dir", str(tmp_path)], timeout=TIMEOUT_S
        )
        assert first.poll() is None, "the first run ended before the second one started"
        stdout, _ = first.communicate(timeout=TIMEOUT_S)
    finally:
        kill([first])
    assert second.returncode == 2, second.stderr[-3000:]
    assert re.search(
        rf"^error: another process is running in this run folder \(pid {first.pid} on .*\): ",
        second.stderr,
        re.MULTILINE,
    ), second.stderr[-3000:]
    assert first.returncode == 0, (tmp_path / "stderr-2.txt").read_text()[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["digest"] == reference["digest"]
    assert result["losses"] == reference["losses"]  # metrics.jsonl holds one run's records
    assert not (tmp_path / "run.lock").exists()


def test_the_training_job_stopped_by_sigint_prints_one_line_exits_130_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "mesh=cpu1",
        "data.n_records=6000",
        "train.batch_size=512",
        "train.steps=300",
        "train.eval_every=50",
        "train.checkpoint_every=5",
        "train.patience=null",
        "task.top_anomalies=2",
        "task.attribution_steps=4",
        "progress=false",
        f"hydra.run.dir={run_dir}",
    ]
    with (tmp_path / "stderr.txt").open("w") as stderr:
        process = start_python(EXPERIMENTS / "train.py", args, cwd=tmp_path, stderr=stderr)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not (run_dir / "checkpoints" / "10").exists():
            assert process.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint of step 10 in time"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGINT)
        process.wait(timeout=TIMEOUT_S)
    finally:
        kill([process])
    stderr = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 130, stderr[-3000:]
    (line,) = stderr.strip().splitlines()
    found = re.fullmatch(
        r"stopped by SIGINT at step (\d+) \(checkpoint saved in .*\); run the same command "
        r"again to resume from it",
        line,
    )
    assert found, line
    assert not (run_dir / "report.json").exists()
    # A rarer checkpoint is a setting a resumed run may change.
    again = run_python(
        EXPERIMENTS / "train.py", [*args, "train.checkpoint_every=100"], cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["training"]["resumed_from"] == int(found[1])
    assert report["training"]["steps"] == 300
    assert not (run_dir / "run.lock").exists()  # the command line's lock, released


def test_the_command_line_refuses_a_locked_run_folder_before_hydra_writes_to_it(tmp_path):
    run_dir = tmp_path / "run"
    args = ["mesh=cpu1", "data.n_records=2000", "progress=false", f"hydra.run.dir={run_dir}"]
    with RunLock(run_dir):
        refused = run_python(EXPERIMENTS / "train.py", args, cwd=tmp_path)
        assert sorted(path.name for path in run_dir.iterdir()) == ["run.lock"]  # no .hydra/, log
    assert refused.returncode == 2, refused.stderr[-3000:]
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(
        f"error: another process is running in this run folder (pid {os.getpid()} on "
    ), line
