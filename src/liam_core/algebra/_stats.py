"""Drift statistics between a reference sample and a current sample.

Each statistic takes two 1-D samples (their sizes may differ) and returns a scalar, or two
2-D samples ``[n_reference, d]`` and ``[n_current, d]`` and returns one value per column
(``[d]``). The result's dtype is the samples' float dtype: two float dtypes promote to the
wider one, an integer sample takes the other sample's float dtype (or the default float if
both are integers). A NaN in a column makes that column's statistic NaN. All functions are
jitted; settings are static and checked while tracing.

scipy is the oracle of :func:`ks_statistic`, :func:`wasserstein_1d` and :func:`energy_distance`;
:func:`psi` follows
the usual credit-scoring definition, with its conventions spelled out in its docstring.
Identical samples give exactly 0 for all three.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import (
    as_float_array,
    as_real_array,
    check_fits_in_memory,
    check_int,
    check_ndim,
    check_number,
    quote,
)
from .._errors import EmptyInputError, InvalidValueError, ShapeError
from ._jit import checked_jit

# ---------------------------------------------------------------------------------------
# Shared plumbing
# ---------------------------------------------------------------------------------------


def _two_samples(
    first: jax.Array, second: jax.Array, owner: str, names: tuple[str, str]
) -> tuple[jax.Array, jax.Array]:
    """Both samples as arrays of one float dtype, 1-D or 2-D with the same column count."""
    raw = [
        as_real_array(s, name, owner=owner) for s, name in zip((first, second), names, strict=True)
    ]
    # The dtypes JAX gives them (float64 becomes float32 without x64), as jnp.asarray would.
    floats = [
        jax.dtypes.canonicalize_dtype(s.dtype) for s in raw if jnp.issubdtype(s.dtype, jnp.floating)
    ]
    first, second = (
        as_float_array(s, name, owner=owner, allow_empty=True)
        for s, name in zip(raw, names, strict=True)
    )
    for name, sample in zip(names, (first, second), strict=True):
        check_ndim(sample, name, (1, 2), owner=owner, layout=" ([n] or [n, columns])")
        if sample.shape[0] == 0:
            raise EmptyInputError(
                f"{owner}: `{name}` must hold at least one observation, got shape "
                f"{tuple(sample.shape)}"
            )
    if first.ndim != second.ndim or first.shape[1:] != second.shape[1:]:
        raise ShapeError(
            f"{owner}: `{names[0]}` and `{names[1]}` must both be 1-D, or both 2-D with the "
            f"same number of columns, got shapes {tuple(first.shape)} and {tuple(second.shape)}"
        )
    # numpy's promotion (float32 with float64 -> float64), which strict mode would refuse.
    dtype = np.result_type(*floats) if floats else first.dtype
    return first.astype(dtype), second.astype(dtype)


def _columns(sample: jax.Array) -> jax.Array:
    """A 1-D sample as one column: every statistic works column by column along axis 0."""
    return sample[:, None] if sample.ndim == 1 else sample


def _result(statistic: jax.Array, like: jax.Array) -> jax.Array:
    return statistic[0] if like.ndim == 1 else statistic


def _nan_columns(*samples: jax.Array) -> jax.Array:
    return functools.reduce(jnp.logical_or, [jnp.any(jnp.isnan(s), axis=0) for s in samples])


def _pooled_counts(first: jax.Array, second: jax.Array):
    """Sort two samples together, column by column, counting each sample's share.

    Returns the pooled sorted values and, at every pooled position ``i``, how many
    observations of each sample are among the first ``i + 1`` (exact integers). Each sample
    is sorted first and the pooled sort is stable, so within a run of tied values the first
    sample comes first and each sample keeps its own order: an observation's position in its
    own sorted sample gives both counts, with no running sum. At the last position of a run
    of ties the counts are scipy's ``searchsorted(sorted_sample, value, side="right")``.
    """
    n1 = first.shape[0]
    pooled = jnp.concatenate([jnp.sort(first, axis=0), jnp.sort(second, axis=0)])
    origin = lax.broadcasted_iota(jnp.int32, pooled.shape, 0)
    pooled, origin = lax.sort((pooled, origin), dimension=0, num_keys=1, is_stable=True)
    taken = lax.broadcasted_iota(jnp.int32, pooled.shape, 0) + 1
    count_first = jnp.where(origin < n1, origin + 1, taken - (origin + 1 - n1))
    return pooled, count_first, taken - count_first


def _scaled_gap(count_first: jax.Array, count_second: jax.Array, n1: int, n2: int, dtype):
    """``count_first * n2 - count_second * n1``: ``n1 * n2`` times the gap between two CDFs.

    Computed in integers while they fit, so equal CDFs give exactly 0. (The difference of two
    float quotients need not: XLA turns ``c / n`` into ``c * (1 / n)`` and may fuse the
    product into a fused multiply-add.)
    """
    if n1 * n2 < 2**31:
        int_dtype = jnp.int32
    elif jax.dtypes.canonicalize_dtype(jnp.int64) == jnp.int64:
        int_dtype = jnp.int64
    else:  # too large for int32 and no x64: float, rounding at the dtype's precision
        int_dtype = dtype
    count_first, count_second = count_first.astype(int_dtype), count_second.astype(int_dtype)
    return (count_first * n2 - count_second * n1).astype(dtype)


# ---------------------------------------------------------------------------------------
# Kolmogorov-Smirnov
# ---------------------------------------------------------------------------------------


@checked_jit
def ks_statistic(reference: jax.Array, current: jax.Array) -> jax.Array:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs.

    Both CDFs are compared at every pooled observation, counting tied values as scipy does
    (``searchsorted(..., side="right")`` on each sorted sample).

    Args:
        reference: ``[n]`` or ``[n, columns]`` sample.
        current: ``[m]`` or ``[m, columns]`` sample.

    Returns:
        The statistic in ``[0, 1]``: a scalar, or one per column.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import ks_statistic
        >>> float(ks_statistic(jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([3.0, 4.0, 5.0, 6.0])))
        0.5

    Oracle: ``scipy.stats.ks_2samp(reference, current).statistic`` (two-sided), per column.
    """
    reference, current = _two_samples(reference, current, "ks_statistic", ("reference", "current"))
    first, second = _columns(reference), _columns(current)
    n1, n2 = first.shape[0], second.shape[0]
    pooled, count_first, count_second = _pooled_counts(first, second)
    gap = jnp.abs(_scaled_gap(count_first, count_second, n1, n2, first.dtype))
    # The CDFs are right-continuous steps: compare them at the last of each run of ties.
    last_of_run = jnp.concatenate([pooled[1:] != pooled[:-1], jnp.ones_like(pooled[:1], bool)])
    # n1 * n2 may exceed int32 (65536 x 65536 rows): divide by it as a float of x's dtype.
    statistic = jnp.max(jnp.where(last_of_run, gap, 0), axis=0) / jnp.asarray(n1 * n2, gap.dtype)
    return _result(jnp.where(_nan_columns(first, second), jnp.nan, statistic), reference)


