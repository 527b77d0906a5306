"""Subprocess helpers shared by the tests that start Python processes (JAX fixes its device
count when its backend starts, so each device count, job or killed peer is its own process).

Every process started here gets a clean environment (no inherited ``XLA_FLAGS``, SLURM or
MPI variables, the CPU backend, unbuffered output), is waited for with a deadline, and is
killed by pid if it outlives it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
WORKERS = ROOT / "tests" / "workers"

_INHERITED_NOT = ("XLA_FLAGS", "SLURM_", "OMPI_", "JAX_COORDINATOR", "LIAM_")


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without device, cluster or liam-core settings, plus ``extra``.

    ``LIAM_CACHE_DIR`` is kept, so child jobs share the compilation cache of the session.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_INHERITED_NOT) or key == "LIAM_CACHE_DIR"
    }
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
    return env


def run_python(
    script: Path | str,
    args: Iterable[str] = (),
    *,
    cwd: Path | None = None,
    timeout: float = 240,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python script args...`` to completion (text output captured), with a deadline."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
        env=dict(env) if env is not None else clean_env(),
    )


def start_python(
    script: Path | str,
    args: Iterable[str] = (),
    *,
    prefix: Iterable[str] = (),
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stderr=subprocess.PIPE,
) -> subprocess.Popen:
    """Start ``[prefix...] python script args...`` in the background (text pipes)."""
    return subprocess.Popen(
        [*prefix, sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=cwd or ROOT,
        env=dict(env) if env is not None else clean_env(),
    )


def kill(processes: Iterable[subprocess.Popen]) -> None:
    """Kill whatever of ``processes`` still runs, by pid, reap it and close its pipes."""
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
