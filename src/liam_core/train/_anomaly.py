"""Anomaly detection with a trained autoencoder: scores of every row, and explanations.

The quality of the flags (precision, recall, F1) is :func:`liam_core.train.detection_quality`,
shared with the analysis job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ConfigError, ShapeError
from ..alda import LaborArray
from ..models import Autoencoder, integrated_gradients


def anomaly_scores(model: Autoencoder, x: Any, *, labor: LaborArray) -> np.ndarray:
    """Every row's anomaly score (its reconstruction error) through ``LaborArray.map``.

    Example:
        >>> import jax, numpy as np
        >>> from liam_core.alda import LaborArray
        >>> from liam_core.models import Autoencoder
        >>> from liam_core.train import anomaly_scores
        >>> model = Autoencoder(3, width=4, key=jax.random.key(0))
        >>> x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
        >>> scores = anomaly_scores(model, x, labor=LaborArray(2))
        >>> scores.shape, bool(np.allclose(scores, jax.vmap(model.anomaly_score)(x)))
        ((5,), True)
    """
    if not isinstance(model, Autoencoder):
        raise ConfigError(
            f"anomaly_scores: `model` must be an Autoencoder, got {type(model).__name__}; "
            "use model=autoencoder"
        )

    def score(rows: jax.Array) -> jax.Array:
        return jax.vmap(model.anomaly_score)(rows)

    return np.asarray(labor.map(score, np.asarray(x, np.float32)))


def _distinct_top(x: np.ndarray, scores: np.ndarray, top: int) -> np.ndarray:
    """The rows of the ``top`` highest scores, skipping rows equal to one already taken.

    A dropout gives many identical rows (every metric reads 0) with the same score; one of
    them explains them all, and the others would crowd out every other kind of anomaly.
    """
    chosen: list[int] = []
    seen: set[bytes] = set()
    for row in np.argsort(-scores, kind="stable"):
        key = x[row].tobytes()
        if key not in seen:
            seen.add(key)
            chosen.append(int(row))
            if len(chosen) == top:
                break
    return np.asarray(chosen, dtype=np.int64)


def explain_top_anomalies(
    model: Autoencoder,
    x: np.ndarray,
    scores: np.ndarray,
    metric_names: Sequence[str],
    *,
    top: int = 10,
    steps: int = 64,
    top_metrics: int = 3,
    anomaly: np.ndarray | None = None,
) -> dict[str, Any]:
    """Integrated-gradients attributions of the ``top`` highest anomaly scores (distinct rows).

    The baseline is the model's normalization mean (the origin of its standardized space),
    so each row's attributions add up to ``score(row) - score(mean)``. With the ground
    truth ``anomaly`` (``[rows, metrics]`` codes, 0 = none) each explained row also lists
    its truly anomalous metrics, and ``top_metric_hit_rate`` is the share of explained
    true anomalies whose most attributed metric is one of them.

    Returns:
        ``{"rows": [...], "top_metric_hit_rate": float | None, ...}``; each row has its
        index, score, top metrics with their attributions, and (with truth) its anomalous
        metrics.
    """
    names = list(metric_names)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ShapeError(
            f"explain_top_anomalies: `x` must be [rows, {len(names)}] for {names}, got shape "
            f"{x.shape}"
        )
    order = _distinct_top(x, scores, top)
    attributions = np.asarray(
        integrated_gradients(
            model.anomaly_score, jnp.asarray(x[order]), model.baseline, steps=steps
        )
    )
    rows, hits, judged = [], 0, 0
    for row, attribution in zip(order, attributions, strict=True):
        ranked = np.argsort(-np.abs(attribution), kind="stable")[:top_metrics]
        entry: dict[str, Any] = {
            "row": int(row),
            "score": float(scores[row]),
            "top_metrics": [
                {"metric": names[j], "attribution": float(attribution[j])} for j in ranked
            ],
            "attribution_sum": float(attribution.sum()),
        }
        if anomaly is not None:
            truly = [names[j] for j in np.flatnonzero(anomaly[row])]
            entry["anomalous_metrics"] = truly
            if 0 < len(truly) < len(names):  # a dropout (every metric) says nothing
                judged += 1
                hits += names[ranked[0]] in truly
        rows.append(entry)
    return {
        "method": "integrated_gradients",
        "baseline": "normalization mean",
        "steps": steps,
        "rows": rows,
        "top_metric_hit_rate": hits / judged if judged else None,
        "judged_rows": judged,
    }
