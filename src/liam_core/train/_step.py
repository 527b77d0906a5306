"""``TrainStep``: one deterministic data-parallel optimizer step, ALDA gradient plus optax update.

The gradient is :meth:`LaborArray.value_and_grad` of a per-example loss: the same bits on
1, 2 or 8 devices, pmap or shard_map. It lands on the home device, where one jitted program
applies the optax update; that program does not depend on the topology either, so the whole
step, and with it a whole run, gives the same bytes on every topology.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax

from .._checks import quote
from .._errors import ConfigError, InvalidTypeError
from ..alda import ChunkedBatch, LaborArray
from ..models import trainable_filter


def check_optimizer(optimizer: object) -> optax.GradientTransformation:
    """Return ``optimizer`` if it is an optax transformation, else raise naming the setting."""
    if not isinstance(optimizer, optax.GradientTransformation):
        raise InvalidTypeError(
            "optim must build an optax.GradientTransformation (e.g. `_target_: optax.adam`), "
            f"got {type(optimizer).__name__}: {quote(optimizer)}"
        )
    return optimizer


def _make_update(optimizer: optax.GradientTransformation) -> Callable[..., Any]:
    # Every leaf of a model, its optimizer state and its gradients is an array (settings are
    # static fields of the modules, part of the tree structure), so plain `jax.jit` applies;
    # its dispatch costs a fraction of `eqx.filter_jit`'s, which shows on small models.
    @jax.jit
    def update(model: Any, opt_state: Any, grads: Any) -> tuple[Any, Any]:
        spec = trainable_filter(model)
        params, grads = eqx.filter(model, spec), eqx.filter(grads, spec)
        # optax mixes Python floats and int32 step counts (adam's bias correction), which
        # strict dtype promotion refuses; the promotion rules only change inside the update.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state

    return update


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
