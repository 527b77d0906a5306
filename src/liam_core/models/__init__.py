"""Equinox models for metrics, their losses, explanations and flat weights.

Convention: every model works on **one example** ``[in_features]`` (the Equinox way); map it
over a batch ``[batch, in_features]`` with ``jax.vmap(model)``. A batch, or an example with
the wrong number of features, passed to a model raises :class:`~liam_core.ShapeError` at
trace time naming both shapes. The per-example losses (``*_example_loss``) are what a
trainer averages; the batch losses are their ``jax.vmap`` over checked batches, one loss
per row.
"""

from ._autoencoder import Autoencoder as Autoencoder
from ._autoencoder import Standardization as Standardization
from ._explain import Quadrature as Quadrature
from ._explain import integrated_gradients as integrated_gradients
from ._losses import cross_entropy_example_loss as cross_entropy_example_loss
from ._losses import cross_entropy_loss as cross_entropy_loss
from ._losses import mse_loss as mse_loss
from ._losses import reconstruction_example_loss as reconstruction_example_loss
from ._losses import reconstruction_loss as reconstruction_loss
from ._losses import squared_error_example_loss as squared_error_example_loss
from ._mlp import Activation as Activation
from ._mlp import MLPClassifier as MLPClassifier
from ._mlp import MLPRegressor as MLPRegressor
from ._registry import MODELS as MODELS
from ._registry import make_model as make_model
from ._registry import model_config as model_config
from ._servable import Output as Output
from ._servable import Servable as Servable
from ._servable import model_weights as model_weights
from ._servable import rebuild as rebuild
from ._weights import ModelSkeleton as ModelSkeleton
from ._weights import model_from_arrays as model_from_arrays
from ._weights import model_to_arrays as model_to_arrays
from ._weights import trainable_filter as trainable_filter
