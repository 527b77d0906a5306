"""``TrainState``: everything a run needs to continue: weights, optimizer state, counters, RNG."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .._digest import digest


@dataclasses.dataclass(frozen=True)
class TrainState:
    """The state of a training run after ``step`` optimizer steps.

    Attributes:
        model: the Equinox model (trainable parameters and buffers).
        opt_state: the optax state of the trainable parameters.
        step: optimizer steps taken.
        position: index of the next training batch (the data position).
        rng: the run's RNG as raw ``uint32`` key data (``jax.random.key_data``); the data
            order of every epoch is derived from it.
        best_eval: the lowest evaluation loss so far (``inf`` before the first evaluation).
        best_step: the step of ``best_eval`` (-1 before the first evaluation).
        evals_since_best: evaluations since the last improvement (for early stopping).
        stopped: whether early stopping ended the run.
    """

    model: eqx.Module
    opt_state: Any
    step: int
    position: int
    rng: np.ndarray
    best_eval: float = math.inf
    best_step: int = -1
    evals_since_best: int = 0
    stopped: bool = False

    def arrays(self) -> dict[str, Any]:
        """Every number of the state as named numpy arrays: what a checkpoint holds.

        Model and optimizer arrays are numbered in JAX's canonical pytree order; the
        counters are 0-d arrays.
        """
        model_leaves = jax.tree_util.tree_leaves(eqx.filter(self.model, eqx.is_array))
        opt_leaves = jax.tree_util.tree_leaves(self.opt_state)
        host = jax.device_get((model_leaves, opt_leaves))
        return {
            "model": {f"{i:04d}": np.asarray(a) for i, a in enumerate(host[0])},
            "opt_state": {f"{i:04d}": np.asarray(a) for i, a in enumerate(host[1])},
            "rng": np.asarray(self.rng, dtype=np.uint32),
            "counters": {
                name: np.asarray(value, dtype=np.int64)
                for name, value in (
                    ("step", self.step),
                    ("position", self.position),
                    ("best_step", self.best_step),
                    ("evals_since_best", self.evals_since_best),
                    ("stopped", self.stopped),
                )
            },
            "best_eval": np.asarray(self.best_eval, dtype=np.float64),
        }

    def with_arrays(self, arrays: dict[str, Any]) -> TrainState:
        """A state with this one's structure and the numbers of ``arrays`` (from :meth:`arrays`)."""
        params, static = eqx.partition(self.model, eqx.is_array)
        model_def = jax.tree_util.tree_structure(params)
        opt_def = jax.tree_util.tree_structure(self.opt_state)
        model_leaves = [jax.numpy.asarray(arrays["model"][k]) for k in sorted(arrays["model"])]
        opt_leaves = [
            jax.numpy.asarray(arrays["opt_state"][k]) for k in sorted(arrays["opt_state"])
        ]
        counters = {name: int(value) for name, value in arrays["counters"].items()}
        return TrainState(
            model=eqx.combine(jax.tree_util.tree_unflatten(model_def, model_leaves), static),
            opt_state=jax.tree_util.tree_unflatten(opt_def, opt_leaves),
            step=counters["step"],
            position=counters["position"],
            rng=np.asarray(arrays["rng"], dtype=np.uint32),
            best_eval=float(arrays["best_eval"]),
            best_step=counters["best_step"],
            evals_since_best=counters["evals_since_best"],
            stopped=bool(counters["stopped"]),
        )

    def digest(self) -> str:
        """The sha256 of :meth:`arrays`: equal digests mean bit-identical runs so far."""
        return digest(self.arrays())


def leaf_names(state: TrainState) -> dict[str, list[str]]:
    """Readable names of the numbered arrays of :meth:`TrainState.arrays` (for metadata)."""
    model_paths = jax.tree_util.tree_flatten_with_path(eqx.filter(state.model, eqx.is_array))[0]
    opt_paths = jax.tree_util.tree_flatten_with_path(state.opt_state)[0]
    return {
        "model": [jax.tree_util.keystr(path) for path, _ in model_paths],
        "opt_state": [jax.tree_util.keystr(path) for path, _ in opt_paths],
    }


def new_rng(seed: int) -> np.ndarray:
    """The raw ``uint32`` key data of ``jax.random.key(seed)``."""
    return np.asarray(jax.random.key_data(jax.random.key(seed)), dtype=np.uint32)