# ---------------------------------------------------------------------------------------
# Wasserstein
# ---------------------------------------------------------------------------------------


def _check_weights(
    weights: jax.Array | None, values: jax.Array, owner: str, name: str, values_name: str
) -> jax.Array | None:
    if weights is None:
        return None
    weights = as_float_array(weights, name, owner=owner, allow_empty=True).astype(values.dtype)
    if weights.shape != values.shape:
        raise ShapeError(
            f"{owner}: `{name}` must have the shape of `{values_name}` {tuple(values.shape)}, "
            f"got shape {tuple(weights.shape)}"
        )
    return _columns(weights)


def _weighted_cdf(values: jax.Array, weights: jax.Array | None):
    """Each column's CDF after ``k = 0 .. n`` of its sorted values, and a per-column flag
    for invalid weights (negative, or not summing to a positive number)."""
    if weights is None:
        weights = jnp.ones_like(values)
    _, weights = lax.sort((values, weights), dimension=0, num_keys=1)
    total = jnp.sum(weights, axis=0)
    invalid = jnp.any(weights < 0, axis=0) | ~(total > 0)
    cumulative = jnp.concatenate([jnp.zeros_like(weights[:1]), jnp.cumsum(weights, axis=0)])
    return cumulative / total, invalid


def wasserstein_1d(
    u_values: jax.Array,
    v_values: jax.Array,
    u_weights: jax.Array | None = None,
    v_weights: jax.Array | None = None,
) -> jax.Array:
    """First Wasserstein (earth mover's) distance between two 1-D empirical distributions.

    The integral of ``|U(t) - V(t)|`` over ``t``, where ``U`` and ``V`` are the (weighted)
    empirical CDFs. Weights need not sum to 1 but must be non-negative with a positive sum:
    finite weights that are not raise :class:`~liam_core.InvalidValueError`, as scipy
    raises. Inside an outer ``jax.jit`` their values cannot be checked, and invalid
    weights give NaN.

    Args:
        u_values: ``[n]`` or ``[n, columns]`` sample.
        v_values: ``[m]`` or ``[m, columns]`` sample.
        u_weights: optional weights, the shape of ``u_values``.
        v_weights: optional weights, the shape of ``v_values``.

    Returns:
        The distance, in the units of the values: a scalar, or one per column.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import wasserstein_1d
        >>> float(wasserstein_1d(jnp.array([0.0, 1.0, 3.0]), jnp.array([5.0, 6.0, 8.0])))
        5.0

    Oracle: ``scipy.stats.wasserstein_distance(u_values, v_values, u_weights, v_weights)``,
    per column.
    """
    owner = "wasserstein_1d"
    distance = _cdf_distance(u_values, v_values, u_weights, v_weights, p=1, owner=owner)
    return _refuse_invalid_weights(distance, u_weights, v_weights, owner)


