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

:func:`ks_2samp` is the whole two-sample Kolmogorov-Smirnov test, a drop-in for
``scipy.stats.ks_2samp``: the statistic with its p-value (exact or asymptotic), location and
sign, with scipy's conventions for samples of any shape (``axis``, broadcasting,
``nan_policy``, ``keepdims``) rather than the 1-D / 2-D layout above.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import (
    as_float_array,
    as_real_array,
    check_bool,
    check_choice,
    check_fits_in_memory,
    check_int,
    check_ndim,
    check_number,
    quote,
)
from .._errors import ConfigError, EmptyInputError, InvalidValueError, ShapeError
from ._jit import checked_jit
from ._sorting import sort, sort_by_key

# ---------------------------------------------------------------------------------------
# Shared plumbing
# ---------------------------------------------------------------------------------------


def _promoted_samples(
    first: jax.Array, second: jax.Array, owner: str, names: tuple[str, str]
) -> tuple[jax.Array, jax.Array]:
    """Both samples as float JAX arrays of one dtype, of any shape (empty ones included).

    Two float dtypes promote as numpy does (float32 with float64 gives float64, which strict
    mode would refuse); an integer sample takes the other sample's float dtype, or JAX's
    default float if both are integers.
    """
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
    dtype = np.result_type(*floats) if floats else first.dtype
    return first.astype(dtype), second.astype(dtype)


def _two_samples(
    first: jax.Array, second: jax.Array, owner: str, names: tuple[str, str]
) -> tuple[jax.Array, jax.Array]:
    """Both samples as arrays of one float dtype, 1-D or 2-D with the same column count."""
    first, second = _promoted_samples(first, second, owner, names)
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
    return first, second


def _columns(sample: jax.Array) -> jax.Array:
    """A 1-D sample as one column: every statistic works column by column along axis 0."""
    return sample[:, None] if sample.ndim == 1 else sample


def _result(statistic: jax.Array, like: jax.Array) -> jax.Array:
    return statistic[0] if like.ndim == 1 else statistic


def _nan_columns(*samples: jax.Array) -> jax.Array:
    return functools.reduce(jnp.logical_or, [jnp.any(jnp.isnan(s), axis=0) for s in samples])


def _pooled_sort(first: jax.Array, second: jax.Array):
    """Sort two samples together, column by column, counting each sample's share.

    Returns the pooled sorted values, the position of each in
    ``concatenate([sort(first), sort(second)])`` (scipy's ``data_all``), and, at every pooled
    position ``i``, how many observations of each sample are among the first ``i + 1``
    (exact integers). The pooled order is that of a stable sort of ``data_all``: within a run
    of tied values the first sample comes first and each sample keeps its own order. It is
    found by merging the two sorted samples, not by sorting again: ``sorted_first[i]`` lands
    at ``i`` plus the number of ``second`` values below it, ``sorted_second[j]`` at ``j``
    plus the number of ``first`` values at or below it (binary searches). An observation's
    position in its own sorted sample then gives both counts, with no running sum. At the
    last position of a run of ties the counts are scipy's
    ``searchsorted(sorted_sample, value, side="right")``.
    """
    n1, n2 = first.shape[0], second.shape[0]
    first, second = sort(first, axis=0), sort(second, axis=0)
    column = lax.broadcasted_iota(jnp.int32, first.shape[1:], 0)[None]
    rank1 = lax.broadcasted_iota(jnp.int32, first.shape, 0)
    rank2 = lax.broadcasted_iota(jnp.int32, second.shape, 0)
    below1 = _search_columns(second, first, "left")  # second's values < each first value
    at_or_below2 = _search_columns(first, second, "right")  # first's values <= each second
    place1, place2 = rank1 + below1, rank2 + at_or_below2
    shape = (n1 + n2, *first.shape[1:])

    def merged(from_first: jax.Array, from_second: jax.Array) -> jax.Array:
        out = jnp.zeros(shape, from_first.dtype).at[place1, column].set(from_first)
        return out.at[place2, column].set(from_second)

    pooled = merged(first, second)
    origin = merged(rank1, n1 + rank2)
    count_first = merged(rank1 + 1, at_or_below2)
    taken = lax.broadcasted_iota(jnp.int32, shape, 0) + 1
    return pooled, origin, count_first, taken - count_first


def _search_columns(sorted_values: jax.Array, queries: jax.Array, side: str) -> jax.Array:
    """``searchsorted`` of each column of ``queries`` in the same column of ``sorted_values``
    (``[n, columns]``), as int32, with numpy's order (NaN last, ``-0.0 == +0.0``)."""
    search = jax.vmap(
        lambda a, v: jnp.searchsorted(a, v, side=side).astype(jnp.int32), in_axes=1, out_axes=1
    )
    return search(sorted_values, queries)


def _pooled_counts(first: jax.Array, second: jax.Array):
    """:func:`_pooled_sort` without the positions: pooled values and the two counts."""
    pooled, _, count_first, count_second = _pooled_sort(first, second)
    return pooled, count_first, count_second


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
# Kolmogorov-Smirnov test: scipy.stats.ks_2samp
# ---------------------------------------------------------------------------------------

KsAlternative = Literal["two-sided", "less", "greater"]
KsMethod = Literal["auto", "exact", "asymp"]
NanPolicy = Literal["propagate", "omit", "raise"]

_KS_MAX_AUTO_N = 10_000  # 'auto' is exact when both samples have at most this many values
_DOUBLE_MAX = float(np.finfo(np.float64).max)
_EXACT_FAILED = "ks_2samp: Exact calculation unsuccessful. Switching to method=asymp."
_TOO_SMALL_1D = (
    "One or more sample arguments is too small; all returned values will be NaN. See "
    "documentation for sample size requirements."
)
_TOO_SMALL_ND = (
    "All axis-slices of one or more sample arguments are too small; all elements of returned "
    "arrays will be NaN. See documentation for sample size requirements."
)
_TOO_SMALL_1D_OMIT = (
    "After omitting NaNs, one or more sample arguments is too small; all returned values will "
    "be NaN. See documentation for sample size requirements."
)
_TOO_SMALL_ND_OMIT = (
    "After omitting NaNs, one or more axis-slices of one or more sample arguments is too "
    "small; corresponding elements of returned arrays will be NaN. See documentation for "
    "sample size requirements."
)


