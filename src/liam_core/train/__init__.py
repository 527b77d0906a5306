"""Training under ALDA: deterministic data-parallel steps, checkpoints, tracking, the job.

A step is :meth:`LaborArray.value_and_grad` of a per-example loss plus an optax update, so
a run gives the same bytes on 1, 2 or 8 devices; checkpoints (orbax, no pickle) hold the
parameters, optimizer state, step, RNG and data position, so a run killed at any step, or
stopped on 8 devices and resumed on 2, ends with the same bytes as one that never stopped.
The job (:func:`run_training`) trains each kind of model for its :class:`Task`, which
chooses the per-example loss and what is measured.

A run folder takes one process at a time (:class:`RunLock`); its checkpoints carry the
:func:`fingerprint` of the run that wrote them, and ``train.resume`` (:data:`ResumePolicy`)
says whether a run with another one resumes (:class:`ResumeError` by default). SIGINT and
SIGTERM stop training between steps with a checkpoint (:class:`TrainingInterrupted`).
"""

from .._errors import CheckpointError as CheckpointError
from .._errors import ResumeError as ResumeError
from .._errors import RunLockedError as RunLockedError
from .._evidence import detection_quality as detection_quality
from ._anomaly import anomaly_scores as anomaly_scores
from ._anomaly import explain_top_anomalies as explain_top_anomalies
from ._checkpoint import Checkpoints as Checkpoints
from ._checkpoint import Restored as Restored
from ._data import TrainData as TrainData
from ._interrupt import TrainingInterrupted as TrainingInterrupted
from ._job import TrackingSpec as TrackingSpec
from ._job import TrainSettings as TrainSettings
from ._job import run_training as run_training
from ._loop import TrainResult as TrainResult
from ._loop import fit as fit
from ._run_dir import RESUMABLE as RESUMABLE
from ._run_dir import RunLock as RunLock
from ._run_dir import fingerprint as fingerprint
from ._spec import ResumePolicy as ResumePolicy
from ._spec import TrainSpec as TrainSpec
from ._state import TrainState as TrainState
from ._step import TrainStep as TrainStep
from ._tasks import TASKS as TASKS
from ._tasks import AnomalyDetection as AnomalyDetection
from ._tasks import Evaluation as Evaluation
from ._tasks import Prepared as Prepared
from ._tasks import Regression as Regression
from ._tasks import ShiftClassification as ShiftClassification
from ._tasks import Split as Split
from ._tasks import Task as Task
from ._tasks import TaskSpec as TaskSpec
from ._tasks import task_for as task_for
from ._tracking import MetricsLog as MetricsLog
from ._tracking import MlflowTracker as MlflowTracker
from ._tracking import TrackingKind as TrackingKind
from ._tracking import flatten_params as flatten_params
