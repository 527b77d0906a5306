"""Typed errors. Every error liam-core raises on purpose is a :class:`LiamError`.

Each subclass also derives from the builtin a caller would expect (``ValueError``,
``TypeError``, ``KeyError`` semantics are avoided because ``KeyError`` quotes its message),
so ``except ValueError`` keeps working, and ``except LiamError`` catches everything of ours.
Messages name the offending key, value, shape or setting and say what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping


class LiamError(Exception):
    """Base class of every error raised by liam-core."""


class InvalidValueError(LiamError, ValueError):
    """A value is NaN, infinite, out of its valid range, or otherwise not acceptable."""


class InvalidTypeError(LiamError, TypeError):
    """A value has the wrong type: text, a bool or None where a number was expected."""


class ShapeError(LiamError, ValueError):
    """An array has the wrong number of dimensions, the wrong size, or is empty."""


class EmptyInputError(ShapeError):
    """A record, batch or matrix holds nothing to compute on."""


class UnknownMetricError(LiamError, ValueError):
    """A metric name is not in the schema."""


class MissingMetricError(LiamError, ValueError):
    """A metric the schema requires is absent from a record."""


class HashCollisionError(LiamError, ValueError):
    """Two metric names of one record hash to the same slot of the feature vector."""


class ConfigError(LiamError, ValueError):
    """A setting (argument or config field) has a value outside the allowed ones."""


class ConfigTypeError(ConfigError, InvalidTypeError):
    """A setting has the wrong type (text, a bool or None where an int was expected).

    It is both a :class:`ConfigError` (a bad setting) and an :class:`InvalidTypeError`
    (so ``except TypeError`` catches it, as it would from numpy or scipy).
    """


class DistributedError(LiamError, RuntimeError):
    """Multi-process start-up failed or a peer was lost."""


class CheckpointError(LiamError, RuntimeError):
    """A checkpoint is corrupt, partial or unreadable; the message names its folder and step.

    Attributes:
        step: the step of the checkpoint, when one is concerned.
    """

    def __init__(self, message: str, *, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


class DataError(InvalidValueError):
    """The content of a data source is not what a reader expects (a ``ValueError``).

    Text in a metric column, a ragged row, a duplicate header, an unparseable time, a value
    that overflows float32, bytes that do not decode, a corrupt file, a missing column. The
    message names the file, the 1-based line or row, and the column.
    """


class EmptyDataError(DataError, EmptyInputError):
    """A data source holds no header or no data rows."""


class DataFileNotFoundError(LiamError, FileNotFoundError):
    """The file a reader was asked for does not exist, or is a directory."""


class RunLockedError(LiamError, RuntimeError):
    """Another process is running in this run folder (it holds the folder's lock)."""


class ResumeError(ConfigError):
    """The checkpoints in a run folder were written by a run with another fingerprint.

    Attributes:
        changes: ``{key: (old, new)}`` of what differs, values as short JSON text.
    """

    def __init__(self, message: str, *, changes: Mapping[str, tuple[str, str]]) -> None:
        super().__init__(message)
        self.changes = dict(changes)


class BundleError(LiamError, RuntimeError):
    """An export bundle or model repository that cannot be used: a missing, truncated or
    changed file (its sha256 differs), an unknown format, or an export this JAX cannot read."""
