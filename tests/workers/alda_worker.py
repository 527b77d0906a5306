"""One topology of the ALDA determinism matrix, run in its own process; prints JSON digests.

    python tests/workers/alda_worker.py --devices 8
    python tests/workers/alda_worker.py --devices 4 --processes 2 --process-id 0 --port 12345

A process simulates ``--devices`` CPU devices (with ``--processes > 1`` it is one of several
processes joined by ``liam_core.mesh.distributed`` on 127.0.0.1). It runs every executor on its
topology (pmap and shard_map over all devices, shard_map over a 4 x 2 mesh when there are 8
devices) through every workload: reductions (sum, mean, covariance), a row map through an
algebra pipeline, and optax steps of an Equinox MLP trained through ``value_and_grad``. It
prints one JSON object with a digest per (executor, workload); with ``--reference`` also the
digests of a host-side loop over single chunks. ``--mode loop`` instead runs reductions until
killed (or ``--seconds`` pass), printing ``tick`` lines, for the lost-peer test.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

N_ROWS = 5000  # 19 full chunks of 256 and a ragged last chunk of 136 rows
N_FEATURES = 16
# Batch sizes of the training stream: all within one shape bucket per topology.
STEP_SIZES = (1000, 777, 1024, 513, 900, 640)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--from-env",
        action="store_true",
        help="start the distributed runtime from the environment (SLURM_* variables)",
    )
    parser.add_argument("--workloads", default="sum,mean,covariance,map,train")
    parser.add_argument("--executors", default="pmap,shard_map,mesh")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--mode", choices=("digests", "loop"), default="digests")
    parser.add_argument("--seconds", type=float, default=60.0)
    return parser.parse_args()


def main() -> None:
    options = parse_args()
    import jax

    if options.from_env:
        from liam_core.mesh import distributed

        info = distributed(cpu_devices=options.devices, initialization_timeout_s=30)
        options.processes, options.process_id = info.process_count, info.process_index
    elif options.processes > 1:
        from liam_core.mesh import distributed

        distributed(
            f"127.0.0.1:{options.port}",
            num_processes=options.processes,
            process_id=options.process_id,
            cpu_devices=options.devices,
            heartbeat_timeout_s=5,
            initialization_timeout_s=30,
        )
    else:
        jax.config.update("jax_num_cpu_devices", options.devices)
    jax.config.update("jax_numpy_dtype_promotion", "strict")

    if options.mode == "loop":
        run_loop(options)
        return
    report = {
        "devices": options.devices,
        "processes": options.processes,
        "process_id": options.process_id,
        "global_devices": jax.device_count(),
        "digests": run_matrix(options),
    }
    if options.reference:
        report["reference"] = run_reference(options)
    print(json.dumps(report), flush=True)


# --------------------------------------------------------------------------- workloads


def make_data() -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(20261126)
    # Columns of very different scales, so that the order of additions shows in the bits.
    scales = 10.0 ** rng.integers(-3, 4, N_FEATURES)
    x = (rng.standard_normal((N_ROWS, N_FEATURES)) * scales + scales).astype(np.float32)
    y = np.sin(x[:, :1] / scales[0] + 0.5 * x[:, 1:2] / scales[1]).astype(np.float32)
    return x, y


def make_pipeline() -> Any:
    import jax.numpy as jnp
    import numpy as np

    from liam_core.algebra import chain, stateless

    w = jnp.asarray(np.random.default_rng(7).standard_normal((N_FEATURES, 8)), jnp.float32)
    pipeline = chain(
        stateless(lambda rows: jnp.tanh(rows @ w * 0.01)),
        stateless(lambda rows: rows * 2.0 - 1.0),
    )
    state = pipeline.init(jnp.zeros((1, N_FEATURES), jnp.float32))
    return lambda rows: pipeline.apply(state, rows)


def make_model() -> Any:
    import equinox as eqx
    import jax

    return eqx.nn.MLP(N_FEATURES, 1, 16, 1, key=jax.random.key(0))


def example_loss(model: Any, example: Any) -> Any:
    import jax.numpy as jnp

    x, y = example
    return jnp.sum((model(x * 0.01) - y) ** 2)


def make_update() -> Any:
    import equinox as eqx
    import jax
    import optax

    optimizer = optax.adam(3e-3)

    @eqx.filter_jit
    def update(model: Any, opt_state: Any, grads: Any) -> Any:
        # optax mixes Python floats and int32 step counts: not for strict dtype promotion.
        with jax.numpy_dtype_promotion("standard"):
            params = eqx.filter(model, eqx.is_array)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return eqx.apply_updates(model, updates), opt_state

    return optimizer, update


def step_batches(x: Any, y: Any, steps: int) -> list[tuple[int, int]]:
    """Row ranges of the training stream (each step a batch of another size)."""
    ranges, start = [], 0
    for step in range(steps):
        size = STEP_SIZES[step % len(STEP_SIZES)]
        if start + size > len(x):
            start = 0
        ranges.append((start, start + size))
        start += size
    return ranges


def configurations(options: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Keyword arguments of ``LaborArray`` for each executor of this topology."""
    import jax

    from liam_core.mesh import MeshSpec

    wanted = options.executors.split(",")
    configs: dict[str, dict[str, Any]] = {}
    if "pmap" in wanted:
        configs["pmap"] = {"executor": "pmap"}
    if "shard_map" in wanted:
        configs["shard_map"] = {"executor": "shard_map"}
    if "mesh" in wanted and jax.device_count() == 8:
        axes = {"data": 4, "model": 2}
        configs["shard_map_4x2"] = {
            "mesh": MeshSpec(axes=axes, executor="shard_map", data_axis=("data", "model"))
        }
        # Rows over the data axis only; the model axis holds replicas.
        configs["shard_map_4x2_data_only"] = {"mesh": MeshSpec(axes=axes, executor="shard_map")}
    return configs


