"""``LaborArray``: spread row-wise work over devices with results that do not depend on them.

A ``LaborArray`` holds a topology (devices or a mesh, an executor, a chunk size). Its
primitives cut a batch with the :class:`~liam_core.alda.Plan`, compute every chunk with the
same single-device program, reduce each device's block of chunks as a subtree of the canonical
pairwise tree, gather one partial per device and finish the tree on one device. The same input
and chunk size give the same bytes on 1, 2, 4 or 8 devices, under ``pmap`` or ``shard_map``,
in one process or several.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from .._checks import check_bool, check_callable, check_fits_in_memory, check_int, quote
from .._errors import (
    ConfigError,
    ConfigTypeError,
    DistributedError,
    InvalidTypeError,
    ShapeError,
)
from ..mesh import Devices, Executor, MeshSpec, build_mesh
from ..mesh._topology import check_data_axes, check_executor
from . import _kernels as kernels
from ._executors import StageRunner, Topology, tree_then
from ._plan import DEFAULT_CHUNK_SIZE, Plan, plan_chunks

MAX_IN_FLIGHT_LIMIT = 32
"""Queuing more than about 32 collective dispatches without blocking deadlocked XLA."""


@dataclasses.dataclass(frozen=True)
class SchedulerSpec:
    """ALDA's scheduler settings (the form of ``conf/alda/*.yaml``): how rows are cut and queued.

    They belong to the scheduler, not to the mesh: the chunk size fixes the bits, whatever
    the topology a :class:`~liam_core.mesh.MeshSpec` describes.

    Args:
        chunk_size: rows per chunk. The default 256 was measured to keep its bits when XLA's
            CPU thread count changes; dots over 1024 rows or more did not.
        max_in_flight: at most this many dispatched collective programs run un-awaited
            (1..32); queuing more than about 32 collectives without blocking deadlocks XLA.

    Example:
        >>> from liam_core.alda import LaborArray, SchedulerSpec
        >>> scheduler = SchedulerSpec(chunk_size=128)
        >>> LaborArray(2, **scheduler.options()).chunk_size
        128
    """

    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_in_flight: int = 16

    def __post_init__(self) -> None:
        check_int(self.chunk_size, "alda.chunk_size")
        check_int(self.max_in_flight, "alda.max_in_flight", maximum=MAX_IN_FLIGHT_LIMIT)

    def options(self) -> dict[str, int]:
        """The settings as keyword arguments of :class:`LaborArray`."""
        return dataclasses.asdict(self)


ReadRows = Callable[[int, int], Any]
_INT32_LIMIT = 2**31


@dataclasses.dataclass(frozen=True)
class ChunkedBatch:
    """A batch already cut by a :class:`Plan` and placed on a :class:`LaborArray`'s devices.

    Build it with :meth:`LaborArray.put` or :meth:`LaborArray.load`; pass it to any primitive
    to skip the host-side padding and transfer.

    Attributes:
        plan: the plan the rows were cut with.
        data: pytree of global arrays of shape ``[n_blocks, chunks_per_block, chunk_size, ...]``,
            block ``b`` on the device(s) of block ``b``.
        topology: the identity of the topology it was placed on.
        shards: each local device's block (views of ``data``).
        geometry: each local device's ``int32[2]`` ``(block index, n_rows)``.
    """

    plan: Plan
    data: Any
    topology: Hashable
    shards: dict[jax.Device, Any] = dataclasses.field(repr=False, compare=False)
    geometry: dict[jax.Device, jax.Array] = dataclasses.field(repr=False, compare=False)

    @property
    def n_rows(self) -> int:
        """Number of real rows."""
        return self.plan.n_rows


def _is_array(leaf: object) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


def _is_inexact_array(leaf: object) -> bool:
    return _is_array(leaf) and np.issubdtype(np.dtype(leaf.dtype), np.inexact)


class LaborArray:
    """Spread row-wise work over devices so that results are the same bytes on any topology.

    Every primitive cuts its batch into chunks of ``chunk_size`` rows (the :class:`Plan`) and
    gives each device a contiguous block of chunks in device (mesh) order. Each device runs
    the same single-device program over its block, one chunk per loop iteration, so every
    chunk is computed by the kernel's compiled form for one chunk; reductions add the chunk
    partials in one canonical order, a pairwise tree over the chunk index
    (:func:`reduce_tree`): a device reduces its block as a whole subtree, the executor
    (``pmap`` or ``shard_map``) gathers one partial per device, and the top of the tree is
    finished on the home device (this process's first device), where results are returned.
    Nothing but the assignment of chunks to devices depends on the device count, so the
    results do not either.

    Args:
        mesh: a :class:`jax.sharding.Mesh`, or a :class:`~liam_core.mesh.MeshSpec` (built
            over every device of its platform; it also names the executor and data axis).
            As a shortcut for a 1-D mesh: ``None`` (every device), an int ``k`` (the first
            ``k`` devices) or a sequence of devices, as :func:`liam_core.mesh.build_mesh`
            lays them out.
        executor: ``"pmap"`` or ``"shard_map"``; default ``"pmap"`` for the shortcut forms,
            ``"shard_map"`` for a Mesh, and the spec's own for a MeshSpec. Both run the same
            plan and give the same bits.
        chunk_size: rows per chunk, a positive int. The default 256 was measured to keep its
            bits when XLA's CPU thread count changes; dots over 1024 rows or more did not.
        data_axis: the mesh axis (or tuple of axes, in mesh order) the rows are spread over;
            other mesh axes hold replicas that compute the same blocks. For the shortcut
            forms it names the single axis; a MeshSpec names its own.
        fast: ``False`` (default) for the deterministic path. ``True`` runs each device's
            whole block through the kernel at once inside one ``pmap``/``shard_map`` program
            and adds devices with a plain ``psum``: faster, but it gives up the guarantee:
            the bits then change with the device count, the executor, XLA's thread count and
            the summation order XLA picks. It exists for comparison only.
        max_in_flight: at most this many dispatched collective programs run un-awaited
            (1..32); queuing more than about 32 collectives without blocking deadlocks XLA.

    The examples assume 8 devices; on CPU, simulate them before any computation with
    ``jax.config.update("jax_num_cpu_devices", 8)``.

    Example:
        >>> import numpy as np
        >>> from liam_core import digest
        >>> from liam_core.alda import LaborArray
        >>> x = np.random.default_rng(0).standard_normal((1000, 3)).astype(np.float32)
        >>> len({digest(LaborArray(n).sum(x)) for n in (1, 2, 4, 8)})  # one result
        1
        >>> LaborArray(4).plan(1000).assignment().tolist()   # chunk -> device block
        [0, 1, 2, 3]
    """

    def __init__(
        self,
        mesh: Mesh | MeshSpec | Devices = None,
        *,
        executor: Executor | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        data_axis: str | tuple[str, ...] = "data",
        fast: bool = False,
        max_in_flight: int = 16,
    ) -> None:
        self._chunk_size = check_int(chunk_size, "chunk_size", owner="LaborArray")
        self._max_in_flight = check_int(
            max_in_flight, "max_in_flight", maximum=MAX_IN_FLIGHT_LIMIT, owner="LaborArray"
        )
        self._fast = check_bool(fast, "fast", owner="LaborArray")
        mesh, executor, data_axes = _placement(mesh, executor, data_axis)
        self._topology = Topology.from_mesh(mesh, data_axes)
        self._executor = StageRunner(self._topology, executor)
        self._in_flight: collections.deque[jax.Array] = collections.deque()

    # ----------------------------------------------------------------- properties

    @property
    def chunk_size(self) -> int:
        """Rows per chunk."""
        return self._chunk_size

    @property
    def executor(self) -> str:
        """``"pmap"`` or ``"shard_map"``."""
        return self._executor.kind

    @property
    def topology(self) -> Topology:
        """The mesh, data axes, device blocks and home device."""
        return self._topology

    @property
    def mesh(self) -> Mesh:
        """The device mesh (a 1-D mesh named after ``data_axis`` for a device list)."""
        return self._topology.mesh

    @property
    def n_blocks(self) -> int:
        """Number of device blocks rows are spread over (devices along the data axes)."""
        return self._topology.n_blocks

    @property
    def fast(self) -> bool:
        """Whether this instance trades determinism for speed (see the class docstring)."""
        return self._fast

    @property
    def in_flight(self) -> int:
        """Dispatched programs not yet known to be finished; never more than ``max_in_flight``."""
        while self._in_flight and self._in_flight[0].is_ready():
            self._in_flight.popleft()
        return len(self._in_flight)

    @property
    def compile_count(self) -> int:
        """How many XLA executables this instance has compiled so far.

        The chunk program is compiled once per kernel and shape bucket (on CPU the other devices
        load the same executable; on other platforms each device compiles it); the gather and
        finish programs once per kernel and bucket. A stream of batches of varying size stops
        adding to this count once its buckets are warm.
        """
        return self._executor.compile_count

    def __repr__(self) -> str:
        return (
            f"LaborArray(mesh={dict(self.mesh.shape)}, data_axis={self._topology.data_axes}, "
            f"executor={self.executor!r}, chunk_size={self._chunk_size}, fast={self._fast})"
        )

    def plan(self, n_rows: int) -> Plan:
        """The :class:`Plan` this instance uses for a batch of ``n_rows`` rows.

        Example:
            >>> from liam_core.alda import LaborArray
            >>> LaborArray(2, chunk_size=256).plan(600).assignment().tolist()
            [0, 0, 1]
        """
        return plan_chunks(n_rows, chunk_size=self._chunk_size, n_blocks=self.n_blocks)

    # ----------------------------------------------------------------- placement

    def put(self, x: Any) -> ChunkedBatch:
        """Cut a batch held in memory into chunks and place it on the devices.

        Args:
            x: an array or a pytree of arrays sharing a leading row axis of length ``>= 1``.

        Returns:
            A :class:`ChunkedBatch` that any primitive accepts.

        Example:
            >>> import numpy as np
            >>> from liam_core.alda import LaborArray
            >>> batch = LaborArray(2).put(np.ones((300, 4), np.float32))
            >>> batch.plan.n_chunks, batch.data.shape
            (2, (2, 1, 256, 4))
        """
        if isinstance(x, ChunkedBatch):
            return self._check_batch(x)
        leaves, treedef = jax.tree_util.tree_flatten(x)
        if not leaves:
            raise ShapeError("the batch is an empty pytree; expected arrays with a row axis")
        host = [np.asarray(leaf) for leaf in leaves]
        lengths = {leaf.shape[0] if leaf.ndim else None for leaf in host}
        if None in lengths or len(lengths) != 1:
            shapes = [leaf.shape for leaf in host]
            raise ShapeError(
                f"every array of the batch needs the same leading row axis; got shapes {shapes}"
            )
        n_rows = lengths.pop()

        def read_rows(start: int, stop: int) -> Any:
            return jax.tree_util.tree_unflatten(treedef, [leaf[start:stop] for leaf in host])

        return self.load(n_rows, read_rows)

    def load(self, n_rows: int, read_rows: ReadRows) -> ChunkedBatch:
        """Place a batch of ``n_rows`` rows, reading only the rows this process's devices run.

        In a multi-process run each process calls ``load`` with the same ``n_rows``; its
        ``read_rows(start, stop)`` is called only for the row ranges of its own devices (like
        Grain's ``ShardByJaxProcess``), possibly with ``start == stop``.

        Args:
            n_rows: global number of rows, at least 1.
            read_rows: ``read_rows(start, stop)`` returns an array (or pytree of arrays) of
                rows ``start:stop`` of the global batch.

        Returns:
            A :class:`ChunkedBatch`.

        Example:
            >>> import numpy as np
            >>> from liam_core.alda import LaborArray
            >>> data = np.arange(10.0, dtype=np.float32)[:, None]
            >>> labor = LaborArray(2, chunk_size=4)
            >>> seen = []
            >>> batch = labor.load(10, lambda a, b: seen.append((a, b)) or data[a:b])
            >>> seen, float(labor.sum(batch)[0])
            ([(0, 8), (8, 10)], 45.0)
        """
        _check_callable(read_rows, "read_rows")
        plan = self.plan(n_rows)
        if plan.padded_rows >= _INT32_LIMIT:
            raise ConfigError(
                f"LaborArray: `chunk_size` must pad a batch of {n_rows} rows on {self.n_blocks} "
                f"device block(s) to fewer than {_INT32_LIMIT} rows (row indices are int32), got "
                f"{self._chunk_size}, which pads it to {plan.padded_rows} rows: use a smaller "
                "chunk_size, or split the batch into several (run_stream)"
            )
        rows_per_block = plan.chunks_per_block * plan.chunk_size
        index_map = self._topology.block_sharding.addressable_devices_indices_map(
            (plan.n_blocks, plan.chunks_per_block, plan.chunk_size)
        )
        blocks = sorted({index[0].start or 0 for index in index_map.values()})
        host_blocks: dict[int, list[np.ndarray]] = {}
        treedef = None
        for block in blocks:
            start, stop = plan.block_rows(block)
            leaves, block_treedef = jax.tree_util.tree_flatten(read_rows(start, stop))
            if treedef is None:
                treedef = block_treedef
            elif block_treedef != treedef:
                raise ShapeError(
                    f"read_rows returned {block_treedef} for block {block}, but {treedef} before"
                )
            padded = []
            leaves = [np.asarray(leaf) for leaf in leaves]
            for leaf in leaves:
                if leaf.ndim == 0 or leaf.shape[0] != stop - start:
                    raise ShapeError(
                        f"read_rows({start}, {stop}) must return {stop - start} rows, "
                        f"got an array of shape {leaf.shape}"
                    )
                if leaf.dtype.kind not in "biufc":
                    raise InvalidTypeError(
                        f"LaborArray: the batch must hold arrays of numbers (bool, int, float or "
                        f"complex), got dtype {leaf.dtype}"
                    )
            row_bytes = sum(leaf.dtype.itemsize * math.prod(leaf.shape[1:]) for leaf in leaves)
            check_fits_in_memory(
                len(blocks) * rows_per_block * row_bytes, "chunk_size",
                f"the padded batch ({len(blocks)} block(s) x {rows_per_block} rows x "
                f"{row_bytes} bytes per row)", owner="LaborArray",
            )  # fmt: skip
            for leaf in leaves:
                out = np.zeros((rows_per_block, *leaf.shape[1:]), leaf.dtype)
                out[: stop - start] = leaf
                padded.append(
                    out.reshape(1, plan.chunks_per_block, plan.chunk_size, *leaf.shape[1:])
                )
            host_blocks[block] = padded
        if treedef is None:
            raise ShapeError("read_rows returned nothing to place")
        first = host_blocks[blocks[0]]
        arrays = []
        for position, template in enumerate(first):
            for block in blocks:
                other = host_blocks[block][position]
                if other.shape != template.shape or other.dtype != template.dtype:
                    raise ShapeError(
                        f"read_rows gave blocks of different shapes or dtypes: "
                        f"{template.dtype}{list(template.shape[3:])} and "
                        f"{other.dtype}{list(other.shape[3:])}"
                    )
            global_shape = (plan.n_blocks, *template.shape[1:])
            arrays.append(
                jax.make_array_from_callback(
                    global_shape,
                    self._topology.block_sharding,
                    lambda index, position=position: host_blocks[index[0].start or 0][position],
                )
            )
        data = jax.tree_util.tree_unflatten(treedef, arrays)
        shards, geometry = self._executor.local_inputs(data, plan.n_rows)
        return ChunkedBatch(
            plan=plan, data=data, topology=self._topology.key, shards=shards, geometry=geometry
        )

    def _check_batch(self, batch: ChunkedBatch) -> ChunkedBatch:
        if batch.topology != self._topology.key or batch.plan.chunk_size != self._chunk_size:
            raise ConfigError(
                "this ChunkedBatch was placed by a LaborArray with another topology or "
                "chunk_size; place it with this instance's put() or load()"
            )
        return batch

    def _as_batch(self, x: Any) -> ChunkedBatch:
        return self._check_batch(x) if isinstance(x, ChunkedBatch) else self.put(x)

    # ----------------------------------------------------------------- primitives

    def reduce(self, fn: Callable[..., Any], x: Any, *args: Any, vectorize: bool = False) -> Any:
        """Reduce a batch: ``fn(chunk, mask, *args)`` per chunk, partials added canonically.

        ``fn`` sees every chunk at the same shape ``[chunk_size, ...]`` with a bool ``mask``
        of its real rows (padded rows hold zeros) and returns a pytree partial; partials are
        added in the canonical order of :func:`reduce_tree`. Pass the same ``fn`` object each
        time: programs are cached per function.

        Args:
            fn: the per-chunk kernel, ``fn(chunk, mask, *args) -> pytree``.
            x: an array, a pytree of arrays with a shared row axis, or a :class:`ChunkedBatch`.
            *args: arrays (or pytrees of arrays) passed unchanged to every call of ``fn``.
            vectorize: ``False`` (default) computes one chunk per loop iteration, so the bits
                are those of ``jax.jit(fn)`` called on each chunk alone. ``True`` runs ``fn``
                on all chunks of a device at once under ``jax.vmap``: faster for light
                kernels, but XLA may pick other dot and reduction algorithms for the batched
                shape, so use it only for kernels made of elementwise operations and explicit
                trees (:func:`reduce_tree` over the rows), like the built-in sums.

        Returns:
            The pytree of sums, on the home device.

        Example:
            >>> import jax.numpy as jnp, numpy as np
            >>> from liam_core.alda import LaborArray
            >>> def count_and_max(chunk, mask):
            ...     return jnp.sum(mask), jnp.max(jnp.where(mask, chunk[:, 0], -jnp.inf))
            >>> x = np.arange(5.0, dtype=np.float32)[:, None]
            >>> count, maxima = LaborArray(2, chunk_size=2).reduce(count_and_max, x)
            >>> int(count), float(maxima)      # a sum of per-chunk maxima 1 + 3 + 4
            (5, 8.0)
        """
        _check_callable(fn, "fn")
        check_bool(vectorize, "vectorize")
        return self._reduce(fn, self._as_batch(x), args, kernels.keep, vectorize=vectorize)

    def sum(self, x: Any) -> Any:
        """Column sums of ``x`` (over its row axis), added in the canonical order.

        Example:
            >>> import numpy as np
            >>> from liam_core.alda import LaborArray
            >>> LaborArray(2).sum(np.ones((1000, 2), np.float32)).tolist()
            [1000.0, 1000.0]
        """
        return self._reduce(kernels.sum_kernel, self._as_batch(x), (), kernels.keep, vectorize=True)

    def mean(self, x: Any) -> Any:
        """Column means of ``x``: the canonical sum divided by the number of rows.

        Example:
            >>> import numpy as np
            >>> from liam_core.alda import LaborArray
            >>> LaborArray(4).mean(np.arange(6.0, dtype=np.float32).reshape(3, 2)).tolist()
            [2.0, 3.0]
        """
        batch = self._as_batch(x)
        return self._reduce(
            _float_sum_kernel(batch), batch, (), kernels.divide_by_rows, vectorize=True
        )

    def covariance(self, x: Any, *, ddof: int = 1) -> jax.Array:
        """Covariance of the columns of ``x``, as ``np.cov(x, rowvar=False, ddof=ddof)``.

        Two canonical passes: the column means, then the sum of centered outer products.

        Args:
            x: an ``[n, d]`` (or ``[n]`` for one variable) array or :class:`ChunkedBatch`.
            ddof: delta degrees of freedom; the divisor is ``n - ddof``, which must be > 0.

        Returns:
            The ``[d, d]`` covariance (a 0-d array for 1-D ``x``), on the home device.

        Example:
            >>> import numpy as np
            >>> from liam_core.alda import LaborArray
            >>> x = np.array([[0.0, 1.0], [2.0, 5.0], [4.0, 3.0]], np.float32)
            >>> LaborArray(2).covariance(x).tolist()
            [[4.0, 2.0], [2.0, 4.0]]
        """
        ddof = check_int(ddof, "ddof", minimum=0, owner="LaborArray.covariance")
        batch = self._as_batch(x)
        if not isinstance(batch.data, jax.Array) or batch.data.ndim not in (3, 4):
            shapes = jax.tree_util.tree_map(lambda a: a.shape[3:], batch.data)
            raise ShapeError(f"covariance needs one [n, d] or [n] array, got row shapes {shapes}")
        if batch.n_rows - ddof <= 0:
            raise ShapeError(
                f"covariance of {batch.n_rows} row(s) with ddof={ddof} divides by "
                f"{batch.n_rows - ddof}; it needs more than ddof rows"
            )
        one_variable = batch.data.ndim == 3
        mean = self._reduce(
            _float_sum_kernel(batch), batch, (), kernels.divide_by_rows, vectorize=True
        )
        cov = self._reduce(
            kernels.centered_gram_kernel, batch, (mean,), _divide_by_rows_minus(ddof)
        )
        return self._executor.finish("scalar", lambda c: c[0, 0], cov) if one_variable else cov

    def map(self, fn: Callable[..., Any], x: Any, *args: Any, vectorize: bool = False) -> Any:
        """Apply a row-wise ``fn`` to every chunk; rows come back in order, padding removed.

        ``fn(rows, *args) -> rows`` must treat rows independently (``tanh(x @ w)``, an algebra
        ``Transform.apply``); it sees chunks of ``chunk_size`` rows, padded rows holding zeros.
        Pass parameters as ``args`` rather than closing over them: programs are cached per
        function, so one module-level ``fn`` compiles once for every value of its ``args``.

        Args:
            fn: a row-wise function of an array (or pytree) with a leading row axis.
            x: an array, a pytree of arrays with a shared row axis, or a :class:`ChunkedBatch`.
            *args: arrays (or pytrees of arrays) passed unchanged to every call of ``fn``.
            vectorize: as in :meth:`reduce`: ``False`` (default) runs ``fn`` one chunk per
                loop iteration; ``True`` runs it on a device's chunks at once under ``vmap``.

        Returns:
            The outputs as numpy arrays of ``n_rows`` rows, the same on every process.

        Example:
            >>> import jax.numpy as jnp, numpy as np
            >>> from liam_core.alda import LaborArray
            >>> LaborArray(2, chunk_size=2).map(jnp.square, np.arange(5.0)).tolist()
            [0.0, 1.0, 4.0, 9.0, 16.0]
        """
        _check_callable(fn, "fn")
        check_bool(vectorize, "vectorize")
        batch = self._as_batch(x)

        def body(chunks: Any, block: jax.Array, n_rows: jax.Array, *args: Any) -> Any:
            out = kernels.block_map(fn, chunks, block, n_rows, *args, vectorize=vectorize)
            return jax.tree_util.tree_map(lambda o: o[None], out)

        with _peer_errors():
            outputs = self._executor.run_chunks(
                ("map", fn, vectorize), body, batch.shards, batch.geometry, args
            )
            if jax.process_count() > 1:
                from jax.experimental import multihost_utils

                blocks = multihost_utils.process_allgather(
                    self._executor.assemble(outputs), tiled=True
                )
            else:
                by_block = {block: outputs[device] for device, block in self._topology.local}
                blocks = jax.tree_util.tree_map(
                    lambda *parts: np.concatenate([np.asarray(p) for p in parts]),
                    *(by_block[block] for block in sorted(by_block)),
                )
            return jax.tree_util.tree_map(
                lambda a: np.asarray(a).reshape(math.prod(a.shape[:3]), *a.shape[3:])[
                    : batch.n_rows
                ],
                blocks,
            )

    def value_and_grad(self, loss: Callable[[Any, Any], jax.Array]) -> Callable[..., Any]:
        """Turn a per-example loss into ``(mean loss, mean gradient)`` over a batch.

        ``loss(params, example) -> scalar`` sees one row (a pytree of arrays without the row
        axis). The returned function ``vag(params, batch)`` gives the mean loss and the mean
        gradient with respect to every floating-point array leaf of ``params`` (other leaves
        get ``None``, as in ``equinox.filter_grad``), with the same bits on every topology,
        so training steps are reproducible. Padded rows are zeros: the loss must be finite
        there (it is masked out of the sum).

        Args:
            loss: the per-example loss.

        Returns:
            ``vag(params, batch) -> (loss, grads)``, both on the home device.

        Example:
            >>> import jax.numpy as jnp, numpy as np
            >>> from liam_core.alda import LaborArray
            >>> def loss(w, example):
            ...     x, y = example
            ...     return (x @ w - y) ** 2
            >>> x = np.ones((10, 2), np.float32); y = np.zeros(10, np.float32)
            >>> value, grad = LaborArray(2).value_and_grad(loss)(jnp.ones(2), (x, y))
            >>> float(value), grad.tolist()
            (4.0, [4.0, 4.0])
        """
        _check_callable(loss, "loss")

        def value_and_grad(params: Any, batch: Any) -> tuple[jax.Array, Any]:
            kernel, treedef, layout, diff, arrays = _split_params(loss, params)
            value, grads = self._reduce(
                kernel, self._as_batch(batch), (diff, arrays), kernels.divide_by_rows
            )
            return value, _grad_tree(treedef, layout, grads)

        return value_and_grad

    def run_stream(
        self, step: Callable[[Any, Any], Any], batches: Iterable[Any], carry: Any
    ) -> Any:
        """Fold ``step(carry, batch) -> carry`` over a stream of batches of varying size.

        ``step`` uses this instance's primitives (for example a training step built on
        :meth:`value_and_grad`). Ragged batches fall into the power-of-two shape buckets of
        the :class:`Plan`, so once each bucket has been seen nothing recompiles
        (:attr:`compile_count` stays put), and however long the stream, at most
        ``max_in_flight`` collective programs are ever queued.

        Args:
            step: ``step(carry, batch) -> carry``.
            batches: an iterable of batches (arrays, pytrees or :class:`ChunkedBatch`).
            carry: the initial carry.

        Returns:
            The final carry, computed (blocked on).

        Example:
            >>> import numpy as np
            >>> from liam_core.alda import LaborArray
            >>> labor = LaborArray(2)
            >>> batches = (np.ones((n, 1), np.float32) for n in (300, 1000, 700))
            >>> float(labor.run_stream(lambda total, b: total + labor.sum(b)[0], batches, 0.0))
            2000.0
        """
        _check_callable(step, "step")
        if not isinstance(batches, Iterable):
            raise ConfigError(
                f"batches must be an iterable of batches, got {type(batches).__name__}"
            )
        with _peer_errors():
            for batch in batches:
                carry = step(carry, batch)
            return jax.block_until_ready(carry)

    # ----------------------------------------------------------------- the three stages

    def _reduce(
        self,
        kernel: Callable[..., Any],
        batch: ChunkedBatch,
        args: tuple[Any, ...],
        finish: Callable[[Any, jax.Array], Any],
        *,
        vectorize: bool = False,
    ) -> Any:
        key = (kernel, finish, vectorize)
        with _peer_errors():
            if self._fast:

                def fast_body(chunks: Any, block: jax.Array, n_rows: jax.Array, rest: tuple) -> Any:
                    partial = kernels.block_whole(kernel, chunks, block, n_rows, rest)
                    return finish(jax.lax.psum(partial, self._topology.axis), n_rows)

                result = self._executor.run_fast(key, fast_body, batch.data, batch.n_rows, args)
            else:

                def body(chunks: Any, block: jax.Array, n_rows: jax.Array, *rest: Any) -> Any:
                    partial = kernels.block_partial(
                        kernel, chunks, block, n_rows, rest, vectorize=vectorize
                    )
                    return jax.tree_util.tree_map(lambda p: p[None], partial)

                partials = self._executor.run_chunks(key, body, batch.shards, batch.geometry, args)
                gathered = self._executor.gather(partials)
                result = self._executor.finish(
                    ("tree", finish),
                    tree_then(finish),
                    gathered,
                    batch.geometry[self._topology.home],
                )
            self._bound_in_flight(result)
        return result

    def _bound_in_flight(self, result: Any) -> None:
        self._in_flight.append(jax.tree_util.tree_leaves(result)[0])
        while len(self._in_flight) > self._max_in_flight:
            self._in_flight.popleft().block_until_ready()


def _float_sum_kernel(batch: ChunkedBatch) -> Callable[..., Any]:
    # For floating-point data the plain sum is the same program: share its compiled form.
    leaves = jax.tree_util.tree_leaves(batch.data)
    if all(jnp.issubdtype(leaf.dtype, jnp.inexact) for leaf in leaves):
        return kernels.sum_kernel
    return kernels.inexact_sum_kernel


def in_program_value_and_grad(loss: Callable[[Any, Any], jax.Array]) -> Callable[..., Any]:
    """:meth:`LaborArray.value_and_grad` as a function to trace inside one's own program.

    ``vag(params, chunks, n_rows) -> (mean loss, mean gradient)`` takes a batch cut by the
    one-block plan (:func:`plan_chunks` with ``n_blocks=1``): ``chunks`` is a pytree of
    ``[chunks_per_block, chunk_size, ...]`` arrays whose padded rows are zeros and ``n_rows``
    an int32 scalar (it may be traced). It runs the same per-chunk kernel on every chunk at
    once (``vmap``, the ``vectorize=True`` form of :meth:`LaborArray.reduce`) and adds the
    chunk partials in the canonical tree, on whatever single device the caller's program
    runs on, so a caller can put many steps in one program (``lax.scan``). Nothing in it
    depends on a device count: the batch is one block of a fixed shape. Its bits are not
    those of the primitive, whose stand-alone chunk program XLA compiles differently
    (measured: the last bits of a gradient move); the two are each deterministic, not equal.
    The batched form was measured 1.3x the steps/s of one chunk per loop iteration
    (autoencoder 8-32-3, batches of 4096 rows, 10 steps per dispatch).

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> from liam_core.alda import in_program_value_and_grad
        >>> def loss(w, example):
        ...     x, y = example
        ...     return (x @ w - y) ** 2
        >>> chunks = (np.ones((1, 256, 2), np.float32), np.zeros((1, 256), np.float32))
        >>> vag = jax.jit(in_program_value_and_grad(loss))
        >>> value, grad = vag(jnp.ones(2), chunks, np.int32(10))
        >>> float(value), grad.tolist()
        (4.0, [4.0, 4.0])
    """
    _check_callable(loss, "loss")

    def value_and_grad(params: Any, chunks: Any, n_rows: jax.Array) -> tuple[jax.Array, Any]:
        kernel, treedef, layout, diff, arrays = _split_params(loss, params)
        n_rows = jnp.asarray(n_rows, jnp.int32)
        total = kernels.block_partial(
            kernel, chunks, jnp.int32(0), n_rows, (diff, arrays), vectorize=True
        )
        value, grads = kernels.divide_by_rows(total, n_rows)
        return value, _grad_tree(treedef, layout, grads)

    return value_and_grad


def _split_params(loss: Callable[..., Any], params: Any) -> tuple[Any, ...]:
    """The loss kernel for ``params``' structure, and its differentiated and other arrays."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    layout = tuple(
        "diff" if _is_inexact_array(leaf) else "array" if _is_array(leaf) else leaf
        for leaf in leaves
    )
    if "diff" not in layout:
        raise ConfigError("value_and_grad needs params with at least one floating-point array leaf")
    try:
        kernel = _loss_kernel(loss, treedef, layout)
    except TypeError as error:  # a static leaf that cannot be hashed
        raise ConfigError(f"params has a non-array leaf that is not hashable: {error}") from error
    diff = [leaf for leaf, kind in zip(leaves, layout, strict=True) if kind == "diff"]
    arrays = [leaf for leaf, kind in zip(leaves, layout, strict=True) if kind == "array"]
    return kernel, treedef, layout, diff, arrays


