"""ALDA Labor Array: spread work over devices with results that are the same bytes on any topology.

A :class:`Plan` (pure numpy) cuts a batch into fixed chunks; a :class:`LaborArray` runs one
kernel per chunk on ``pmap`` or ``shard_map`` and adds partials in one canonical order, the
pairwise tree of :func:`reduce_tree`.
"""

from ._executors import Topology as Topology
from ._labor_array import ChunkedBatch as ChunkedBatch
from ._labor_array import LaborArray as LaborArray
from ._labor_array import SchedulerSpec as SchedulerSpec
from ._labor_array import in_program_value_and_grad as in_program_value_and_grad
from ._plan import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from ._plan import Plan as Plan
from ._plan import next_power_of_two as next_power_of_two
from ._plan import plan_chunks as plan_chunks
from ._tree import reduce_tree as reduce_tree
from ._tree import reduce_tree_streaming as reduce_tree_streaming
