"""Change detection along time: :func:`track_changes`, a robust rolling baseline plus CUSUM.

One sequential pass (``lax.scan``) over the time axis of standardized residuals ``z``
``[time, ...]``; every trailing position (an entity, a metric) is its own independent
series. The carried :class:`ChangeState` lets a long series be processed in pieces: the
pieces give the same bits as one call on the whole series.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._checks import as_float_array, check_number
from .._errors import ShapeError


class ChangeState(NamedTuple):
    """What :func:`track_changes` carries from one step to the next (one entry per series).

    Attributes:
        baseline: the rolling baseline of each series (exponentially weighted mean of its
            own recent steps, its innovations clipped).
        upper: the upper CUSUM statistic (a run of values above the baseline), in ``[0, h]``.
        lower: the lower CUSUM statistic (a run below the baseline), in ``[0, h]``.
    """

    baseline: jax.Array
    upper: jax.Array
    lower: jax.Array


def initial_change_state(shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> ChangeState:
    """The state before the first step: baseline 0 (standardized residuals), no run."""
    zeros = jnp.zeros(shape, dtype)
    return ChangeState(zeros, zeros, zeros)


@functools.partial(jax.jit, static_argnames=("alpha", "clip", "drift", "threshold"))
def track_changes(
    z: jax.Array,
    valid: jax.Array | None = None,
    state: ChangeState | None = None,
    *,
    alpha: float,
    clip: float,
    drift: float,
    threshold: float,
) -> tuple[jax.Array, jax.Array, ChangeState]:
    """Residuals against a robust rolling baseline and a CUSUM change score, step by step.

    At each step ``t`` (independently for every trailing position):

    * ``u[t] = z[t] - baseline[t-1]``: the residual against the series' own recent steps;
    * ``baseline[t] = baseline[t-1] + alpha * clip(u[t], -clip, clip)``: an exponentially
      weighted mean over about ``1 / alpha`` steps whose innovations are clipped, so an
      outlier or a level shift moves it by at most ``alpha * clip`` per step;
    * ``upper[t] = min(h, max(0, upper[t-1] + u[t] - k))`` and
      ``lower[t] = min(h, max(0, lower[t-1] - u[t] - k))``: Page's two-sided CUSUM with
      allowance ``k = drift`` and decision level ``h = threshold``, capped at ``h`` so that
      the score falls back as soon as a run ends (no alarm tail);
    * ``change[t] = max(upper[t], lower[t]) / h``: 1 while a run is alarmed, below 1 as
      soon as a step falls short of the run (``u < k``).

    A step where ``valid`` is False leaves the state unchanged and gives ``u = change = 0``.

    Args:
        z: ``[time, ...]`` standardized residuals (float).
        valid: ``bool [time, ...]`` (or broadcastable to ``z``); ``None``: every step.
        state: the :class:`ChangeState` after the previous piece; ``None``: the start.
        alpha: the baseline's weight of a new step, in ``(0, 1]``.
        clip: the largest innovation the baseline takes, ``> 0``.
        drift: the CUSUM allowance ``k >= 0`` (in units of ``z``).
        threshold: the CUSUM decision level ``h > 0``.

    Returns:
        ``(u, change, state)``: residuals and change scores of the shape of ``z``, and the
        state after the last step.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import track_changes
        >>> z = jnp.array([0.0, 0.0, 3.0, 3.0, 3.0, 0.0])
        >>> u, change, _ = track_changes(z, alpha=0.1, clip=1.0, drift=1.0, threshold=3.0)
        >>> change.tolist()
        [0.0, 0.0, 0.6666666865348816, 1.0, 1.0, 0.5666667222976685]
    """
    owner = "track_changes"
    z = as_float_array(z, "z", owner=owner)
    if z.ndim < 1:
        raise ShapeError(f"{owner}: `z` must have a time axis [time, ...], got shape {z.shape}")
    alpha = check_number(alpha, "alpha", positive=True, maximum=1.0, owner=owner)
    clip = check_number(clip, "clip", positive=True, owner=owner)
    drift = check_number(drift, "drift", minimum=0.0, owner=owner)
    threshold = check_number(threshold, "threshold", positive=True, owner=owner)
    valid = jnp.ones(z.shape, bool) if valid is None else jnp.broadcast_to(valid, z.shape)
    if state is None:
        state = initial_change_state(z.shape[1:], z.dtype)
    a, c, k, h = (jnp.asarray(v, z.dtype) for v in (alpha, clip, drift, threshold))
    zero = jnp.zeros((), z.dtype)

    def step(carry: ChangeState, inputs: tuple[jax.Array, jax.Array]):
        value, ok = inputs
        u = value - carry.baseline
        baseline = carry.baseline + a * jnp.clip(u, -c, c)
        upper = jnp.minimum(h, jnp.maximum(zero, carry.upper + u - k))
        lower = jnp.minimum(h, jnp.maximum(zero, carry.lower - u - k))
        new = ChangeState(
            jnp.where(ok, baseline, carry.baseline),
            jnp.where(ok, upper, carry.upper),
            jnp.where(ok, lower, carry.lower),
        )
        change = jnp.where(ok, jnp.maximum(new.upper, new.lower) / h, zero)
        return new, (jnp.where(ok, u, zero), change)

    state = ChangeState(*(jnp.asarray(s, z.dtype) for s in state))
    state, (u, change) = lax.scan(step, state, (z, valid))
    return u, change, state
