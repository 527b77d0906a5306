"""``TrainStep``: one deterministic data-parallel optimizer step, ALDA gradient plus optax update.

The gradient is :meth:`LaborArray.value_and_grad` of a per-example loss: the same bits on
1, 2 or 8 devices, pmap or shard_map. It lands on the home device, where one jitted program
applies the optax update; that program does not depend on the topology either, so the whole
step, and with it a whole run, gives the same bytes on every topology.

:meth:`TrainStep.run` takes several steps in one dispatch: one single-device program on the
home device scans the steps, each the ALDA gradient
(:func:`~liam_core.alda.in_program_value_and_grad`: the same chunks, kernel and canonical
tree, the chunks computed at once) then the update. It does not depend on the topology or on
how many steps a dispatch holds, but its chunk kernel is compiled batched and inside the
scan where the one-step path runs a stand-alone chunk program, so its bits are its own (see
:meth:`TrainStep.run`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax

from .._checks import quote
from .._errors import ConfigError, InvalidTypeError, ShapeError
from ..alda import ChunkedBatch, LaborArray, in_program_value_and_grad, plan_chunks
from ..models import trainable_filter


def check_optimizer(optimizer: object) -> optax.GradientTransformation:
    """Return ``optimizer`` if it is an optax transformation, else raise naming the setting."""
    if not isinstance(optimizer, optax.GradientTransformation):
        raise InvalidTypeError(
            "optim must build an optax.GradientTransformation (e.g. `_target_: optax.adam`), "
            f"got {type(optimizer).__name__}: {quote(optimizer)}"
        )
    return optimizer


def _update_fn(optimizer: optax.GradientTransformation) -> Callable[..., Any]:
    def update(model: Any, opt_state: Any, grads: Any) -> tuple[Any, Any]:
        spec = trainable_filter(model)
        params, grads = eqx.filter(model, spec), eqx.filter(grads, spec)
        # optax mixes Python floats and int32 step counts (adam's bias correction), which
        # strict dtype promotion refuses; the promotion rules only change inside the update.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state

    return update


def _make_update(optimizer: optax.GradientTransformation) -> Callable[..., Any]:
    # Every leaf of a model, its optimizer state and its gradients is an array (settings are
    # static fields of the modules, part of the tree structure), so plain `jax.jit` applies;
    # its dispatch costs a fraction of `eqx.filter_jit`'s, which shows on small models.
    return jax.jit(_update_fn(optimizer))


def _make_run(
    optimizer: optax.GradientTransformation, loss: Callable[[Any, Any], jax.Array]
) -> Callable[..., Any]:
    """The multi-step program: ``lax.scan`` of (in-program ALDA gradient, update) on one device."""
    vag, update = in_program_value_and_grad(loss), _update_fn(optimizer)

    @jax.jit
    def run(model: Any, opt_state: Any, data: Any, n_rows: jax.Array) -> tuple[Any, Any, Any]:
        def one_step(carry: tuple[Any, Any], chunks: Any) -> tuple[tuple[Any, Any], jax.Array]:
            # The scan's body is one computation, so every step compiles the same whatever
            # the scan's length. The barriers only mark each step's edges: XLA CPU removes
            # them before fusion (checked in its optimized HLO), so they decide nothing there.
            model, opt_state, chunks = jax.lax.optimization_barrier((*carry, chunks))
            value, grads = vag(model, chunks, n_rows)
            carry = jax.lax.optimization_barrier(update(model, opt_state, grads))
            return carry, value

        (model, opt_state), losses = jax.lax.scan(one_step, (model, opt_state), data)
        return model, opt_state, losses

    return run


@dataclasses.dataclass(frozen=True)
class StackedBatches:
    """``k`` batches of equal size for :meth:`TrainStep.run`, cut and placed in one transfer.

    Build it with :meth:`TrainStep.put_many`.

    Attributes:
        data: pytree of ``[k, chunks, chunk_size, ...]`` arrays on the home device (the
            one-block plan of :func:`~liam_core.alda.plan_chunks`; padded rows are zeros).
        n_rows: rows per batch.
        placement: the home device's id and the chunk size they were cut and placed for.
    """

    data: Any
    n_rows: int
    placement: Hashable

    @property
    def n_steps(self) -> int:
        """The number of batches, hence of steps :meth:`TrainStep.run` takes on them."""
        return int(jax.tree_util.tree_leaves(self.data)[0].shape[0])


class TrainStep:
    """A training step ``(model, opt_state, batch) -> (model, opt_state, loss)`` on a topology.

    Only the trainable parameters (:func:`~liam_core.models.trainable_filter`) are updated: an
    autoencoder's standardization stays as it was set.

    Args:
        labor: the :class:`~liam_core.alda.LaborArray` that computes the mean gradient.
        optimizer: an optax ``GradientTransformation`` (learning-rate schedules included).
        loss: the per-example ``loss(model, example) -> scalar`` whose batch mean is
            minimized, e.g. :func:`~liam_core.models.reconstruction_example_loss`; a task's
            loss is its ``example_loss`` (see :func:`~liam_core.train.task_for`).

    Example:
        >>> import jax, numpy as np, optax
        >>> from liam_core import digest
        >>> from liam_core.alda import LaborArray
        >>> from liam_core.models import Autoencoder, reconstruction_example_loss
        >>> x = np.random.default_rng(0).standard_normal((600, 4)).astype(np.float32)
        >>> def train(n_devices):
        ...     step = TrainStep(LaborArray(n_devices), optax.adam(1e-2),
        ...                      loss=reconstruction_example_loss)
        ...     model = Autoencoder(4, width=8, key=jax.random.key(0))
        ...     opt_state = step.init(model)
        ...     for _ in range(3):
        ...         model, opt_state, loss = step(model, opt_state, x)
        ...     return digest((model, opt_state, loss))
        >>> train(1) == train(2)
        True
    """

    def __init__(
        self,
        labor: LaborArray,
        optimizer: optax.GradientTransformation,
        *,
        loss: Callable[[Any, Any], jax.Array],
    ) -> None:
        if not isinstance(labor, LaborArray):
            raise InvalidTypeError(
                f"TrainStep: `labor` must be a LaborArray, got {type(labor).__name__}"
            )
        if not callable(loss):
            raise InvalidTypeError(
                f"TrainStep: `loss` must be a per-example loss(model, example), got {quote(loss)}"
            )
        self.labor = labor
        self.optimizer = check_optimizer(optimizer)
        self.loss = loss
        self._vag = labor.value_and_grad(loss)
        self._update = _make_update(self.optimizer)
        self._run = _make_run(self.optimizer, loss)
        self._last: tuple[Any, Any] | None = None

    def init(self, model: eqx.Module) -> Any:
        """The optimizer state for ``model``'s trainable parameters, on the home device."""
        with jax.numpy_dtype_promotion("standard"):
            return self.place(self.optimizer.init(eqx.filter(model, trainable_filter(model))))

    def place(self, tree: Any) -> Any:
        """Commit every array of ``tree`` to the home device, where the update runs.

        A fresh model's arrays are not committed to a device, the update's outputs are; a
        jitted update sees the two as different inputs and would compile twice.
        """
        home = self.labor.topology.home

        def put(leaf: Any) -> Any:
            return jax.device_put(leaf, home) if isinstance(leaf, jax.Array | np.ndarray) else leaf

        return jax.tree_util.tree_map(put, tree)

    def put(self, batch: Any) -> ChunkedBatch:
        """Place a batch on the devices ahead of time (``labor.put``)."""
        return self.labor.put(batch)

    def __call__(
        self, model: eqx.Module, opt_state: Any, batch: Any
    ) -> tuple[eqx.Module, Any, jax.Array]:
        """One step on ``batch`` (an array, a pytree of arrays or a ``ChunkedBatch``)."""
        if self._last is None or model is not self._last[0] or opt_state is not self._last[1]:
            model, opt_state = self.place((model, opt_state))  # not this step's own output
        loss, grads = self._vag(model, batch)
        model, opt_state = self._update(model, opt_state, grads)
        self._last = (model, opt_state)
        return model, opt_state, loss

    def put_many(self, batches: Sequence[Any]) -> StackedBatches:
        """Cut ``k`` batches of equal size and place them on the home device, for :meth:`run`.

        Each batch is an array or a pytree of arrays sharing a leading row axis, all batches
        with the same structure, shapes and dtypes. They are padded on the host and moved
        with one transfer per leaf.
        """
        if isinstance(batches, StackedBatches):
            return self._check_stacked(batches)
        if isinstance(batches, ChunkedBatch) or not isinstance(batches, Sequence) or not batches:
            raise InvalidTypeError(
                "TrainStep.put_many: `batches` must be a non-empty sequence of batches (arrays "
                f"or pytrees of arrays), got {type(batches).__name__}"
            )
        flat = [jax.tree_util.tree_flatten(batch) for batch in batches]
        treedef = flat[0][1]
        host = [[np.asarray(leaf) for leaf in leaves] for leaves, _ in flat]
        signature = [(leaf.shape, leaf.dtype) for leaf in host[0]]
        for index, ((_, other), leaves) in enumerate(zip(flat, host, strict=True)):
            if other != treedef or [(leaf.shape, leaf.dtype) for leaf in leaves] != signature:
                raise ShapeError(
                    f"TrainStep.put_many: every batch needs the structure, shapes and dtypes "
                    f"of the first ({signature}); batch {index} has "
                    f"{[(leaf.shape, leaf.dtype) for leaf in leaves]}"
                )
        if not signature or any(len(shape) == 0 for shape, _ in signature):
            raise ShapeError("TrainStep.put_many: every array of a batch needs a leading row axis")
        lengths = {shape[0] for shape, _ in signature}
        if len(lengths) != 1 or 0 in lengths:
            raise ShapeError(
                "TrainStep.put_many: the arrays of a batch need the same number of rows, at "
                f"least 1; got shapes {[shape for shape, _ in signature]}"
            )
        n_rows = lengths.pop()
        plan = plan_chunks(n_rows, chunk_size=self.labor.chunk_size, n_blocks=1)
        home = self.labor.topology.home
        stacked = []
        for position, (shape, dtype) in enumerate(signature):
            out = np.zeros((len(batches), plan.padded_rows, *shape[1:]), dtype)
            for step, leaves in enumerate(host):
                out[step, :n_rows] = leaves[position]
            chunks = out.reshape(len(batches), plan.n_slots, plan.chunk_size, *shape[1:])
            stacked.append(jax.device_put(chunks, home))
        return StackedBatches(
            data=jax.tree_util.tree_unflatten(treedef, stacked),
            n_rows=n_rows,
            placement=self._placement,
        )

    @property
    def _placement(self) -> Hashable:
        return (self.labor.topology.home.id, self.labor.chunk_size)

    def _check_stacked(self, batches: StackedBatches) -> StackedBatches:
        if batches.placement != self._placement:
            raise ConfigError(
                "these StackedBatches were placed for another home device or chunk_size; "
                "place them with this TrainStep's put_many()"
            )
        return batches

    def run(
        self, model: eqx.Module, opt_state: Any, batches: Sequence[Any] | StackedBatches
    ) -> tuple[eqx.Module, Any, jax.Array]:
        """``k`` steps, one per batch, in one dispatch: ``(model, opt_state, losses[k])``.

        One program on the home device scans the steps; each is the ALDA mean gradient of
        the per-example loss (the same chunks, kernel and canonical tree as the one-step
        path) then the optax update. It compiles once per ``k`` and batch shape.

        Determinism: the result is the same bytes on every topology (the program runs on one
        device whatever the LaborArray spreads its other work over) and whatever the
        split into dispatches: ``run`` on ``k`` batches equals ``k`` calls of ``run`` on one
        batch each. It is not the same bytes as ``k`` calls of :meth:`__call__`: the chunk
        kernel is compiled batched inside this program, not as the stand-alone chunk program
        of the one-step path (the last bits of a gradient move), so a run keeps to one of
        the two paths (``train.steps_per_dispatch`` 1, or more).

        Args:
            model: the model (on the home device, or placed there).
            opt_state: its optimizer state.
            batches: a sequence of ``k`` batches of equal size, or :meth:`put_many`'s result.

        Example:
            >>> import jax, numpy as np, optax
            >>> from liam_core import digest
            >>> from liam_core.alda import LaborArray
            >>> from liam_core.models import Autoencoder, reconstruction_example_loss
            >>> x = np.random.default_rng(0).standard_normal((4, 600, 4)).astype(np.float32)
            >>> def train(n_devices, k):
            ...     step = TrainStep(LaborArray(n_devices), optax.adam(1e-2),
            ...                      loss=reconstruction_example_loss)
            ...     model = Autoencoder(4, width=8, key=jax.random.key(0))
            ...     opt_state, losses = step.init(model), []
            ...     for start in range(0, 4, k):
            ...         model, opt_state, loss = step.run(model, opt_state, list(x[start:start + k]))
            ...         losses.extend(loss.tolist())
            ...     return digest((model, opt_state, np.array(losses, np.float32)))
            >>> train(1, 4) == train(2, 1) == train(8, 2)
            True
        """
        if self._last is None or model is not self._last[0] or opt_state is not self._last[1]:
            model, opt_state = self.place((model, opt_state))  # not this step's own output
        stacked = self.put_many(batches)
        model, opt_state, losses = self._run(
            model, opt_state, stacked.data, np.int32(stacked.n_rows)
        )
        self._last = (model, opt_state)
        return model, opt_state, losses

    def evaluate(self, model: eqx.Module, batches: Iterable[tuple[Any, int]]) -> float:
        """The mean per-example loss over ``(batch, n_rows)`` pairs, in their order.

        It reuses the training step's gradient program (the gradient is dropped) rather than
        compiling a loss-only program on every device: with batches of the training batch
        size this costs no compilation at all. Batch means are combined on the host in
        float64 in batch order, so the result is the same on every topology.
        """
        total, rows = 0.0, 0
        for batch, n_rows in batches:
            value, _ = self._vag(model, batch)
            total += float(np.float64(jax.device_get(value))) * n_rows
            rows += n_rows
        if rows == 0:
            raise ConfigError("evaluate needs at least one batch with rows")
        return total / rows