def run_matrix(options: argparse.Namespace) -> dict[str, str]:
    import equinox as eqx
    import jax

    from liam_core import digest
    from liam_core.alda import LaborArray

    x, y = make_data()
    workloads = options.workloads.split(",")
    pipeline_fn = make_pipeline()
    digests = {}
    for name, settings in configurations(options).items():
        labor = LaborArray(**settings)
        rows_read: list[tuple[int, int]] = []

        def reader(start: int, stop: int, rows_read: list = rows_read) -> Any:
            rows_read.append((start, stop))
            return x[start:stop]

        batch = labor.load(len(x), reader)
        digests[f"{name}/rows_read"] = rows_read
        # The data-only mesh (replicas on the model axis) is checked on the covariance only,
        # to keep the matrix fast: it compiles its own programs on all 8 devices.
        only_covariance = name.endswith("data_only")
        if "sum" in workloads and not only_covariance:
            digests[f"{name}/sum"] = digest(labor.sum(batch))
        if "mean" in workloads and not only_covariance:
            digests[f"{name}/mean"] = digest(labor.mean(batch))
        if "covariance" in workloads:
            digests[f"{name}/covariance"] = digest(labor.covariance(batch))
        if "map" in workloads and not only_covariance:
            digests[f"{name}/map"] = digest(labor.map(pipeline_fn, batch))
        if "train" in workloads and not only_covariance:
            vag = labor.value_and_grad(example_loss)
            optimizer, update = make_update()
            model = make_model()
            opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

            def step(
                carry: Any, rows: tuple[int, int], vag: Any = vag, update: Any = update
            ) -> Any:
                model, opt_state, losses = carry
                start, stop = rows
                loss, grads = vag(model, (x[start:stop], y[start:stop]))
                model, opt_state = update(model, opt_state, grads)
                return model, opt_state, [*losses, loss]

            model, _, losses = labor.run_stream(
                step, step_batches(x, y, options.steps), (model, opt_state, [])
            )
            digests[f"{name}/train"] = digest((eqx.filter(model, eqx.is_array), losses))
        digests[f"{name}/compile_count"] = labor.compile_count
        jax.block_until_ready(batch.data)
    return digests


# --------------------------------------------------------------------------- the reference


def host_tree(partials: list[Any]) -> Any:
    """The canonical pairwise tree, written again in numpy: pad with -0.0, add pairwise."""
    import numpy as np

    width = 1 << max(0, math.ceil(math.log2(len(partials))))
    level = [np.asarray(p) for p in partials]
    level += [np.full_like(level[0], -0.0) for _ in range(width - len(level))]
    while len(level) > 1:
        level = [level[i] + level[i + 1] for i in range(0, len(level), 2)]
    return level[0]


