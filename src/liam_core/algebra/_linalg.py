"""Matrix algebra and pattern analysis: covariance, rank, condition number, spectra, PCA.

Conventions follow numpy and scikit-learn (the oracles in ``tests/test_linalg.py``):
rows are observations (time), columns are variables (metrics).
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import (
    as_float_array,
    as_real_array,
    check_bool,
    check_choice,
    check_fits_in_memory,
    check_float_dtype,
    check_int,
    check_number,
    quote,
)
from .._errors import (
    ConfigError,
    ConfigTypeError,
    EmptyInputError,
    InvalidTypeError,
    InvalidValueError,
    ShapeError,
)
from ._jit import checked_jit
from ._tall import centered_gram, centered_product

WhiteningMethod = Literal["zca", "pca"]
"""How :func:`whiten` decorrelates: ZCA (Mahalanobis, closest to the input) or PCA axes."""
ProjectionKind = Literal["gaussian", "sparse"]
"""The entries of a random projection matrix, as scikit-learn's two random projections."""


def check_key(key: object, name: str, owner: str) -> None:
    """Raise ``InvalidTypeError`` unless ``key`` is one JAX PRNG key (typed, or raw ``uint32[2]``)."""
    if isinstance(key, jax.Array | np.ndarray):
        typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()
        raw = key.dtype == np.uint32 and key.shape == (2,)
        if typed or raw:
            return
        got = f"dtype {key.dtype} with shape {tuple(key.shape)}"
    else:
        got = type(key).__name__
    raise InvalidTypeError(
        f"{owner}: `{name}` must be a single JAX PRNG key such as jax.random.key(0), got {got}"
    )


def _check_rows(x: jax.Array, minimum: int, owner: str, why: str) -> None:
    """Raise ``ConfigError`` unless ``x`` has at least ``minimum`` rows."""
    if x.shape[0] < minimum:
        raise ConfigError(
            f"{owner}: `x` must have at least {minimum} rows{why}, got shape {tuple(x.shape)}"
        )


