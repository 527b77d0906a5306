"""Integrated gradients: per-feature attributions of a scalar score of one example.

For a score ``f``, an input ``x`` and a baseline ``b``, the attribution of feature ``j`` is

    (x_j - b_j) * integral_0^1 df/dx_j (b + a (x - b)) da

approximated by a quadrature rule over ``steps`` points of the straight path from ``b`` to
``x``. The gradients at all points (and all examples) come from one ``jax.vmap`` of
``jax.grad`` inside one jitted program: there is no Python loop over steps.

Reference: Sundararajan, Taly, Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_choice, check_int, check_not_empty
from .._errors import ConfigError, InvalidTypeError, ShapeError
from ._checks import as_float32

Quadrature = Literal[
    "riemann_trapezoid",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "gausslegendre",
]
"""The quadrature rules of :func:`integrated_gradients` (as in Captum)."""


def path_points(steps: int, method: Quadrature) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes ``alphas`` in ``[0, 1]`` and their weights (summing to 1), float32."""
    k = np.arange(steps, dtype=np.float64)
    if method == "riemann_trapezoid":
        alphas = k / (steps - 1)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
    elif method == "gausslegendre":
        nodes, gauss_weights = np.polynomial.legendre.leggauss(steps)
        alphas, weights = (nodes + 1) / 2, gauss_weights / 2
    else:
        offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
        alphas, weights = (k + offset) / steps, np.full(steps, 1.0 / steps)
    return alphas.astype(np.float32), weights.astype(np.float32)


def _as_pytree_callable(fn: Callable[..., Any]) -> Callable[..., Any]:
    # A bound method of a Module is hashed as a static argument, so every new set of weights
    # would recompile; as a Partial, the Module's arrays are traced inputs instead.
    if inspect.ismethod(fn) and isinstance(fn.__self__, eqx.Module):
        return eqx.Partial(fn.__func__, fn.__self__)
    return fn


def _scalar_score(fn: Callable[..., Any], target: int | None) -> Callable[[jax.Array], jax.Array]:
    def score(example: jax.Array) -> jax.Array:
        out = jnp.asarray(fn(example))
        if not jnp.issubdtype(out.dtype, jnp.floating):
            raise InvalidTypeError(
                f"integrated_gradients: `fn` must return floats, got dtype {out.dtype}"
            )
        if target is None:
            if out.shape != ():
                raise ShapeError(
                    "integrated_gradients: `fn` must return one scalar per example, got shape "
                    f"{tuple(out.shape)}; pass `target=k` to explain output k of a vector"
                )
            return out
        if out.ndim != 1 or not 0 <= target < out.shape[0]:
            raise ConfigError(
                f"integrated_gradients: `target` must index the outputs of `fn`, in [0, "
                f"{out.shape[0] if out.ndim == 1 else 0}), got target={target} for output shape "
                f"{tuple(out.shape)}"
            )
        return out[target]

    return score


@eqx.filter_jit
def _integrated_gradients(
    fn: Callable[..., Any],
    x: jax.Array,
    baseline: jax.Array | None,
    *,
    steps: int,
    method: Quadrature,
    target: int | None,
) -> jax.Array:
    rows = x.reshape(-1, x.shape[-1])  # one example becomes a batch of one
    if baseline is None:
        references = jnp.zeros_like(rows)
    else:
        references = jnp.broadcast_to(baseline, x.shape).reshape(rows.shape)
    alphas, weights = path_points(steps, method)
    gradient = jax.grad(_scalar_score(fn, target))

    def attribute(example: jax.Array, reference: jax.Array) -> jax.Array:
        delta = example - reference
        path = reference + alphas[:, None] * delta  # [steps, features]
        return delta * (weights @ jax.vmap(gradient)(path))

    return jax.vmap(attribute)(rows, references).reshape(x.shape)


def integrated_gradients(
    fn: Callable[[jax.Array], jax.Array],
    x: Any,
    baseline: Any = None,
    *,
    steps: int = 64,
    method: Quadrature = "riemann_trapezoid",
    target: int | None = None,
) -> jax.Array:
    """Integrated-gradients attributions of a per-example score, one per input feature.

    Completeness: the attributions of an example sum to ``fn(x) - fn(baseline)`` up to the
    quadrature error, which shrinks as ``steps`` grows (as ``1 / steps**2`` for the
    trapezoid and midpoint rules on smooth scores); for a linear score they are exactly
    ``(x - baseline) * w``. A feature ``fn`` ignores gets 0.

    Args:
        fn: a score of **one** example, ``[features] -> scalar`` (or ``-> [outputs]`` with
            ``target``), e.g. ``model.anomaly_score`` or ``model.predict_proba``. A Module,
            a bound method of a Module, or a ``jax.tree_util.Partial`` is traced with its
            arrays as inputs, so new weights do not recompile; a plain function or lambda is a
            static argument (a new lambda compiles anew, its captured arrays are constants).
        x: ``[features]`` one example, or ``[batch, features]`` examples explained independently.
        baseline: the reference input, ``[features]`` (shared) or the shape of ``x``.
            ``None`` means all zeros, the usual choice for inputs already standardized.
            For an :class:`~liam_core.models.Autoencoder` pass ``model.baseline`` (its
            normalization mean, the origin of its standardized space); with the identity
            normalization the two agree. The choice is explicit rather than guessed from ``fn``.
        steps: number of points on the path, >= 1 (>= 2 for ``riemann_trapezoid``).
        method: the :data:`Quadrature` rule: ``riemann_trapezoid`` (default),
            ``riemann_left``, ``riemann_right``, ``riemann_middle`` or ``gausslegendre``.
        target: with a vector-valued ``fn``, the index of the output to explain.

    Returns:
        float32 attributions with the shape of ``x``.

    Raises:
        ShapeError: ``x`` is not 1-D or 2-D, ``baseline`` does not fit it, or ``fn`` does not
            return a scalar per example.
        ConfigError: ``steps``, ``method`` or ``target`` is out of range.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.models import integrated_gradients
        >>> w = jnp.array([1.0, -2.0, 0.0])
        >>> score = lambda x: jnp.tanh(x) @ w
        >>> x = jnp.array([0.5, 1.0, 3.0])
        >>> attributions = integrated_gradients(score, x, steps=128)
        >>> [round(float(a), 4) for a in attributions]
        [0.4621, -1.5232, 0.0]
        >>> round(float(attributions.sum()), 4), round(float(score(x) - score(0 * x)), 4)
        (-1.0611, -1.0611)
    """
    owner = "integrated_gradients"
    x = as_float32(x, "x", owner=owner)
    if x.ndim not in (1, 2):
        raise ShapeError(
            f"{owner}: `x` must be one example [features] or a batch [batch, features], "
            f"got shape {tuple(x.shape)}"
        )
    check_not_empty(x, "x", owner=owner)
    if baseline is not None:
        baseline = as_float32(baseline, "baseline", owner=owner)
        if baseline.shape not in (x.shape, x.shape[-1:]):
            raise ShapeError(
                f"{owner}: `baseline` must have shape {tuple(x.shape[-1:])} or {tuple(x.shape)} "
                f"to match `x`, got shape {tuple(baseline.shape)}"
            )
    method = check_choice(method, "method", Quadrature, owner=owner)
    steps = check_int(
        steps, "steps", minimum=2 if method == "riemann_trapezoid" else 1, owner=owner
    )
    if target is not None:
        target = check_int(target, "target", minimum=0, owner=owner)
    return _integrated_gradients(
        _as_pytree_callable(fn), x, baseline, steps=steps, method=method, target=target
    )
