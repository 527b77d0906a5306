"""liam-core: a JAX-native array pipeline for operational metrics and signals."""

from importlib import metadata as _metadata

from . import alda as alda
from . import algebra as algebra
from . import data as data
from . import mesh as mesh
from . import models as models
from . import train as train
from ._digest import digest as digest
from ._errors import BundleError as BundleError
from ._errors import CheckpointError as CheckpointError
from ._errors import ConfigError as ConfigError
from ._errors import ConfigTypeError as ConfigTypeError
from ._errors import DataError as DataError
from ._errors import DataFileNotFoundError as DataFileNotFoundError
from ._errors import DistributedError as DistributedError
from ._errors import EmptyDataError as EmptyDataError
from ._errors import EmptyInputError as EmptyInputError
from ._errors import HashCollisionError as HashCollisionError
from ._errors import InvalidTypeError as InvalidTypeError
from ._errors import InvalidValueError as InvalidValueError
from ._errors import LiamError as LiamError
from ._errors import MissingMetricError as MissingMetricError
from ._errors import ResumeError as ResumeError
from ._errors import RunLockedError as RunLockedError
from ._errors import ShapeError as ShapeError
from ._errors import UnknownMetricError as UnknownMetricError
from .alda import LaborArray as LaborArray
from .alda import Plan as Plan
from .alda import plan_chunks as plan_chunks
from .algebra import BinaryAlgebra as BinaryAlgebra
from .engine import LaborIntelligenceEngine as LaborIntelligenceEngine
from .engine import Schema as Schema

__version__ = _metadata.version("liam-core")
