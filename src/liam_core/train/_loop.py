"""``fit``: the training loop: steps, evaluation, early stopping, checkpoints, metrics, a bar."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import optax

from .._checks import check_int
from .._errors import ConfigError, InvalidTypeError, InvalidValueError, ResumeError
from .._evidence import progress_bar
from ..alda import LaborArray
from ._checkpoint import Checkpoints
from ._data import TrainData, fixed_batches
from ._interrupt import StopOnSignals, TrainingInterrupted
from ._run_dir import describe_changes, fingerprint_changes, set_aside
from ._spec import TrainSpec
from ._state import TrainState, new_rng
from ._step import TrainStep
from ._tracking import MetricsLog, Tracker

LOGGER = logging.getLogger("liam_core.train")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`fit`.

    Attributes:
        state: the final :class:`TrainState` (model, optimizer state, counters, RNG).
        history: the metric records of the whole run (those of earlier, resumed-from parts
            included when a metrics file is kept), each ``{"step": ..., <metric>: ...}``.
        resumed_from: the step of the checkpoint the run continued from, or ``None``.
        skipped_checkpoints: messages of the newer checkpoints that were corrupt and skipped.
        steps_this_call: optimizer steps taken by this call.
        seconds: wall time of this call's steps (compilation included).
        set_aside: where ``train.resume=never`` moved the earlier checkpoints and metrics.
    """

    state: TrainState
    history: list[dict[str, Any]]
    resumed_from: int | None
    skipped_checkpoints: tuple[str, ...]
    steps_this_call: int
    seconds: float
    set_aside: tuple[str, ...] = ()

    @property
    def model(self) -> eqx.Module:
        """The trained model."""
        return self.state.model

    @property
    def stopped_early(self) -> bool:
        """Whether early stopping ended the run before ``spec.steps``."""
        return self.state.stopped

    def digest(self) -> str:
        """The sha256 of the final state: equal for runs that computed the same bits."""
        return self.state.digest()


def _check_model(model: object) -> eqx.Module:
    if not isinstance(model, eqx.Module):
        raise InvalidTypeError(
            f"fit: `model` must be an Equinox module (e.g. from liam_core.models.make_model), "
            f"got {type(model).__name__}"
        )
    return model


