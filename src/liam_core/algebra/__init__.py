"""LIAM Binary Algebra: jitted, composable JAX operations on ``[time, metrics]`` arrays.

Every operation is a pure jitted function; stateful ones also exist as
:class:`Transform` factories in :mod:`liam_core.algebra.transforms`.
"""

from ._transform import Transform as Transform
from ._transform import chain as chain
from ._transform import identity as identity
from ._transform import stateless as stateless

# --- signal (algebra/_signal.py) ---
# --- end signal ---

# --- linalg and patterns (algebra/_linalg.py) ---
# --- end linalg ---

# --- binary codes (algebra/_binary.py) ---
# --- end binary ---

# --- drift statistics (algebra/_stats.py) ---
# --- end stats ---