class KstestResult(tuple):
    """What :func:`ks_2samp` returns, shaped like scipy's ``KstestResult``.

    A tuple ``(statistic, pvalue)``, so ``statistic, pvalue = ks_2samp(a, b)`` works as with
    scipy, with four attributes: ``statistic``, ``pvalue``, ``statistic_location`` (the
    observation where the two empirical CDFs are furthest apart) and ``statistic_sign``
    (``+1`` where ``data1``'s CDF is above ``data2``'s there, else ``-1``). It is a pytree
    of those four arrays, so it passes in and out of ``jax.jit``.
    """

    _fields = ("statistic", "pvalue")
    _extra_fields = ("statistic_location", "statistic_sign")

    def __new__(cls, statistic, pvalue, statistic_location, statistic_sign):
        self = super().__new__(cls, (statistic, pvalue))
        self.statistic_location = statistic_location
        self.statistic_sign = statistic_sign
        return self

    @property
    def statistic(self):
        return self[0]

    @property
    def pvalue(self):
        return self[1]

    def __getnewargs__(self):
        return (*self, self.statistic_location, self.statistic_sign)

    def _asdict(self) -> dict:
        return dict(zip(self._fields + self._extra_fields, self.__getnewargs__(), strict=True))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._asdict().items())
        return f"KstestResult({fields})"


jax.tree_util.register_pytree_node(
    KstestResult,
    lambda result: (result.__getnewargs__(), None),
    lambda _, leaves: KstestResult(*leaves),
)


def _work_dtype():
    """The widest float JAX computes in: float64 with x64, else float32."""
    return jax.dtypes.canonicalize_dtype(np.float64)


def _divide(numerator: jax.Array, denominator: float) -> jax.Array:
    """``numerator / denominator`` rounded as IEEE division, as numpy's is.

    XLA rewrites a division by a broadcast scalar as a multiplication by its reciprocal
    (one more rounding); dividing by an opaque array keeps the true division.
    """
    return numerator / lax.optimization_barrier(
        jnp.full(numerator.shape, denominator, numerator.dtype)
    )


