"""The edge artifact: the same model, preprocessing included, as ONNX for onnxruntime.

A device without Python JAX runs ``model.onnx`` with onnxruntime (C, C++, C#, Java, Python,
JavaScript, mobile builds), which needs neither jax nor liam-core. The forward function is
converted by ``jax2onnx`` with the weights as initializers and a symbolic batch dimension
``batch``; the outputs are the bundle's, by name, in the manifest's order.

Why ONNX rather than IREE (both were tried on this machine, batch-1 from Python, see the
README): onnxruntime was about 2.5x faster at batch 1 (13 us against 35 us p50), one 5 KB file
serves every batch size (IREE's safe path is one module per static batch size), and its
runtime is the most widely deployed one. The cost is at export time: jax2onnx's
dependencies (the ``edge`` extra).

Running it, in a process that imports neither jax nor liam-core::

    import numpy as np, onnxruntime as ort
    session = ort.InferenceSession("model/model.onnx", providers=["CPUExecutionProvider"])
    score, anomaly = session.run(["score", "anomaly"], {"x": rows.astype(np.float32)})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax

from .._errors import ConfigError
from ..models import Servable

OPSET = 21
"""ONNX opset: 18 or later (ReduceMean's axes as an input); 21 still loads in onnxruntime
1.20 (opset 23, jax2onnx's default, does not)."""


def _to_onnx() -> Any:
    """jax2onnx's converter, with only its plugins for JAX's own primitives loaded.

    Its first conversion imports every plugin (flax, equinox, examples: about 500 modules,
    8 s here); a servable's function is traced to lax primitives, which the ``jax`` plugins
    cover (2 s). A jax2onnx without that layout loads all of them, as it does by itself.
    """
    try:
        from jax2onnx import to_onnx
    except ImportError:
        raise ConfigError(
            "the edge artifact needs the optional package jax2onnx (pip install "
            "'liam-core[edge]'), or export with edge=False (export.edge=false)"
        ) from None
    try:
        from jax2onnx.plugins import plugin_system

        if not plugin_system._already_imported_plugins:
            root = Path(plugin_system.__file__).parent / "jax"
            plugin_system._import_tree(root, "jax2onnx.plugins.jax")
            plugin_system._already_imported_plugins = True
    except (ImportError, AttributeError):
        pass
    return to_onnx


def export_onnx(servable: Servable, path: Path) -> dict[str, Any]:
    """Write ``servable.forward`` as ONNX at ``path``; the manifest entry describing it."""
    to_onnx = _to_onnx()
    weights = {name: jax.numpy.asarray(value) for name, value in servable.weights.items()}
    names = sorted(servable.outputs)

    def forward(x: jax.Array) -> tuple[jax.Array, ...]:
        outputs = servable.forward(weights, x)
        return tuple(outputs[name] for name in names)

    to_onnx(
        forward,
        inputs=[("batch", servable.n_features)],
        model_name=servable.task,
        opset=OPSET,
        input_names=["x"],
        output_names=names,
        return_mode="file",
        output_path=str(path),
    )
    return {
        "file": path.name,
        "format": "onnx",
        "opset": OPSET,
        "inputs": ["x"],
        "outputs": names,
        "runtime": "onnxruntime >= 1.20",
    }
