"""Write ``examples/metrics.csv``: four weeks of realistic operational metrics of four hosts.

    .venv/bin/python examples/make_metrics.py            # (re)writes examples/metrics.csv
    .venv/bin/python examples/make_metrics.py out.csv    # somewhere else

The file is a pure function of this script (``tests/test_readers.py`` checks that it
reproduces the committed CSV byte for byte). Columns:

* ``timestamp``: epoch seconds (UTC), every 5 minutes from Monday 2026-01-05 00:00 for 28 days;
* ``host``: ``api1``, ``db1``, ``web1``, ``web2`` (one row per host and step);
* ``cpu`` (percent, 1 decimal), ``latency_ms`` (integer), ``errors`` (count per step): a
  daily cycle (peak at 14:00 UTC) and a weekly one (quieter weekends), per-host levels and
  noise;
* ``incident``: ``0`` = none, otherwise the kind of a labelled incident:
  ``cpu_saturation`` (web2 pinned near 100% for 2.5 h, latency up), ``latency_spike``
  (api1's latency five times higher for 30 minutes, errors up), ``dropout`` (db1 reports
  zeros for 2 h), ``level_shift`` (web1's cpu and latency a level higher for a day).

Some cells are missing (about 0.3%, written empty), and web1 sends no rows for 30 minutes
on day 5 (a gap: the reader masks those steps). Randomness comes from uniform draws of
PCG64 only (normals by Box-Muller), whose streams numpy keeps stable.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 2026
START_S = 1_767_571_200  # 2026-01-05T00:00:00Z, a Monday
STEP_S = 300
DAYS = 28
HOSTS = ("api1", "db1", "web1", "web2")
CPU_BASE = np.array([40.0, 30.0, 35.0, 45.0])
LATENCY_BASE = np.array([60.0, 15.0, 35.0, 35.0])
STEPS_PER_DAY = 86_400 // STEP_S


def _normal(uniform: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normals by Box-Muller from two uniform draws."""
    u1 = 1.0 - uniform.random(shape)
    u2 = uniform.random(shape)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _window(day: int, hour: float, minutes: int) -> slice:
    first = day * STEPS_PER_DAY + int(hour * 3600) // STEP_S
    return slice(first, first + minutes * 60 // STEP_S)


def make_frame() -> pd.DataFrame:
    """The metrics as a DataFrame (rows: time-major, hosts in order; before gaps are cut)."""
    rng = np.random.Generator(np.random.PCG64(SEED))
    n_steps, n_hosts = DAYS * STEPS_PER_DAY, len(HOSTS)
    seconds = START_S + STEP_S * np.arange(n_steps, dtype=np.int64)
    hour = (seconds % 86_400) / 3600.0
    weekday = ((seconds - START_S) // 86_400) % 7  # 0 = Monday
    daily = 0.5 + 0.5 * np.cos(2.0 * np.pi * (hour - 14.0) / 24.0)
    weekly = np.where(weekday >= 5, 0.55, 1.0)
    load = (0.25 + 0.75 * daily * weekly)[:, None]  # [steps, 1]

    cpu = CPU_BASE * (0.35 + 0.9 * load) + 2.5 * _normal(rng, (n_steps, n_hosts))
    latency = LATENCY_BASE * (1.0 + 0.8 * load) + 0.4 * cpu
    latency *= np.exp(0.08 * _normal(rng, (n_steps, n_hosts)))
    rate = 0.05 + 0.6 * load  # expected errors per step
    errors = (rng.random((n_steps, n_hosts, 6)) < (rate / 6.0)[:, :, None]).sum(axis=2)
    errors = errors.astype(np.float64)
    incident = np.zeros((n_steps, n_hosts), dtype=object)
    incident[:] = "0"

    api1, db1, web1, web2 = range(n_hosts)
    at = _window(9, 13.0, 150)  # day 9 (Wednesday) 13:00-15:30
    cpu[at, web2] = 97.0 + 3.0 * rng.random(at.stop - at.start)
    latency[at, web2] *= 3.0
    incident[at, web2] = "cpu_saturation"
    at = _window(15, 10.33, 30)  # day 15 (Tuesday) 10:20-10:50
    latency[at, api1] *= 5.0
    errors[at, api1] += 6.0 + np.floor(4.0 * rng.random(at.stop - at.start))
    incident[at, api1] = "latency_spike"
    at = _window(20, 2.0, 120)  # day 20 (Sunday) 02:00-04:00
    cpu[at, db1] = latency[at, db1] = errors[at, db1] = 0.0
    incident[at, db1] = "dropout"
    at = _window(24, 6.0, 24 * 60)  # day 24 (Friday) 06:00 to Saturday 06:00
    cpu[at, web1] += 15.0
    latency[at, web1] += 40.0
    incident[at, web1] = "level_shift"

    cpu = np.clip(cpu, 0.0, 100.0)
    frame = pd.DataFrame(
        {
            "timestamp": np.repeat(seconds, n_hosts),
            "host": np.tile(np.array(HOSTS, dtype=object), n_steps),
            "cpu": np.round(cpu, 1).ravel(),
            "latency_ms": np.round(latency).ravel(),
            "errors": errors.ravel(),
            "incident": incident.ravel(),
        }
    )
    for column in ("cpu", "latency_ms", "errors"):
        missing = rng.random(len(frame)) < 0.003
        frame.loc[missing & (frame["incident"] == "0").to_numpy(), column] = np.nan
    gap = _window(5, 11.0, 30)  # day 5 (Saturday) 11:00-11:30: web1 sends nothing
    rows = np.arange(gap.start, gap.stop) * n_hosts + web1
    return frame.drop(index=rows).reset_index(drop=True)


def write(path: Path) -> None:
    """Write the CSV to ``path`` (integers without decimals, missing cells empty)."""
    frame = make_frame()
    for column in ("latency_ms", "errors"):
        frame[column] = frame[column].astype("Int64")
    frame.to_csv(path, index=False, lineterminator="\n", float_format="%.1f")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("metrics.csv"))