def _ks_mode(n1: int, n2: int, method: str) -> tuple[str, str | None]:
    """scipy's choice of the p-value method, and the warning it gives when it switches."""
    if method == "auto":
        return ("exact" if max(n1, n2) <= _KS_MAX_AUTO_N else "asymp"), None
    if method == "asymp":
        return "asymp", None
    g = math.gcd(n1, n2)
    too_big = n1 // g >= np.iinfo(np.int32).max / (n2 // g)
    # Without x64 the band arithmetic of the exact method needs lcm(n1, n2) in int32.
    if too_big or (_work_dtype() != np.float64 and (n1 // g) * n2 >= 2**31):
        return "asymp", (
            f"Exact ks_2samp calculation not possible with samples sizes {n1} and {n2}. "
            "Switching to 'asymp'."
        )
    return "exact", None


def _en(n1: int, n2: int) -> tuple[float, float, float]:
    """scipy's (m, n, en): the larger and smaller size as floats and m n / (m + n)."""
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return m, n, m * n / (m + n)


def _ks_layout(shape1: tuple, shape2: tuple, axis: int | None, owner: str):
    """The static layout of scipy's axis handling.

    Returns both samples' shapes padded to one rank, the axis (non-negative), the result's
    shape and its shape with ``keepdims``. Shapes get leading 1s up to the larger rank, the
    axis counts in that rank, and every other axis broadcasts as numpy's do (the samples'
    lengths along ``axis`` may differ). ``axis=None`` ravels both samples.
    """
    shape1, shape2 = tuple(shape1) or (1,), tuple(shape2) or (1,)  # 0-d: one observation
    ndim = max(len(shape1), len(shape2))
    if axis is None:
        return (math.prod(shape1),), (math.prod(shape2),), 0, (), (1,) * ndim
    axis = check_int(axis, "axis", minimum=-ndim, maximum=ndim - 1, owner=owner) % ndim
    padded1 = (1,) * (ndim - len(shape1)) + shape1
    padded2 = (1,) * (ndim - len(shape2)) + shape2
    out = []
    for i, (a, b) in enumerate(zip(padded1, padded2, strict=True)):
        if i == axis:
            continue
        if a != b and 1 not in (a, b):
            raise ShapeError(
                f"{owner}: `data1` and `data2` must broadcast together along every axis but "
                f"`axis` ({axis}), got shapes {shape1} and {shape2}"
            )
        out.append(b if a == 1 else a)
    out = tuple(out)
    return padded1, padded2, axis, out, (*out[:axis], 1, *out[axis:])


def _as_columns(sample, padded: tuple, axis: int, out: tuple, xp=jnp):
    """A sample laid out as ``[n, columns]``: the axis first, the rest broadcast and raveled
    (``xp``: ``jnp``, or ``np`` on the host)."""
    n = padded[axis]
    sample = xp.broadcast_to(xp.reshape(sample, padded), (*out[:axis], n, *out[axis:]))
    return xp.reshape(xp.moveaxis(sample, axis, 0), (n, math.prod(out)))


# --- the statistic ---------------------------------------------------------------------


def _ks_extremes(first: jax.Array, second: jax.Array, alternative: str, work) -> dict:
    """scipy's statistic, its location and sign, column by column of ``[n, columns]`` samples.

    scipy evaluates ``cdf1 - cdf2`` (float64) at every value of ``data_all = concatenate(
    [sort(data1), sort(data2)])`` and takes the first ``argmax`` / ``argmin`` in that order.
    With x64 the differences are computed as scipy rounds them, so ties of the exact gap
    resolve as scipy's do; without x64 the exact integer gaps are compared (ties resolve to
    the first such value in ``data_all``). Also returns ``h``, the statistic times
    ``lcm(n1, n2)`` (an exact integer), for the exact p-values.
    """
    n1, n2 = first.shape[0], second.shape[0]
    g = math.gcd(n1, n2)
    n1g, n2g, lcm = n1 // g, n2 // g, (n1 // g) * n2
    pooled, origin, count1, count2 = _pooled_sort(first, second)
    # Counts at the end of each run of ties: scipy's searchsorted(side="right").
    size = pooled.shape[0]
    position = lax.broadcasted_iota(jnp.int32, pooled.shape, 0)
    last_of_run = jnp.concatenate([pooled[1:] != pooled[:-1], jnp.ones_like(pooled[:1], bool)])
    end = lax.cummin(jnp.where(last_of_run, position, size), axis=0, reverse=True)
    count1 = jnp.take_along_axis(count1, end, axis=0)
    count2 = jnp.take_along_axis(count2, end, axis=0)
    x64 = work == np.float64
    int_dtype = jnp.int64 if x64 else jnp.int32
    scaled = None
    if lcm < 2**31 or x64:  # lcm * (cdf1 - cdf2), exactly
        scaled = count1.astype(int_dtype) * n2g - count2.astype(int_dtype) * n1g
    if x64:
        key = _divide(count1.astype(work), n1) - _divide(count2.astype(work), n2)
    elif scaled is not None:
        key = scaled
    else:  # no x64, lcm past int32 (the asymptotic method only): float32 gaps
        key = count1.astype(work) * n2 - count2.astype(work) * n1

    def first_at(value):  # the first position in data_all where the key takes this value
        at = jnp.argmin(jnp.where(key == value, origin, size), axis=0)[None]
        return at, jnp.take_along_axis(pooled, at, axis=0)[0]

    top, bottom = jnp.max(key, axis=0), jnp.min(key, axis=0)
    at_top, loc_top = first_at(top)
    at_bottom, loc_bottom = first_at(bottom)
    high = top  # cddiffs[argmax] >= 0: both CDFs are 1 at the largest value
    low = jnp.clip(-bottom, 0, 1 if x64 else None)  # np.clip(-cddiffs[argmin], 0, 1)
    if alternative == "less":
        use_low = jnp.ones(top.shape, bool)
    elif alternative == "greater":
        use_low = jnp.zeros(top.shape, bool)
    else:
        use_low = low > high
    h = None
    if scaled is not None:
        h = jnp.where(
            use_low,
            jnp.maximum(-jnp.take_along_axis(scaled, at_bottom, axis=0)[0], 0),
            jnp.take_along_axis(scaled, at_top, axis=0)[0],
        )
    if x64:
        statistic = jnp.where(use_low, low, high)
    elif scaled is not None:
        statistic = jnp.where(use_low, low, high).astype(work) / float(lcm)
    else:
        statistic = jnp.where(use_low, low, high) / (float(n1) * n2)
    return {
        "statistic": statistic,
        "h": h,
        "lcm": lcm,
        "location": jnp.where(use_low, loc_bottom, loc_top),
        "sign": jnp.where(use_low, -1, 1),
    }


# --- exact p-values ----------------------------------------------------------------------


def _outside_square(n: int, h: jax.Array, work) -> jax.Array:
    """``P(D >= h/n)`` for two samples of size ``n`` (``h >= 1``), column by column.

    scipy's ``_compute_prob_outside_square``: ``2 A0 (1 - A1 (1 - A2 (...)))`` where ``Ak`` is
    a product of ``h`` ratios, with the same operations in the same order (scipy runs it in
    Python floats), so it rounds as scipy does; it runs as one loop over ``(k, j)``.
    """
    k_top = n // h
    total = (k_top + 1) * h

    def body(state):
        t, p1, p = state
        k, j = k_top - t // h, t % h
        p1 = jnp.where(j == 0, 1.0, p1)
        p1 = (n - k * h - j).astype(work) * p1 / (n + k * h + j + 1).astype(work)
        p = jnp.where((t < total) & (j == h - 1), p1 * (1.0 - p), p)
        return t + 1, p1, p

    zeros = jnp.zeros(h.shape, work)
    steps = jnp.max(total)
    _, _, p = lax.while_loop(lambda s: s[0] < steps, body, (jnp.int32(0), zeros, zeros))
    return 2 * p


def _one_sided_square(n: int, h: jax.Array, work) -> jax.Array:
    """``P(D+ >= h/n)`` for two samples of size ``n``: ``prod_{j<h} (n - j) / (n + j + 1)``."""
    j = jnp.arange(n, dtype=jnp.int32)
    ratio = (n - j).astype(work) / (n + j + 1).astype(work)
    return jnp.prod(jnp.where(j[None, :] < h[:, None], ratio[None, :], 1.0), axis=1)


def _lattice(n1: int, n2: int, h: jax.Array, two_sided: bool, work) -> jax.Array:
    """The exact p-value of two samples of different sizes, by lattice paths (``h >= 1``).

    With ``m >= n`` the sizes, ``g`` their gcd, ``m' = m/g`` and ``n' = n/g``: the share of
    the paths from (0, 0) to (m, n) that reach ``|n' i - m' j| >= h`` (two-sided) or
    ``n' i - m' j >= h`` (one-sided). ``U(i, j)``, the share of the paths to (i, j) that
    got there, is 1 on that region and ``(U(i-1, j) i + U(i, j-1) j) / (i + j)`` elsewhere,
    from ``U(0, 0) = 0``: the recursion scipy's two-sided method uses (Viehmann, 2021),
    computed along anti-diagonals, each one a vector operation. Every value is a convex
    combination of values in [0, 1], so it is stable. (scipy's one-sided method counts the
    paths with binomial coefficients instead; the recursion gives the same probability.)
    """
    m, n = max(n1, n2), min(n1, n2)
    g = math.gcd(m, n)
    mg, ng = m // g, n // g
    q = mg + ng
    index = jnp.int32 if (mg * n) + q < 2**31 else jnp.int64  # n' s and h stay below lcm + q
    bound = h.astype(index)[:, None]
    # On anti-diagonal s (i = s - j) the cells with |n' i - m' j| = |n' s - q j| < h are
    # those with lo < j < hi, lo = floor((n' s - h) / q), hi = ceil((n' s + h) / q); for
    # the one-sided region only j > lo. Everything else holds 1.

    def low(s):
        return jnp.floor_divide(ng * s - bound, q)

    def high(s):
        return -jnp.floor_divide(-(ng * s + bound), q) if two_sided else n + 1

    def combine(up, below, i_float, j_float):
        # The divisor is an array, not a broadcast scalar: a true division (see _divide).
        return (up * i_float + below * j_float) / (i_float + j_float)

    j = jnp.arange(n + 1, dtype=index)
    j_float = j.astype(work)

    def step(s, u):
        inside = (j > jnp.maximum(low(s), s - m - 1)) & (j < jnp.minimum(high(s), s + 1))
        i_float = (s - j).astype(work)
        below = jnp.concatenate([jnp.ones_like(u[:, :1]), u[:, :-1]], axis=1)  # U(i, j-1)
        return jnp.where(inside, combine(u, below, i_float, j_float), 1.0)

    def full():
        start = jnp.where(j == 0, 0.0, 1.0).astype(work)
        start = jnp.broadcast_to(start, (h.shape[0], n + 1))
        return lax.fori_loop(1, m + n + 1, step, start)[:, n]

    # Two-sided, each anti-diagonal holds fewer than 2 h / q + 1 cells below 1: for large
    # samples, follow them in a window (as scipy's loop does), wide enough for statistics up
    # to ~4 / sqrt(en) (p-values down to ~1e-13); larger ones take the full diagonals.
    width = 128 * math.ceil((8 * math.sqrt(m * n / (m + n)) + 8) / 128)
    if not two_sided or 2 * width >= n + 1:
        return full()
    k = jnp.arange(width, dtype=index)
    k_float = k.astype(work)

    def window_step(s, u):
        b = low(s)  # window position k holds j = b + k; j = b itself is outside the band
        moved = (b - low(s - 1)) == 1  # the window moves by 0 or 1 (n' / q <= 1/2)
        ones = jnp.ones_like(u[:, :1])
        ahead = jnp.concatenate([u[:, 1:], ones], axis=1)
        behind = jnp.concatenate([ones, u[:, :-1]], axis=1)
        up = jnp.where(moved, ahead, u)  # U(i - 1, j)
        below = jnp.where(moved, u, behind)  # U(i, j - 1)
        first = jnp.maximum(0, s - m - 1 - b)  # k > s - m - 1 - b: i <= m
        last = jnp.minimum(high(s), s + 1) - b  # k < hi - b and j <= s: i >= 0
        inside = (k > first) & (k < last)
        b_float = b.astype(work)
        return jnp.where(inside, combine(up, below, s - b_float - k_float, b_float + k_float), 1.0)

    def windowed():
        start = jnp.where(k == -low(0), 0.0, 1.0).astype(work)  # U(0, 0) = 0
        u = lax.fori_loop(1, m + n + 1, window_step, start)
        return jnp.take_along_axis(u, n - low(m + n), axis=1)[:, 0]

    fits = jnp.all(2 * bound // q + 3 <= width)
    return lax.cond(fits, windowed, full)


# --- asymptotic p-values -----------------------------------------------------------------


def _one_sided_asymptotic(n1: int, n2: int, d: jax.Array) -> jax.Array:
    """scipy's one-sided asymptotic p-value: Hodges' approximation (eq. 5.3)."""
    m, n, en = _en(n1, n2)
    z = np.sqrt(en) * d
    return jnp.exp(-2 * z**2 - 2 * z * (m + 2 * n) / np.sqrt(m * n * (m + n)) / 3.0)


# ln(k!) - (k ln k - k + ln(2 pi k) / 2) for k = 0 .. 15, from 50-digit arithmetic (mpmath).
_STIRLING_REMAINDER = (
    0.0,
    0.081061466795327258, 0.041340695955409294, 0.027677925684998339,
    0.020790672103765093, 0.016644691189821192, 0.013876128823070748,
    0.01189670994589177, 0.010411265261972096, 0.0092554621827127329,
    0.0083305634333628713, 0.0075736754879518408, 0.0069428401072095299,
    0.0064089941880042071, 0.0059513701127588477, 0.0055547335519628014,
)  # fmt: skip


def _stirling_series(r):
    """Stirling's series for ln(k!) - (k ln k - k + ln(2 pi k) / 2), ``r = 1/k``, k >= 16."""
    r2 = r * r
    return r * (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 / 1188))))


