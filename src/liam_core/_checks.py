"""Input checks shared by every layer, with one message format.

Every check names what it looked at and says what was expected, in one shape::

    [<owner>: ]`<name>` must be <expected>, got <what was given>

``owner`` is the function or class at fault (``welch``, ``Autoencoder``), ``name`` the
argument or config field (``nperseg``, ``mesh.chunk_size``). Offending values are quoted
with at most :data:`MAX_QUOTE` characters, so a 5 MB cell never becomes a 5 MB message.

Settings (ints, numbers, choices, flags) raise :class:`~liam_core.ConfigError`, or
:class:`~liam_core.ConfigTypeError` when the type is wrong (text where an int belongs);
arrays raise :class:`~liam_core.InvalidTypeError`, :class:`~liam_core.ShapeError`,
:class:`~liam_core.EmptyInputError` or :class:`~liam_core.InvalidValueError`. The array
checks read only static dtype and shape, so they also run on tracers while JAX traces.

Example:
    >>> from liam_core._checks import check_int, check_choice
    >>> check_int(256, "chunk_size")
    256
    >>> check_int(0, "chunk_size", owner="LaborArray")
    Traceback (most recent call last):
    ...
    liam_core._errors.ConfigError: LaborArray: `chunk_size` must be an int >= 1, got 0
    >>> check_choice("median", "average", ("mean", "median"))
    'median'
"""

from __future__ import annotations

import math
import os
import typing
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np

from ._errors import (
    ConfigError,
    ConfigTypeError,
    EmptyInputError,
    InvalidTypeError,
    InvalidValueError,
    ShapeError,
)

MAX_QUOTE = 200
"""The most characters of an offending value a message quotes."""


def quote(value: Any) -> str:
    """``repr(value)``, cut to :data:`MAX_QUOTE` characters (with ``...`` when cut).

    numpy scalars show as the Python numbers they hold (``150.0``, not ``np.float64(150.0)``).

    Example:
        >>> import numpy as np
        >>> quote(np.float64(150.0)), quote("x" * 500)[-8:]
        ('150.0', 'xxxxx...')
    """
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 3] + "..."


def _subject(name: str, owner: str | None) -> str:
    return f"{owner}: `{name}`" if owner else f"`{name}`"


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool | np.bool_) and isinstance(value, int | np.integer)


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool | np.bool_) and isinstance(
        value, int | float | np.integer | np.floating
    )


def _range_text(kind: str, minimum: Any, maximum: Any) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    if maximum is not None:
        return f"{kind} <= {maximum}"
    return kind


def _open_range_text(kind: str, minimum: Any, maximum: Any) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} in ({minimum}, {maximum})"
    if minimum is not None:
        return f"{kind} > {minimum}"
    if maximum is not None:
        return f"{kind} < {maximum}"
    return kind


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int | None = 1,
    maximum: int | None = None,
    owner: str | None = None,
    why: str = "",
) -> int:
    """``value`` as a Python ``int`` in ``[minimum, maximum]`` (``None``: unbounded).

    Bools are refused (``True`` is not a count). ``why`` is appended to the expectation
    (``" (the segment length)"``).

    Example:
        >>> check_int(3, "k", minimum=1, maximum=8)
        3
        >>> check_int("3", "k")
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigTypeError: `k` must be an int >= 1, got str: '3'
    """
    expected = _range_text("an int", minimum, maximum) + why
    if not _is_int(value):
        raise ConfigTypeError(
            f"{_subject(name, owner)} must be {expected}, got {type(value).__name__}: "
            f"{quote(value)}"
        )
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"{_subject(name, owner)} must be {expected}, got {int(value)}")
    return int(value)


def check_number(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    open_interval: bool = False,
    owner: str | None = None,
) -> float:
    """``value`` as a finite Python ``float`` in ``[minimum, maximum]``; ``positive``: ``> 0``.

    NaN and infinities are refused, as are bools and text. ``open_interval``: the bounds
    themselves are refused too, ``(minimum, maximum)``.

    Example:
        >>> check_number(2, "fs", positive=True)
        2.0
        >>> check_number(float("nan"), "fs", positive=True, owner="welch")
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: welch: `fs` must be a finite number > 0, got nan
    """
    if positive:
        expected = (
            "a finite number > 0" if maximum is None else f"a finite number in (0, {maximum}]"
        )
    elif open_interval:
        expected = _open_range_text("a finite number", minimum, maximum)
    else:
        expected = _range_text("a finite number", minimum, maximum)
    if not _is_real(value):
        raise ConfigTypeError(
            f"{_subject(name, owner)} must be {expected}, got {type(value).__name__}: "
            f"{quote(value)}"
        )
    number = float(value)
    if (
        not math.isfinite(number)
        or (positive and number <= 0)
        or (minimum is not None and (number <= minimum if open_interval else number < minimum))
        or (maximum is not None and (number >= maximum if open_interval else number > maximum))
    ):
        raise ConfigError(f"{_subject(name, owner)} must be {expected}, got {quote(number)}")
    return number


