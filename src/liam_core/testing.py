"""Testing helpers: observe XLA compilations, how many programs JAX compiled while a block ran.

Compile once is a contract (shapes are static, ragged batches are padded), so the number
of compiles is something to measure and test, not to hope for. Counting uses JAX's public
``jax.monitoring`` events, so it sees every backend compile in the process, including
those of other threads. Importing ``liam_core`` installs nothing: the listener is registered
the first time a :class:`CompileCounter` (or :func:`compiles_so_far`) is used.
"""

from __future__ import annotations

import threading
from typing import Any

import jax.monitoring

_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_lock = threading.Lock()
_total = 0
_listening = False


def _on_event_duration(event: str, duration_secs: float, **kwargs: Any) -> None:
    del duration_secs, kwargs
    if event == _BACKEND_COMPILE_EVENT:
        global _total
        with _lock:
            _total += 1


def _listen() -> None:
    global _listening
    with _lock:
        if not _listening:
            jax.monitoring.register_event_duration_secs_listener(_on_event_duration)
            _listening = True


def compiles_so_far() -> int:
    """XLA backend compilations in this process since counting started (the first call)."""
    _listen()
    return _total


class CompileCounter:
    """Count the XLA compilations that happen inside a ``with`` block.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.testing import CompileCounter
        >>> double, x = jax.jit(lambda x: 2 * x), jnp.ones(3)
        >>> with CompileCounter() as first:
        ...     _ = double(x)
        >>> with CompileCounter() as again:
        ...     _ = double(x)
        >>> first.count, again.count
        (1, 0)
    """

    def __init__(self) -> None:
        self._start: int | None = None
        self._stop: int | None = None

    def __enter__(self) -> CompileCounter:
        self._start, self._stop = compiles_so_far(), None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop = compiles_so_far()

    @property
    def count(self) -> int:
        """Compilations so far inside the block (final once the block has exited)."""
        if self._start is None:
            return 0
        stop = compiles_so_far() if self._stop is None else self._stop
        return stop - self._start
