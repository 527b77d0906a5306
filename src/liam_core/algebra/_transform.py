"""``Transform``: a stateful array operation as a pair of pure functions, and its combinators.

The shape follows optax's ``GradientTransformation``: ``init(x) -> state`` fits the
transform on a reference window, ``apply(state, x) -> y`` applies it to any data of the
same width. Combinators take transforms and return a transform, so pipelines compose
(``chain``, ``>>``) and a chained ``apply`` traces into one XLA program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from .._checks import quote
from .._errors import ConfigError, ConfigTypeError, InvalidTypeError
from ._jit import checked_jit

State = Any
InitFn = Callable[[jax.Array], State]
ApplyFn = Callable[[State, jax.Array], jax.Array]


class Transform(NamedTuple):
    """A pair of pure functions: ``init(x) -> state`` and ``apply(state, x) -> y``.

    Both functions are jitted; composing transforms with ``>>`` or :func:`chain`
    gives a transform whose ``apply`` compiles to a single XLA program.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import transforms
        >>> pipeline = transforms.standardize() >> transforms.rolling_mean(window=2)
        >>> reference = jnp.arange(8.0).reshape(4, 2)
        >>> state = pipeline.init(reference)          # fitted on the reference window
        >>> pipeline.apply(state, reference).shape    # ...applies to any data of that width
        (3, 2)
    """

    init: InitFn
    apply: ApplyFn

    def __rshift__(self, other: Transform) -> Transform:
        """``a >> b`` is ``chain(a, b)``: apply ``a`` first, then ``b``."""
        if not isinstance(other, Transform):
            return NotImplemented
        return chain(self, other)

    def fit_apply(self, x: jax.Array) -> tuple[State, jax.Array]:
        """Fit on ``x`` and apply to ``x``: ``(state, apply(state, x))``."""
        state = self.init(x)
        return state, self.apply(state, x)


def stateless(fn: Callable[[jax.Array], jax.Array]) -> Transform:
    """Lift a pure function ``fn(x) -> y`` to a transform with an empty state.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import stateless
        >>> double = stateless(lambda x: 2 * x)
        >>> double.apply(double.init(jnp.ones(2)), jnp.ones(2)).tolist()
        [2.0, 2.0]
    """
    if not callable(fn):
        raise ConfigTypeError(
            f"stateless: `fn` must be callable, got {type(fn).__name__}: {quote(fn)}"
        )

    def init(x: jax.Array) -> tuple[()]:
        del x
        return ()

    def apply(state: tuple[()], x: jax.Array) -> jax.Array:
        del state
        try:
            return fn(x)
        except jax.errors.TracerArrayConversionError:
            raise InvalidTypeError(
                f"stateless: `fn` must be a function JAX can trace (jnp.abs, not np.abs), got "
                f"{quote(fn)}, which converts its traced input to a numpy array"
            ) from None

    return Transform(checked_jit(init), checked_jit(apply))


def identity() -> Transform:
    """The neutral transform: ``identity() >> t`` and ``t >> identity()`` behave as ``t``."""
    return stateless(lambda x: x)


def chain(*transforms: Transform) -> Transform:
    """Compose transforms left to right into one transform.

    ``init`` fits each stage on the output of the stages before it and returns the tuple
    of their states; ``apply`` runs the stages in order. Both are jitted as a whole, so a
    chained ``apply`` is one XLA program.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core.algebra import chain, identity, stateless
        >>> pipeline = chain(stateless(jnp.abs), identity(), stateless(jnp.sqrt))
        >>> pipeline.apply(pipeline.init(jnp.ones(1)), jnp.array([-4.0, 9.0])).tolist()
        [2.0, 3.0]
    """
    for position, transform in enumerate(transforms):
        if not isinstance(transform, Transform):
            raise ConfigTypeError(
                f"chain: argument {position} must be a Transform (build one with "
                "liam_core.algebra.transforms or stateless(fn)), got "
                f"{type(transform).__name__}: {quote(transform)}"
            )
    if not transforms:
        return identity()
    if len(transforms) == 1:
        return transforms[0]

    def init(x: jax.Array) -> tuple[State, ...]:
        states = []
        for transform in transforms:
            state = transform.init(x)
            x = transform.apply(state, x)
            states.append(state)
        return tuple(states)

    def apply(states: tuple[State, ...], x: jax.Array) -> jax.Array:
        if not isinstance(states, tuple) or len(states) != len(transforms):
            got = type(states).__name__
            if isinstance(states, tuple):
                got += f" of {len(states)}"
            raise ConfigError(
                f"chain: `states` must be the tuple of {len(transforms)} states its init() "
                f"returned, got {got}"
            )
        for transform, state in zip(transforms, states, strict=True):
            x = transform.apply(state, x)
        return x

    return Transform(checked_jit(init), checked_jit(apply))