def host_chunks(arrays: Any, chunk_size: int = 256) -> list[tuple[Any, Any]]:
    """Single chunks of a batch, each padded with zero rows to ``chunk_size``, with masks."""
    import jax
    import numpy as np

    n = len(jax.tree_util.tree_leaves(arrays)[0])
    chunks = []
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)

        def pad(a: Any, start: int = start, stop: int = stop) -> Any:
            out = np.zeros((chunk_size, *a.shape[1:]), a.dtype)
            out[: stop - start] = a[start:stop]
            return out

        mask = np.arange(chunk_size) < stop - start
        chunks.append((jax.tree_util.tree_map(pad, arrays), mask))
    return chunks


def host_reduce(kernel: Any, arrays: Any, *args: Any) -> Any:
    """A host-side loop over single chunks: ``jax.jit(kernel)`` per chunk, then the tree."""
    import jax
    import numpy as np

    jitted = jax.jit(kernel)
    partials = [
        jax.tree_util.tree_map(np.asarray, jitted(chunk, mask, *args))
        for chunk, mask in host_chunks(arrays)
    ]
    return jax.tree_util.tree_map(lambda *p: host_tree(list(p)), *partials)


def run_reference(options: argparse.Namespace) -> dict[str, str]:
    import equinox as eqx
    import jax
    import numpy as np

    from liam_core import digest
    from liam_core.alda import _kernels as kernels

    x, y = make_data()
    workloads = options.workloads.split(",")
    # Finishing a sum (dividing it by a row count) is part of the canonical computation and
    # runs in XLA, like the library's: XLA's float32 division is not always numpy's.
    divide = jax.jit(kernels.divide_by_rows)
    reference = {}
    mean = divide(host_reduce(kernels.inexact_sum_kernel, x), np.int32(len(x)))
    if "sum" in workloads:
        reference["sum"] = digest(host_reduce(kernels.sum_kernel, x))
    if "mean" in workloads:
        reference["mean"] = digest(mean)
    if "covariance" in workloads:
        gram = host_reduce(kernels.centered_gram_kernel, x, mean)
        reference["covariance"] = digest(divide(gram, np.int32(len(x) - 1)))
    if "map" in workloads:
        fn = jax.jit(make_pipeline())
        rows = np.concatenate([np.asarray(fn(chunk)) for chunk, _ in host_chunks(x)])
        reference["map"] = digest(rows[: len(x)])
    if "train" in workloads:
        optimizer, update = make_update()
        model = make_model()
        opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
        losses = []
        for start, stop in step_batches(x, y, options.steps):
            leaves, treedef = jax.tree_util.tree_flatten(model)
            layout = tuple("diff" if isinstance(leaf, jax.Array) else leaf for leaf in leaves)
            diff = [leaf for leaf in leaves if isinstance(leaf, jax.Array)]
            kernel = kernels.loss_kernel(example_loss, treedef, layout)
            total = host_reduce(kernel, (x[start:stop], y[start:stop]), diff, [])
            value, grads = divide(total, np.int32(stop - start))
            grads = iter(grads)
            grad_tree = jax.tree_util.tree_unflatten(
                treedef, [next(grads) if kind == "diff" else None for kind in layout]
            )
            model, opt_state = update(model, opt_state, grad_tree)
            losses.append(value)
        reference["train"] = digest((eqx.filter(model, eqx.is_array), losses))
    return reference


# --------------------------------------------------------------------------- lost peer


def run_loop(options: argparse.Namespace) -> None:
    import jax

    from liam_core.alda import LaborArray

    x, _ = make_data()
    labor = LaborArray(executor="shard_map")
    batch = labor.put(x)
    deadline = time.monotonic() + options.seconds
    tick = 0
    while time.monotonic() < deadline:
        jax.block_until_ready(labor.sum(batch))
        tick += 1
        print(f"tick {tick}", flush=True)
    print("deadline reached without losing a peer", file=sys.stderr, flush=True)
    sys.exit(3)


if __name__ == "__main__":
    main()