def energy_distance(
    u_values: jax.Array,
    v_values: jax.Array,
    u_weights: jax.Array | None = None,
    v_weights: jax.Array | None = None,
) -> jax.Array:
    """Energy distance between two 1-D empirical distributions, as scipy defines it.

    ``sqrt(2) * sqrt(integral of (U(t) - V(t))**2 dt)``, where ``U`` and ``V`` are the
    (weighted) empirical CDFs: the square root of Székely's energy distance
    ``2 E|X - Y| - E|X - X'| - E|Y - Y'|``. The same samples, weights and errors as
    :func:`wasserstein_1d`.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import energy_distance
        >>> round(float(energy_distance(jnp.array([0.0, 8.0]), jnp.array([0.0, 8.0]),
        ...                             jnp.array([3.0, 1.0]), jnp.array([2.0, 2.0]))), 4)
        1.0

    Oracle: ``scipy.stats.energy_distance(u_values, v_values, u_weights, v_weights)``, per
    column.
    """
    owner = "energy_distance"
    distance = _cdf_distance(u_values, v_values, u_weights, v_weights, p=2, owner=owner)
    return _refuse_invalid_weights(distance, u_weights, v_weights, owner)


def _refuse_invalid_weights(
    distance: jax.Array, u_weights: object, v_weights: object, owner: str
) -> jax.Array:
    """``distance``, unless concrete weights explain a NaN in it: then the error scipy raises."""
    if isinstance(distance, jax.core.Tracer) or not np.isnan(np.asarray(distance)).any():
        return distance
    for name, weights in (("u_weights", u_weights), ("v_weights", v_weights)):
        if weights is None or isinstance(weights, jax.core.Tracer):
            continue
        values = np.asarray(weights, dtype=np.float64)
        if not np.isfinite(values).all():
            continue  # NaN in, NaN out
        if (values < 0).any():
            where = tuple(int(i) for i in np.argwhere(values < 0)[0])
            raise InvalidValueError(
                f"{owner}: `{name}` must be non-negative with a positive sum, got "
                f"{quote(values[where])} at index {where}"
            )
        totals = np.atleast_1d(values.sum(axis=0))
        if not (totals > 0).all():
            column = "" if values.ndim == 1 else f" in column {int(np.argmin(totals > 0))}"
            raise InvalidValueError(
                f"{owner}: `{name}` must be non-negative with a positive sum, got a sum "
                f"of {quote(float(totals[np.argmin(totals > 0)]))}{column}"
            )
    return distance