def _grad_tree(treedef: Any, layout: tuple[Any, ...], grads: Any) -> Any:
    """The gradients as a tree like the params: ``None`` where a leaf is not differentiated."""
    grads = iter(grads)
    return jax.tree_util.tree_unflatten(
        treedef, [next(grads) if kind == "diff" else None for kind in layout]
    )


@functools.lru_cache(maxsize=256)
def _loss_kernel(loss: Callable[..., Any], treedef: Any, layout: tuple[Any, ...]) -> Any:
    # One kernel object per (loss, params structure), shared by every LaborArray, so the
    # compiled chunk programs (cached per kernel) are shared too.
    return kernels.loss_kernel(loss, treedef, layout)


def _divide_by_rows_minus(ddof: int) -> Callable[[Any, jax.Array], Any]:
    finish = _DIVIDE_BY_ROWS_MINUS.get(ddof)
    if finish is None:

        def finish(total: Any, n_rows: jax.Array) -> Any:
            return kernels.divide_by_rows(total, n_rows - ddof)

        _DIVIDE_BY_ROWS_MINUS[ddof] = finish
    return finish


_DIVIDE_BY_ROWS_MINUS: dict[int, Callable[[Any, jax.Array], Any]] = {}


def _check_callable(fn: object, name: str) -> None:
    check_callable(fn, name)


