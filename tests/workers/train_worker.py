"""One training run in its own process (its own device count); prints its digest as JSON.

    python tests/workers/train_worker.py --devices 8 --run-dir DIR [--stop-at 12] [--step-delay 0.05]

It trains a small autoencoder on synthetic telemetry with ``liam_core.train.fit``, saving
checkpoints in ``DIR/checkpoints`` and metrics in ``DIR/metrics.jsonl``; started again with
the same ``--run-dir`` it resumes from the newest usable checkpoint. After each step it
prints ``step N`` (flushed), so a test can kill it at a chosen step; at the end it prints
one JSON object: the digest of the final state, the step it resumed from, the skipped
checkpoints and the logged losses.

Like the training job, it locks the run folder (a second worker on it prints one ``error:``
line and exits with status 2), and a SIGINT or SIGTERM stops it between steps with a
checkpoint: one line on stderr, exit status 130 or 143.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

STEPS = 40
METRICS = ("productivity", "efficiency", "quality", "throughput")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--stop-at", type=int, default=None)
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--executor", choices=("pmap", "shard_map"), default="pmap")
    return parser.parse_args()


def main() -> None:
    options = parse_args()
    import jax

    jax.config.update("jax_num_cpu_devices", options.devices)
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    from pathlib import Path

    import optax

    from liam_core import LiamError
    from liam_core.alda import LaborArray
    from liam_core.data import SyntheticTelemetry
    from liam_core.models import make_model, reconstruction_example_loss
    from liam_core.train import RunLock, TrainingInterrupted, TrainSpec, fit

    values = SyntheticTelemetry(3072, n_teams=4, seed=5, metrics=METRICS).rows().values
    model = make_model("autoencoder", in_features=len(METRICS), latent=2, width=8, seed=0)
    model = model.with_normalization(values.mean(axis=0), values.std(axis=0))
    schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 5, options.steps, 1e-4)
    spec = TrainSpec(
        steps=options.steps,
        batch_size=512,
        eval_every=10,
        patience=None,
        log_every=5,
        checkpoint_every=5,
        keep_checkpoints=3,
        shuffle=True,
        seed=3,
    )
    run_dir = Path(options.run_dir)

    def on_step(state: object) -> None:
        print(f"step {state.step}", flush=True)
        if options.step_delay:
            time.sleep(options.step_delay)

    try:
        with RunLock(run_dir):
            result = fit(
                model,
                optax.adam(schedule),
                values[:2560],
                loss=reconstruction_example_loss,
                labor=LaborArray(executor=options.executor),
                spec=spec,
                eval_examples=values[2560:],
                checkpoint_dir=run_dir / "checkpoints",
                metrics_path=run_dir / "metrics.jsonl",
                stop_at=options.stop_at,
                on_step=on_step,
            )
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr, flush=True)
        sys.exit(stop.exit_status)
    except LiamError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(
        json.dumps(
            {
                "devices": jax.device_count(),
                "step": result.state.step,
                "digest": result.digest(),
                "resumed_from": result.resumed_from,
                "skipped": list(result.skipped_checkpoints),
                "losses": [[r["step"], r.get("loss"), r.get("eval_loss")] for r in result.history],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
