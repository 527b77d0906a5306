"""Data sources, all yielding ``Batch``: synthetic telemetry, CSV/Parquet readers, bundled sets."""

from ._batch import Batch as Batch
from ._batch import concat_batches as concat_batches
from ._source import DataKind as DataKind
from ._source import DataSpec as DataSpec
from ._source import OpenedSource as OpenedSource
from ._source import open_source as open_source
from .bundled import BUNDLED as BUNDLED
from .bundled import BundledDataset as BundledDataset
from .bundled import BundledNanPolicy as BundledNanPolicy
from .bundled import load_bundled as load_bundled
from .readers import NanPolicy as NanPolicy
from .readers import read_csv as read_csv
from .readers import read_parquet as read_parquet
from .synthetic import ANOMALY_KINDS as ANOMALY_KINDS
from .synthetic import METRICS as METRICS
from .synthetic import SHIFTS as SHIFTS
from .synthetic import AnomalyEvents as AnomalyEvents
from .synthetic import SyntheticTelemetry as SyntheticTelemetry