@functools.partial(checked_jit, static_argnames=("p", "owner"))
def _cdf_distance(u_values, v_values, u_weights, v_weights, *, p: int, owner: str) -> jax.Array:
    """``(integral of |U - V|**p)**(1/p)`` (p = 1: Wasserstein), ``sqrt(2)`` times it for
    p = 2 (energy), column by column."""
    u_values, v_values = _two_samples(u_values, v_values, owner, ("u_values", "v_values"))
    u_weights = _check_weights(u_weights, u_values, owner, "u_weights", "u_values")
    v_weights = _check_weights(v_weights, v_values, owner, "v_weights", "v_values")
    u, v = _columns(u_values), _columns(v_values)
    nu, nv = u.shape[0], v.shape[0]
    pooled, count_u, count_v = _pooled_counts(u, v)
    # Both CDFs are flat between consecutive pooled values; a run of ties has zero width.
    widths = pooled[1:] - pooled[:-1]
    count_u, count_v = count_u[:-1], count_v[:-1]
    invalid = _nan_columns(u, v)
    if u_weights is None and v_weights is None:
        gaps = _scaled_gap(count_u, count_v, nu, nv, u.dtype)  # nu * nv * (U - V)
        scale = jnp.asarray(nu * nv, widths.dtype)
        if p == 1:
            distance = jnp.sum(jnp.abs(gaps) * widths, axis=0) / scale
        else:
            distance = jnp.sqrt(2 * jnp.sum(gaps * gaps * widths, axis=0)) / scale
    else:
        cdf_u, invalid_u = _weighted_cdf(u, u_weights)
        cdf_v, invalid_v = _weighted_cdf(v, v_weights)
        # Look the CDFs up (no arithmetic after the division), so equal CDFs cancel exactly.
        at_u = jnp.take_along_axis(cdf_u, count_u, axis=0)
        at_v = jnp.take_along_axis(cdf_v, count_v, axis=0)
        gaps = at_u - at_v
        if p == 1:
            distance = jnp.sum(jnp.abs(gaps) * widths, axis=0)
        else:
            distance = jnp.sqrt(2 * jnp.sum(gaps * gaps * widths, axis=0))
        invalid = invalid | invalid_u | invalid_v
    return _result(jnp.where(invalid, jnp.nan, distance), u_values)


# ---------------------------------------------------------------------------------------
# Population stability index
# ---------------------------------------------------------------------------------------


def _reference_quantiles(reference: jax.Array, bins: int) -> jax.Array:
    """``np.quantile(reference, np.arange(1, bins) / bins, axis=0)``, numpy's "linear" method.

    The interpolation positions are computed on the host exactly as numpy computes them,
    in float64, so an observation that lies on an edge falls in the same bin as with numpy.
    """
    n = reference.shape[0]
    ordered = jnp.sort(reference, axis=0)
    position = (n - 1) * (np.arange(1, bins) / bins)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, n - 1)
    fraction = (position - low)[:, None]
    a, b = ordered[low], ordered[high]
    step = b - a
    # numpy's _lerp: from the nearer end, so a fraction of 0 gives a, and of 1 gives b.
    below = a + step * fraction.astype(reference.dtype)
    above = b - step * (1 - fraction).astype(reference.dtype)
    # A fraction strictly inside (0, 1) keeps the edge strictly between a and b, as numpy's
    # float64 edge is, even where float32 rounds it onto a or b: observations equal to a
    # (or b) then fall in the same bin as with numpy.
    below = jnp.where((fraction > 0) & (below <= a) & (b > a), jnp.nextafter(a, b), below)
    above = jnp.where((fraction < 1) & (above >= b) & (b > a), jnp.nextafter(b, a), above)
    return jnp.where(fraction >= 0.5, above, below)


