"""``TrainSpec``: the settings of the training loop (the typed form of ``train:`` in the config)."""

from __future__ import annotations

import dataclasses
import math
import numbers

from .._errors import ConfigError


def _positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"train.{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """How long to train, how often to evaluate, log and checkpoint, and when to stop early.

    Args:
        steps: optimizer steps of the whole run (a resumed run continues up to it), >= 1.
        batch_size: rows per step, >= 1; every step sees exactly this many rows, so the
            step compiles once.
        eval_every: evaluate on the held-out rows every this many steps (0: never).
        patience: stop early after this many evaluations in a row without an improvement of
            the best evaluation loss by more than ``min_delta`` (``None``: never stop early).
        min_delta: the improvement that counts, >= 0.
        log_every: record the training loss every this many steps, >= 1 (each record waits
            for the step to finish, so a larger value keeps more steps in flight).
        checkpoint_every: save a checkpoint every this many steps (0: only at the end).
        keep_checkpoints: how many of the newest checkpoints to keep, >= 1.
        shuffle: visit the training rows in a new random order every epoch (the order is a
            function of ``seed`` and the epoch) instead of in their stored order.
        seed: seed of the run's RNG key (data order); an int >= 0.

    Example:
        >>> from liam_core.train import TrainSpec
        >>> TrainSpec(steps=100, eval_every=10, patience=3).patience
        3
        >>> TrainSpec(batch_size=0)
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: train.batch_size must be an int >= 1, got 0
    """

    steps: int = 300
    batch_size: int = 4096
    eval_every: int = 50
    patience: int | None = None
    min_delta: float = 0.0
    log_every: int = 10
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    shuffle: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "steps", _positive_int("steps", self.steps))
        set_(self, "batch_size", _positive_int("batch_size", self.batch_size))
        set_(self, "eval_every", _positive_int("eval_every", self.eval_every, minimum=0))
        if self.patience is not None:
            set_(self, "patience", _positive_int("patience", self.patience))
            if self.eval_every == 0:
                raise ConfigError(
                    f"train.patience={self.patience} stops early on evaluations, but "
                    "train.eval_every=0 never evaluates; set eval_every >= 1 or patience=null"
                )
        if (
            isinstance(self.min_delta, bool)
            or not isinstance(self.min_delta, numbers.Real)
            or not math.isfinite(self.min_delta)
            or self.min_delta < 0
        ):
            raise ConfigError(
                f"train.min_delta must be a finite number >= 0, got {self.min_delta!r}"
            )
        set_(self, "min_delta", float(self.min_delta))
        set_(self, "log_every", _positive_int("log_every", self.log_every))
        set_(
            self,
            "checkpoint_every",
            _positive_int("checkpoint_every", self.checkpoint_every, minimum=0),
        )
        set_(self, "keep_checkpoints", _positive_int("keep_checkpoints", self.keep_checkpoints))
        if not isinstance(self.shuffle, bool):
            raise ConfigError(f"train.shuffle must be true or false, got {self.shuffle!r}")
        set_(self, "seed", _positive_int("seed", self.seed, minimum=0))
