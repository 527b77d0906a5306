"""Run the benchmarks of ``benchmarks/`` from Hydra, each suite in its own process.

.venv/bin/python experiments/benchmark.py                                  # algebra, alda, train
.venv/bin/python experiments/benchmark.py suites=[alda] alda.rows=100000   # one quick suite
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SUITES = ("algebra", "alda", "train")


def command(suite: str, settings: dict, output_dir: Path) -> list[str]:
    """The command line of one suite: its settings as ``--flag value`` options."""
    argv = [sys.executable, str(BENCHMARKS / f"{suite}.py")]
    for name, value in settings.items():
        argv.append(f"--{name.replace('_', '-')}")
        argv.extend(str(item) for item in (value if isinstance(value, list) else [value]))
    return [*argv, "--out", str(output_dir / f"{suite}.json")]


# benchmark.yaml is read from the repository (it is not shipped: the benchmarks are not either).
@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
def main(cfg: DictConfig) -> None:
    plain = OmegaConf.to_container(cfg, resolve=True)
    unknown = sorted(set(plain["suites"]) - set(SUITES))
    if unknown:
        print(f"error: suites {unknown} are unknown; choose from {list(SUITES)}", file=sys.stderr)
        sys.exit(2)
    output_dir = Path(plain["paths"]["output_dir"])
    for suite in plain["suites"]:
        print(f"== {suite}", flush=True)
        returncode = subprocess.call(command(suite, plain.get(suite) or {}, output_dir))
        if returncode:
            print(f"error: benchmark {suite} exited with status {returncode}", file=sys.stderr)
            sys.exit(returncode)
    print(f"results: {output_dir}/<suite>.json")


if __name__ == "__main__":
    main()