def _centered_gram(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(mean, (x - mean).T @ (x - mean))`` of the columns of ``[n, d]`` ``x``: centred
    before the product (two passes over ``x``), which keeps float32 accurate on long series
    whose mean is large against their spread. The one Gram matrix of covariance, PCA and
    whitening."""
    mean = jnp.mean(x, axis=0)
    return mean, centered_gram(x, mean)


@functools.partial(jax.jit, static_argnames="ddof")
def _covariance(x: jax.Array, ddof: int) -> jax.Array:
    _, gram = _centered_gram(x)
    return gram / (x.shape[0] - ddof)


def covariance(x, *, ddof: int = 1) -> jax.Array:
    """Covariance matrix of the columns of ``x``, as ``np.cov(x, rowvar=False, ddof=ddof)``.

    Centers first (two passes), which keeps float32 accurate on long series.

    Args:
        x: ``[n, d]`` array; rows are observations, columns are variables.
        ddof: delta degrees of freedom; the divisor is ``n - ddof``.

    Returns:
        ``[d, d]`` covariance matrix in the dtype of ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import covariance
        >>> covariance(jnp.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])).tolist()
        [[4.0, 7.0], [7.0, 13.0]]
    """
    owner = "covariance"
    x = as_float_array(x, "x", ndim=2, owner=owner)
    n = x.shape[0]
    ddof = check_int(
        ddof, "ddof", minimum=0, maximum=n - 1, owner=owner, why=f" (n - ddof must be > 0, n={n})"
    )
    return _covariance(x, ddof)


@jax.jit
def _correlation(x: jax.Array) -> jax.Array:
    cov = _covariance(x, 0)
    std = jnp.sqrt(jnp.diagonal(cov))
    corr = cov / std[:, None] / std[None, :]
    return jnp.clip(corr, -1, 1)


def correlation(x) -> jax.Array:
    """Pearson correlation matrix of the columns of ``x``, as ``np.corrcoef(x, rowvar=False)``.

    A constant column has no correlation: its row and column are NaN, as in numpy.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import correlation
        >>> import numpy as np
        >>> corr = correlation(jnp.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.5]]))
        >>> np.asarray(corr, float).round(3).tolist()
        [[1.0, 0.998], [0.998, 1.0]]
    """
    x = as_float_array(x, "x", ndim=2, owner="correlation")
    _check_rows(x, 2, "correlation", "")
    return _correlation(x)


def _default_tolerance(singular_values: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    eps = jnp.finfo(singular_values.dtype).eps
    return jnp.max(singular_values, axis=-1) * max(shape[-2:]) * eps


@jax.jit
def _svd_patterns(x: jax.Array, tol: jax.Array | None) -> dict[str, jax.Array]:
    s = jnp.linalg.svd(x, compute_uv=False)
    tolerance = _default_tolerance(s, x.shape) if tol is None else jnp.asarray(tol, s.dtype)
    rank = jnp.sum(s > tolerance[..., None], axis=-1).astype(jnp.int32)
    full_rank = rank == min(x.shape[-2:])
    condition = jnp.where(full_rank, s[..., 0] / s[..., -1], jnp.inf)
    energy = s**2
    total_energy = jnp.sum(energy, axis=-1, keepdims=True)
    explained = jnp.where(
        total_energy > 0, energy / jnp.where(total_energy > 0, total_energy, 1), 0
    )
    total = jnp.sum(s, axis=-1, keepdims=True)
    p = jnp.where(total > 0, s / jnp.where(total > 0, total, 1), 0)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1)), 0), axis=-1)
    return {
        "singular_values": s,
        "rank": rank,
        "condition_number": condition,
        "tolerance": tolerance,
        "explained_variance_ratio": explained,
        "effective_rank": jnp.exp(entropy),
    }


def svd_patterns(x, tol=None) -> dict[str, jax.Array]:
    """Spectral summary of a matrix (or a stack of matrices ``[..., m, n]``) from one SVD.

    Args:
        x: ``[..., m, n]`` array.
        tol: singular values at or below it count as zero; default
            ``s.max() * max(m, n) * eps``, as ``np.linalg.matrix_rank``.

    Returns:
        A dict of arrays:

        - ``singular_values``: descending, ``min(m, n)`` of them;
        - ``rank``: as ``np.linalg.matrix_rank(x, tol)``;
        - ``condition_number``: ``s.max() / s.min()`` as ``np.linalg.cond(x)``, and ``inf``
          when ``x`` is rank-deficient (numpy gives a huge finite number unless a singular
          value is exactly zero; a condition number of a singular matrix is infinite);
        - ``tolerance``: the threshold used for ``rank``;
        - ``explained_variance_ratio``: ``s**2 / sum(s**2)``, the share of the squared
          Frobenius norm in each singular direction (of ``x`` as given: center it first for
          PCA's convention, or use :func:`pca`);
        - ``effective_rank``: ``exp(entropy(s / sum(s)))`` (Roy & Vetterli, 2007), a real
          number between 1 and ``rank``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import svd_patterns
        >>> patterns = svd_patterns(jnp.array([[3.0, 0.0], [0.0, 1.0]]))
        >>> int(patterns["rank"]), float(patterns["condition_number"])
        (2, 3.0)
    """
    x = as_float_array(x, "x", owner="svd_patterns")
    if x.ndim < 2:
        raise ConfigError(
            f"svd_patterns: `x` must be a matrix, at least 2-D [..., m, n], got shape "
            f"{tuple(x.shape)}"
        )
    if tol is not None and not isinstance(tol, jax.core.Tracer):
        tol = check_number(tol, "tol", minimum=0, owner="svd_patterns")
    return _svd_patterns(x, tol)


class _LinAlgShapeError(ShapeError, np.linalg.LinAlgError):
    """A :class:`ShapeError` that numpy raises as ``np.linalg.LinAlgError``.

    Both, so ``except ShapeError`` and numpy code's ``except np.linalg.LinAlgError`` catch it.
    """


class _LinAlgEmptyError(EmptyInputError, np.linalg.LinAlgError):
    """An :class:`EmptyInputError` that numpy raises as ``np.linalg.LinAlgError``."""


class _LinAlgValueError(InvalidValueError, np.linalg.LinAlgError):
    """An :class:`InvalidValueError` that numpy raises as ``np.linalg.LinAlgError``."""


_LINALG_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)
_SVD_ORDERS = (None, 2, -2)
_NORM_ORDERS_TEXT = "None, 'fro', 'nuc', inf, -inf, 1, -1, 2, -2"


_NUMBERS = "an array of numbers (bool, int, float or complex)"
_REAL_NUMBERS = "a real number or an array of them (float or int)"


def _as_numbers(x, name: str, owner: str, *, linalg: bool = True, expected: str = _NUMBERS):
    """``x`` as a numpy or JAX array of bools, ints, floats or complex numbers.

    ``linalg``: a matrix (2-D or more) goes to LAPACK, so half-precision floats are refused
    there, as numpy refuses them. Concrete float64 / complex128 values past float32's range are refused when JAX
    runs without x64 (it would turn them into infinities).
    """
    if not isinstance(x, jax.Array):
        given = x
        try:
            x = np.asarray(given)
        except (TypeError, ValueError) as error:
            # jit passes a tuple of numbers on as a tuple of tracers: numpy cannot take them.
            traced = isinstance(given, tuple) and any(
                isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(given)
            )
            reason, x = str(error), None
            if traced:
                try:
                    x = jnp.asarray(given)
                except (TypeError, ValueError) as jax_error:
                    reason = str(jax_error)
            if x is None:
                raise InvalidTypeError(
                    f"{owner}: `{name}` must be {expected}, got {type(given).__name__} that "
                    f"numpy cannot convert: {quote(reason)}"
                ) from None
    dtype = np.dtype(x.dtype)
    if dtype.kind not in "biufc":
        raise InvalidTypeError(f"{owner}: `{name}` must be {expected}, got dtype {dtype}")
    if linalg and x.ndim >= 2 and dtype.kind in "fc" and dtype not in _LINALG_DTYPES:
        raise InvalidTypeError(
            f"{owner}: `{name}` must be float32, float64, complex64 or complex128 (ints and "
            f"bools become the default float), as numpy's linalg, got dtype {dtype}"
        )
    if isinstance(x, np.ndarray | np.generic) and dtype.kind in "fc":
        for part in (x.real, x.imag) if dtype.kind == "c" else (x,):
            as_real_array(part, name, owner=owner)  # float32's range, without x64
    return x


def _as_linalg_float(x) -> jax.Array:
    """``x`` in the dtype linear algebra runs in: ints and bools become the default float."""
    if np.dtype(x.dtype).kind in "biu":
        return jnp.asarray(x, dtype=jnp.result_type(float))
    return jnp.asarray(x)


def _as_real_numbers(value, name: str, owner: str):
    """``value`` as an array of real numbers (ints or floats; not bools, not complex)."""
    value = _as_numbers(value, name, owner, linalg=False, expected=_REAL_NUMBERS)
    if np.dtype(value.dtype).kind not in "iuf":
        raise InvalidTypeError(
            f"{owner}: `{name}` must be {_REAL_NUMBERS}, got dtype {np.dtype(value.dtype)}"
        )
    return value


def _as_tolerance(value, name: str, owner: str, stack: tuple[int, ...], like: str) -> jax.Array:
    """A ``tol`` or ``rtol`` as a float array of shape ``[..., 1]`` that broadcasts over ``stack``."""
    value = _as_linalg_float(_as_real_numbers(value, name, owner))
    try:
        np.broadcast_shapes((*value.shape, 1), (*stack, 1))
    except ValueError:
        raise ShapeError(
            f"{owner}: `{name}` must be a number or an array that broadcasts against the "
            f"stack shape {stack} of {like}, got shape {tuple(value.shape)}"
        ) from None
    return value[..., None]


def _compare_dtype(*dtypes) -> np.dtype:
    """numpy's promotion of float dtypes, explicit (strict promotion refuses the implicit one)."""
    return functools.reduce(np.promote_types, [np.dtype(d) for d in dtypes])


def _singular_values(x: jax.Array, hermitian: bool) -> jax.Array:
    """numpy's ``svd(x, compute_uv=False, hermitian=hermitian)``, up to the order.

    Hermitian: the absolute eigenvalues from the lower triangle (``eigvalsh``, unsorted).
    Otherwise a matrix with a NaN or an infinity has NaN singular values on every backend,
    as numpy's LAPACK gives them for infinities (for NaN numpy raises: see the callers).
    """
    if hermitian:
        return jnp.abs(jnp.linalg.eigvalsh(x, UPLO="L", symmetrize_input=False))
    s = jnp.linalg.svd(x, compute_uv=False)
    finite = jnp.all(jnp.isfinite(x), axis=(-2, -1))
    return jnp.where(finite[..., None], s, jnp.nan)


@functools.partial(checked_jit, static_argnames=("hermitian",))
def _matrix_rank(A, tol, hermitian, rtol) -> tuple[jax.Array, jax.Array]:
    """The rank, and whether ``A`` holds a NaN that numpy's SVD refuses (checked by the caller)."""
    owner = "matrix_rank"
    if tol is not None and rtol is not None:
        raise ConfigError(
            f"{owner}: `tol` and `rtol` must not both be set (as in numpy): pass one of them "
            "or neither, got both"
        )
    hermitian = check_bool(hermitian, "hermitian", owner=owner)
    A = _as_numbers(A, "A", owner)
    shape = tuple(A.shape)
    rank_dtype = jnp.result_type(int)
    for name, value in (("tol", tol), ("rtol", rtol)):
        if value is not None:
            _as_real_numbers(value, name, owner)
    if A.ndim < 2:  # numpy: int(not all(A == 0)); tol, rtol and hermitian play no part
        if isinstance(A, np.ndarray | np.generic):  # not jitted: uint64 past uint32, say
            nonzero = jnp.asarray(bool(np.any(A != 0)))
        else:
            nonzero = jnp.any(A != jnp.zeros((), A.dtype))
        return nonzero.astype(rank_dtype), jnp.zeros((), bool)
    m, n = A.shape[-2:]
    if hermitian and m != n:
        raise _LinAlgShapeError(
            f"{owner}: `A` must be square [..., n, n] with hermitian=True, got shape {shape}"
        )
    x = _as_linalg_float(A)
    s = _singular_values(x, hermitian)
    stack, like = x.shape[:-2], f"`A` (shape {shape})"
    largest = jnp.max(s, axis=-1, keepdims=True, initial=0)
    if tol is None:
        if rtol is None:
            rtol = jnp.asarray(max(m, n) * np.finfo(s.dtype).eps, s.dtype)
        else:
            rtol = _as_tolerance(rtol, "rtol", owner, stack, like)
        dtype = _compare_dtype(s.dtype, rtol.dtype)
        threshold = largest.astype(dtype) * rtol.astype(dtype)
    else:
        threshold = _as_tolerance(tol, "tol", owner, stack, like)
        dtype = _compare_dtype(s.dtype, threshold.dtype)
        threshold = threshold.astype(dtype)
    rank = jnp.sum(s.astype(dtype) > threshold, axis=-1, dtype=rank_dtype)
    refused = jnp.zeros((), bool) if hermitian else jnp.any(jnp.isnan(x))
    return rank, refused


def _refuse_nan(x, name: str, owner: str, why: str) -> None:
    """Raise the ``LinAlgError`` numpy raises for a NaN in ``x``, naming its first one."""
    values = np.asarray(x)
    bad = np.isnan(values)
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    count = int(bad.sum())
    raise _LinAlgValueError(
        f"{owner}: `{name}` must not hold NaN ({why}), got nan at index {where} ({count} NaN "
        f"value{'s' if count > 1 else ''} of {values.size})"
    )


def matrix_rank(A, tol=None, hermitian=False, *, rtol=None) -> jax.Array:
    """Rank of a matrix or of each matrix of a stack, as ``np.linalg.matrix_rank``.

    The number of singular values above a threshold: ``tol`` if given, else
    ``S.max() * rtol``, where ``rtol`` defaults to ``max(M, N) * eps`` of the singular
    values' dtype (numpy's and MATLAB's default). ``tol`` and ``rtol`` may be arrays that
    broadcast against the stack shape ``A.shape[:-2]`` (the result takes the broadcast
    shape); they are traced, not static, so new values never compile again.

    Args:
        A: ``[..., M, N]`` array (float, complex, int or bool: ints and bools become the
            default float), or a 0-D / 1-D array, whose rank is ``int(not all(A == 0))``.
        tol: absolute threshold; at most one of ``tol`` and ``rtol``.
        hermitian: ``A`` is Hermitian (symmetric if real): the absolute eigenvalues of its
            lower triangle serve as singular values, as numpy's ``eigvalsh``.
        rtol: threshold relative to the largest singular value.

    Returns:
        ``int`` array of shape ``A.shape[:-2]`` (broadcast with ``tol`` / ``rtol``), in the
        default int dtype (int64 under x64, as numpy's). An empty matrix has rank 0.

    Raises:
        ConfigError: ``tol`` and ``rtol`` both set (numpy's ``ValueError``).
        ShapeError: ``tol`` or ``rtol`` does not broadcast against the stack; with
            ``hermitian=True``, a non-square ``A`` (also a ``np.linalg.LinAlgError``).
        InvalidValueError: a NaN in ``A`` (also a ``np.linalg.LinAlgError``: numpy's SVD
            does not converge). Inside an outer ``jax.jit`` values cannot be checked, and a
            matrix with a NaN has rank 0. With ``hermitian=True`` numpy does not check
            either: its rank of a NaN matrix is whatever LAPACK's ``eigvalsh`` gives, and
            this one's is JAX's.
        InvalidTypeError: ``A``, ``tol`` or ``rtol`` is not numeric (``float16`` ``A`` too,
            as numpy).

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import matrix_rank
        >>> int(matrix_rank(jnp.array([[1.0, 2.0], [2.0, 4.0]])))
        1
        >>> matrix_rank(jnp.stack([jnp.eye(3), jnp.diag(jnp.array([1.0, 1.0, 1e-3]))]), rtol=0.01)
        Array([3, 2], dtype=int32)

    Oracle: ``np.linalg.matrix_rank(A, tol, hermitian, rtol=rtol)``.
    """
    rank, refused = _matrix_rank(A, tol, hermitian, rtol)
    if not isinstance(refused, jax.core.Tracer) and bool(refused):
        _refuse_nan(A, "A", "matrix_rank", "numpy's SVD does not converge on it")
    return rank


def _check_norm_order(p, owner: str):
    """``p`` of ``cond`` in one spelling: None, 'fro', 'nuc', inf, -inf, 1, -1, 2 or -2."""
    expected = f"one of {_NORM_ORDERS_TEXT}"
    if p is None:
        return None
    if isinstance(p, str):
        if p in ("fro", "f"):  # numpy's norm takes 'f' for 'fro'
            return "fro"
        if p == "nuc":
            return p
    elif isinstance(p, int | float | np.integer | np.floating) and not isinstance(
        p, bool | np.bool_
    ):
        number = float(p)
        if number in (np.inf, -np.inf):
            return number
        if number in (1, -1, 2, -2):
            return int(number)
    else:
        raise ConfigTypeError(
            f"{owner}: `p` must be {expected}, got {type(p).__name__}: {quote(p)}"
        )
    raise ConfigError(f"{owner}: `p` must be {expected}, got {quote(p)}")


@functools.partial(checked_jit, static_argnames=("p",))
def _cond(x, p) -> jax.Array:
    owner = "cond"
    p = _check_norm_order(p, owner)
    x = _as_numbers(x, "x", owner)
    shape = tuple(x.shape)
    if x.ndim < 2:
        raise _LinAlgShapeError(f"{owner}: `x` must be at least 2-D [..., m, n], got shape {shape}")
    m, n = x.shape[-2:]
    if m * n == 0:
        raise _LinAlgEmptyError(
            f"{owner}: `x` must hold matrices of at least one value (numpy: cond is not "
            f"defined on empty arrays), got shape {shape}"
        )
    if p not in _SVD_ORDERS and m != n:
        raise _LinAlgShapeError(
            f"{owner}: `x` must be square [..., n, n] for p={quote(p)} (only p=None, 2 and -2 "
            f"take rectangular matrices), got shape {shape}"
        )
    x = _as_linalg_float(x)
    if p in _SVD_ORDERS:
        s = _singular_values(x, hermitian=False)
        r = s[..., -1] / s[..., 0] if p == -2 else s[..., 0] / s[..., -1]
    else:
        inverse = jnp.linalg.inv(x)
        r = jnp.linalg.norm(x, p, axis=(-2, -1)) * jnp.linalg.norm(inverse, p, axis=(-2, -1))
        # A singular matrix's inverse fails (inf or NaN entries): numpy's inv gives NaN
        # there, whatever the norm, so no norm of a non-finite inverse is needed.
        failed = ~jnp.all(jnp.isfinite(inverse), axis=(-2, -1))
        r = jnp.where(failed, jnp.nan, r)
    # numpy turns NaN into inf, unless the matrix itself holds a NaN.
    has_nan = jnp.any(jnp.isnan(x), axis=(-2, -1))
    r = jnp.where(jnp.isnan(r) & ~has_nan, jnp.inf, r)
    return r.astype(jnp.finfo(x.dtype).dtype)


def cond(x, p=None) -> jax.Array:
    """Condition number of a matrix or of each matrix of a stack, as ``np.linalg.cond``.

    ``p`` None, 2 and -2 use the singular values (``s.max() / s.min()``, or its inverse for
    -2) and take rectangular matrices; the other norms compute
    ``norm(x, p) * norm(inv(x), p)`` of square matrices. As in numpy, a singular matrix
    has ``inf`` for the norms (its inverse fails), and for ``p=None`` or 2 either ``inf``
    (a singular value exactly 0) or a huge finite number (rounding keeps the smallest
    singular value above 0), so test ``cond(x) > 1 / eps`` rather than ``isinf``. A NaN
    that numpy's arithmetic would give is ``inf``, unless the matrix itself holds a NaN.

    Args:
        x: ``[..., m, n]`` array: float, complex, int or bool (ints and bools become the
            default float).
        p: ``None`` (2-norm via the SVD), ``'fro'``, ``'nuc'``, ``inf``, ``-inf``, ``1``,
            ``-1``, ``2`` or ``-2``: numpy's matrix norms (``'f'`` is ``'fro'``).

    Returns:
        Real float array of shape ``x.shape[:-2]``, in the precision of ``x``
        (float32 for complex64).

    Raises:
        ShapeError: ``x`` below 2-D, or not square for a ``p`` other than None, 2, -2
            (also a ``np.linalg.LinAlgError``, which numpy raises).
        EmptyInputError: matrices without values, shape ``(..., 0, n)`` or
            ``(..., m, 0)`` (also a ``np.linalg.LinAlgError``); an empty stack
            ``(0, n, n)`` gives an empty result.
        InvalidValueError: a NaN in ``x`` for ``p`` None, 2 or -2 (also a
            ``np.linalg.LinAlgError``: numpy's SVD does not converge). The other norms give
            NaN for that matrix, as numpy; so does every ``p`` inside an outer ``jax.jit``.
        ConfigError: ``p`` is not one of the above.
        InvalidTypeError: ``x`` is not numeric, or ``float16`` (as numpy).

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import cond
        >>> x = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
        >>> round(float(cond(x)), 6), float(cond(x, jnp.inf)), float(cond(x, -1))
        (1.414214, 2.0, 1.0)
        >>> float(cond(jnp.zeros((2, 2)))), float(cond(jnp.ones((2, 2)), "fro"))
        (inf, inf)

    Oracle: ``np.linalg.cond(x, p)``.
    """
    r = _cond(x, p)
    if not isinstance(r, jax.core.Tracer) and (p is None or p in (2, -2)):
        if np.isnan(np.asarray(r)).any():
            _refuse_nan(x, "x", "cond", f"numpy's SVD does not converge on it for p={p}")
    return r


class PCAState(NamedTuple):
    """A fitted PCA, with scikit-learn's attribute names (without the trailing underscore)."""

    components: jax.Array  # [n_components, d], rows are unit principal axes
    explained_variance: jax.Array  # [n_components]
    explained_variance_ratio: jax.Array  # [n_components]
    singular_values: jax.Array  # [n_components]
    mean: jax.Array  # [d]


@functools.partial(jax.jit, static_argnames="n_components")
def _pca_fit(x: jax.Array, n_components: int) -> PCAState:
    n = x.shape[0]
    mean, gram = _centered_gram(x)
    cov = gram / (n - 1)
    eigenvalues, eigenvectors = jnp.linalg.eigh(cov)
    eigenvalues = jnp.clip(eigenvalues[::-1], 0, None)
    components = eigenvectors[:, ::-1].T
    # scikit-learn's svd_flip(u_based_decision=False): the largest |entry| of each axis is > 0.
    largest = jnp.argmax(jnp.abs(components), axis=1)
    signs = jnp.sign(jnp.take_along_axis(components, largest[:, None], axis=1))
    components = components * jnp.where(signs == 0, 1, signs)
    total = jnp.sum(eigenvalues)
    ratio = eigenvalues / jnp.where(total > 0, total, 1)
    return PCAState(
        components=components[:n_components],
        explained_variance=eigenvalues[:n_components],
        explained_variance_ratio=ratio[:n_components],
        singular_values=jnp.sqrt(eigenvalues[:n_components] * (n - 1)),
        mean=mean,
    )


def _fit_pca(x, n_components: int | None, owner: str) -> PCAState:
    """Check ``x`` and ``n_components`` for ``owner``, then fit (the one PCA fit)."""
    x = as_float_array(x, "x", ndim=2, owner=owner)
    d = x.shape[1]
    if n_components is None:
        n_components = d
    n_components = check_int(
        n_components, "n_components", maximum=d, owner=owner, why=" (the number of columns)"
    )
    _check_rows(x, 2, owner, " to estimate a covariance")
    return _pca_fit(x, n_components)


@functools.partial(jax.jit, static_argnames="whiten")
def _pca_project(state: PCAState, x: jax.Array, whiten: bool) -> jax.Array:
    projected = centered_product(x, state.mean, state.components.T)
    if whiten:
        # A direction without variance (constant data) is left unscaled, not divided by 0.
        variance = state.explained_variance
        projected = projected / jnp.sqrt(jnp.where(variance > 0, variance, 1))
    return projected


def _project_pca(state: PCAState, x, whiten: bool, owner: str) -> jax.Array:
    """Check ``x`` against a fitted ``state`` for ``owner``, then project (the one projection)."""
    x = as_float_array(x, "x", ndim=2, owner=owner)
    d = state.mean.shape[0]
    if x.dtype != state.mean.dtype:  # numpy's promotion, which strict mode would refuse
        dtype = np.result_type(x.dtype, state.mean.dtype)
        x, state = x.astype(dtype), PCAState(*(a.astype(dtype) for a in state))
    if x.shape[1] != d:
        raise ConfigError(
            f"{owner}: `x` must have the {d} columns the PCA was fitted on, got shape "
            f"{tuple(x.shape)}"
        )
    return _pca_project(state, x, whiten)


def pca(x, n_components: int | None = None, *, whiten: bool = False) -> tuple[jax.Array, PCAState]:
    """Fit PCA on ``x`` and project ``x``: ``(projection, state)``, as ``PCA.fit_transform``.

    Matches ``sklearn.decomposition.PCA(n_components, whiten=whiten,
    svd_solver="covariance_eigh")``: it eigen-decomposes the ``[d, d]`` covariance (fast for
    tall data), and signs follow scikit-learn (the largest-magnitude entry of each component
    is positive), so projections match, not only up to sign. To fit on one window and
    project another, use :func:`liam_core.algebra.transforms.pca`, whose state is this
    :class:`PCAState`.

    Args:
        x: ``[n, d]`` array, ``n >= 2``.
        n_components: how many axes to keep, ``1 <= n_components <= d``; default all ``d``.
        whiten: divide by the square root of the explained variance, as ``PCA(whiten=True)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import pca
        >>> projection, state = pca(jnp.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), 1)
        >>> [round(float(value), 4) for value in projection.ravel()]
        [-1.4142, 0.0, 1.4142]
        >>> state.explained_variance_ratio.tolist()
        [1.0]
    """
    whiten = check_bool(whiten, "whiten", owner="pca")
    state = _fit_pca(x, n_components, "pca")
    return _project_pca(state, x, whiten, "pca"), state


class WhiteningState(NamedTuple):
    """Mean and ``[d, d]`` whitening matrix: ``whitened = (x - mean) @ matrix``."""

    mean: jax.Array
    matrix: jax.Array


@functools.partial(jax.jit, static_argnames="method")
def _whitening_fit(x: jax.Array, method: str, eps: jax.Array | None) -> WhiteningState:
    mean, gram = _centered_gram(x)
    cov = gram / (x.shape[0] - 1)
    eigenvalues, eigenvectors = jnp.linalg.eigh(cov)
    if eps is None:  # numpy's rank tolerance: eigenvalues below it are numerical noise
        eps = jnp.max(eigenvalues) * x.shape[1] * jnp.finfo(x.dtype).eps
        # A constant x has no eigenvalue above 0: the smallest normal number keeps the scale
        # finite (its centred data are 0, and so is their whitened form).
        eps = jnp.where(eps > 0, eps, jnp.finfo(x.dtype).tiny)
    scale = 1 / jnp.sqrt(jnp.maximum(eigenvalues, eps))
    matrix = eigenvectors * scale
    if method == "zca":
        matrix = matrix @ eigenvectors.T
    return WhiteningState(mean=mean, matrix=matrix)


def _fit_whitening(x, method: WhiteningMethod, eps: float | None, owner: str) -> WhiteningState:
    """Check the input and settings for ``owner``, then fit (the one whitening fit)."""
    x = as_float_array(x, "x", ndim=2, owner=owner)
    check_choice(method, "method", WhiteningMethod, owner=owner)
    if eps is not None:
        eps = check_number(eps, "eps", minimum=0, open_interval=True, owner=owner)
    _check_rows(x, 2, owner, " to estimate a covariance")
    return _whitening_fit(x, method, None if eps is None else jnp.asarray(eps, x.dtype))


@jax.jit
def _whitening_apply(state: WhiteningState, x: jax.Array) -> jax.Array:
    return centered_product(x, state.mean, state.matrix)


def whiten(x, *, method: WhiteningMethod = "zca", eps: float | None = None) -> jax.Array:
    """Decorrelate the columns of ``x`` and scale them to unit variance (``ddof=1``).

    ``method="zca"`` (Mahalanobis) stays closest to the input columns; ``"pca"`` rotates
    onto the principal axes. Eigenvalues below ``eps`` are raised to ``eps`` so constant
    directions stay finite; the default is numpy's rank tolerance, the largest eigenvalue
    times ``d`` times the machine epsilon of the dtype. To fit on one window and apply to
    another, use :func:`liam_core.algebra.transforms.whiten`.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import covariance, whiten
        >>> x = jnp.array([[1.0, 2.0], [2.0, 3.5], [3.0, 7.0], [4.0, 7.5]])
        >>> abs(covariance(whiten(x)) - jnp.eye(2)).max() < 1e-5
        Array(True, dtype=bool)
    """
    state = _fit_whitening(x, method, eps, "whiten")
    return _whitening_apply(state, as_float_array(x, "x", ndim=2, owner="whiten"))


def random_projection_matrix(
    n_features: int,
    n_components: int,
    *,
    key: jax.Array,
    kind: ProjectionKind = "gaussian",
    dtype=None,
) -> jax.Array:
    """A ``[n_components, n_features]`` Johnson-Lindenstrauss projection matrix.

    Distributions as scikit-learn's ``GaussianRandomProjection`` (entries from
    ``N(0, 1 / n_components)``) and ``SparseRandomProjection`` with density
    ``1 / sqrt(n_features)`` (entries ``±sqrt(1 / (density * n_components))`` or 0).
    """
    owner = "random_projection_matrix"
    n_features = check_int(n_features, "n_features", owner=owner)
    n_components = check_int(n_components, "n_components", owner=owner)
    check_choice(kind, "kind", ProjectionKind, owner=owner)
    dtype = (
        jnp.result_type(float) if dtype is None else check_float_dtype(dtype, "dtype", owner=owner)
    )
    check_fits_in_memory(
        n_components * n_features * np.dtype(dtype).itemsize, "n_components", "the "
        f"[n_components, n_features] = [{n_components}, {n_features}] matrix", owner=owner,
    )  # fmt: skip
    check_key(key, "key", owner)
    shape = (n_components, n_features)
    if kind == "gaussian":
        return jax.random.normal(key, shape, dtype) / jnp.sqrt(jnp.asarray(n_components, dtype))
    density = 1 / jnp.sqrt(jnp.asarray(n_features, dtype))
    keep_key, sign_key = jax.random.split(key)
    keep = jax.random.uniform(keep_key, shape, dtype) < density
    signs = jnp.where(jax.random.bernoulli(sign_key, 0.5, shape), 1, -1).astype(dtype)
    return jnp.where(keep, signs, 0) * jnp.sqrt(1 / (density * n_components))


def random_projection(
    x, n_components: int, *, key: jax.Array, kind: ProjectionKind = "gaussian"
) -> jax.Array:
    """Project the rows of ``x`` to ``n_components`` dimensions, preserving distances (JL).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import random_projection
        >>> random_projection(jnp.ones((5, 100)), 20, key=jax.random.key(0)).shape
        (5, 20)
    """
    x = as_float_array(x, "x", ndim=2, owner="random_projection")
    matrix = random_projection_matrix(x.shape[1], n_components, key=key, kind=kind, dtype=x.dtype)
    return _project_rows(x, matrix)


@jax.jit
def _project_rows(x: jax.Array, matrix: jax.Array) -> jax.Array:
    return x @ matrix.T
