"""ALDA's deterministic reductions side by side with plain ``jax.jit`` and ``pmap`` + ``psum``.

Run (about 2-4 minutes on 2 cores; quote the medians, the machine is noisy):

    .venv/bin/python benchmarks/alda.py --rows 1000000 --repeats 7 --out alda-bench.json

One process simulates 8 CPU devices. For each workload on ``rows x 64`` float32 rows it times,
in interleaved rounds on data already placed on the devices:

* ``jit_1dev``      plain ``jax.jit`` on one device (the whole batch in one program);
* ``psum_8dev``     ``pmap`` over 8 devices, a per-device partial, then ``lax.psum``;
* ``alda_8dev``     ``LaborArray(8)``, deterministic (the default);
* ``alda_1dev``     ``LaborArray(1)``, deterministic;
* ``alda_fast_8dev`` ``LaborArray(8, fast=True)``: plain psum, no guarantee (for reference).

and checks that ``alda_8dev`` and ``alda_1dev`` give the same digest. It prints one JSON
object: per workload the median milliseconds and the ratios ``alda_8dev / psum_8dev`` and
``alda_8dev / jit_1dev``, plus the machine and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from collections.abc import Callable
from typing import Any

import jax
from _machine import cpu_name, emit, time_rounds

jax.config.update("jax_num_cpu_devices", 8)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from liam_core import digest  # noqa: E402
from liam_core.alda import LaborArray  # noqa: E402

N_DEVICES = 8


def gram_kernel(chunk: jax.Array, mask: jax.Array) -> jax.Array:
    """Matmul-shaped partial: ``x.T @ x`` over the real rows of a chunk."""
    rows = jnp.where(mask[:, None], chunk, 0.0)
    return rows.T @ rows


def init_mlp(key: jax.Array, width: int = 32) -> dict[str, jax.Array]:
    """A 64 -> width -> 1 tanh MLP as a dict of arrays."""
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (64, width), jnp.float32) / 8.0,
        "b1": jnp.zeros(width, jnp.float32),
        "w2": jax.random.normal(k2, (width, 1), jnp.float32) / np.sqrt(width),
        "b2": jnp.zeros(1, jnp.float32),
    }


def example_loss(params: dict[str, jax.Array], example: tuple[jax.Array, jax.Array]) -> jax.Array:
    """Squared error of one example."""
    x, y = example
    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.sum((hidden @ params["w2"] + params["b2"] - y) ** 2)


def batch_loss_sum(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    """Sum of per-example losses over a batch (what one program computes at once)."""
    return jnp.sum(jax.vmap(example_loss, in_axes=(None, 0))(params, (x, y)))


def baselines(x: np.ndarray, y: np.ndarray, params: Any) -> dict[str, dict[str, Callable[[], Any]]]:
    """Plain jit on one device and pmap + psum on 8, per workload."""
    n = x.shape[0]
    device = jax.devices()[0]
    x1, y1 = jax.device_put(x, device), jax.device_put(y, device)
    per = n // N_DEVICES  # rows that split evenly; the remainder is dropped for the baseline
    x8 = _pmap_put(x[: per * N_DEVICES].reshape(N_DEVICES, per, -1))
    y8 = _pmap_put(y[: per * N_DEVICES].reshape(N_DEVICES, per, -1))
    rows8 = per * N_DEVICES

    jit_sum = jax.jit(lambda a: jnp.sum(a, axis=0))
    jit_mean = jax.jit(lambda a: jnp.mean(a, axis=0))
    jit_cov = jax.jit(lambda a: jnp.cov(a, rowvar=False))
    jit_gram = jax.jit(lambda a: a.T @ a)
    jit_vag = jax.jit(lambda p, a, b: jax.value_and_grad(batch_loss_sum)(p, a, b))

    psum_sum = jax.pmap(lambda a: jax.lax.psum(jnp.sum(a, axis=0), "d"), "d", out_axes=None)
    psum_mean = jax.pmap(
        lambda a: jax.lax.psum(jnp.sum(a, axis=0), "d") / rows8, "d", out_axes=None
    )

    def cov_body(a: jax.Array) -> jax.Array:
        mean = jax.lax.psum(jnp.sum(a, axis=0), "d") / rows8
        centered = a - mean
        return jax.lax.psum(centered.T @ centered, "d") / (rows8 - 1)

    psum_cov = jax.pmap(cov_body, "d", out_axes=None)
    psum_gram = jax.pmap(lambda a: jax.lax.psum(a.T @ a, "d"), "d", out_axes=None)
    psum_vag = jax.pmap(
        lambda p, a, b: jax.lax.psum(jax.value_and_grad(batch_loss_sum)(p, a, b), "d"),
        "d",
        in_axes=(None, 0, 0),
        out_axes=None,
    )
    return {
        "sum": {"jit_1dev": lambda: jit_sum(x1), "psum_8dev": lambda: psum_sum(x8)},
        "mean": {"jit_1dev": lambda: jit_mean(x1), "psum_8dev": lambda: psum_mean(x8)},
        "covariance": {"jit_1dev": lambda: jit_cov(x1), "psum_8dev": lambda: psum_cov(x8)},
        "gram": {"jit_1dev": lambda: jit_gram(x1), "psum_8dev": lambda: psum_gram(x8)},
        "value_and_grad": {
            "jit_1dev": lambda: jit_vag(params, x1, y1),
            "psum_8dev": lambda: psum_vag(params, x8, y8),
        },
    }


def _pmap_put(blocks: np.ndarray) -> jax.Array:
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:N_DEVICES]), ("d",))
    return jax.device_put(blocks, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d")))


def alda_workloads(
    labor: LaborArray, x: np.ndarray, y: np.ndarray, params: Any
) -> dict[str, Callable[[], Any]]:
    """The same workloads through a LaborArray, on batches placed once beforehand."""
    bx = labor.put(x)
    bxy = labor.put((x, y))
    vag = labor.value_and_grad(example_loss)
    return {
        "sum": lambda: labor.sum(bx),
        "mean": lambda: labor.mean(bx),
        "covariance": lambda: labor.covariance(bx),
        "gram": lambda: labor.reduce(gram_kernel, bx),
        "value_and_grad": lambda: vag(params, bxy),
    }


def main() -> None:
    """Run the benchmark and print (and optionally write) the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workloads", default="sum,mean,covariance,gram,value_and_grad")
    parser.add_argument("--out", default=None, help="also write the JSON report here")
    options = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((options.rows, 64)).astype(np.float32)
    y = np.sin(x[:, :1] + 0.5 * x[:, 1:2]).astype(np.float32)
    params = init_mlp(jax.random.key(0))

    systems = {
        "alda_8dev": LaborArray(N_DEVICES),
        "alda_1dev": LaborArray(1),
        "alda_fast_8dev": LaborArray(N_DEVICES, fast=True),
    }
    runs = {name: alda_workloads(labor, x, y, params) for name, labor in systems.items()}
    base = baselines(x, y, params)
    report: dict[str, Any] = {
        "rows": options.rows,
        "columns": 64,
        "chunk_size": systems["alda_8dev"].chunk_size,
        "repeats": options.repeats,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "simulated_devices": N_DEVICES,
            "jax": jax.__version__,
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "workloads": {},
    }
    for workload in options.workloads.split(","):
        candidates = {**base[workload], **{name: run[workload] for name, run in runs.items()}}
        times = time_rounds(candidates, options.repeats)
        median_ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        same = digest(candidates["alda_8dev"]()) == digest(candidates["alda_1dev"]())
        report["workloads"][workload] = {
            "median_ms": {name: round(ms, 2) for name, ms in median_ms.items()},
            "alda_8dev_over_psum_8dev": round(median_ms["alda_8dev"] / median_ms["psum_8dev"], 3),
            "alda_8dev_over_jit_1dev": round(median_ms["alda_8dev"] / median_ms["jit_1dev"], 3),
            "alda_1dev_over_jit_1dev": round(median_ms["alda_1dev"] / median_ms["jit_1dev"], 3),
            "same_digest_8dev_1dev": same,
        }
        print(workload, json.dumps(report["workloads"][workload]), flush=True)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    emit(report, options.out)


if __name__ == "__main__":
    main()
