"""Training steps per second: the deterministic ALDA step against a plain jitted optax loop.

Run (about a minute on 2 cores; quote the medians, the machine is noisy):

    .venv/bin/python benchmarks/train.py --repeats 5 --out train-bench.json

One process simulates 8 CPU devices. For each workload it times, in interleaved rounds of
``--steps`` steps on batches already placed on the devices:

* ``plain_1dev``      ``eqx.filter_jit`` of value-and-grad of the batch mean loss plus the
  optax update, one program on one device: what one writes without ALDA;
* ``alda_{1,2,8}dev`` :class:`liam_core.train.TrainStep` on ``LaborArray(n)``: the ALDA mean
  gradient (same bits on every topology) plus the jitted optax update;
* ``alda_8dev_put``   the same on 8 devices, placing each batch from host memory inside the
  step, as ``fit`` does;
* ``plain_scan{k}_1dev`` the plain-JAX contender for ``k`` steps per dispatch: one
  ``jax.jit`` of a ``lax.scan`` over ``k`` stacked batches of the ``plain_1dev`` step;
* ``alda_scan{k}_{1,8}dev`` :meth:`liam_core.train.TrainStep.run`: ``k`` ALDA steps in one
  program on the home device (batches placed ahead with ``put_many``), as ``fit`` runs them
  with ``train.steps_per_dispatch=k`` (``--steps-per-dispatch``, default 10).

It checks that the ALDA steps give the same digest on 1, 2 and 8 devices (one step and k
steps per dispatch, each path on its own), prints one JSON
object (median steps per second, ratios against ``plain_1dev``, the machine) and a markdown
table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
from _machine import cpu_name

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from liam_core import digest  # noqa: E402
from liam_core.alda import LaborArray  # noqa: E402
from liam_core.models import make_model, trainable_filter  # noqa: E402
from liam_core.train import TrainStep, task_for  # noqa: E402

WORKLOADS: dict[str, dict[str, Any]] = {
    # The anomaly experiment's model and batch.
    "autoencoder_8x32x3_b4096": {
        "model": {"name": "autoencoder", "in_features": 8, "latent": 3, "width": 32},
        "rows": 4096,
    },
    # A heavier step: more arithmetic per row and a larger batch.
    "mlp_64x256x256_b16384": {
        "model": {"name": "mlp_regressor", "in_features": 64, "out_features": 1, "width": 256},
        "rows": 16384,
    },
}


def make_examples(name: str, rows: int) -> Any:
    rng = np.random.default_rng(0)
    settings = WORKLOADS[name]["model"]
    x = rng.standard_normal((rows, settings["in_features"])).astype(np.float32)
    if settings["name"] == "autoencoder":
        return x
    return x, np.sin(x[:, 0] + 0.5 * x[:, 1]).astype(np.float32)


def plain_step(optimizer: optax.GradientTransformation, loss: Callable) -> Callable:
    """The baseline: one jitted program for the mean gradient and the update, one device."""

    @eqx.filter_jit
    def step(model: Any, opt_state: Any, batch: Any) -> Any:
        spec = trainable_filter(model)
        params, rest = eqx.partition(model, spec)

        def mean_loss(params: Any) -> jax.Array:
            full = eqx.combine(params, rest)
            return jnp.mean(jax.vmap(lambda example: loss(full, example))(batch))

        value, grads = jax.value_and_grad(mean_loss)(params)
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, value

    return step


def plain_scan(optimizer: optax.GradientTransformation, loss: Callable) -> Callable:
    """The plain contender for k steps per dispatch: a jitted ``lax.scan`` of the plain step."""
    step = plain_step(optimizer, loss)

    @jax.jit
    def run(model: Any, opt_state: Any, batches: Any) -> Any:
        def one(carry: Any, batch: Any) -> Any:
            model, opt_state, value = step(*carry, batch)  # traced inline, no dispatch
            return (model, opt_state), value

        (model, opt_state), values = jax.lax.scan(one, (model, opt_state), batches)
        return model, opt_state, values

    return run


def candidates(name: str, k: int) -> dict[str, Callable[[int], Any]]:
    """Per system, ``run(k)``: take ``k`` more steps and return the state (not blocked on)."""
    settings = dict(WORKLOADS[name]["model"])
    model = make_model(settings.pop("name"), seed=0, **settings)
    examples = make_examples(name, WORKLOADS[name]["rows"])
    loss = task_for(model).example_loss  # what the training job trains this model with
    runs: dict[str, Callable[[int], Any]] = {}

    optimizer = optax.adam(1e-3)
    home = jax.devices()[0]
    plain = plain_step(optimizer, loss)
    placed = jax.device_put(examples, home)
    state = {"plain": (jax.device_put(model, home), None)}
    with jax.numpy_dtype_promotion("standard"):
        opt = jax.device_put(optimizer.init(eqx.filter(model, trainable_filter(model))), home)
    state["plain"] = (state["plain"][0], opt)

    def run_plain(k: int) -> Any:
        model, opt_state = state["plain"]
        for _ in range(k):
            model, opt_state, value = plain(model, opt_state, placed)
        state["plain"] = (model, opt_state)
        return value

    runs["plain_1dev"] = run_plain

    for label, devices, put_each_step in (
        ("alda_1dev", 1, False),
        ("alda_2dev", 2, False),
        ("alda_8dev", 8, False),
        ("alda_8dev_put", 8, True),
    ):
        step = TrainStep(LaborArray(devices), optax.adam(1e-3), loss=loss)
        batch = examples if put_each_step else step.put(examples)
        state[label] = (step.place(model), step.init(model))

        def run_alda(k: int, label: str = label, step: TrainStep = step, batch: Any = batch) -> Any:
            model, opt_state = state[label]
            for _ in range(k):
                model, opt_state, value = step(model, opt_state, batch)
            state[label] = (model, opt_state)
            return value

        runs[label] = run_alda

    scan = plain_scan(optimizer, loss)
    stacked = jax.device_put(jax.tree_util.tree_map(lambda a: np.stack([a] * k), examples), home)
    state["plain_scan"] = state["plain"]

    def run_plain_scan(n: int) -> Any:
        model, opt_state = state["plain_scan"]
        for _ in range(-(-n // k)):
            model, opt_state, values = scan(model, opt_state, stacked)
        state["plain_scan"] = (model, opt_state)
        return values

    runs[f"plain_scan{k}_1dev"] = run_plain_scan

    for devices in (1, 8):
        label = f"alda_scan{k}_{devices}dev"
        step = TrainStep(LaborArray(devices), optax.adam(1e-3), loss=loss)
        ahead = step.put_many([examples] * k)
        state[label] = (step.place(model), step.init(model))

        def run_alda_scan(
            n: int, label: str = label, step: TrainStep = step, ahead: Any = ahead
        ) -> Any:
            model, opt_state = state[label]
            for _ in range(-(-n // k)):
                model, opt_state, values = step.run(model, opt_state, ahead)
            state[label] = (model, opt_state)
            return values

        runs[label] = run_alda_scan
    return runs


def same_bits(name: str, steps: int = 3, *, per_dispatch: int = 1) -> bool:
    """Whether ``steps`` ALDA steps from one start give one digest on 1, 2 and 8 devices.

    ``per_dispatch`` 1: the one-step path; more: :meth:`TrainStep.run`, ``steps`` steps in
    dispatches of ``per_dispatch`` (the last one shorter).
    """
    settings = dict(WORKLOADS[name]["model"])
    examples = make_examples(name, WORKLOADS[name]["rows"])
    digests = set()
    for devices in (1, 2, 8):
        model = make_model(
            settings["name"], seed=0, **{k: v for k, v in settings.items() if k != "name"}
        )
        step = TrainStep(LaborArray(devices), optax.adam(1e-3), loss=task_for(model).example_loss)
        opt_state = step.init(model)
        values = []
        for start in range(0, steps, per_dispatch):
            if per_dispatch == 1:
                model, opt_state, value = step(model, opt_state, examples)
            else:
                n = min(per_dispatch, steps - start)
                model, opt_state, value = step.run(model, opt_state, [examples] * n)
            values.append(np.ravel(value))
        digests.add(digest((eqx.filter(model, eqx.is_array), opt_state, np.concatenate(values))))
    return len(digests) == 1


def time_rounds(
    runs: dict[str, Callable[[int], Any]], steps: int, repeats: int
) -> dict[str, list[float]]:
    """Steps per second of each system, in interleaved rounds after a warm-up."""
    for run in runs.values():
        jax.block_until_ready(run(3))  # compile and warm up
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            jax.block_until_ready(run(steps))
            rates[name].append(steps / (time.perf_counter() - start))
    return rates


def markdown(report: dict[str, Any]) -> str:
    systems = list(next(iter(report["workloads"].values()))["steps_per_second"])
    lines = [
        "| workload | " + " | ".join(systems) + " | best ALDA / plain | same bits 1/2/8 |",
        "|---" * (len(systems) + 3) + "|",
    ]
    for name, result in report["workloads"].items():
        rates = " | ".join(f"{result['steps_per_second'][s]:.1f}" for s in systems)
        lines.append(
            f"| {name} | {rates} | {result['best_alda_over_plain']:.2f}x | "
            f"{'yes' if result['same_digest_1_2_8dev'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark; print the JSON report and a markdown table (steps per second)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--steps-per-dispatch", type=int, default=10, help="k of the scans")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--out", default=None, help="also write the JSON report here")
    options = parser.parse_args()

    report: dict[str, Any] = {
        "steps_per_round": options.steps,
        "steps_per_dispatch": options.steps_per_dispatch,
        "repeats": options.repeats,
        "chunk_size": LaborArray(1).chunk_size,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "simulated_devices": jax.device_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "equinox": eqx.__version__,
            "optax": optax.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "workloads": {},
    }
    if options.steps_per_dispatch < 1 or options.steps % options.steps_per_dispatch:
        parser.error("--steps must be a multiple of --steps-per-dispatch (>= 1)")
    for name in options.workloads.split(","):
        k = options.steps_per_dispatch
        rates = time_rounds(candidates(name, k), options.steps, options.repeats)
        median = {system: statistics.median(r) for system, r in rates.items()}
        plain = median["plain_1dev"]
        best = max((s for s in median if s.startswith("alda")), key=median.__getitem__)
        report["workloads"][name] = {
            "batch_rows": WORKLOADS[name]["rows"],
            "model": WORKLOADS[name]["model"],
            "steps_per_second": {system: round(rate, 2) for system, rate in median.items()},
            "over_plain_1dev": {
                system: round(rate / plain, 3)
                for system, rate in median.items()
                if system != "plain_1dev"
            },
            "alda_scan_over_plain_scan": {
                devices: round(median[f"alda_scan{k}_{devices}"] / median[f"plain_scan{k}_1dev"], 3)
                for devices in ("1dev", "8dev")
            },
            "best_alda": best,
            "best_alda_over_plain": round(median[best] / plain, 3),
            "same_digest_1_2_8dev": same_bits(name),
            "same_digest_scan_1_2_8dev": same_bits(name, 2 * k + 1, per_dispatch=k),
        }
        print(name, json.dumps(report["workloads"][name]), flush=True)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    print()
    print(markdown(report))
    if options.out:
        with open(options.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
