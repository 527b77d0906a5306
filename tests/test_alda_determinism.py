"""The determinism matrix: the same bytes on every topology, and those of a host loop over chunks.

Each topology runs in its own process (``tests/workers/alda_worker.py``), all side by side:

* 1, 2, 4 and 8 simulated CPU devices, each under ``pmap`` and ``shard_map``;
* a 4 x 2 (data x model) mesh under ``shard_map``, rows over both axes, and rows over the data
  axis with replicas on the model axis;
* 8 devices confined to one core (``taskset``), against the others' two: XLA's thread count
  (reductions and the map);
* 2 processes x 4 devices on 127.0.0.1 (``liam_core.mesh.distributed``), each loading only its
  own rows;

through every workload: reductions (sum, mean, covariance), a row map through an algebra
pipeline, and 20 optax steps of an Equinox MLP trained through ``value_and_grad`` on batches of
varying size. Every digest must equal the one of a host-side loop over single chunks
(``jax.jit`` of the kernel per chunk, then the pairwise tree written again in numpy).

It is one test on purpose: the topologies run concurrently, once, and a failure lists every
cell that differs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from _helpers import WORKERS, free_port, kill, start_python

WORKER = WORKERS / "alda_worker.py"
WORKLOADS = ("sum", "mean", "covariance", "map", "train")
DEADLINE_S = 420


def launch(name: str, *args: str, prefix: tuple[str, ...] = ()) -> tuple[str, subprocess.Popen]:
    """Start one topology of the matrix in its own process, in a clean environment."""
    return name, start_python(WORKER, args, prefix=prefix)


@pytest.mark.slow
def test_every_topology_gives_the_bytes_of_a_host_loop_over_single_chunks():
    port = free_port()
    runs = [
        launch("1 device", "--devices", "1", "--reference"),
        launch("2 devices", "--devices", "2"),
        launch("4 devices", "--devices", "4"),
        launch("8 devices", "--devices", "8"),
        launch(
            "2 processes, #0",
            "--devices",
            "4",
            "--processes",
            "2",
            "--process-id",
            "0",
            "--port",
            str(port),
        ),
        launch(
            "2 processes, #1",
            "--devices",
            "4",
            "--processes",
            "2",
            "--process-id",
            "1",
            "--port",
            str(port),
        ),
    ]
    if shutil.which("taskset"):
        runs.append(
            launch(
                "8 devices on 1 core",
                "--devices",
                "8",
                "--executors",
                "shard_map",
                prefix=("taskset", "-c", "0"),
            )
        )
    reports = {}
    try:
        deadline = time.monotonic() + DEADLINE_S
        for name, process in runs:
            stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert process.returncode == 0, f"{name} failed:\n{stderr[-4000:]}"
            lines = [line for line in stdout.splitlines() if line.startswith('{"devices"')]
            assert lines, f"{name} printed no report:\n{stdout[-2000:]}"
            reports[name] = json.loads(lines[-1])
    finally:
        kill(process for _, process in runs)

    reference = reports["1 device"]["reference"]
    assert set(reference) == set(WORKLOADS)
    cells = {
        (name, key): value
        for name, report in reports.items()
        for key, value in report["digests"].items()
        if key.rsplit("/", 1)[1] in WORKLOADS
    }
    mismatches = [
        f"{name} {key}"
        for (name, key), value in cells.items()
        if value != reference[key.rsplit("/", 1)[1]]
    ]
    assert not mismatches, (
        "digests that differ from the host loop over single chunks:\n" + "\n".join(mismatches)
    )

    # Every executor ran every workload on every topology (nothing silently skipped).
    executors_of = {
        "1 device": ("pmap", "shard_map"),
        "2 devices": ("pmap", "shard_map"),
        "4 devices": ("pmap", "shard_map"),
        "8 devices": ("pmap", "shard_map", "shard_map_4x2"),
        "2 processes, #0": ("pmap", "shard_map", "shard_map_4x2"),
        "2 processes, #1": ("pmap", "shard_map", "shard_map_4x2"),
        "8 devices on 1 core": ("shard_map",),
    }
    for name in reports:
        for executor in executors_of[name]:
            for workload in WORKLOADS:
                if name == "8 devices on 1 core" and workload == "train":
                    continue  # one core is slow: the chunk kernels' bits are what it checks
                assert (name, f"{executor}/{workload}") in cells, (name, executor, workload)
    for name in ("8 devices", "2 processes, #0"):
        assert (name, "shard_map_4x2_data_only/covariance") in cells

    # Each of the 2 processes loaded only the rows of its own 4 device blocks.
    first = reports["2 processes, #0"]["digests"]["shard_map/rows_read"]
    second = reports["2 processes, #1"]["digests"]["shard_map/rows_read"]
    assert first == [[0, 1024], [1024, 2048], [2048, 3072], [3072, 4096]]
    assert second == [[4096, 5000], [5000, 5000], [5000, 5000], [5000, 5000]]
    assert reports["2 processes, #0"]["global_devices"] == 8
