"""Neural Mesh, low layer: device meshes (``build_mesh``, ``MeshSpec``), multi-process start-up."""

from ._distributed import DEFAULT_HEARTBEAT_TIMEOUT_S as DEFAULT_HEARTBEAT_TIMEOUT_S
from ._distributed import DistributedInfo as DistributedInfo
from ._distributed import distributed as distributed
from ._topology import Devices as Devices
from ._topology import Executor as Executor
from ._topology import MeshSpec as MeshSpec
from ._topology import Platform as Platform
from ._topology import ProcessSpec as ProcessSpec
from ._topology import build_mesh as build_mesh
from ._topology import configure_backend as configure_backend