def allowed_values(allowed: Any) -> tuple[Any, ...]:
    """The values of a ``Literal[...]`` type (or any iterable of values) as a tuple."""
    args = typing.get_args(allowed)
    if args:
        return args
    return tuple(allowed)


def check_choice(value: Any, name: str, allowed: Any, *, owner: str | None = None) -> Any:
    """``value`` if it is one of ``allowed`` (a ``Literal`` type or an iterable), else ``ConfigError``.

    Comparison is by value and type, so ``0`` does not pass for ``False``.

    Example:
        >>> from typing import Literal
        >>> check_choice("pmap", "executor", Literal["pmap", "shard_map"])
        'pmap'
        >>> check_choice("vmap", "mesh.executor", Literal["pmap", "shard_map"])
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: `mesh.executor` must be one of 'pmap', 'shard_map', got 'vmap'
    """
    choices = allowed_values(allowed)
    for choice in choices:
        if value is choice or (type(value) is type(choice) and value == choice):
            return value
    listed = ", ".join(quote(choice) for choice in choices)
    raise ConfigError(f"{_subject(name, owner)} must be one of {listed}, got {quote(value)}")


def check_bool(value: Any, name: str, *, owner: str | None = None) -> bool:
    """``value`` if it is a bool (``True``/``False``, numpy bools included), else ``ConfigTypeError``."""
    if not isinstance(value, bool | np.bool_):
        raise ConfigTypeError(
            f"{_subject(name, owner)} must be True or False, got {type(value).__name__}: "
            f"{quote(value)}"
        )
    return bool(value)


def check_callable(value: Any, name: str, *, owner: str | None = None) -> Any:
    """``value`` if it is callable, else ``ConfigTypeError``.

    Example:
        >>> check_callable(None, "fn", owner="LaborArray.map")
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigTypeError: LaborArray.map: `fn` must be callable, got NoneType: None
    """
    if not callable(value):
        raise ConfigTypeError(
            f"{_subject(name, owner)} must be callable, got {type(value).__name__}: {quote(value)}"
        )
    return value


def check_float_dtype(value: Any, name: str, *, owner: str | None = None) -> np.dtype:
    """``value`` as a floating numpy dtype that JAX has enabled (float64 needs x64).

    Example:
        >>> check_float_dtype("float32", "dtype")
        dtype('float32')
        >>> check_float_dtype("int32", "dtype", owner="random_hyperplanes")
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigTypeError: random_hyperplanes: `dtype` must be a floating dtype (float32, or float64 with jax_enable_x64), got 'int32'
    """
    expected = "a floating dtype (float32, or float64 with jax_enable_x64)"
    try:
        dtype = None if value is None or isinstance(value, bool) else np.dtype(value)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or not np.issubdtype(dtype, np.floating):
        raise ConfigTypeError(f"{_subject(name, owner)} must be {expected}, got {quote(value)}")
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise ConfigError(
            f"{_subject(name, owner)} must be {expected}, got {quote(value)}, which this JAX "
            f"runs as {jax.dtypes.canonicalize_dtype(dtype)}: enable jax_enable_x64 or pass float32"
        )
    return dtype


def memory_bytes() -> int:
    """The physical memory of this machine, in bytes (the most one array could ever use)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits_in_memory(nbytes: int, name: str, what: str, *, owner: str | None = None) -> None:
    """Raise ``ConfigError`` naming the setting ``name`` if ``nbytes`` exceed the physical memory.

    Checked before allocating, so a setting such as ``chunk_size=10**9`` is refused with a
    message instead of killing the process. ``what`` describes the allocation.
    """
    available = memory_bytes()
    if nbytes > available:
        raise ConfigError(
            f"{_subject(name, owner)} must keep {what} within this machine's memory "
            f"({_gib(available)}), got {quote(nbytes)} bytes ({_gib(nbytes)})"
        )


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def check_names(value: Any, name: str, *, owner: str | None = None) -> tuple[str, ...]:
    """``value`` as a tuple of distinct non-empty strings (column, metric or axis names)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigTypeError(
            f"{_subject(name, owner)} must be a list of names, got {type(value).__name__}: "
            f"{quote(value)}"
        )
    names = tuple(value)
    for item in names:
        if not isinstance(item, str) or not item:
            raise ConfigTypeError(
                f"{_subject(name, owner)} must be a list of non-empty names, got {quote(item)} "
                f"in {quote(list(names))}"
            )
    duplicates = sorted({item for item in names if names.count(item) > 1})
    if duplicates:
        raise ConfigError(f"{_subject(name, owner)} must name each entry once, got {duplicates}")
    return names


