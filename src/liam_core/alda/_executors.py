"""Where ALDA's programs run: the topology, the per-device chunk programs, the executors.

The mesh itself is built and validated in :mod:`liam_core.mesh`; here it is only read: which
block of chunks each device runs, and the home device.

Why three stages instead of one SPMD program. XLA compiles a program for 2 or more devices
(``pmap``, or ``shard_map`` over a mesh) with a different pass pipeline than a program for one
device: the SPMD partitioner, Shardy and their clean-ups run first and leave dots in other
canonical forms, so the same per-chunk kernel can get other dot algorithms and other bits
(measured: an Equinox MLP's gradient changed bits between 1 and 2 devices, while 2, 4 and 8
agreed). So:

1. **chunks** — every device runs the same *single-device* program on its own block of chunks
   (compiled by the same pipeline on every topology, and the same pipeline as a plain
   ``jax.jit`` of the kernel on one chunk; on CPU it is compiled once and the same machine
   code is loaded onto every other device, see :func:`_load_on`);
2. **gather** — one partial per device block goes to the home device: copied there directly
   when this process drives every block, all-gathered by the executor (``pmap``, or
   ``shard_map`` over an N-D mesh) across processes; pure data movement either way, exact on
   any pipeline;
3. **finish** — one single-device program on the *home device* (this process's first device
   of the mesh) adds the block partials with the canonical tree and finishes (for example
   divides by the row count). Results live on the home device, so whatever the caller does
   next with them (an optax step) is also compiled the same way on every topology.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._errors import ConfigError
from ..mesh import Executor
from ._tree import reduce_tree


@dataclasses.dataclass(frozen=True)
class Topology:
    """The devices ALDA spreads rows over, and which block of chunks each one runs.

    Attributes:
        mesh: the device mesh (a 1-D mesh named after ``data_axis`` for a device list).
        data_axes: mesh axes the rows are spread over (blocks run in this order); other axes
            hold replicas.
        n_blocks: number of device blocks (the product of the data axes' sizes).
        local: ``(device, block)`` for each device of this process, in mesh order.
        home: this process's first device in mesh order; results are returned there.
    """

    mesh: Mesh
    data_axes: tuple[str, ...]
    n_blocks: int
    local: tuple[tuple[jax.Device, int], ...]
    home: jax.Device

    @property
    def spec(self) -> P:
        """The partition spec of an array whose leading axis is the block axis."""
        return P(self.data_axes[0] if len(self.data_axes) == 1 else self.data_axes)

    @property
    def block_sharding(self) -> NamedSharding:
        """Sharding of ``[n_blocks, ...]`` arrays: block ``b`` on the devices of block ``b``."""
        return NamedSharding(self.mesh, self.spec)

    @property
    def axis(self) -> str | tuple[str, ...]:
        """The data axis name (or tuple of names) for collectives."""
        return self.data_axes[0] if len(self.data_axes) == 1 else self.data_axes

    @property
    def key(self) -> Hashable:
        """Identity of the topology, to check a placed batch belongs to it."""
        return (tuple(d.id for d in self.mesh.devices.flat), self.mesh.axis_names, self.data_axes)

    @classmethod
    def from_mesh(cls, mesh: Mesh, data_axes: tuple[str, ...]) -> Topology:
        """The blocks of a mesh already validated by :mod:`liam_core.mesh`, for this process.

        Blocks run in mesh order over the data axes (the order of ``P(data_axes)``); the
        home device is this process's first device in mesh order.
        """
        sizes = [mesh.shape[name] for name in data_axes]
        positions = [mesh.axis_names.index(name) for name in data_axes]
        local = []
        for index in np.ndindex(*mesh.devices.shape):
            device = mesh.devices[index]
            if device.process_index == jax.process_index():
                block = int(np.ravel_multi_index([index[p] for p in positions], sizes))
                local.append((device, block))
        if not local:
            raise ConfigError(
                f"none of the mesh's devices belongs to this process ({jax.process_index()}); "
                "every process must drive some of them"
            )
        return cls(
            mesh=mesh,
            data_axes=data_axes,
            n_blocks=math.prod(sizes),
            local=tuple(local),
            home=local[0][0],
        )


class _ProgramCache:
    """A bounded least-recently-used cache of compiled chunk programs, shared in a process."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._programs: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()

    def get(self, key: Hashable) -> Any:
        program = self._programs.get(key)
        if program is not None:
            self._programs.move_to_end(key)
        return program

    def put(self, key: Hashable, program: Any) -> None:
        self._programs[key] = program
        while len(self._programs) > self._capacity:
            self._programs.popitem(last=False)


_CHUNK_PROGRAMS = _ProgramCache(capacity=1024)
# The first compile of each chunk program in the process, serialized (CPU only): other devices
# load these bytes instead of compiling the same program again.
_COMPILED_CODE = _ProgramCache(capacity=256)
_JITTED = _ProgramCache(capacity=256)


def _signature(tree: Any) -> Hashable:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((np.shape(leaf), _dtype(leaf).str) for leaf in leaves)


def _dtype(leaf: Any) -> np.dtype:
    return np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.result_type(leaf)


class StageRunner:
    """Runs ALDA's three stages on a :class:`Topology` with ``pmap`` or ``shard_map``.

    ``kind`` is already checked against the mesh (``liam_core.mesh``). It caches every
    program it builds and counts the XLA executables, so a test can assert that a stream of
    ragged batches stops compiling once its shape buckets are warm.
    """

    def __init__(self, topology: Topology, kind: Executor) -> None:
        self.topology = topology
        self.kind = kind
        self.compile_count = 0
        self._block_devices = _block_devices(topology)
        self._jitted: dict[Hashable, Callable[..., Any]] = {}

    # -- stage 1: the same single-device program on every device -------------------------

    def run_chunks(
        self,
        key: Hashable,
        body: Callable[..., Any],
        shards: dict[jax.Device, Any],
        geometry: dict[jax.Device, jax.Array],
        args: tuple[Any, ...] = (),
    ) -> dict[jax.Device, Any]:
        """Run ``body(chunks, block, n_rows, *args)`` on each local device's block.

        ``shards[device]`` is the device's ``[1, chunks_per_block, chunk_size, ...]`` block and
        ``geometry[device]`` its ``int32[2]`` ``(block, n_rows)`` (see :meth:`local_inputs`).
        Returns ``{device: output}``; outputs stay on their device.
        """
        signature = (key, _signature(next(iter(shards.values()))), _signature(args))
        outputs = {}
        for device, _ in self.topology.local:
            inputs = (
                shards[device],
                geometry[device],
                jax.device_put(args, device) if args else (),
            )
            program = _CHUNK_PROGRAMS.get((signature, device.id))
            if program is None:
                # XLA binds an executable to its device, so each device needs its own. The
                # program does not depend on the topology (the block index and row count are
                # inputs), so every LaborArray of the process shares it.
                program, outputs[device] = self._chunk_program(signature, body, inputs, device)
                _CHUNK_PROGRAMS.put((signature, device.id), program)
            else:
                outputs[device] = program(*inputs)
        return outputs

    def _chunk_program(
        self, signature: Hashable, body: Callable[..., Any], inputs: tuple, device: jax.Device
    ) -> tuple[jax.stages.Compiled, Any]:
        """The chunk program on ``device`` and its output on ``inputs``.

        The program is the first device's executable loaded onto this one when that works
        (its first run is waited for: a load that cannot run is compiled instead), else a
        compile of its own.
        """
        code = _COMPILED_CODE.get(signature)
        if code is not None:
            program = _load_on(code, device)
            if program is not None:
                try:
                    return program, jax.block_until_ready(program(*inputs))
                except jax.errors.JaxRuntimeError:
                    _COMPILED_CODE.put(signature, dataclasses.replace(code, serialized=None))
        jitted = _JITTED.get(signature)
        if jitted is None:  # one per program, so each further device reuses its trace
            jitted = jax.jit(_squeeze_block(body))
            _JITTED.put(signature, jitted)
        program, compiled_here = _compile(jitted, inputs)
        self.compile_count += 1
        if code is None and device.platform == "cpu" and compiled_here:
            _COMPILED_CODE.put(signature, _CompiledCode.of(program))
        return program, program(*inputs)

    def local_inputs(
        self, data: Any, n_rows: int
    ) -> tuple[dict[jax.Device, Any], dict[jax.Device, jax.Array]]:
        """Each local device's block of ``data`` and its ``(block, n_rows)`` geometry array."""
        leaves, treedef = jax.tree_util.tree_flatten(data)
        per_device: dict[jax.Device, list[jax.Array]] = {d: [] for d, _ in self.topology.local}
        for leaf in leaves:
            for shard in leaf.addressable_shards:
                per_device[shard.device].append(shard.data)
        shards = {d: jax.tree_util.tree_unflatten(treedef, v) for d, v in per_device.items()}
        geometry = {
            device: jax.device_put(np.array([block, n_rows], np.int32), device)
            for device, block in self.topology.local
        }
        return shards, geometry

    def assemble(self, outputs: dict[jax.Device, Any]) -> Any:
        """Per-device ``[1, ...]`` outputs as global ``[n_blocks, ...]`` arrays over the blocks."""
        first = next(iter(outputs.values()))
        leaves_by_device = {d: jax.tree_util.tree_leaves(o) for d, o in outputs.items()}
        treedef = jax.tree_util.tree_structure(first)
        sharding = self.topology.block_sharding
        arrays = []
        for position, leaf in enumerate(jax.tree_util.tree_leaves(first)):
            arrays.append(
                jax.make_array_from_single_device_arrays(
                    (self.topology.n_blocks, *leaf.shape[1:]),
                    sharding,
                    [leaves[position] for leaves in leaves_by_device.values()],
                )
            )
        return jax.tree_util.tree_unflatten(treedef, arrays)

    # -- stage 2: one partial per block on the home device ---------------------------------

    def gather(self, outputs: dict[jax.Device, Any]) -> Any:
        """One ``[1, ...]`` partial per block, in block order, on the home device.

        When this process drives every block (one process), each block's partial (that of
        its first device in mesh order; replicas hold the same bits) is copied to the home
        device directly, all in one batched transfer: a list of ``n_blocks`` trees. Across
        processes the partials are all-gathered with pmap or shard_map: one tree of
        ``[n_blocks, ...]`` arrays. Either way the values, and their order, are the same;
        :func:`tree_then` takes both.
        """
        if self._block_devices is not None:
            parts = [outputs[device] for device in self._block_devices]
            return jax.device_put(parts, self.topology.home)
        gathered = self._collective("gather", _all_gather_body(self.topology.axis))(
            self.assemble(outputs)
        )
        return self.on_home(gathered)

    def on_home(self, tree: Any) -> Any:
        """The home device's copy of a replicated pytree of global arrays."""
        home = self.topology.home

        def pick(leaf: jax.Array) -> jax.Array:
            for shard in leaf.addressable_shards:
                if shard.device == home:
                    return shard.data
            raise ConfigError(f"no copy of the result on the home device {home}")

        return jax.tree_util.tree_map(pick, tree)

    def _collective(self, key: Hashable, body: Callable[..., Any], n_broadcast: int = 0) -> Any:
        """A pmap or shard_map program: block-sharded first argument, then replicated ones."""
        program = self._jitted.get(("collective", key, n_broadcast))
        if program is not None:
            return program
        topology = self.topology

        def counted(*args: Any) -> Any:
            self.compile_count += 1
            return body(*args)

        if self.kind == "pmap":
            program = jax.pmap(
                counted,
                axis_name=topology.axis,
                in_axes=(0, *(None for _ in range(n_broadcast))),
                out_axes=None,
                devices=list(topology.mesh.devices.flat),
            )
        else:

            def local(blocks: Any, *rest: Any) -> Any:
                return counted(jax.tree_util.tree_map(lambda a: a[0], blocks), *rest)

            program = jax.jit(
                jax.shard_map(
                    local,
                    mesh=topology.mesh,
                    in_specs=(topology.spec, *(P() for _ in range(n_broadcast))),
                    out_specs=P(),
                )
            )
        self._jitted[("collective", key, n_broadcast)] = program
        return program

    # -- stage 3: finish on the home device -----------------------------------------------

    def finish(self, key: Hashable, fn: Callable[..., Any], *inputs: Any) -> Any:
        """Run ``fn(*inputs)`` as a single-device program on the home device.

        Like the chunk programs, it does not depend on the topology, so it is shared by
        every LaborArray of the process with the same home device.
        """
        home = self.topology.home
        if not all(_committed_to(leaf, home) for leaf in jax.tree_util.tree_leaves(inputs)):
            inputs = jax.device_put(inputs, home)  # (a no-op transfer still costs ~0.1 ms)
        signature = (("finish", key), _signature(inputs), home.id)
        program = _CHUNK_PROGRAMS.get(signature)
        if program is None:
            program = jax.jit(fn).lower(*inputs).compile()
            _CHUNK_PROGRAMS.put(signature, program)
            self.compile_count += 1
        return program(*inputs)

    # -- fast=True: one SPMD program with a plain psum ------------------------------------

    def run_fast(
        self, key: Hashable, body: Callable[..., Any], data: Any, n_rows: int, args: tuple
    ) -> Any:
        """Run ``body(block_chunks, block, n_rows, args)`` (which psums) as one SPMD program."""
        topology = self.topology

        def spmd(chunks: Any, n: jax.Array, rest: tuple) -> Any:
            return body(chunks, jax.lax.axis_index(topology.axis), n, rest)

        program = self._collective(("fast", key), spmd, n_broadcast=2)
        if self.kind == "shard_map":
            args = jax.device_put(args, NamedSharding(topology.mesh, P()))
        return self.on_home(program(data, np.int32(n_rows), args))


_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_compiling = threading.local()
_listening = False
_listening_lock = threading.Lock()


def _note_cache_hit(event: str, **kwargs: Any) -> None:
    if event == _CACHE_HIT_EVENT and getattr(_compiling, "hits", None) is not None:
        _compiling.hits += 1


def _compile(jitted: Any, inputs: tuple) -> tuple[jax.stages.Compiled, bool]:
    """``jitted`` (a ``jax.jit``) compiled for ``inputs``, and whether XLA compiled it here.

    ``False`` means JAX's persistent compilation cache loaded it. Such an executable is not
    serialized again: measured on XLA CPU, a reserialized cache load misses its kernels
    ("Function ... not found" when it runs). The cache-hit event is public
    (``jax.monitoring``) and counted per thread, so another thread's compiles do not count.
    """
    global _listening
    with _listening_lock:
        if not _listening:
            jax.monitoring.register_event_listener(_note_cache_hit)
            _listening = True
    _compiling.hits = 0
    try:
        compiled = jitted.lower(*inputs).compile()
        return compiled, _compiling.hits == 0
    finally:
        _compiling.hits = None


@dataclasses.dataclass(frozen=True)
class _CompiledCode:
    """A compiled single-device program and its serialized executable (``None``: cannot be)."""

    compiled: jax.stages.Compiled
    serialized: bytes | None

    @classmethod
    def of(cls, compiled: jax.stages.Compiled) -> _CompiledCode:
        try:
            unloaded = compiled._executable._unloaded_executable
            if unloaded.host_callbacks:  # bound to this process's Python objects at compile
                return cls(compiled, None)
            return cls(compiled, unloaded.backend.serialize_executable(unloaded.xla_executable))
        except Exception:  # an executable XLA cannot serialize, or another JAX: compile instead
            return cls(compiled, None)


def _load_on(code: _CompiledCode, device: jax.Device) -> jax.stages.Compiled | None:
    """``code``'s executable loaded onto ``device`` (the same machine code), or ``None``.

    Compiling a chunk program takes 0.1-0.5 s on CPU and 8 simulated devices compiled the same
    program 8 times; loading the serialized executable takes milliseconds (a sort's comparator
    makes it tens). The bits are those of the compiled program by construction. This uses JAX
    internals (the executable behind a ``Compiled``), so anything unexpected returns ``None``
    and the caller compiles; the caller also waits for a loaded program's first run and
    compiles if it fails. CPU only: it is what was measured (``tests/test_alda.py``); on a GPU
    each device still compiles.
    """
    if code.serialized is None or device.platform != "cpu":
        return None
    try:
        from jax._src.interpreters.pxla import UnloadedMeshExecutable
        from jax._src.lib import xla_client

        params = code.compiled._params
        unloaded = code.compiled._executable._unloaded_executable
        if not isinstance(unloaded, UnloadedMeshExecutable) or params.const_args:
            return None  # constants hoisted into arguments live on the first device
        options = xla_client.CompileOptions()
        options.device_assignment = xla_client.DeviceAssignment.create(np.array([[device.id]]))
        devices = xla_client.DeviceList((device,))
        executable = unloaded.backend.deserialize_executable(code.serialized, devices, options)
        sharding = jax.sharding.SingleDeviceSharding(device)
        moved = dataclasses.replace(
            unloaded,
            xla_executable=executable,
            device_list=devices,
            input_shardings=[sharding for _ in unloaded.input_shardings],
            output_shardings=[sharding for _ in unloaded.output_shardings],
        )
        return jax.stages.Compiled(
            moved.load(),
            [],
            code.compiled.args_info,
            code.compiled.out_tree,
            no_kwargs=code.compiled._no_kwargs,
            in_types=params.in_types,
            out_types=params.out_types,
        )
    except Exception:
        return None


def _squeeze_block(body: Callable[..., Any]) -> Callable[..., Any]:
    def program(chunks: Any, geometry: jax.Array, args: tuple) -> Any:
        chunks = jax.tree_util.tree_map(lambda a: a[0], chunks)
        return body(chunks, geometry[0], geometry[1], *args)

    return program


def _all_gather_body(axis: str | tuple[str, ...]) -> Callable[[Any], Any]:
    def gather(partials: Any) -> Any:
        return jax.lax.all_gather(partials, axis, to="invarying")

    return gather


def _block_devices(topology: Topology) -> tuple[jax.Device, ...] | None:
    """Each block's first local device, in block order; ``None`` unless all are local."""
    first: dict[int, jax.Device] = {}
    for device, block in topology.local:
        first.setdefault(block, device)
    if len(first) != topology.n_blocks:
        return None
    return tuple(first[block] for block in range(topology.n_blocks))


def _committed_to(leaf: Any, device: jax.Device) -> bool:
    return (
        isinstance(leaf, jax.Array)
        and leaf.committed
        and leaf.sharding.is_fully_addressable
        and leaf.sharding.device_set == {device}
    )


def tree_then(finish: Callable[[Any, jax.Array], Any]) -> Callable[[Any, jax.Array], Any]:
    """Stage 3 of a reduction: the top of the canonical tree, then ``finish(total, n_rows)``.

    The program takes the home device's ``int32[2]`` ``(block, n_rows)`` geometry (already on
    the device, so nothing crosses from the host) and reads ``n_rows`` from it.
    """

    def top(gathered: Any, geometry: jax.Array) -> Any:
        if isinstance(gathered, list):  # one [1, ...] tree per block (see StageRunner.gather)
            gathered = jax.tree_util.tree_map(lambda *parts: jnp.concatenate(parts), *gathered)
        return finish(reduce_tree(gathered), geometry[1])

    return top
