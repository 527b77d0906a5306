"""The command line: ``liam-core analyze ...``, ``liam-core train ...``, ``liam-core serve ...``.

Each subcommand is a Hydra app over the configs shipped in the package (``liam_core.conf``),
the same app ``experiments/analyze.py`` and ``experiments/train.py`` run, so after
``pip install liam-core`` the jobs run without the repository::

    liam-core analyze mesh=cpu1 experiment=small
    liam-core train experiment=anomaly tracking=mlflow
    liam-core serve serve.repository=models
    liam-core train --help        # that app's groups and its composed config

``python -m liam_core ...`` is the same command. Like :mod:`liam_core.config`, this module is
Hydra's edge: the jobs themselves take typed settings.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import hydra
from omegaconf import DictConfig

from .analysis import run_analysis
from .config import (
    CONFIG_PATH,
    analyze_settings,
    run_hydra_job,
    serve_settings,
    train_settings,
)
from .serve import ServeSpec, run_server
from .train import run_training

USAGE = """usage: liam-core {analyze,train,serve} [group=option ...] [key=value ...] [-m] [--help]

  analyze   analyze metrics through ALDA (the main job); `liam-core analyze --help`
  train     train a model with checkpoints and export;  `liam-core train --help`
  serve     serve a model repository over HTTP (OIP v2); `liam-core serve --help`
"""


def _command(app: str) -> list[str]:
    """How a multirun parent starts one job of ``app`` as a single run in a child process."""
    return [sys.executable, "-m", "liam_core", app]


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="analyze")
def analyze(cfg: DictConfig) -> float | None:
    """The analysis job (``make run``): ``liam-core analyze [overrides]``."""
    return run_hydra_job(cfg, _command("analyze"), analyze_settings, run_analysis, analysis_summary)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def train(cfg: DictConfig) -> float | None:
    """The training job: ``liam-core train [overrides]``."""
    # Orbax logs every step of every save at INFO through absl: keep the log file readable.
    logging.getLogger("absl").setLevel(logging.WARNING)
    return run_hydra_job(cfg, _command("train"), train_settings, run_training, training_summary)


def _serve(spec: ServeSpec) -> dict[str, Any]:
    run_server(spec)
    return {"repository": spec.repository}


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="serve")
def serve(cfg: DictConfig) -> float | None:
    """The inference server: ``liam-core serve serve.repository=REPO [overrides]``."""
    return run_hydra_job(
        cfg, _command("serve"), serve_settings, _serve,
        lambda result: f"stopped serving {result['repository']}",
    )  # fmt: skip


APPS: dict[str, Callable[[], Any]] = {"analyze": analyze, "train": train, "serve": serve}


def main(argv: Sequence[str] | None = None) -> None:
    """The ``liam-core`` console script: pick the app, hand the rest of the line to Hydra."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        sys.exit(0 if args else 2)
    app = APPS.get(args[0])
    if app is None:
        print(f"error: unknown command {args[0]!r}; choose one of {sorted(APPS)}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"liam-core {args[0]}", *args[1:]]
    app()


def analysis_summary(results: dict) -> str:
    """The lines the analysis prints when it is done."""
    patterns, anomalies = results["patterns"], results["anomalies"]
    peaks = results["spectrum"].get(results["metrics"][0], [])
    periods = ", ".join(peak["period"] for peak in peaks)
    lines = [
        f"analyzed {results['n_rows']:,} rows of {results['source']} on "
        f"{results['mesh']['name']} ({len(results['mesh']['devices'])} devices, "
        f"{results['mesh']['executor']}) in {results['throughput']['seconds']:.1f} s",
        f"patterns: rank {patterns['rank']}, condition {patterns['condition_number']:.3g}, "
        f"effective rank {patterns['effective_rank']:.2f}",
        f"spectral peaks of {results['metrics'][0]}: {periods}",
        f"anomalies: {anomalies['n_flagged']} flagged"
        + (
            f", precision {anomalies['precision']:.2f}, recall {anomalies['recall']:.2f}, "
            f"F1 {anomalies['f1']:.2f}"
            if "precision" in anomalies
            else ""
        ),
    ]
    by_kind = anomalies.get("by_kind", {})
    if by_kind:
        lines.append(
            "by kind: "
            + ", ".join(
                f"{kind} P {q['precision']:.2f} R {q['recall']:.2f} (n {q['n']})"
                for kind, q in by_kind.items()
                if q["n"]
            )
        )
    for top in anomalies.get("top", [])[:3]:
        lines.append(
            f"top: {top['time']} {top['entity']} {top['metric']} score {top['score']:.1f} "
            f"({top['contribution']:.0%} of it)"
        )
    lines.append(f"digest: {results['digest']}")
    if "outputs" in results:
        lines.append(f"outputs: {results['outputs']['report']} (and plots beside it)")
    return "\n".join(lines)


def training_summary(report: dict) -> str:
    """The lines the training job prints when it is done."""
    training, mesh = report["training"], report["mesh"]
    lines = [
        f"trained {report['model']['name']} ({report['task']}) on {report['source']}: "
        f"{training['steps']} steps of {training['batch_size']} rows on {mesh['name']} "
        + (
            f"({mesh['devices']} devices, {mesh['executor']})"
            if training["steps_per_dispatch"] == 1
            else f"(its home device, {training['steps_per_dispatch']} steps per dispatch)"
        )
        + f", {training['steps_this_run']} this run in {training['seconds']:.1f} s"
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
