"""Training under ALDA: deterministic data-parallel steps, checkpoints, tracking, the job.

A step is :meth:`LaborArray.value_and_grad` of a per-example loss plus an optax update, so
a run gives the same bytes on 1, 2 or 8 devices; checkpoints (orbax, no pickle) hold the
parameters, optimizer state, step, RNG and data position, so a run killed at any step, or
stopped on 8 devices and resumed on 2, ends with the same bytes as one that never stopped.
"""

from ._anomaly import anomaly_scores as anomaly_scores
from ._anomaly import detection_quality as detection_quality
from ._anomaly import explain_top_anomalies as explain_top_anomalies
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import Checkpoints as Checkpoints
from ._checkpoint import Restored as Restored
from ._data import TrainData as TrainData
from ._job import TaskSpec as TaskSpec
from ._job import TrackingSpec as TrackingSpec
from ._job import TrainSettings as TrainSettings
from ._job import run_training as run_training
from ._loop import TrainResult as TrainResult
from ._loop import fit as fit
from ._losses import EXAMPLE_LOSSES as EXAMPLE_LOSSES
from ._losses import example_loss_for as example_loss_for
from ._spec import TrainSpec as TrainSpec
from ._state import TrainState as TrainState
from ._step import TrainStep as TrainStep
from ._tracking import TRACKING as TRACKING
from ._tracking import MetricsLog as MetricsLog
from ._tracking import MlflowTracker as MlflowTracker
from ._tracking import flatten_params as flatten_params