def _bin_fractions(sample: jax.Array, edges: jax.Array) -> jax.Array:
    """Fraction of each column in each bin ``edge[i-1] <= x < edge[i]`` (open outer bins)."""
    n = sample.shape[0]
    at_or_above = jnp.sum(sample[:, None, :] >= edges[None, :, :], axis=0)  # [bins - 1, d]
    above = jnp.concatenate([jnp.full_like(at_or_above[:1], n), at_or_above, 0 * at_or_above[:1]])
    return (above[:-1] - above[1:]).astype(sample.dtype) / n


@functools.partial(checked_jit, static_argnames=("bins", "eps"))
def psi(reference: jax.Array, current: jax.Array, bins: int = 10, eps: float = 1e-6) -> jax.Array:
    """Population stability index of the current sample against the reference sample.

    ``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)`` over ``bins`` bins, where ``r_i`` and
    ``c_i`` are the fractions of the reference and current observations in bin ``i``.
    There is no single standard; these are the conventions, the common ones:

    - bin edges are the reference's quantiles at ``1/bins, 2/bins, ..., (bins-1)/bins``
      (numpy's default "linear" interpolation), so each bin holds about ``1/bins`` of the
      reference;
    - the outer bins are open (everything below the first edge falls in the first bin,
      everything above the last in the last), and bin ``i`` holds
      ``edge[i-1] <= x < edge[i]``, as ``np.digitize`` / ``searchsorted(side="right")``;
    - a fraction below ``eps`` (an empty bin) is raised to ``eps`` so the logarithm stays
      finite; tied edges (heavily repeated values) leave bins empty on both sides, which
      then add 0.

    Rule of thumb: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.

    Args:
        reference: ``[n]`` or ``[n, columns]`` sample the bins are fitted on.
        current: ``[m]`` or ``[m, columns]`` sample to compare.
        bins: number of bins, at least 2.
        eps: floor for a bin's fraction, ``0 < eps < 1``.

    Returns:
        The index (``>= 0``): a scalar, or one per column.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import psi
        >>> reference = jnp.arange(100.0)
        >>> float(psi(reference, reference))
        0.0
        >>> round(float(psi(reference, reference + 50.0, bins=4)), 3)
        6.764

    Oracle: a direct numpy implementation of the same formula (``tests/test_stats.py``).
    """
    owner = "psi"
    bins = check_int(bins, "bins", minimum=2, owner=owner)
    check_number(eps, "eps", minimum=0, maximum=1, open_interval=True, owner=owner)
    reference, current = _two_samples(reference, current, owner, ("reference", "current"))
    first, second = _columns(reference), _columns(current)
    rows = first.shape[0] + second.shape[0]
    check_fits_in_memory(
        bins * rows * first.shape[1] * first.dtype.itemsize, "bins",
        f"the [observations, bins, columns] = [{rows}, {bins}, {first.shape[1]}] comparisons",
        owner=owner,
    )  # fmt: skip
    edges = _reference_quantiles(first, bins)
    expected = jnp.maximum(_bin_fractions(first, edges), eps)
    actual = jnp.maximum(_bin_fractions(second, edges), eps)
    index = jnp.sum((actual - expected) * jnp.log(actual / expected), axis=0)
    return _result(jnp.where(_nan_columns(first, second), jnp.nan, index), reference)
