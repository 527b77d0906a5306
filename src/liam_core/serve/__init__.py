"""Deployment: export bundles, a model repository, an in-process predictor, an inference
server speaking the Open Inference Protocol (KServe v2), and an edge artifact (ONNX).

The road: a training run writes ``<run dir>/model/`` (:func:`export_bundle`); publishing
copies it into a repository as the next version (:class:`ModelRepository`); a
:class:`Predictor` loads a bundle and answers in microseconds; ``liam-core serve`` serves every
model of a repository over HTTP.
"""

from .._errors import BundleError as BundleError
from ._bundle import Bundle as Bundle
from ._bundle import export_bundle as export_bundle
from ._bundle import load_bundle as load_bundle
from ._bundle import reexport as reexport
from ._bundle import verify_bundle as verify_bundle
from ._export import ExportSpec as ExportSpec
from ._predictor import Predictor as Predictor
from ._predictor import batch_buckets as batch_buckets
from ._repository import ModelRepository as ModelRepository
from ._repository import check_model_name as check_model_name
from ._server import InferenceServer as InferenceServer
from ._server import ServeSpec as ServeSpec
from ._server import run_server as run_server