def fit(
    model: eqx.Module,
    optimizer: optax.GradientTransformation,
    examples: Any,
    *,
    loss: Callable[[Any, Any], jax.Array],
    labor: LaborArray,
    spec: TrainSpec,
    eval_examples: Any = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    metrics_path: str | os.PathLike[str] | None = None,
    trackers: Sequence[Tracker] = (),
    progress: bool = False,
    stop_at: int | None = None,
    on_step: Callable[[TrainState], None] | None = None,
    checkpoint_metadata: Mapping[str, Any] | None = None,
    fingerprint: Mapping[str, str] | None = None,
    stop_on_signals: bool = True,
) -> TrainResult:
    """Train ``model`` with ``optimizer`` on ``examples``, resuming from a checkpoint if any.

    Every step is a :class:`TrainStep`: the mean gradient of the per-example loss over a
    batch of ``spec.batch_size`` rows through ALDA, then the optax update, so the run gives
    the same bytes on every topology. With ``spec.steps_per_dispatch`` above 1, up to that
    many steps run in one program (:meth:`TrainStep.run`); a dispatch ends at every
    evaluation, checkpoint and the last step, and a signal stops the run between
    dispatches. With ``checkpoint_dir`` the run continues from the newest usable checkpoint
    there (parameters, optimizer state, step, RNG, data position and early-stopping
    counters), so a run killed at any step and started again ends with
    the same bytes as one that never stopped, on the same or on another number of devices.

    ``spec.resume`` decides what happens to checkpoints already in ``checkpoint_dir``:
    ``"auto"`` resumes when they carry this run's ``fingerprint`` and refuses with a
    :class:`ResumeError` naming what changed otherwise; ``"never"`` sets them (and the
    metrics file) aside and starts fresh; ``"force"`` resumes whatever changed. A SIGINT or
    SIGTERM stops the run between two steps: the step reached is saved and
    :class:`TrainingInterrupted` is raised; calling ``fit`` again continues from there.

    Args:
        model: the initial model (ignored where a checkpoint is restored, except for its
            structure).
        optimizer: an optax ``GradientTransformation``.
        examples: the training examples: an array (autoencoder) or a pytree ``(x, y)``.
        loss: the per-example ``loss(model, example)`` (see :class:`TrainStep`).
        labor: the :class:`~liam_core.alda.LaborArray` that computes the gradients.
        spec: the :class:`TrainSpec` (steps, batch size, evaluation, early stopping, ...).
        eval_examples: held-out examples, evaluated every ``spec.eval_every`` steps.
        checkpoint_dir: where checkpoints are saved and restored (``None``: none).
        metrics_path: the JSONL file of metric records (``None``: kept in memory only).
        trackers: more receivers of every metric record (e.g. an :class:`MlflowTracker`).
        progress: show a progress bar on stderr.
        stop_at: stop (after saving a checkpoint) once this step is reached, as a preempted
            job would; the next call continues.
        on_step: called with the state after every dispatch: after every step when
            ``spec.steps_per_dispatch`` is 1, else after each group of up to that many steps.
        checkpoint_metadata: JSON-ready facts written into every checkpoint.
        fingerprint: what the run's result depends on (:func:`fingerprint`), written into
            every checkpoint and compared with the checkpoint's when resuming (``None``:
            nothing is compared but the data order and the shapes of the arrays).
        stop_on_signals: stop between steps on SIGINT and SIGTERM, with a checkpoint
            (only in the main thread).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ResumeError: the checkpoints were written with another fingerprint (``"auto"``).
        ConfigError: a setting is invalid, or the checkpoints belong to another model.
        CheckpointError: checkpoints exist but none can be restored.
        InvalidValueError: the loss became NaN or infinite.
        TrainingInterrupted: a SIGINT or SIGTERM stopped the run (after its checkpoint).

    Example:
        >>> import numpy as np, optax
        >>> from liam_core.alda import LaborArray
        >>> from liam_core.models import make_model, reconstruction_example_loss
        >>> from liam_core.train import TrainSpec, fit
        >>> x = np.random.default_rng(0).standard_normal((2048, 4)).astype(np.float32)
        >>> spec = TrainSpec(steps=20, batch_size=512, eval_every=10, checkpoint_every=0)
        >>> model = make_model("autoencoder", in_features=4, width=8, seed=0)
        >>> result = fit(model, optax.adam(1e-2), x, loss=reconstruction_example_loss,
        ...              labor=LaborArray(2), spec=spec, eval_examples=x[:512])
        >>> result.state.step, [sorted(record) for record in result.history][-1]
        (20, ['eval_loss', 'loss', 'step'])
    """
    model = _check_model(model)
    if not isinstance(spec, TrainSpec):
        raise InvalidTypeError(f"fit: `spec` must be a TrainSpec, got {type(spec).__name__}")
    if stop_at is not None:
        stop_at = check_int(stop_at, "stop_at", owner="fit", why=" or None")
    data = TrainData(examples, batch_size=spec.batch_size, shuffle=spec.shuffle)
    step_fn = TrainStep(labor, optimizer, loss=loss)
    template = TrainState(
        model=model, opt_state=step_fn.init(model), step=0, position=0, rng=new_rng(spec.seed)
    )

    set_aside_paths: tuple[str, ...] = ()
    if spec.resume == "never":
        set_aside_paths = _start_fresh(checkpoint_dir, metrics_path)
    checkpoints = (
        Checkpoints(checkpoint_dir, keep=spec.keep_checkpoints) if checkpoint_dir else None
    )
    stop = StopOnSignals(enabled=stop_on_signals)
    try:
        stop.__enter__()
        state, resumed_from, skipped = template, None, ()
        data_order = {"rows": data.n_rows, "batch_size": spec.batch_size, "shuffle": spec.shuffle}
        if checkpoints is not None:
            check = _fingerprint_check(checkpoints, fingerprint, forced=spec.resume == "force")
            restored = checkpoints.restore_latest(template, check=check)
            if restored.state is not None and restored.step is not None:
                if spec.resume != "force":
                    _check_data_order(checkpoints, restored.step, data_order)
                state, resumed_from = restored.state, restored.step
            skipped = tuple(str(error) for error in restored.skipped)
        metadata = {
            "data_order": data_order,
            **({"fingerprint": dict(fingerprint)} if fingerprint is not None else {}),
            **(checkpoint_metadata or {}),
        }
        log = MetricsLog(metrics_path, resume_step=state.step) if metrics_path else None
        history = log.records() if log is not None else []
        sinks: list[Any] = [*([log] if log is not None else []), *trackers]
        eval_batches = (
            [
                (step_fn.put(batch), n_rows)
                for batch, n_rows in fixed_batches(eval_examples, spec.batch_size)
            ]
            if eval_examples is not None and spec.eval_every
            else []
        )
        started, first_step = time.perf_counter(), state.step
        state = _loop(
            state, step_fn, data, spec, eval_batches, sinks, history, checkpoints,
            progress=progress, stop_at=stop_at, on_step=on_step,
            metadata=metadata, stop=stop,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    finally:
        stop.__exit__(None, None, None)
        if checkpoints is not None:
            checkpoints.close()
    return TrainResult(
        state=state,
        history=history,
        resumed_from=resumed_from,
        skipped_checkpoints=skipped,
        steps_this_call=state.step - first_step,
        seconds=seconds,
        set_aside=set_aside_paths,
    )


def _loop(
    state: TrainState,
    step_fn: TrainStep,
    data: TrainData,
    spec: TrainSpec,
    eval_batches: list[tuple[Any, int]],
    sinks: list[Any],
    history: list[dict[str, Any]],
    checkpoints: Checkpoints | None,
    *,
    progress: bool,
    stop_at: int | None,
    on_step: Callable[[TrainState], None] | None,
    metadata: Mapping[str, Any] | None,
    stop: StopOnSignals,
) -> TrainState:
    last = spec.steps if stop_at is None else min(spec.steps, stop_at)
    saved = set(checkpoints.steps) if checkpoints is not None else set()
    model, opt_state = state.model, state.opt_state

    def interrupt(state: TrainState) -> TrainingInterrupted:
        """Save the step reached (unless saved already) and say where the run stopped."""
        where = None
        if checkpoints is not None and state.step > 0:
            if state.step not in saved:
                checkpoints.save(state, metadata=metadata)
                saved.add(state.step)
            where = checkpoints.directory / str(state.step)
        # Only a caught signal sets the stop flag, so signum is known; SIGINT is the fallback.
        signum = stop.signum if stop.signum is not None else signal.SIGINT
        return TrainingInterrupted(step=state.step, signum=signum, checkpoint=where)

    with progress_bar(
        spec.steps, unit="step", label="training", initial=state.step, enabled=progress
    ) as bar:
        while not state.stopped and state.step < last:
            if stop.requested:  # between dispatches: never inside a jitted program
                raise interrupt(state)
            n_steps = _dispatch_length(state.step, last, spec, bool(eval_batches), checkpoints)
            batches = [data.batch(state.position + i, rng=state.rng) for i in range(n_steps)]
            if spec.steps_per_dispatch == 1:
                model, opt_state, loss = step_fn(model, opt_state, batches[0])
                losses: Any = [loss]
            else:
                model, opt_state, losses = step_fn.run(model, opt_state, batches)
            host_losses = None
            for offset in range(n_steps):
                step = state.step + offset + 1
                record: dict[str, float] = {}
                if step % spec.log_every == 0 or step == spec.steps:
                    if host_losses is None:  # one transfer for the whole dispatch
                        host_losses = [float(value) for value in jax.device_get(losses)]
                    record["loss"] = _finite(host_losses[offset], "training loss", step)
                    bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
                if offset == n_steps - 1:  # evaluations and checkpoints end a dispatch
                    state = _after_dispatch(
                        state, model, opt_state, n_steps, record, step_fn, spec, eval_batches
                    )
                if record:
                    history.append({"step": step, **record})
                    for sink in sinks:
                        sink.log_metrics(step, record)
                bar.update(1)
            due = spec.checkpoint_every and state.step % spec.checkpoint_every == 0
            if checkpoints is not None and (due or state.stopped or state.step == last):
                if state.step not in saved:
                    checkpoints.save(state, metadata=metadata)
                    saved.add(state.step)
            if on_step is not None:
                on_step(state)
    if stop.requested:
        raise interrupt(state)
    return state


def _dispatch_length(
    step: int, last: int, spec: TrainSpec, evaluates: bool, checkpoints: Checkpoints | None
) -> int:
    """Steps of the next dispatch: at most ``steps_per_dispatch``, ending on every step
    whose state is needed (an evaluation, a checkpoint, the last step)."""
    n_steps = min(spec.steps_per_dispatch, last - step)
    for every, needed in ((spec.eval_every, evaluates), (spec.checkpoint_every, checkpoints)):
        if needed and every:
            n_steps = min(n_steps, every - step % every)
    return n_steps


def _after_dispatch(
    state: TrainState,
    model: Any,
    opt_state: Any,
    n_steps: int,
    record: dict[str, float],
    step_fn: TrainStep,
    spec: TrainSpec,
    eval_batches: list[tuple[Any, int]],
) -> TrainState:
    """The state after a dispatch of ``n_steps`` steps, evaluated (into ``record``) if due."""
    step = state.step + n_steps
    best = (state.best_eval, state.best_step, state.evals_since_best)
    stopped = False
    if eval_batches and step % spec.eval_every == 0:
        eval_loss = _finite(step_fn.evaluate(model, eval_batches), "eval loss", step)
        record["eval_loss"] = eval_loss
        if eval_loss < best[0] - spec.min_delta:
            best = (eval_loss, step, 0)
        else:
            best = (best[0], best[1], best[2] + 1)
        stopped = spec.patience is not None and best[2] >= spec.patience
    return TrainState(
        model=model,
        opt_state=opt_state,
        step=step,
        position=state.position + n_steps,
        rng=state.rng,
        best_eval=best[0],
        best_step=best[1],
        evals_since_best=best[2],
        stopped=stopped,
    )


def _start_fresh(
    checkpoint_dir: str | os.PathLike[str] | None, metrics_path: str | os.PathLike[str] | None
) -> tuple[str, ...]:
    """``train.resume=never``: move earlier checkpoints and metrics aside (nothing is deleted)."""
    moved = []
    for path in (checkpoint_dir, metrics_path):
        if path is None:
            continue
        path = Path(path)
        if not path.exists():
            continue
        empty = not any(path.iterdir()) if path.is_dir() else path.stat().st_size == 0
        if not empty:
            target = set_aside(path)
            LOGGER.warning("train.resume=never: moved %s to %s", path, target)
            moved.append(str(target))
    return tuple(moved)


def _fingerprint_check(
    checkpoints: Checkpoints, fingerprint: Mapping[str, str] | None, *, forced: bool
) -> Callable[[int, dict[str, Any]], None] | None:
    """The check of a checkpoint's fingerprint against this run's (``None``: no check)."""
    if fingerprint is None:
        return None

    def check(step: int, meta: dict[str, Any]) -> None:
        changes = fingerprint_changes(meta.get("fingerprint"), fingerprint)
        if not changes:
            return
        if forced:
            LOGGER.warning(
                "train.resume=force: resuming the checkpoint of step %d in %s although %s",
                step,
                checkpoints.directory,
                describe_changes(changes),
            )
            return
        raise ResumeError(
            f"the checkpoint of step {step} in {checkpoints.directory} was written by a run "
            f"with other settings, data or code: {describe_changes(changes)}. Restore those "
            "settings to resume, or set train.resume=never (start fresh; the old checkpoints "
            "are set aside, not deleted) or train.resume=force (resume anyway)",
            changes=changes,
        )

    return check


def _check_data_order(checkpoints: Checkpoints, step: int, data_order: dict[str, Any]) -> None:
    """A resumed run must see the batches the interrupted one would have seen."""
    saved = checkpoints.metadata(step).get("data_order")
    if saved is not None and saved != data_order:
        raise ConfigError(
            f"the checkpoint of step {step} in {checkpoints.directory} was written by a run "
            f"whose training data and order were {saved}; this run has {data_order}. "
            "Resume with the same data, train.batch_size and train.shuffle, or train in a new "
            "output folder"
        )


def _finite(value: float, what: str, step: int) -> float:
    if not math.isfinite(value):
        raise InvalidValueError(
            f"the {what} is {value} at step {step}: training diverged or the data hold bad "
            "values (a class label outside [0, n_classes) gives NaN); lower "
            "optim.learning_rate or check the data"
        )
    return value