def _stirling_remainder(k: jax.Array) -> jax.Array:
    """``ln(k!) - (k ln k - k + ln(2 pi k) / 2)`` for integer-valued floats ``k >= 1``."""
    table = jnp.asarray(_STIRLING_REMAINDER, k.dtype)[jnp.clip(k, 0, 15).astype(jnp.int32)]
    return jnp.where(k < 16, table, _stirling_series(1 / jnp.maximum(k, 16)))


def _smirnov(n: int, x: jax.Array) -> jax.Array:
    """``scipy.special.smirnov(n, x)``, ``P(D+_n >= x)``, where the two-sided law calls it.

    There (``n x**2 > 2``, ``1/n < x < 1 - 1/n``) scipy sums Birnbaum and Tingey's terms
    ``x C(n, v) (x + v/n)**(v-1) (1 - x - v/n)**(n-v)``, ``0 <= v < n (1 - x)``, in
    double-double arithmetic. Here each term is ``exp`` of its logarithm, written with
    Stirling's series so that the parts of size ``n`` cancel before rounding: the exponent
    is off by about ``n x`` roundings, and the sum (all terms positive) by a few more.
    """
    work = x.dtype
    if n > 1_000_000:  # scipy approximates past this size
        logp = -((6.0 * n * x + 1) ** 2) / 18.0 / n
        return jnp.where(logp < -math.log(2), jnp.exp(logp), 1 - (-jnp.expm1(logp)))
    nx = n * x
    # Each term is at most the sum, at most exp(-2 n x**2): shifted, the largest ones stay
    # normal numbers until the end.
    shift = jnp.maximum(2 * nx * x - (300.0 if work == np.float64 else 40.0), 0)
    first_term = jnp.exp(n * jnp.log1p(-x) + shift)  # v = 0
    remainder_n = _STIRLING_REMAINDER[n] if n < 16 else _stirling_series(1 / n)  # a Python float
    width = min(4096, n - 1)
    nxc = nx[:, None]

    def add(step, total):
        v = (1 + step * width + jnp.arange(width, dtype=jnp.int32)).astype(work)
        rest = n - v
        used = rest > nxc
        rest = jnp.where(used, rest, 2 * nxc + 1)  # keeps the unused terms finite
        exponent = (
            v * jnp.log1p(nxc / v)
            + rest * jnp.log1p(-nxc / rest)
            - jnp.log1p(v / nxc)
            + 0.5 * jnp.log(n / (2 * np.pi * v * rest))
            + (remainder_n - _stirling_remainder(v) - _stirling_remainder(rest))
        )
        return total + jnp.sum(jnp.where(used, jnp.exp(exponent + shift[:, None]), 0), axis=1)

    total = lax.fori_loop(0, -(-(n - 1) // width), add, first_term)
    return jnp.where(-2 * n * x * x < -7.08396418532264106224e2, 0.0, total * jnp.exp(-shift))


def _matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """A batched matrix product at full precision (no TF32 or bfloat16 passes on GPUs)."""
    return jnp.matmul(a, b, precision=lax.Precision.HIGHEST)


@functools.lru_cache(maxsize=64)
def _factorial_over_power(n: int) -> tuple[float, int]:
    """``n! / n**n`` as ``(mantissa, exponent)``, rounded once from exact integers."""
    numerator, denominator = math.factorial(n), n**n
    shift = 64 + denominator.bit_length() - numerator.bit_length()
    mantissa, exponent = math.frexp(float((numerator << shift) // denominator))
    return mantissa, exponent - shift


def _durbin_cdf(n: int, d: jax.Array) -> jax.Array:
    """``P(D_n <= d)`` by Durbin's matrix, as Marsaglia, Tsang and Wang (2003) compute it.

    With ``k = ceil(n d)`` it is ``n!/n**n`` times the centre of the n-th power of a
    ``(2k-1) x (2k-1)`` matrix. ``k`` depends on ``d``, so the matrix is embedded in one of
    the largest size the callers need (zeros around it, which the products keep); powers
    are rescaled by powers of 2 as they grow, exactly.
    """
    work = d.dtype
    if n <= 140:  # scipy uses it (or Pomeranz's recursion, here replaced) up to n d**2 = 4
        kmax = min(math.ceil(2 * math.sqrt(n)), n) + 1
    else:  # ... and up to n d**1.5 = 1.4
        kmax = math.ceil(1.4 ** (2 / 3) * n ** (1 / 3)) + 2
    size = 2 * kmax - 1
    scale_bits = 128 if work == np.float64 else 32
    nd = n * d
    k = jnp.clip(jnp.ceil(nd), 1, kmax).astype(jnp.int32)
    h = k.astype(work) - nd
    m = 2 * k - 1
    inverse_factorials = [1.0]  # 1/j!, divided down as scipy does
    for j in range(1, size + 1):
        inverse_factorials.append(inverse_factorials[-1] / j)
    inverse = jnp.asarray(np.array(inverse_factorials), work)
    powers = jnp.arange(1, size + 1, dtype=jnp.int32).astype(work)
    first_column = (1.0 - h[:, None] ** powers) * inverse[1:]  # (1 - h**j) / j!
    mf = m.astype(work)
    corner = (1.0 + jnp.maximum(2 * h - 1.0, 0) ** mf - 2 * h**mf) * inverse[m]
    index = jnp.arange(size, dtype=jnp.int32)
    first_column = jnp.where(index[None, :] == (m - 1)[:, None], corner[:, None], first_column)
    rows, cols = index[:, None], index[None, :]
    below = jnp.where(rows - cols + 1 >= 0, inverse[jnp.clip(rows - cols + 1, 0, size)], 0.0)
    matrix = jnp.where(cols == 0, first_column[:, :, None], below[None])
    last_row = jnp.take_along_axis(
        first_column, jnp.clip(m[:, None] - 1 - cols, 0, size - 1), axis=1
    )
    matrix = jnp.where(rows[None] == (m - 1)[:, None, None], last_row[:, None, :], matrix)
    inside = (rows[None] < m[:, None, None]) & (cols[None] < m[:, None, None])
    matrix = jnp.where(inside, matrix, 0.0)

    def rescaled(a, exponent):
        large = jnp.max(jnp.abs(a), axis=(1, 2)) > 2.0**scale_bits
        a = jnp.where(large[:, None, None], a * 2.0**-scale_bits, a)
        return a, exponent + jnp.where(large, scale_bits, 0)

    # n is static: square and multiply over its bits, in one loop (a smaller program).
    bits = jnp.asarray([int(bit) for bit in reversed(bin(n)[2:])], jnp.int32)
    zero = jnp.zeros(d.shape, jnp.int32)
    identity = jnp.broadcast_to(jnp.eye(size, dtype=work), matrix.shape)

    def square_and_multiply(b, state):
        power, exponent, matrix, matrix_exponent = state
        product, product_exponent = rescaled(_matmul(power, matrix), exponent + matrix_exponent)
        power = jnp.where(bits[b] == 1, product, power)
        exponent = jnp.where(bits[b] == 1, product_exponent, exponent)
        matrix, matrix_exponent = rescaled(_matmul(matrix, matrix), 2 * matrix_exponent)
        return power, exponent, matrix, matrix_exponent

    power, exponent, _, _ = lax.fori_loop(
        0, len(bin(n)) - 2, square_and_multiply, (identity, zero, matrix, zero)
    )
    centre = jnp.take_along_axis(
        jnp.take_along_axis(power, (k - 1)[:, None, None], axis=1)[:, 0], (k - 1)[:, None], axis=1
    )[:, 0]
    mantissa, shift = _factorial_over_power(n)
    fraction, fraction_exponent = jnp.frexp(centre)
    p = jnp.ldexp(fraction * mantissa, fraction_exponent + exponent + shift)
    return jnp.clip(jnp.where(d >= 1, 1.0, jnp.where(nd <= 0.5, 0.0, p)), 0.0, 1.0)


def _pelz_good_cdf(n: int, x: jax.Array) -> jax.Array:
    """Pelz and Good's approximation of ``P(D_n <= x)``, as scipy evaluates it (unclipped)."""
    work = x.dtype
    pi2, pi4, pi6 = np.pi**2, np.pi**4, np.pi**6
    z = np.sqrt(n) * x
    z2, z3, z4, z6 = z**2, z**3, z**4, z**6
    qlog = -pi2 / 8 / z2
    q = jnp.exp(qlog)
    k1 = (-z2, pi2 / 4)
    k2 = (6 * z6 + 2 * z4, (2 * z4 - 5 * z2) * pi2 / 4, pi4 * (1 - 2 * z2) / 16)
    k3 = (
        -30 * z6 - 90 * z**8,
        pi2 * (135 * z4 - 96 * z6) / 4,
        pi4 * (-60 * z2 + 212 * z4) / 16,
        pi6 * (5 - 30 * z2) / 64,
    )
    maxk = jnp.ceil(16 * z / np.pi).astype(jnp.int32)
    top = 9  # scipy uses it for z < sqrt(2.2), where maxk <= 8
    sums = [jnp.zeros_like(x) for _ in range(4)]
    for kk in range(top, 0, -1):  # Horner's scheme in q**8k, skipping k > maxk
        m = 2 * kk - 1
        coefficients = (
            jnp.ones_like(x),
            k1[0] + k1[1] * m**2,
            k2[0] + k2[1] * m**2 + k2[2] * m**4,
            k3[0] + k3[1] * m**2 + k3[2] * m**4 + k3[3] * m**6,
        )
        used = kk <= maxk
        qpower = q ** (8 * kk)
        sums = [jnp.where(used, s * qpower + c, s) for s, c in zip(sums, coefficients, strict=True)]
    root2pi = np.sqrt(2 * np.pi)
    sums = [s * q * root2pi for s in sums]
    sums = [sums[0] / z, sums[1] / (6 * z4), sums[2] / (72 * z**7), sums[3] / (6480 * z**10)]
    q = jnp.exp(-pi2 / 2 / z2)
    ks = jnp.arange(top, 0, -1, dtype=jnp.int32)
    squares = (ks * ks).astype(work)
    qpowers = jnp.where(ks[None, :] <= maxk[:, None], q[:, None] ** squares, 0.0)
    sums[2] = sums[2] + jnp.sum(squares * qpowers, axis=1) * (pi2 * root2pi / (-36 * z3))
    root3z = (np.sqrt(3) * z)[:, None]
    kpi = np.pi * ks.astype(work)
    extra = jnp.sum((root3z + kpi) * (root3z - kpi) * squares * qpowers, axis=1)
    sums[3] = sums[3] + extra * (pi2 * root2pi / (216 * z6))
    n_powers = np.power(n * 1.0, np.arange(4) / 2.0)
    total = sum(s / float(p) for s, p in zip(sums, n_powers, strict=True))
    return jnp.where(qlog < -708, 0.0, total)


def _log_factorial_over_power(n: int) -> float:
    """scipy's Stirling form of ``log(n! / n**n)``, in the same numpy operations."""
    coefficients = [
        -2.955065359477124183e-2, 6.4102564102564102564e-3, -1.9175269175269175269e-3,
        8.4175084175084175084e-4, -5.952380952380952381e-4, 7.9365079365079365079e-4,
        -2.7777777777777777778e-3, 8.3333333333333333333e-2,
    ]  # fmt: skip
    rn = 1.0 / n
    return float(np.log(n) / 2 - n + np.log(2 * np.pi) / 2 + rn * np.polyval(coefficients, rn / n))


def _kstwo_sf(x: jax.Array, n: int) -> jax.Array:
    """``scipy.stats.kstwo.sf(x, n)``: ``P(D_n >= x)``, D_n the one-sample two-sided statistic.

    scipy's choice of method by ``n`` and ``n x**2`` (Simard and L'Ecuyer, 2011): Ruben and
    Gambino's closed forms near ``1/n`` and near 1, twice the one-sided law where the
    two tails cannot both be crossed, Durbin's matrix for small ``n x**2`` (and, here, also
    where scipy uses Pomeranz's recursion, n <= 140, which computes the same probability),
    Pelz and Good's approximation for large ``n`` and moderate ``x``.
    """
    work = x.dtype
    if n < 1:  # scipy's kstwo needs n >= 1
        return jnp.full_like(x, jnp.nan)
    t = n * x
    nxx = t * x
    if n <= 140:
        factors = jnp.arange(1, n + 1, dtype=jnp.int32).astype(work) * (1.0 / n)
        near_low = jnp.prod(factors[None, :] * (2 * t - 1)[:, None], axis=1)
    else:
        near_low = jnp.exp(_log_factorial_over_power(n) + n * jnp.log(jnp.maximum(2 * t - 1, 0.5)))
    near_low = jnp.clip(1.0 - near_low, 0.0, 1.0)
    near_high = jnp.clip(2 * (1.0 - x) ** n, 0.0, 1.0)
    if n == 1:
        middle = twice_smirnov = near_low  # never used: t <= 1 or t >= n - 1 everywhere
    else:
        twice_smirnov = jnp.clip(2 * _smirnov(n, jnp.clip(x, 1.0 / n, 1.0 - 1.0 / n)), 0.0, 1.0)
        durbin = jnp.clip(1.0 - _durbin_cdf(n, x), 0.0, 1.0)
        if n <= 140:
            middle = jnp.where(nxx <= 4, durbin, twice_smirnov)
        else:
            pelz_good = jnp.clip(1.0 - _pelz_good_cdf(n, jnp.maximum(x, 1.0 / n)), 0.0, 1.0)
            lower = jnp.where(n * x**1.5 <= 1.4, durbin, pelz_good) if n <= 100_000 else pelz_good
            middle = jnp.where(nxx >= 370.0, 0.0, jnp.where(nxx >= 2.2, twice_smirnov, lower))
    sf = jnp.where(
        t <= 1,
        jnp.where(t <= 0.5, 1.0, near_low),
        jnp.where(t >= n - 1, near_high, jnp.where(x >= 0.5, twice_smirnov, middle)),
    )
    # rv_continuous.sf: 1 at and below the support's start 0.5/n, 0 from its end 1 on.
    sf = jnp.where(x <= 0.5 / n, 1.0, jnp.where(x >= 1.0, 0.0, sf))
    return jnp.where(jnp.isnan(x), jnp.nan, sf).astype(work)


@functools.partial(jax.jit, static_argnames=("n",))
def _two_sided_asymptotic(d: jax.Array, n: int) -> jax.Array:
    """The two-sided asymptotic p-value, ``kstwo.sf(d, round(en))`` (jitted on its own: the
    exact method of two samples of one size falls back to it only where it must)."""
    return jnp.clip(jnp.reshape(_kstwo_sf(jnp.ravel(d), n), d.shape), 0.0, 1.0)


def _equal_size_fallback(n1: int) -> int:
    """The ``round(en)`` of two samples of size ``n1`` (numpy's round half to even)."""
    return int(np.round(_en(n1, n1)[2]))


# --- the jitted core and the public function ---------------------------------------------


@functools.partial(checked_jit, static_argnames=("alternative", "mode", "axis", "inline_fallback"))
def _ks_2samp(
    data1, data2, alternative, mode, axis, inline_fallback
) -> tuple[KstestResult, jax.Array, jax.Array]:
    """ks_2samp on non-empty samples, NaN propagating, p-values by ``mode``: the result,
    and per test whether the exact method failed and needs the asymptotic p-value (patched
    by the caller unless ``inline_fallback``), with the statistic in the working precision."""
    padded1, padded2, axis, out, _ = _ks_layout(data1.shape, data2.shape, axis, "ks_2samp")
    first = _as_columns(data1, padded1, axis, out)
    second = _as_columns(data2, padded2, axis, out)
    n1, n2 = first.shape[0], second.shape[0]
    work = _work_dtype()
    extremes = _ks_extremes(first, second, alternative, work)
    h, lcm = extremes["h"], extremes["lcm"]
    failed = jnp.zeros(first.shape[1], bool)
    if mode == "exact":
        if work == np.float64:
            statistic = _divide(h.astype(work), lcm)  # scipy's h * 1.0 / lcm
        else:
            statistic = h.astype(work) / float(lcm)
        hh = jnp.maximum(h, 1).astype(jnp.int32 if lcm < 2**31 else h.dtype)
        if alternative == "two-sided" and n1 == n2:
            pvalue = _outside_square(n1, hh, work)
            failed = (h > 0) & ~((pvalue >= 0) & (pvalue <= 1))
            if inline_fallback:
                asymptotic = _kstwo_sf(statistic, _equal_size_fallback(n1))
                pvalue = jnp.where(failed, asymptotic, pvalue)
                failed = jnp.zeros_like(failed)
        elif alternative == "two-sided":
            pvalue = _lattice(n1, n2, hh, True, work)
        elif n1 == n2:
            pvalue = _one_sided_square(n1, hh, work)
        elif math.comb(n1 + n2, n1) > _DOUBLE_MAX:
            # scipy's path count overflows float64: it warns and switches to asymp.
            failed = h > 0
            pvalue = _one_sided_asymptotic(n1, n2, statistic)
        else:
            pvalue = _lattice(n1, n2, hh, False, work)
        pvalue = jnp.where(h == 0, 1.0, pvalue)
    else:
        statistic = extremes["statistic"]
        if alternative == "two-sided":
            pvalue = _kstwo_sf(statistic, int(np.round(_en(n1, n2)[2])))
        else:
            pvalue = _one_sided_asymptotic(n1, n2, statistic)
    pvalue = jnp.clip(pvalue, 0.0, 1.0)
    nan = _nan_columns(first, second)
    dtype = first.dtype

    def finish(value):
        return jnp.reshape(jnp.where(nan, jnp.nan, value.astype(dtype)), out)

    result = KstestResult(
        finish(statistic), finish(pvalue), finish(extremes["location"]), finish(extremes["sign"])
    )
    return result, jnp.reshape(failed & ~nan, out), jnp.reshape(statistic, out)


def _nan_result(shape: tuple, dtype) -> KstestResult:
    nan = jnp.full(shape, jnp.nan, dtype)
    return KstestResult(nan, nan, nan, nan)


def _find_nan(sample: jax.Array) -> tuple | None:
    values = np.asarray(sample)
    if not np.issubdtype(values.dtype, np.floating):
        return None
    nan = np.isnan(values)
    return tuple(int(i) for i in np.argwhere(nan)[0]) if nan.any() else None


def _checked_ks_2samp(first, second, alternative, method, axis, keepdims, traced):
    """Run the core on non-empty, NaN-free-or-propagating samples, and do scipy's warnings:
    the static switch to asymp, and the exact method's failures (patched here, not in the
    program, so that the asymptotic law is only compiled where it is needed)."""
    padded1, padded2, axis_, _, kept = _ks_layout(first.shape, second.shape, axis, "ks_2samp")
    n1, n2 = padded1[axis_], padded2[axis_]
    mode, warning = _ks_mode(n1, n2, method)  # 'auto' shares the program it picks
    if warning:
        warnings.warn(warning, RuntimeWarning, stacklevel=3)
    # The axis as a non-negative int, and keepdims as a reshape: fewer programs to compile.
    result, failed, statistic = _ks_2samp(
        first, second, alternative, mode, None if axis is None else axis_, traced
    )
    if not traced and bool(np.asarray(failed).any()):
        warnings.warn(_EXACT_FAILED, RuntimeWarning, stacklevel=3)
        if alternative == "two-sided":  # (one-sided: already the asymptotic p-value)
            asymptotic = _two_sided_asymptotic(statistic, _equal_size_fallback(n1))
            pvalue = jnp.where(failed, asymptotic.astype(result.pvalue.dtype), result.pvalue)
            result = KstestResult(result.statistic, pvalue, *result.__getnewargs__()[2:])
    if keepdims:
        result = KstestResult(*(jnp.reshape(value, kept) for value in result.__getnewargs__()))
    return result


def ks_2samp(
    data1: jax.Array,
    data2: jax.Array,
    alternative: KsAlternative = "two-sided",
    method: KsMethod = "auto",
    *,
    axis: int | None = 0,
    nan_policy: NanPolicy = "propagate",
    keepdims: bool = False,
) -> KstestResult:
    """Two-sample Kolmogorov-Smirnov test: the statistic, its p-value, where and which way.

    A drop-in for ``scipy.stats.ks_2samp`` (same parameters, same results; the differences
    are listed below). The null hypothesis is that both samples come from one continuous
    distribution; ``alternative`` is ``"two-sided"`` (the CDFs differ; the statistic is the
    largest ``|F1 - F2|``), ``"less"`` (``F1 < F2`` somewhere; the largest ``F2 - F1``) or
    ``"greater"`` (``F1 > F2`` somewhere; the largest ``F1 - F2``), where ``F1`` and ``F2``
    are the empirical CDFs of ``data1`` and ``data2`` (ties counted as scipy does).

    ``method`` picks the p-value: ``"exact"``, the exact null distribution (by lattice-path
    recursions, in the jitted program); ``"asymp"``, the asymptotic one (two-sided:
    ``kstwo.sf(d, round(n1 n2 / (n1 + n2)))``; one-sided: Hodges' approximation);
    ``"auto"``, exact when both samples have at most 10000 values. Where scipy's exact
    computation is not possible or fails, this switches to the asymptotic p-value with
    scipy's ``RuntimeWarning``: ``method="exact"`` with ``lcm(n1, n2)`` past int32
    (statically, for every call), one-sided tests of samples whose ``binom(n1 + n2, n1)``
    overflows float64, and the equal-size two-sided recursion rounding just above 1 (where
    the p-value is close to 1).

    ``axis`` is the axis of the observations (``None``: all values of each sample); the
    other axes broadcast as scipy broadcasts them (numpy's rules after padding both shapes
    to one rank), giving one test per element of the result. ``nan_policy``:
    ``"propagate"`` makes a test with a NaN NaN (all four results), ``"omit"`` drops the NaNs
    of each test's samples, ``"raise"`` raises :class:`~liam_core.InvalidValueError` naming
    the sample. An empty sample gives NaN results with scipy's warning (a
    ``RuntimeWarning`` whose text starts ``"ks_2samp: "``), as does a sample left empty by
    ``"omit"``; a 0-d sample is one observation. As scipy's, the asymptotic two-sided
    p-value of two samples of one value each is NaN (``round(1 * 1 / 2)`` is 0).

    The statistic is a jitted JAX computation, and so are the p-values (one program per
    shape and setting; a call with new values at the same shapes compiles nothing).
    ``ks_2samp`` works inside ``jax.jit`` too, except for ``nan_policy="omit"`` and
    ``"raise"``, which read the values (there its warnings cannot be given; the fallbacks
    still happen).

    Differences from scipy, deliberate:

    - Results have the samples' float dtype (float32 without x64), as every drift statistic
      here; scipy's are float64. The computations run in float64 when x64 is enabled, else
      in float32, so without x64 p-values carry float32's ~1e-7 relative rounding, amplified
      by the length of the recursions (and underflow below ~1e-38). ``statistic_sign`` is a
      float (+1.0 or -1.0, NaN for a NaN test), as scipy's N-D results are (its 1-D result
      is an ``np.int8``); ``statistic_location`` has the result dtype.
    - With x64 the statistic, its location and sign are scipy's bits; the p-values agree to
      about 1e-12 relative (the exact recursions round differently from scipy's, up to
      ~1e-11 where scipy's own Pomeranz or binomial-coefficient sums carry that error, and
      p-values below ~1e-308 flush to 0). Without x64, ties of the exact CDF gap at several
      observations resolve to the first of them in scipy's order (``data1``'s sorted values,
      then ``data2``'s), where scipy's float64 rounding may pick another one.
    - ``alternative`` must be one of the three names (scipy also takes anything starting
      with ``t``, ``g`` or ``l``); settings raise :class:`~liam_core.ConfigError`.
    - ``nan_policy="omit"`` compiles the test once per distinct pair of sample lengths left
      after dropping the NaNs (scipy loops over the slices in Python).
    - Without x64, ``method="exact"`` also switches to asymp (with scipy's "not possible"
      warning) when ``lcm(n1, n2)`` is past int32, where scipy's limit is
      ``n1 n2 / gcd**2``: the exact band arithmetic would need int64.

    Args:
        data1: first sample, any shape; its ``axis`` holds the observations.
        data2: second sample; its length along ``axis`` may differ from ``data1``'s.
        alternative: ``"two-sided"``, ``"less"`` or ``"greater"``.
        method: ``"auto"``, ``"exact"`` or ``"asymp"``.
        axis: the axis of the observations (negative counts from the end), or ``None``.
        nan_policy: ``"propagate"``, ``"omit"`` or ``"raise"``.
        keepdims: keep the tested axis in the results, with length 1.

    Returns:
        A :class:`KstestResult`: ``(statistic, pvalue)`` with ``statistic_location`` and
        ``statistic_sign``, each of the broadcast shape without ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import ks_2samp
        >>> result = ks_2samp(jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([3.0, 4.0, 5.0, 6.0]))
        >>> float(result.statistic), round(float(result.pvalue), 4)
        (0.5, 0.7714)
        >>> float(result.statistic_location), float(result.statistic_sign)
        (2.0, 1.0)
        >>> statistic, pvalue = ks_2samp(jnp.arange(20.0), jnp.arange(20.0) + 5, "greater")
        >>> float(statistic), round(float(pvalue), 4)
        (0.25, 0.2918)

    Oracle: ``scipy.stats.ks_2samp(data1, data2, alternative, method, axis=axis,
    nan_policy=nan_policy, keepdims=keepdims)``.
    """
    owner = "ks_2samp"
    check_choice(alternative, "alternative", KsAlternative, owner=owner)
    check_choice(method, "method", KsMethod, owner=owner)
    check_choice(nan_policy, "nan_policy", NanPolicy, owner=owner)
    check_bool(keepdims, "keepdims", owner=owner)
    if axis is not None:
        check_int(axis, "axis", minimum=None, owner=owner)
    first, second = _promoted_samples(data1, data2, owner, ("data1", "data2"))
    padded1, padded2, axis_, out, kept = _ks_layout(first.shape, second.shape, axis, owner)
    shape = kept if keepdims else out
    one_dimensional = axis is None or max(first.ndim, second.ndim) <= 1
    if padded1[axis_] == 0 or padded2[axis_] == 0:
        if math.prod(out):
            message = _TOO_SMALL_1D if one_dimensional else _TOO_SMALL_ND
            warnings.warn(f"{owner}: {message}", RuntimeWarning, stacklevel=2)
        return _nan_result(shape, first.dtype)
    if not math.prod(out):  # nothing to test: empty results
        return _nan_result(shape, first.dtype)
    traced = isinstance(first, jax.core.Tracer) or isinstance(second, jax.core.Tracer)
    if nan_policy != "propagate" and traced:
        raise ConfigError(
            f"{owner}: `nan_policy` must be 'propagate' on traced samples (inside jax.jit), "
            f"got {quote(nan_policy)}, which reads the values"
        )
    if nan_policy == "raise":
        for name, sample, raw in (("data1", first, data1), ("data2", second, data2)):
            where = _find_nan(raw if isinstance(raw, np.ndarray) else sample)
            if where is not None:
                raise InvalidValueError(
                    f"{owner}: `{name}` must hold no NaN with nan_policy='raise', got nan at "
                    f"index {where}"
                )
    if nan_policy == "omit" and (_find_nan(first) is not None or _find_nan(second) is not None):
        return _ks_2samp_omitting_nan(
            first, second, alternative, method, axis, keepdims, one_dimensional
        )
    return _checked_ks_2samp(first, second, alternative, method, axis, keepdims, traced)


def _ks_2samp_omitting_nan(first, second, alternative, method, axis, keepdims, one_dimensional):
    """``nan_policy="omit"``: each test on its samples without their NaNs, on the host.

    The tests whose samples keep the same lengths run together, one compiled program per
    pair of lengths.
    """
    padded1, padded2, axis_, out, kept = _ks_layout(first.shape, second.shape, axis, "ks_2samp")
    columns1 = _as_columns(np.asarray(first), padded1, axis_, out, np)
    columns2 = _as_columns(np.asarray(second), padded2, axis_, out, np)
    keep1, keep2 = ~np.isnan(columns1), ~np.isnan(columns2)
    lengths = list(zip(keep1.sum(axis=0).tolist(), keep2.sum(axis=0).tolist(), strict=True))
    dtype = columns1.dtype
    fields = [np.full(len(lengths), np.nan, dtype) for _ in range(4)]
    for pair in sorted(set(lengths)):
        tests = [c for c, length in enumerate(lengths) if length == pair]
        if 0 in pair:
            message = _TOO_SMALL_1D_OMIT if one_dimensional else _TOO_SMALL_ND_OMIT
            warnings.warn(f"ks_2samp: {message}", RuntimeWarning, stacklevel=3)
            continue
        a = np.stack([columns1[keep1[:, c], c] for c in tests], axis=1)
        b = np.stack([columns2[keep2[:, c], c] for c in tests], axis=1)
        result = _checked_ks_2samp(
            jnp.asarray(a), jnp.asarray(b), alternative, method, 0, False, False
        )
        for field, values in zip(fields, result.__getnewargs__(), strict=True):
            field[tests] = np.asarray(values)
    shape = kept if keepdims else out
    return KstestResult(*(jnp.asarray(field.reshape(shape)) for field in fields))


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
    _, weights = sort_by_key(values, weights, axis=0)
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
    ordered = sort(reference, axis=0)
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
