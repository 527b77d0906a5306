"""The training job: train a model under ALDA on a configured mesh, with checkpoints.

.venv/bin/python experiments/train.py experiment=anomaly                 # autoencoder, precision/recall/F1
.venv/bin/python experiments/train.py experiment=anomaly tracking=mlflow # also an MLflow store (SQLite)
.venv/bin/python experiments/train.py model=mlp_classifier optim=adamw_cosine
.venv/bin/python experiments/train.py -m mesh=cpu1,cpu8 experiment=anomaly   # same digests on every mesh

Started again with the same `hydra.run.dir`, a run resumes from its newest usable checkpoint.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from liam_core.config import CONFIG_PATH, run_hydra_job, train_settings
from liam_core.train import run_training


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    # Orbax logs every step of every save at INFO through absl; Hydra shows INFO by default.
    logging.getLogger("absl").setLevel(logging.WARNING)
    return run_hydra_job(cfg, __file__, train_settings, run_training, summary)


def summary(report: dict) -> str:
    training, mesh = report["training"], report["mesh"]
    lines = [
        f"trained {report['model']['name']} ({report['task']}) on {report['source']}: "
        f"{training['steps']} steps of {training['batch_size']} rows on {mesh['name']} "
        f"({mesh['devices']} devices, {mesh['executor']}), {training['steps_this_run']} this "
        f"run in {training['seconds']:.1f} s"
        + (f", resumed from step {training['resumed_from']}" if training["resumed_from"] else "")
        + (", stopped early" if training["stopped_early"] else ""),
        "summary: "
        + ", ".join(
            f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
            for name, value in report["summary"].items()
        ),
    ]
    explanations = report.get("anomalies", {}).get("explanations")
    if explanations and explanations["rows"]:
        top = explanations["rows"][0]
        metrics = ", ".join(f"{m['metric']} {m['attribution']:+.3g}" for m in top["top_metrics"])
        lines.append(f"top anomaly: row {top['row']} (score {top['score']:.3g}): {metrics}")
    for skipped in training["skipped_checkpoints"]:
        lines.append(f"skipped: {skipped}")
    lines.append(f"digest: {report['digest']}")
    lines.append(f"outputs: {report['outputs']['report']} (and plots beside it)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
