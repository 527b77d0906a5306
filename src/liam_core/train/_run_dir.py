"""The run folder: one process at a time (:class:`RunLock`), and what its checkpoints belong to.

A run folder holds one run's checkpoints and metrics; two processes writing to it at once
would interleave their metrics and checkpoints. :class:`RunLock` holds an exclusive
``fcntl.flock`` on ``run.lock`` in the folder for as long as the run lives: the kernel
releases it when the process ends, however it ends, so the lock of a killed run never blocks
the next one.

A checkpoint records the :func:`fingerprint` of the run that wrote it: every setting that
changes the result (the model, the optimizer, the data, the task, the seed, the batch size,
the data order, the chunk size), a sha256 of the data, and the code (liam-core's version,
the model's class and settings). Settings that only say how far or how visibly to run are
left out (:data:`RESUMABLE`), so a longer run can continue a shorter one, on another mesh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib.metadata
import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._digest import digest
from .._errors import LiamError, RunLockedError
from ..models import model_config

LOCK_NAME = "run.lock"
"""The lock file in a run folder (removed when the run ends; a killed run's file stays, unlocked)."""

RESUMABLE = (
    "train.steps",
    "train.resume",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "alda.max_in_flight",
    "mesh",
    "paths",
    "tracking",
    "stop_at",
    "progress",
    "optimized_metric",
    "export",
    "task_name",
    "hydra",
)
"""Config keys (and groups) a run may change and still resume: they say how far, where, or
how visibly to run, not what is computed (resuming on another device count is exact)."""

UNRECORDED_DEFAULTS = {"train.steps_per_dispatch": 1}
"""Settings added after checkpoints were first written, left out of a :func:`fingerprint` at
the value that reproduces a run from before they existed, so those checkpoints still resume."""

_SHORT = 40

_HANDED_OVER: dict[Path, int] = {}
"""Locks taken for this process's next run of a folder (:meth:`RunLock.hand_over`): folder ->
the locked file descriptor."""


# --------------------------------------------------------------------------- the lock


class RunLock:
    """An exclusive lock on a run folder, held from :meth:`acquire` to :meth:`release`.

    The lock is ``fcntl.flock`` on ``<folder>/run.lock``, which records the holder's pid,
    host and start time for the error a second process gets. Released by :meth:`release`
    (which also removes the file) or, when the process is killed, by the kernel.

    Args:
        folder: the run folder (created if missing).

    Example:
        >>> import tempfile
        >>> from liam_core.train import RunLock, RunLockedError
        >>> folder = tempfile.mkdtemp()
        >>> with RunLock(folder):
        ...     try:
        ...         RunLock(folder).acquire()
        ...     except RunLockedError as error:
        ...         print(str(error).split(" (pid")[0])
        another process is running in this run folder
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).absolute()
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunLockedError` at once if another process has it.

        A lock handed over (:meth:`hand_over`) for this folder is taken over instead.
        """
        if self._fd is not None:
            return
        handed = _HANDED_OVER.pop(self.folder, None)
        if handed is not None:
            self._fd = handed
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunLockedError(
                    f"another process is running in this run folder ({holder}): {self.folder}; "
                    "wait for it to finish, or run in another folder (hydra.run.dir=...)"
                ) from None
            # The holder removes the file on release: a lock taken on a file that has
            # since been removed (or replaced) protects nothing, so take it again.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and release the lock (nothing happens if it is not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # before unlocking, so no one locks a file that is going away
        os.close(self._fd)
        self._fd = None

    def hand_over(self) -> None:
        """Keep the lock for the next :class:`RunLock` of this folder in this process.

        The command line takes a training run's lock before Hydra writes ``.hydra/`` and the
        log file into the folder (a refused second process then writes nothing there), and
        hands it to the job's own ``RunLock``. :meth:`take_back` releases one not taken.
        """
        if self._fd is None:
            raise RuntimeError("hand_over: the lock is not held")
        _HANDED_OVER[self.folder], self._fd = self._fd, None

    def take_back(self) -> None:
        """Release a lock handed over for this folder that no run took (nothing otherwise)."""
        fd = _HANDED_OVER.pop(self.folder, None)
        if fd is not None:
            self._fd = fd
            self.release()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# --------------------------------------------------------------------------- the fingerprint


def _leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(tree, Mapping):
        for key in sorted(tree, key=str):
            yield from _leaves(tree[key], f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree


def _resumable(key: str) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in RESUMABLE)


def _recorded(key: str, value: Any) -> bool:
    unrecorded = key in UNRECORDED_DEFAULTS and value == UNRECORDED_DEFAULTS[key]
    return not (_resumable(key) or unrecorded)


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def fingerprint(config: Mapping[str, Any], *, data: Any, model: Any) -> dict[str, str]:
    """What a checkpoint belongs to: ``{key: value as JSON text}``, compared when resuming.

    Args:
        config: the resolved config (or the typed settings as plain data); its leaves become
            dotted keys (``optim.learning_rate``), except those of :data:`RESUMABLE`.
        data: the training data as a pytree of arrays (hashed with
            :func:`liam_core.digest`, key ``data.sha256``).
        model: the model: its class (``code.model``) and settings (``code.model_config``),
            with liam-core's version (``code.liam_core``).

    Example:
        >>> import numpy as np
        >>> from liam_core.train import fingerprint
        >>> config = {"optim": {"learning_rate": 0.01}, "train": {"steps": 300, "seed": 0}}
        >>> found = fingerprint(config, data=np.zeros(3), model=None)
        >>> sorted(key for key in found if not key.startswith("code."))
        ['data.sha256', 'optim.learning_rate', 'train.seed']
    """
    found = {key: _text(value) for key, value in _leaves(config) if _recorded(key, value)}
    found["data.sha256"] = _text(digest(data))
    try:
        version = importlib.metadata.version("liam-core")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source checkout
        version = "unknown"
    found["code.liam_core"] = _text(version)
    found["code.model"] = _text(f"{type(model).__module__}.{type(model).__qualname__}")
    if dataclasses.is_dataclass(model) and not isinstance(model, type):
        try:
            found["code.model_config"] = _text(model_config(model))
        except LiamError:
            pass  # not a registered model: its class is what is recorded
    return found


def typed_config(**specs: Any) -> dict[str, Any]:
    """Typed settings (dataclasses) as the plain config :func:`fingerprint` reads.

    What a run started from Python records instead of a resolved Hydra config, under the
    same keys (``train.seed``, ``data.seed``, ...). The optimizer, a function
    there, is not part of it.

    Example:
        >>> from liam_core.train import TrainSpec
        >>> from liam_core.train._run_dir import typed_config
        >>> typed_config(train=TrainSpec(seed=3))["train"]["seed"]
        3
    """
    return {name: dataclasses.asdict(spec) for name, spec in specs.items()}


def fingerprint_changes(
    old: Mapping[str, str] | None, new: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """``{key: (old, new)}`` of the keys whose values differ (``(none)`` where one is missing).

    Settings come first, then the data's digest, then the code.
    """
    old = old or {}
    keys = sorted(
        set(old) | set(new),
        key=lambda key: (key.startswith("code."), key == "data.sha256", key),
    )
    return {
        key: (old.get(key, "(none)"), new.get(key, "(none)"))
        for key in keys
        if old.get(key) != new.get(key)
    }


def _short(text: str) -> str:
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def describe_changes(changes: Mapping[str, tuple[str, str]]) -> str:
    """``optim.learning_rate 0.01 -> 0.001, data.seed 5 -> 6``: values cut short."""
    return ", ".join(f"{key} {_short(old)} -> {_short(new)}" for key, (old, new) in changes.items())


def set_aside(path: Path) -> Path | None:
    """Rename ``path`` (a checkpoint folder or a metrics file) to ``<name>-set-aside-<time>``.

    Returns the new path, or ``None`` when ``path`` does not exist. Nothing is deleted.
    """
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.stem}-set-aside-{stamp}{path.suffix}")
    n = 1
    while target.exists():
        target, n = path.with_name(f"{path.stem}-set-aside-{stamp}.{n}{path.suffix}"), n + 1
    os.replace(path, target)
    return target
