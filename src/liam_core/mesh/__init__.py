"""Neural Mesh, low layer: device-mesh topologies (``MeshSpec``) and multi-process start-up."""

from ._distributed import DEFAULT_HEARTBEAT_TIMEOUT_S as DEFAULT_HEARTBEAT_TIMEOUT_S
from ._distributed import DistributedInfo as DistributedInfo
from ._distributed import distributed as distributed
from ._topology import EXECUTORS as EXECUTORS
from ._topology import PLATFORMS as PLATFORMS
from ._topology import MeshSpec as MeshSpec
from ._topology import ProcessSpec as ProcessSpec
from ._topology import configure_backend as configure_backend
