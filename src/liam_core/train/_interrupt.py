"""Stopping on SIGINT or SIGTERM between steps, with a checkpoint, instead of dying mid-step.

:class:`StopOnSignals` replaces the handlers of SIGINT and SIGTERM while the training loop
runs: a signal only sets a flag, which the loop reads between steps (never inside a jitted
program). The loop then saves a checkpoint and raises :class:`TrainingInterrupted`. A second
signal of the same kind restores the previous handler and delivers the signal again, so
pressing Ctrl-C twice still stops at once.

JAX installs a SIGTERM handler of its own only with the multi-controller runtime (its
preemption service); the training job runs in one process, and a handler installed here
replaces it for the duration of the loop.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped between two steps on a signal, after saving a checkpoint.

    A ``KeyboardInterrupt``, so ``except Exception`` does not swallow it.

    Attributes:
        step: the step reached (and saved, when ``checkpoint`` is not ``None``).
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
        exit_status: ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM), what a
            command stopped by the signal exits with.
        checkpoint: the step folder of the checkpoint, ``None`` when there is nothing to save
            (no checkpoint folder, or no step taken yet).
    """

    def __init__(self, *, step: int, signum: int, checkpoint: Path | None) -> None:
        self.step = step
        self.signal_name = signal.Signals(signum).name
        self.exit_status = 128 + int(signum)
        self.checkpoint = checkpoint
        where = f"checkpoint saved in {checkpoint}" if checkpoint else "no checkpoint saved"
        super().__init__(f"stopped by {self.signal_name} at step {step} ({where})")


class StopOnSignals:
    """While active, SIGINT and SIGTERM only set :attr:`signum`; the caller polls it.

    Does nothing outside the main thread (Python only lets the main thread set handlers),
    or when ``enabled`` is false.

    Example:
        >>> import os, signal
        >>> from liam_core.train._interrupt import StopOnSignals
        >>> with StopOnSignals() as stop:
        ...     os.kill(os.getpid(), signal.SIGTERM)
        ...     print(stop.signum == signal.SIGTERM)
        True
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignals:
        if self.enabled:
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signum:  # asked twice: stop now, as without this handler
            self._restore()
            signal.raise_signal(signum)
            return
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        """Whether a signal asked the loop to stop."""
        return self.signum is not None
