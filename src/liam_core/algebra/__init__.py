"""LIAM Binary Algebra: jitted, composable JAX operations on ``[time, metrics]`` arrays.

Every operation is a pure jitted function that fits and applies to the data it is given.
Fitting on one window and applying to another is the job of the :class:`Transform`
factories in :mod:`liam_core.algebra.transforms` (``init`` fits, ``apply`` applies).
The ``Literal`` types name the allowed values of the string settings.
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
from ._change import ChangeState as ChangeState
from ._change import initial_change_state as initial_change_state
from ._change import track_changes as track_changes
from ._convolution import ConvolveMode as ConvolveMode
from ._convolution import convolve as convolve
from ._facade import BinaryAlgebra as BinaryAlgebra
from ._linalg import PCAState as PCAState
from ._linalg import ProjectionKind as ProjectionKind
from ._linalg import WhiteningMethod as WhiteningMethod
from ._linalg import WhiteningState as WhiteningState
from ._linalg import cond as cond
from ._linalg import correlation as correlation
from ._linalg import covariance as covariance
from ._linalg import matrix_rank as matrix_rank
from ._linalg import pca as pca
from ._linalg import random_projection as random_projection
from ._linalg import random_projection_matrix as random_projection_matrix
from ._linalg import svd_patterns as svd_patterns
from ._linalg import whiten as whiten
from ._rolling import rolling_mean as rolling_mean
from ._rolling import rolling_std as rolling_std
from ._scaling import DetrendKind as DetrendKind
from ._scaling import StandardizeState as StandardizeState
from ._scaling import detrend as detrend
from ._scaling import standardize as standardize
from ._spectra import Average as Average
from ._spectra import Boundary as Boundary
from ._spectra import Scaling as Scaling
from ._spectra import SpectralDetrend as SpectralDetrend
from ._spectra import SpectrogramMode as SpectrogramMode
from ._spectra import WindowSpec as WindowSpec
from ._spectra import coherence as coherence
from ._spectra import csd as csd
from ._spectra import dominant_period as dominant_period
from ._spectra import istft as istft
from ._spectra import periodogram as periodogram
from ._spectra import spectrogram as spectrogram
from ._spectra import stft as stft
from ._spectra import welch as welch
from ._stats import KstestResult as KstestResult
from ._stats import energy_distance as energy_distance
from ._stats import ks_2samp as ks_2samp
from ._stats import ks_statistic as ks_statistic
from ._stats import psi as psi
from ._stats import wasserstein_1d as wasserstein_1d
from ._transform import Transform as Transform
from ._transform import chain as chain
from ._transform import identity as identity
from ._transform import stateless as stateless
