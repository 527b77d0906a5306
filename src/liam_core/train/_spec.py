"""``TrainSpec``: the settings of the training loop (the typed form of ``train:`` in the config)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from .._checks import check_bool, check_choice, check_int, check_number
from .._errors import ConfigError

ResumePolicy = Literal["auto", "never", "force"]
"""Values of ``train.resume``: what a run does with the checkpoints already in its folder.

``auto``: resume from the newest usable one when it was written with the same fingerprint
(settings, data and code that change the result), start fresh when there is none, refuse
(:class:`~liam_core.train.ResumeError`) when the fingerprint differs. ``never``: start fresh,
setting the old checkpoints and metrics aside (never deleting them). ``force``: resume
whatever the fingerprint says (the differences are logged).
"""


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
        resume: a :data:`ResumePolicy`: ``"auto"`` (resume when the checkpoints' fingerprint
            matches), ``"never"`` (start fresh, old checkpoints set aside) or ``"force"``.
        steps_per_dispatch: optimizer steps per compiled program, >= 1. ``1`` runs the
            data-parallel one-step path (:meth:`TrainStep.__call__`). More runs up to that
            many steps in one program on the home device (:meth:`TrainStep.run`), which
            amortizes the fixed cost of a step on small models; a dispatch also ends at every
            evaluation, checkpoint and the last step. Both give the same bytes on every
            topology, and every value above 1 gives the same bytes as every other, but they
            are not the bytes of ``1`` (the multi-step program computes the chunks batched,
            compiled with the scan around them).

    Example:
        >>> from liam_core.train import TrainSpec
        >>> TrainSpec(steps=100, eval_every=10, patience=3).patience
        3
        >>> TrainSpec(batch_size=0)
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: `train.batch_size` must be an int >= 1, got 0
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
    resume: ResumePolicy = "auto"
    steps_per_dispatch: int = 1

    def __post_init__(self) -> None:
        def check(name: str, minimum: int = 1) -> None:
            value = check_int(getattr(self, name), f"train.{name}", minimum=minimum)
            object.__setattr__(self, name, value)

        for name in ("steps", "batch_size", "log_every", "keep_checkpoints", "steps_per_dispatch"):
            check(name)
        for name in ("eval_every", "checkpoint_every", "seed"):
            check(name, minimum=0)
        if self.patience is not None:
            check("patience")
            if self.eval_every == 0:
                raise ConfigError(
                    f"train.patience={self.patience} stops early on evaluations, but "
                    "train.eval_every=0 never evaluates; set eval_every >= 1 or patience=null"
                )
        min_delta = check_number(self.min_delta, "train.min_delta", minimum=0)
        object.__setattr__(self, "min_delta", min_delta)
        object.__setattr__(self, "shuffle", check_bool(self.shuffle, "train.shuffle"))
        check_choice(self.resume, "train.resume", ResumePolicy)
