"""A tour of liam-core on real data bundled with statsmodels and scikit-learn.

Run with ``make demo`` (or ``python examples/demo.py``). Prints what it finds; writes nothing.
"""

from __future__ import annotations

import jax
import numpy as np

from liam_core import BinaryAlgebra, LaborIntelligenceEngine, Schema, digest
from liam_core.algebra import transforms
from liam_core.data import load_bundled


def main() -> None:
    # 1. The engine: the first lines a user runs (the README's quick start).
    engine = LaborIntelligenceEngine(dimensions=64)
    algebra = BinaryAlgebra()
    tensor = engine.ingest_labor_data(
        {"productivity": 85.5, "efficiency": 92.3, "quality": 88.7, "throughput": 120.0}
    )
    patterns = engine.analyze_intelligence_patterns(engine.compute_labor_matrix([tensor]))
    print(f"Rank: {patterns['rank']}, Condition: {patterns['condition_number']:.2f}")

    # 2. A real table through a schema: scikit-learn's wine measurements.
    wine = load_bundled("wine")
    schema_engine = LaborIntelligenceEngine(
        dimensions=len(wine.metric_names), schema=Schema(wine.metric_names)
    )
    matrix = schema_engine.ingest_batch(wine.columns())
    patterns = schema_engine.analyze_intelligence_patterns(matrix)
    print(
        f"wine {patterns['shape']}: rank {patterns['rank']}, "
        f"condition {patterns['condition_number']:.3g}, "
        f"effective rank {patterns['effective_rank']:.2f}"
    )
    standardized = schema_engine.compute_labor_matrix(matrix, standardize=True)
    projection, pca_state = algebra.pca(standardized, 3)
    ratios = ", ".join(f"{r:.3f}" for r in np.asarray(pca_state.explained_variance_ratio))
    print(f"wine PCA: explained variance ratio of 3 components [{ratios}]")

    # 3. Signals: yearly sunspots and weekly CO2 at Mauna Loa (statsmodels).
    sunspots = load_bundled("sunspots").values
    print(f"sunspots: dominant period {float(algebra.dominant_period(sunspots)[0]):.1f} years")
    co2 = load_bundled("co2", nan_policy="drop").values
    pipeline = transforms.detrend("linear") >> transforms.rolling_mean(window=4)
    smoothed = pipeline.apply(pipeline.init(co2), co2)
    period = float(algebra.dominant_period(smoothed)[0])
    print(f"co2: dominant period after detrending {period:.1f} weeks")

    # 4. Binary codes: nearest wines by Hamming distance between 256-bit sign hashes.
    hyperplanes = algebra.random_hyperplanes(13, 256, key=jax.random.key(0))
    codes = algebra.sign_hash(standardized, hyperplanes)
    _, neighbours = algebra.hamming_topk(codes[:3], codes, k=3)
    print(f"wine 256-bit codes: nearest of rows 0-2 {np.asarray(neighbours)[:, 1].tolist()}")

    # 5. Drift: the first and the second half of the detrended CO2 series.
    residual = np.asarray(algebra.detrend(co2))
    half = residual.shape[0] // 2
    ks = float(algebra.ks_statistic(residual[:half], residual[half:])[0])
    w1 = float(algebra.wasserstein_1d(residual[:half, 0], residual[half:, 0]))
    psi = float(algebra.psi(residual[:half], residual[half:])[0])
    print(f"co2 drift between halves: KS {ks:.3f}, Wasserstein {w1:.3f} ppm, PSI {psi:.3f}")

    print(f"digest of the wine PCA projection: {digest(projection)[:16]}")


if __name__ == "__main__":
    main()
