"""Kernels that run through numpy on the CPU backend, where XLA CPU is measured slow, and
through XLA on every other platform.

XLA CPU loses most on a few shapes of work (measured on a 2-core Xeon): its sort calls a comparator per comparison (40x numpy's), and
its tall-skinny contraction ``x.T @ x`` of ``[1e6, 64]`` runs at a quarter of its own square
matmul peak. :func:`numpy_on_cpu` lets a kernel supply a numpy version for the CPU backend
(run by a host callback) beside its XLA version for the rest, selected by
``lax.platform_dependent`` at lowering, so one traced program serves every platform.

The callback is ``jax.experimental.buffer_callback``: it reads XLA's input buffers in place
and writes the results into XLA's output buffers. ``jax.pure_callback`` copied every operand
(measured: 124 ms to hand a ``[1e6, 64]`` float32 array to a callback that does nothing), and
under ``jax.enable_x64`` cast float64 to float32 on XLA's threads, where x64 is off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax import lax
from jax.experimental.buffer_callback import buffer_callback


def numpy_on_cpu(
    host_fn: Callable[..., None],
    device_fn: Callable[..., tuple[jax.Array, ...]],
    results: Sequence[jax.ShapeDtypeStruct],
    *arrays: jax.Array,
) -> tuple[jax.Array, ...]:
    """``device_fn(*arrays)`` on GPU and TPU, a tuple of arrays of the shapes and dtypes in
    ``results``; on CPU, ``host_fn(outputs, *arrays)`` with numpy views of XLA's buffers,
    which writes those results into the list of writable ``outputs``.

    Works under ``jit`` and ``vmap``: under ``vmap`` ``host_fn`` sees the batch axes in front
    of every array and returns them in front of every result. A callback is neither
    differentiable nor exportable; give the caller a ``custom_jvp`` where gradients matter.

    Example:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> spec = jax.ShapeDtypeStruct((3,), jnp.float32)
        >>> def host_cumsum(outputs, a):
        ...     np.cumsum(a, out=outputs[0])
        >>> numpy_on_cpu(host_cumsum, lambda a: (jnp.cumsum(a),), [spec], jnp.ones(3))[0].tolist()
        [1.0, 2.0, 3.0]
    """

    def write_results(context: Any, outputs: list[Any], *inputs: Any) -> None:
        del context  # the GPU stream; the callback runs on CPU only
        host_fn([np.asarray(o) for o in outputs], *(np.asarray(a) for a in inputs))

    def on_host(*arrays: jax.Array) -> tuple[jax.Array, ...]:
        call = buffer_callback(write_results, list(results), vmap_method="broadcast_all")
        return tuple(call(*arrays))

    def on_device(*arrays: jax.Array) -> tuple[jax.Array, ...]:
        return tuple(device_fn(*arrays))

    return tuple(lax.platform_dependent(*arrays, cpu=on_host, default=on_device))
