"""``distributed``: start JAX's multi-controller runtime, from arguments or from the environment.

One process per host (or per group of devices) calls :func:`distributed` once, before any
computation; afterwards ``jax.devices()`` lists the devices of every process and one program
runs over all of them (gloo collectives on CPU, NCCL on GPU). This is JAX's own runtime,
``jax.distributed.initialize``, with liam-core's checks and errors around it, and a short
heartbeat timeout by default: a lost peer then stops the survivors in seconds, not minutes.

Start-up waits at most ``initialization_timeout_s`` for every process to join, then raises a
:class:`~liam_core.DistributedError` naming the coordinator and the process count. JAX itself
would abort the process with a C++ stack trace when its own deadline passes, so the runtime
is started in a helper thread that JAX gives a few seconds more than the caller waits.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

import jax

from .._checks import check_int, quote
from .._errors import ConfigError, DistributedError

DEFAULT_HEARTBEAT_TIMEOUT_S = 10
"""Seconds without a heartbeat before a peer counts as lost (JAX's own default is 100).

Measured on CPU: with 10 s, the survivor of a killed peer stopped after about 6 s.
"""

DEFAULT_INITIALIZATION_TIMEOUT_S = 60
"""Seconds to wait for every process to join before giving up (JAX's own default is 300)."""

_JAX_GRACE_S = 10
"""Seconds JAX's own start-up deadline (which aborts the process) lies past the caller's."""

_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")
_CLUSTER_HINT = (
    "pass coordinator_address='host:port', num_processes and process_id explicitly, or run "
    "under a cluster JAX detects (SLURM: SLURM_JOB_ID and srun; Open MPI: OMPI_* variables; "
    "Kubernetes; Cloud TPU), or set JAX_COORDINATOR_ADDRESS"
)


@dataclasses.dataclass(frozen=True)
class DistributedInfo:
    """Where this process stands in the multi-controller runtime.

    Attributes:
        process_index: this process's id, ``0 .. process_count - 1``.
        process_count: number of processes.
        coordinator_address: ``host:port`` of process 0's coordination service.
        local_device_count: devices this process drives.
        global_device_count: devices over all processes.
    """

    process_index: int
    process_count: int
    coordinator_address: str | None
    local_device_count: int
    global_device_count: int


def _check_process_args(
    coordinator_address: object, num_processes: object, process_id: object
) -> tuple[str, int, int]:
    given = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    missing = [name for name, value in given.items() if value is None]
    if missing:
        present = [name for name in given if name not in missing]
        raise ConfigError(
            "distributed: `coordinator_address`, `num_processes` and `process_id` must be given "
            "together, or none of them (to read them from the environment), "
            f"got {', '.join(present)} without {', '.join(missing)}"
        )
    if not isinstance(coordinator_address, str) or not _ADDRESS.match(coordinator_address):
        raise ConfigError(
            "distributed: `coordinator_address` must be 'host:port' (for example "
            f"'127.0.0.1:12345'), got {quote(coordinator_address)}"
        )
    port = int(coordinator_address.rsplit(":", 1)[1])
    if not 1 <= port <= 65535:
        raise ConfigError(
            f"distributed: `coordinator_address` must have a port in [1, 65535], got {port}"
        )
    num_processes = check_int(num_processes, "num_processes", owner="distributed")
    process_id = check_int(
        process_id,
        "process_id",
        minimum=0,
        maximum=num_processes - 1,
        owner="distributed",
        why=f" (num_processes={num_processes})",
    )
    return coordinator_address, num_processes, process_id


def distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    cpu_devices: int | None = None,
    heartbeat_timeout_s: int = DEFAULT_HEARTBEAT_TIMEOUT_S,
    initialization_timeout_s: int = DEFAULT_INITIALIZATION_TIMEOUT_S,
) -> DistributedInfo:
    """Start JAX's multi-controller runtime for this process and return where it stands.

    Call it once per process, before any JAX computation. Give ``coordinator_address``,
    ``num_processes`` and ``process_id`` together, or none of them to let JAX read them from
    the environment (SLURM, Open MPI, Kubernetes, Cloud TPU, ``JAX_COORDINATOR_ADDRESS``).
    Process 0 also hosts the coordination service at ``coordinator_address``.

    A peer that dies is noticed within ``heartbeat_timeout_s``; JAX then aborts the surviving
    processes (exit status 134) with a message naming the lost task, rather than letting a
    collective wait forever. Processes that do not all join within
    ``initialization_timeout_s`` give a :class:`DistributedError`; the runtime cannot be
    started again in that process (JAX ends it a few seconds later), so let the error end it.

    Args:
        coordinator_address: ``'host:port'`` of process 0, for example ``'127.0.0.1:12345'``.
        num_processes: number of processes, a positive int.
        process_id: this process's id, ``0 .. num_processes - 1``.
        local_device_ids: the accelerator ids this process drives (default: all visible).
        cpu_devices: on the CPU backend, how many devices this process simulates
            (``jax_num_cpu_devices``); only before the backend has started.
        heartbeat_timeout_s: seconds without a heartbeat before a peer counts as lost.
        initialization_timeout_s: seconds to wait for all processes to join.

    Returns:
        A :class:`DistributedInfo`.

    Raises:
        ConfigError: an argument is missing or outside its allowed values.
        DistributedError: the runtime is already started, no cluster was detected, or the
            processes did not all join in time.

    Example:
        >>> from liam_core.mesh import distributed
        >>> distributed(num_processes=2)   # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ConfigError: distributed: `coordinator_address`, `num_processes` and `process_id` must be given together...

        On each of two processes (``i`` = 0 and 1), before any computation::

            info = distributed("127.0.0.1:12345", num_processes=2, process_id=i, cpu_devices=4)
            info.global_device_count   # 8
    """
    heartbeat_timeout_s = check_int(
        heartbeat_timeout_s, "heartbeat_timeout_s", owner="distributed", why=" (seconds)"
    )
    initialization_timeout_s = check_int(
        initialization_timeout_s, "initialization_timeout_s", owner="distributed", why=" (seconds)"
    )
    explicit = any(v is not None for v in (coordinator_address, num_processes, process_id))
    if explicit:
        coordinator_address, num_processes, process_id = _check_process_args(
            coordinator_address, num_processes, process_id
        )
    if cpu_devices is not None:
        cpu_devices = check_int(cpu_devices, "cpu_devices", owner="distributed")
    if jax.distributed.is_initialized():
        raise DistributedError(
            "the JAX distributed runtime is already started in this process; call distributed() "
            "once per process (jax.distributed.shutdown() to stop it)"
        )
    if cpu_devices is not None:
        jax.config.update("jax_num_cpu_devices", cpu_devices)
    where = coordinator_address or os.environ.get(
        "JAX_COORDINATOR_ADDRESS", "(detected from the cluster environment)"
    )
    try:
        joined = _initialize_within(
            initialization_timeout_s,
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            local_device_ids=local_device_ids,
            heartbeat_timeout_seconds=heartbeat_timeout_s,
        )
    except ValueError as error:
        if explicit:
            raise DistributedError(f"jax.distributed.initialize refused: {error}") from error
        raise DistributedError(
            f"no cluster environment detected ({error}); {_CLUSTER_HINT}"
        ) from error
    except RuntimeError as error:  # XlaRuntimeError derives from RuntimeError
        raise DistributedError(
            f"could not start the distributed runtime with coordinator {where}, "
            f"num_processes={num_processes}, process_id={process_id} within "
            f"{initialization_timeout_s} s: {error}"
        ) from error
    if not joined:
        count = num_processes if num_processes is not None else "(from the environment)"
        raise DistributedError(
            f"distributed: process {process_id} waited {initialization_timeout_s} s for all "
            f"{count} processes to join the coordinator at {where}, in vain; start every "
            "process (the same command, each with its own process id), or wait longer "
            "(initialization_timeout_s; mesh.processes.init_timeout_s in a config)"
        )
    return DistributedInfo(
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        coordinator_address=coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS"),
        local_device_count=jax.local_device_count(),
        global_device_count=jax.device_count(),
    )


def _initialize_within(timeout_s: int, **options: Any) -> bool:
    """``jax.distributed.initialize(**options)``; ``False`` if it has not joined in ``timeout_s``.

    JAX aborts the whole process (``LOG(FATAL)``) when its own deadline passes, so it runs in
    a daemon thread with a deadline :data:`_JAX_GRACE_S` later than the wait here; errors it
    raises are raised here.
    """
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            jax.distributed.initialize(**options, initialization_timeout=timeout_s + _JAX_GRACE_S)
        except BaseException as error:  # handed to the caller's thread
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=start, name="liam-distributed-start", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        return False
    if outcome[0] is not None:
        raise outcome[0]
    return True
