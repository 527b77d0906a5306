"""The main job: analyze labor metrics through ALDA on a configured mesh.

python experiments/analyze.py                          # synthetic, 1e6 records, cpu8
python experiments/analyze.py mesh=cpu1 experiment=small
python experiments/analyze.py -m mesh=cpu1,cpu8,cpu4x2 # same digests on every mesh
"""

from __future__ import annotations

import subprocess
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from liam_core import LiamError
from liam_core.analysis import run_analysis
from liam_core.config import CONFIG_DIR, analyze_settings


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> dict | None:
    try:
        settings = analyze_settings(cfg)
    except LiamError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    hydra_config = HydraConfig.get()
    if hydra_config.mode == RunMode.MULTIRUN:
        # JAX fixes the device count when its backend starts, and Hydra's basic launcher
        # runs every job in this one process: run each job as a single run of its own.
        command = [sys.executable, __file__, *hydra_config.overrides.task]
        command.append(f"hydra.run.dir='{settings.output_dir}'")
        returncode = subprocess.call(command)
        if returncode:
            sys.exit(returncode)
        return None
    try:
        results = run_analysis(settings)
    except LiamError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(summary(results))
    return results


def summary(results: dict) -> str:
    patterns, anomalies = results["patterns"], results["anomalies"]
    peaks = results["spectrum"].get(results["metrics"][0], [])
    periods = ", ".join(f"{peak['period_hours']:.1f} h" for peak in peaks)
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
        f"digest: {results['digest']}",
    ]
    if "outputs" in results:
        lines.append(f"outputs: {results['outputs']['report']} (and plots beside it)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
