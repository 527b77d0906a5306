"""Build models by name from plain settings: what a Hydra ``_target_`` or an export bundle needs.

A constructor's ``key`` cannot come from a config file, so :func:`make_model` takes an
integer ``seed``. :func:`model_config` is the inverse: the name and settings that rebuild
a model's structure (its weights travel separately, see :func:`model_to_arrays`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import equinox as eqx
import jax

from .._checks import check_choice, check_fits_in_memory, check_int, memory_bytes
from .._errors import ConfigError, InvalidTypeError
from ._autoencoder import Autoencoder
from ._mlp import MLPClassifier, MLPRegressor

MODELS: Mapping[str, type[eqx.Module]] = MappingProxyType(
    {
        "mlp_regressor": MLPRegressor,
        "mlp_classifier": MLPClassifier,
        "autoencoder": Autoencoder,
    }
)


def make_model(name: str, *, seed: int = 0, **settings: Any) -> eqx.Module:
    """Build the model registered as ``name`` with ``settings``, initialized from ``seed``.

    Hydra usage (``conf/model/autoencoder.yaml``)::

        _target_: liam_core.models.make_model
        name: autoencoder
        in_features: 13
        latent: 3
        seed: 0

    Args:
        name: one of ``mlp_regressor``, ``mlp_classifier``, ``autoencoder``.
        seed: a non-negative int; the key is ``jax.random.key(seed)``.
        **settings: the constructor's arguments, by name (``in_features``, ``width``, ...).

    Returns:
        The model.

    Raises:
        ConfigError: unknown ``name``, unknown or missing settings, or a setting out of range.

    Example:
        >>> from liam_core.models import make_model, model_config
        >>> model = make_model("mlp_classifier", in_features=4, n_classes=3, width=8)
        >>> model_config(model)
        {'name': 'mlp_classifier', 'in_features': 4, 'n_classes': 3, 'width': 8, 'depth': 2, 'activation': 'gelu'}
    """
    name = check_choice(name, "name", MODELS, owner="make_model")
    seed = check_int(seed, "seed", minimum=0, owner="make_model")
    cls = MODELS[name]
    parameters = {p: v for p, v in inspect.signature(cls).parameters.items() if p != "key"}
    unknown = sorted(set(settings) - set(parameters))
    if unknown:
        raise ConfigError(
            f"make_model: {name} has no setting {unknown}; its settings are {list(parameters)}"
        )
    missing = [
        p
        for p, v in parameters.items()
        if v.default is inspect.Parameter.empty and p not in settings
    ]
    if missing:
        raise ConfigError(f"make_model: {name} needs the settings {missing}")
    _check_size(settings)
    return cls(**settings, key=jax.random.key(seed))


_SIZES = ("in_features", "width", "depth", "latent", "out_features", "n_classes")


def _check_size(settings: Mapping[str, Any]) -> None:
    """Refuse sizes whose weights would not fit in memory, naming the largest setting.

    A layer of ``width=10**12`` (or ``depth=10**12`` layers) would otherwise be allocated,
    or looped over, before anything says it is too large. Types and ranges are left to the
    constructors, which check each setting.
    """
    sizes = {
        key: int(value)
        for key, value in settings.items()
        if key in _SIZES and isinstance(value, int) and not isinstance(value, bool) and value > 0
    }
    if not sizes:
        return
    if "depth" in sizes:
        check_int(sizes["depth"], "depth", minimum=0, maximum=_MAX_DEPTH, owner="make_model")
    width = sizes.get("width", 1)
    ends = sum(sizes.get(key, 0) for key in ("in_features", "latent", "out_features", "n_classes"))
    # Each layer's weights and biases in float32, twice (an autoencoder has two halves).
    n_bytes = 8 * (ends * width + sizes.get("depth", 0) * (width * width + width) + ends)
    if n_bytes > memory_bytes():
        largest = max(sizes, key=lambda key: sizes[key])
        check_fits_in_memory(
            n_bytes,
            largest,
            f"the model's weights ({sizes})",
            owner="make_model",
        )


_MAX_DEPTH = 10_000  # layers: deeper stacks are built one Python object per layer


def model_config(model: eqx.Module) -> dict[str, Any]:
    """The registry name and the settings of a model: ``make_model(**config)`` rebuilds it.

    Args:
        model: a model from :data:`MODELS`.

    Returns:
        A JSON-ready dict ``{"name": ..., <setting>: <value>, ...}``; weights are not included.

    Raises:
        InvalidTypeError: ``model`` is not one of the registered classes.

    Example:
        >>> import jax
        >>> from liam_core.models import Autoencoder, model_config
        >>> model_config(Autoencoder(8, key=jax.random.key(0)))["latent"]
        2
    """
    for name, cls in MODELS.items():
        if type(model) is cls:
            settings = {
                field.name: getattr(model, field.name)
                for field in dataclasses.fields(model)
                if field.metadata.get("static", False)
            }
            return {"name": name, **settings}
    raise InvalidTypeError(
        f"model_config: `model` must be one of {[c.__name__ for c in MODELS.values()]}, "
        f"got {type(model).__name__}"
    )
