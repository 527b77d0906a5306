"""Transform factories: the algebra's operations as composable ``(init, apply)`` pairs.

Each factory is named after the function it lifts (``transforms.pca`` fits and applies
:func:`liam_core.algebra.pca`), takes that function's settings, and returns a
:class:`~liam_core.algebra.Transform`. Stateful transforms fit their state on the window
given to ``init`` and apply it unchanged to new data; stateless ones have an empty state.

Example:
    >>> import jax.numpy as jnp
    >>> from liam_core.algebra import transforms
    >>> pipeline = transforms.standardize() >> transforms.pca(n_components=1)
    >>> reference = jnp.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]])
    >>> state = pipeline.init(reference)
    >>> round(float(pipeline.apply(state, jnp.array([[3.0, 6.0]]))[0, 0]), 4)
    3.4641
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _binary, _linalg, _signal
from ._checks import as_float_array
from ._transform import Transform, stateless

__all__ = [
    "detrend",
    "pca",
    "periodogram",
    "random_projection",
    "rolling_mean",
    "rolling_std",
    "sign_hash",
    "standardize",
    "whiten",
]


class StandardizeState(NamedTuple):
    """Column means and scales of the reference window (scale 1 for constant columns)."""

    mean: jax.Array
    scale: jax.Array


@jax.jit
def _standardize_init(x: jax.Array) -> StandardizeState:
    mean = jnp.mean(x, axis=0)
    std = jnp.sqrt(jnp.mean(jnp.square(x - mean), axis=0))
    return StandardizeState(mean, jnp.where(std > 0, std, jnp.ones_like(std)))


@jax.jit
def _standardize_apply(state: StandardizeState, x: jax.Array) -> jax.Array:
    return (x - state.mean) / state.scale


def standardize() -> Transform:
    """Center and scale columns with the reference window's mean and std (``StandardScaler``).

    Constant reference columns keep scale 1, as scikit-learn does, so they map to 0.
    """

    def init(x):
        return _standardize_init(as_float_array(x, "x", ndim=2))

    return Transform(init, _standardize_apply)


def detrend(type: str = "linear") -> Transform:
    """Remove a constant or linear trend along time, as :func:`liam_core.algebra.detrend`."""
    return stateless(lambda x: _signal.detrend(x, type=type))


def rolling_mean(window: int) -> Transform:
    """Mean over a sliding window of ``window`` rows ("valid": ``n - window + 1`` rows out)."""
    return stateless(lambda x: _signal.rolling_mean(x, window))


def rolling_std(window: int, ddof: int = 1) -> Transform:
    """Standard deviation over a sliding window of ``window`` rows ("valid" output)."""
    return stateless(lambda x: _signal.rolling_std(x, window, ddof=ddof))


def periodogram(fs: float = 1.0, **settings) -> Transform:
    """Power spectral density of every column (``scipy.signal.periodogram``), frequencies dropped.

    The output has ``n // 2 + 1`` rows, one per frequency of
    ``liam_core.algebra.periodogram(x, fs)[0]``.
    """
    return stateless(lambda x: _signal.periodogram(x, fs=fs, **settings)[1])


def pca(n_components: int | None = None, *, whiten: bool = False) -> Transform:
    """Project on the principal axes of the reference window (scikit-learn's ``PCA``)."""

    def init(x):
        return _linalg.pca_fit(x, n_components)

    def apply(state, x):
        return _linalg.pca_project(state, x, whiten=whiten)

    return Transform(init, apply)


def whiten(method: str = "zca", eps: float | None = None) -> Transform:
    """Whiten with the reference window's covariance (identity covariance on that window)."""

    def init(x):
        return _linalg.whitening_fit(x, method=method, eps=eps)

    return Transform(init, _linalg._whitening_apply)


def random_projection(n_components: int, *, key: jax.Array, kind: str = "gaussian") -> Transform:
    """Johnson-Lindenstrauss projection to ``n_components``; the matrix is the state."""

    def init(x):
        x = as_float_array(x, "x", ndim=2)
        return _linalg.random_projection_matrix(
            x.shape[1], n_components, key=key, kind=kind, dtype=x.dtype
        )

    def apply(matrix, x):
        return _linalg._project_rows(x, matrix)

    return Transform(init, apply)


def sign_hash(n_bits: int, *, key: jax.Array) -> Transform:
    """Random-hyperplane codes packed into uint32 words; the hyperplanes are the state."""

    def init(x):
        x = as_float_array(x, "x", ndim=2)
        return _binary.random_hyperplanes(x.shape[1], n_bits, key=key, dtype=x.dtype)

    def apply(hyperplanes, x):
        return _binary.sign_hash(x, hyperplanes)

    return Transform(init, apply)
