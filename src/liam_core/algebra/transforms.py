"""Transform factories: the algebra's operations as composable ``(init, apply)`` pairs.

Each factory is named after the function it lifts (``transforms.pca`` fits and applies
:func:`liam_core.algebra.pca`), takes that function's settings, and returns a
:class:`~liam_core.algebra.Transform`. Stateful transforms fit their state on the window
given to ``init`` and apply it unchanged to new data; stateless ones have an empty state.
A transform is the one way to fit on one window and apply to another: the functions of
:mod:`liam_core.algebra` fit and apply to the same data.

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

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array, check_choice, quote
from .._errors import ConfigTypeError, ShapeError
from . import _binary, _linalg, _rolling, _scaling, _spectra
from ._jit import checked_jit
from ._linalg import ProjectionKind, WhiteningMethod
from ._scaling import DetrendKind, StandardizeState
from ._series import as_series
from ._transform import Transform, stateless

__all__ = [
    "StandardizeState",
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


def standardize() -> Transform:
    """Centre and scale columns with the reference window's mean and std (``StandardScaler``).

    ``init`` and ``apply`` are the two halves of :func:`liam_core.algebra.standardize`
    (``ddof=0``, time on axis 0); the state is a :class:`StandardizeState`. Constant
    reference columns keep scale 1, as scikit-learn does: they map to 0 on the reference
    and to their offset from the reference value on new data.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import transforms
        >>> scaler = transforms.standardize()
        >>> state = scaler.init(jnp.array([[1.0], [3.0]]))
        >>> scaler.apply(state, jnp.array([[2.0], [5.0]])).tolist()
        [[0.0], [3.0]]
    """

    owner = "transforms.standardize"

    def init(x):
        x, _, _ = as_series(x, 0, owner)
        return _scaling._standardize_fit(x, 0, 0)

    def apply(state, x):
        _check_state(state, StandardizeState, owner)
        x, _, _ = as_series(x, 0, owner)
        _check_width(x.shape[1:], state.shift.shape, owner)
        state, x = _common_dtype(state, x)
        return _scaling._standardize_apply(state, x, 0, new_data=True)

    return Transform(init, checked_jit(apply))


def detrend(type: DetrendKind = "linear") -> Transform:
    """Remove a constant or linear trend along time, as :func:`liam_core.algebra.detrend`."""
    check_choice(type, "type", DetrendKind, owner="transforms.detrend")
    return stateless(lambda x: _scaling.detrend(x, type=type))


def rolling_mean(window: int) -> Transform:
    """Mean over a sliding window of ``window`` rows ("valid": ``n - window + 1`` rows out)."""
    return stateless(lambda x: _rolling.rolling_mean(x, window))


def rolling_std(window: int, ddof: int = 1) -> Transform:
    """Standard deviation over a sliding window of ``window`` rows ("valid" output)."""
    return stateless(lambda x: _rolling.rolling_std(x, window, ddof=ddof))


def periodogram(fs: float = 1.0, **settings) -> Transform:
    """Power spectral density of every column (``scipy.signal.periodogram``), frequencies dropped.

    ``settings`` are :func:`liam_core.algebra.periodogram`'s (``window``, ``detrend``,
    ``scaling``, ...). The output has ``n // 2 + 1`` rows, one per frequency of
    ``liam_core.algebra.periodogram(x, fs)[0]``.
    """
    return stateless(lambda x: _spectra.periodogram(x, fs=fs, **settings)[1])


def pca(n_components: int | None = None, *, whiten: bool = False) -> Transform:
    """Project on the principal axes of the reference window (scikit-learn's ``PCA``).

    ``init`` fits a :class:`~liam_core.algebra.PCAState` exactly as
    :func:`liam_core.algebra.pca` does; ``apply`` is ``PCA.transform``.
    """

    def init(x):
        return _linalg._fit_pca(x, n_components, "transforms.pca")

    def apply(state, x):
        _check_state(state, _linalg.PCAState, "transforms.pca")
        return _linalg._project_pca(state, x, whiten, "transforms.pca")

    return Transform(init, apply)


def whiten(method: WhiteningMethod = "zca", eps: float | None = None) -> Transform:
    """Whiten with the reference window's covariance (identity covariance on that window).

    ``init`` fits a :class:`~liam_core.algebra.WhiteningState` as
    :func:`liam_core.algebra.whiten` does.
    """
    check_choice(method, "method", WhiteningMethod, owner="transforms.whiten")

    owner = "transforms.whiten"

    def init(x):
        return _linalg._fit_whitening(x, method, eps, owner)

    def apply(state, x):
        _check_state(state, _linalg.WhiteningState, owner)
        x = as_float_array(x, "x", ndim=2, owner=owner)
        _check_width(x.shape[1:], state.mean.shape, owner)
        state, x = _common_dtype(state, x)
        return _linalg._whitening_apply(state, x)

    return Transform(init, apply)


def random_projection(
    n_components: int, *, key: jax.Array, kind: ProjectionKind = "gaussian"
) -> Transform:
    """Johnson-Lindenstrauss projection to ``n_components``; the matrix is the state."""

    def init(x):
        x = as_float_array(x, "x", ndim=2, owner="transforms.random_projection")
        return _linalg.random_projection_matrix(
            x.shape[1], n_components, key=key, kind=kind, dtype=x.dtype
        )

    def apply(matrix, x):
        owner = "transforms.random_projection"
        if not isinstance(matrix, jax.Array | np.ndarray) or matrix.ndim != 2:
            raise ConfigTypeError(
                f"{owner}: `state` must be the [n_components, n_features] matrix its init() "
                f"returned, got {type(matrix).__name__}"
            )
        matrix = as_float_array(matrix, "state", ndim=2, owner=owner)
        x = as_float_array(x, "x", ndim=2, owner=owner)
        _check_width(x.shape[1:], matrix.shape[1:], owner)
        matrix, x = _common_dtype(matrix, x)
        return _linalg._project_rows(x, matrix)

    return Transform(init, apply)


def sign_hash(n_bits: int, *, key: jax.Array) -> Transform:
    """Random-hyperplane codes packed into uint32 words; the hyperplanes are the state.

    ``init`` draws the hyperplanes once, from ``key``; ``apply`` is
    :func:`liam_core.algebra.sign_hash` with them.
    """

    def init(x):
        x = as_float_array(x, "x", ndim=2, owner="transforms.sign_hash")
        return _binary.random_hyperplanes(x.shape[1], n_bits, key=key, dtype=x.dtype)

    def apply(hyperplanes, x):
        return _binary.sign_hash(x, hyperplanes)

    return Transform(init, apply)


def _check_state(state: Any, kind: type, owner: str) -> None:
    if not isinstance(state, kind):
        raise ConfigTypeError(
            f"{owner}: `state` must be the {kind.__name__} its init() returned, got "
            f"{type(state).__name__}: {quote(state)}"
        )


def _check_width(got: tuple[int, ...], fitted: tuple[int, ...], owner: str) -> None:
    if tuple(got) != tuple(fitted):
        raise ShapeError(
            f"{owner}: `x` must have the columns {list(fitted)} the state was fitted on, got "
            f"columns {list(got)}"
        )


def _common_dtype(state: Any, x: jax.Array) -> tuple[Any, jax.Array]:
    """State and data in one float dtype, numpy's promotion (strict mode would refuse it)."""
    dtypes = {leaf.dtype for leaf in jax.tree_util.tree_leaves(state)} | {x.dtype}
    floating = [d for d in dtypes if jnp.issubdtype(d, jnp.floating)]
    if len(floating) <= 1:
        return state, x
    dtype = np.result_type(*floating)
    cast = jax.tree_util.tree_map(
        lambda leaf: leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf,
        (state, x),
    )
    return cast