def as_real_array(x: Any, name: str, *, owner: str | None = None) -> Any:
    """``x`` as a numpy or JAX array of real numbers, or ``InvalidTypeError`` naming ``name``.

    Text, objects, bools and complex numbers are refused; nothing is converted or copied
    beyond ``np.asarray`` of non-arrays, and tracers pass through (only dtype is read).

    Example:
        >>> as_real_array([1, 2], "x").dtype
        dtype('int64')
        >>> as_real_array(["a"], "x", owner="standardize")
        Traceback (most recent call last):
        ...
        liam_core._errors.InvalidTypeError: standardize: `x` must be an array of real numbers (float or int), got dtype <U1
    """
    expected = "an array of real numbers (float or int)"
    if not isinstance(x, jax.Array):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as error:
            raise InvalidTypeError(
                f"{_subject(name, owner)} must be {expected}, got {type(x).__name__} that numpy "
                f"cannot convert: {quote(str(error))}"
            ) from None
    dtype = np.dtype(x.dtype)
    if dtype == np.bool_ or not (
        np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)
    ):
        raise InvalidTypeError(f"{_subject(name, owner)} must be {expected}, got dtype {dtype}")
    _check_float32_range(x, name, owner)
    return x


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32_range(x: Any, name: str, owner: str | None) -> None:
    """Refuse concrete float64 values past float32's range when JAX runs float64 as float32.

    Without ``jax_enable_x64`` JAX would turn them into infinities, silently.
    """
    if not isinstance(x, np.ndarray | np.generic) or x.dtype != np.float64 or x.size == 0:
        return
    if jax.dtypes.canonicalize_dtype(np.float64) == np.float64:
        return
    values = np.asarray(x)
    outside = np.isfinite(values) & (np.abs(values) > _FLOAT32_MAX)
    if outside.any():
        where = tuple(int(i) for i in np.argwhere(outside)[0])
        raise InvalidValueError(
            f"{_subject(name, owner)} must hold values within float32's range (|x| <= "
            f"{_FLOAT32_MAX:.4g}; enable jax_enable_x64 for float64), got {quote(values[where])} "
            f"at index {where}"
        )


def check_ndim(
    x: Any, name: str, ndim: int | tuple[int, ...], *, owner: str | None = None, layout: str = ""
) -> None:
    """Raise ``ShapeError`` unless ``x.ndim`` is ``ndim`` (or one of them); ``layout`` names the axes.

    Example:
        >>> import numpy as np
        >>> check_ndim(np.zeros(3), "x", 2, layout=" [time, metrics]")
        Traceback (most recent call last):
        ...
        liam_core._errors.ShapeError: `x` must be 2-D [time, metrics], got shape (3,)
    """
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.ndim not in allowed:
        expected = " or ".join(f"{d}-D" for d in allowed)
        raise ShapeError(
            f"{_subject(name, owner)} must be {expected}{layout}, got shape {tuple(x.shape)}"
        )


def check_not_empty(x: Any, name: str, *, owner: str | None = None) -> None:
    """Raise ``EmptyInputError`` if ``x`` has no elements."""
    if x.size == 0:
        raise EmptyInputError(
            f"{_subject(name, owner)} must hold at least one value, got shape {tuple(x.shape)}"
        )


def check_finite(x: Any, name: str, *, owner: str | None = None) -> None:
    """Raise ``InvalidValueError`` naming the first NaN or infinity of a concrete array.

    Runs on the host (it reads values); tracers are skipped, since their values are unknown
    at trace time (use ``eqx.error_if`` inside a jitted program instead).

    Example:
        >>> import numpy as np
        >>> check_finite(np.array([[1.0, np.inf]]), "x")
        Traceback (most recent call last):
        ...
        liam_core._errors.InvalidValueError: `x` must be finite, got inf at index (0, 1) (1 non-finite value of 2)
    """
    if isinstance(x, jax.core.Tracer):
        return
    values = np.asarray(x)
    if not np.issubdtype(values.dtype, np.inexact):
        return
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        count = int(bad.sum())
        raise InvalidValueError(
            f"{_subject(name, owner)} must be finite, got {values[where]} at index {where} "
            f"({count} non-finite value{'s' if count > 1 else ''} of {values.size})"
        )


def as_float_array(
    x: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    owner: str | None = None,
    allow_empty: bool = False,
) -> jax.Array:
    """``x`` as a floating JAX array, or a typed error naming ``name``.

    Floating input keeps its dtype; integer input becomes JAX's default float (float32, or
    float64 under x64). Text, objects, bools and complex numbers are refused; ``ndim``
    restricts the rank; an empty array is refused unless ``allow_empty``. Works on tracers,
    since only the static dtype and shape are inspected.
    """
    x = as_real_array(x, name, owner=owner)
    if np.issubdtype(np.dtype(x.dtype), np.integer):
        x = jax.numpy.asarray(x, dtype=jax.numpy.result_type(float))
    else:
        x = jax.numpy.asarray(x)
    if ndim is not None:
        check_ndim(x, name, ndim, owner=owner)
    if not allow_empty:
        check_not_empty(x, name, owner=owner)
    return x
