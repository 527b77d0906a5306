"""LIAM Binary Algebra: jitted, composable JAX operations on ``[time, metrics]`` arrays.

Every operation is a pure jitted function; stateful ones also exist as
:class:`Transform` factories in :mod:`liam_core.algebra.transforms`.
"""

from . import transforms as transforms
from ._binary import binary_rank as binary_rank
from ._binary import hamming as hamming
from ._binary import hamming_topk as hamming_topk
from ._binary import pack_bits as pack_bits
from ._binary import popcount as popcount
from ._binary import random_hyperplanes as random_hyperplanes
from ._binary import sign_hash as sign_hash
from ._binary import unpack_bits as unpack_bits
from ._binary import xor as xor
from ._facade import BinaryAlgebra as BinaryAlgebra
from ._linalg import PCAState as PCAState
from ._linalg import WhiteningState as WhiteningState
from ._linalg import cond as cond
from ._linalg import correlation as correlation
from ._linalg import covariance as covariance
from ._linalg import matrix_rank as matrix_rank
from ._linalg import pca as pca
from ._linalg import pca_fit as pca_fit
from ._linalg import pca_project as pca_project
from ._linalg import random_projection as random_projection
from ._linalg import random_projection_matrix as random_projection_matrix
from ._linalg import svd_patterns as svd_patterns
from ._linalg import whiten as whiten
from ._linalg import whitening_fit as whitening_fit
from ._signal import convolve as convolve
from ._signal import detrend as detrend
from ._signal import dominant_period as dominant_period
from ._signal import periodogram as periodogram
from ._signal import rolling_mean as rolling_mean
from ._signal import rolling_std as rolling_std
from ._signal import standardize as standardize
from ._signal import welch as welch
from ._stats import ks_statistic as ks_statistic
from ._stats import psi as psi
from ._stats import wasserstein_1d as wasserstein_1d
from ._transform import Transform as Transform
from ._transform import chain as chain
from ._transform import identity as identity
from ._transform import stateless as stateless