def _placement(mesh: Any, executor: Any, data_axis: Any) -> tuple[Mesh, Executor, tuple[str, ...]]:
    """The mesh, executor and data axes a :class:`LaborArray` runs, checked by ``liam_core.mesh``.

    A MeshSpec names its own executor and data axis: other values for them are refused
    rather than silently ignored.
    """
    if isinstance(mesh, MeshSpec):
        if executor is not None and executor != mesh.executor:
            raise ConfigError(
                f"`executor` must be left unset for a MeshSpec (mesh.executor is "
                f"{mesh.executor!r}), got {quote(executor)}"
            )
        if data_axis not in ("data", mesh.data_axis):
            raise ConfigError(
                f"`data_axis` must be left unset for a MeshSpec (mesh.data_axis is "
                f"{mesh.data_axis!r}), got {quote(data_axis)}"
            )
        executor, data_axis, mesh = mesh.executor, mesh.data_axis, mesh.make_mesh()
    elif isinstance(mesh, Mesh):
        executor = "shard_map" if executor is None else executor
    elif mesh is None or (
        isinstance(mesh, int | np.integer | Sequence) and not isinstance(mesh, str)
    ):
        axis = data_axis[0] if isinstance(data_axis, tuple) and len(data_axis) == 1 else data_axis
        if not isinstance(axis, str):
            raise ConfigTypeError(
                f"`data_axis` must be one axis name for a 1-D mesh of devices, got "
                f"{type(data_axis).__name__}: {quote(data_axis)}; pass a Mesh or a MeshSpec "
                "to spread rows over several axes"
            )
        mesh = build_mesh(mesh, {axis: -1})
        executor = "pmap" if executor is None else executor
    else:
        raise ConfigTypeError(
            f"LaborArray: `mesh` must be a Mesh, a MeshSpec, None, an int or a sequence of "
            f"devices, got {type(mesh).__name__}: {quote(mesh)}"
        )
    data_axes = check_data_axes(data_axis, mesh.axis_names)
    return mesh, check_executor(executor, mesh.shape), data_axes


@contextlib.contextmanager
def _peer_errors() -> Iterator[None]:
    """In a multi-process run, a failed collective most likely means a lost peer: say so."""
    try:
        yield
    except jax.errors.JaxRuntimeError as error:
        if jax.process_count() > 1:
            raise DistributedError(
                f"a collective failed in a {jax.process_count()}-process run, most likely "
                f"because a peer process was lost: {error}"
            ) from error
        raise
