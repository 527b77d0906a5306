"""``checked_jit``: ``jax.jit`` for the algebra's public functions, whose checks always run.

A jitted function's own checks (``as_real_array``, ``check_int``, ...) run while JAX traces
it, but JAX first converts the arguments, and some it cannot take: text or object arrays,
unhashable static settings (a list where an int belongs), Python ints past int64, or numpy
int64 / float64 values that its 32-bit mode would silently wrap or overflow (``2**40``
becomes 0, ``1e39`` becomes inf). JAX then raises its own ``TypeError`` or ``ValueError``,
or, worse, computes on the wrapped values.

``checked_jit`` keeps the jitted path for everything JAX takes unchanged (the same
program, the same bits) and calls the plain function for the rest, where its checks see
the arguments as given and raise the typed error naming them (or, for big integers,
convert them to float exactly as the jitted path converts small ones).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

_JAX_KINDS = "biufc"  # numpy dtype kinds JAX represents: bool, ints, floats, complex


def _limits(kind: str) -> tuple[float, float] | None:
    """The range a 64-bit numpy dtype of ``kind`` must stay within when JAX narrows it."""
    narrow = {"i": np.int64, "u": np.uint64, "f": np.float64, "c": np.complex128}[kind]
    if jax.dtypes.canonicalize_dtype(narrow) == np.dtype(narrow):
        return None  # x64: nothing is narrowed
    if kind == "i":
        info = np.iinfo(np.int32)
        return float(info.min), float(info.max)
    if kind == "u":
        return 0.0, float(np.iinfo(np.uint32).max)
    top = float(np.finfo(np.float32).max)
    return -top, top


def _taken_unchanged(value: Any) -> bool:
    """Whether ``jax.jit`` takes ``value`` as an array argument without changing its values."""
    if value is None or isinstance(value, jax.Array):
        return True
    if isinstance(value, bool | float | complex):
        return True
    if isinstance(value, tuple):  # a transform's state, a NamedTuple, a chain's tuple of states
        return all(_taken_unchanged(item) for item in value)
    if isinstance(value, int):
        return -(2**31) <= value < 2**31
    if not isinstance(value, np.ndarray | np.generic):
        return False  # text, lists, mappings, other objects: let the function's checks name them
    dtype = value.dtype
    if dtype.kind not in _JAX_KINDS:
        return False
    if dtype.itemsize < 8 or (dtype.kind == "c" and dtype.itemsize < 16):
        return True
    limits = _limits(dtype.kind)
    if limits is None or value.size == 0:
        return True
    values = np.asarray(value)
    if dtype.kind == "c":
        values = np.concatenate([values.real.ravel(), values.imag.ravel()])
    if dtype.kind == "f" or dtype.kind == "c":
        values = values[np.isfinite(values)]  # NaN and inf stay NaN and inf in float32
        if values.size == 0:
            return True
    low, high = limits
    return bool(low <= values.min() and values.max() <= high)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def checked_jit(
    fun: Callable[..., Any] | None = None, *, static_argnames: Sequence[str] | str = ()
) -> Any:
    """``jax.jit(fun, static_argnames=...)``, calling ``fun`` itself where jit cannot take an argument.

    The wrapper has the jitted function's ``lower`` and ``trace``, and ``__wrapped__`` is
    ``fun``. Use it as ``@checked_jit`` or ``@functools.partial(checked_jit, static_argnames=...)``.

    Example:
        >>> import numpy as np
        >>> from liam_core.algebra import standardize
        >>> standardize(np.array(["a", "b"]))
        Traceback (most recent call last):
        ...
        liam_core._errors.InvalidTypeError: standardize: `x` must be an array of real numbers (float or int), got dtype <U1
    """
    if fun is None:
        return functools.partial(checked_jit, static_argnames=static_argnames)
    static = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    jitted = jax.jit(fun, static_argnames=static)
    signature = inspect.signature(fun)

    @functools.wraps(fun)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return fun(*args, **kwargs)  # Python's own message about the call
        for name, value in bound.arguments.items():
            ok = _hashable(value) if name in static else _taken_unchanged(value)
            if not ok:
                return fun(*args, **kwargs)
        return jitted(*args, **kwargs)

    call.lower = jitted.lower  # type: ignore[attr-defined]
    call.trace = jitted.trace  # type: ignore[attr-defined]
    return call
