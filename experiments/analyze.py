"""The main job: analyze labor metrics through ALDA on a configured mesh.

.venv/bin/python experiments/analyze.py                          # synthetic, 1e6 records, cpu8
.venv/bin/python experiments/analyze.py mesh=cpu1 experiment=small
.venv/bin/python experiments/analyze.py -m mesh=cpu1,cpu8,cpu4x2 # same digests on every mesh
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from liam_core.analysis import run_analysis
from liam_core.config import CONFIG_PATH, analyze_settings, run_hydra_job


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="analyze")
def main(cfg: DictConfig) -> float | None:
    return run_hydra_job(cfg, __file__, analyze_settings, run_analysis, summary)


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
