"""The Gaussian-derivative gradient filter of the Deep Image Matting reference (SPEC s.2).

MATLAB ``gaussgradient(IM, sigma)``: half size from ``eps = 0.01``, ``hx(y, x) = G(y) * G'(x)`` with
``G'(x) = -x G(x) / sigma^2``, then ``hx /= sqrt(sum hx^2)``; ``hy = hx'``. For sigma = 1.4 this is 9x9.

The kernel is separable (an outer product of ``G`` and ``G'``), which the fast path uses; the full 2-D kernel is
kept for reference implementations and tests.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["gaussian_derivative_kernel", "gaussian_derivative_factors", "kernel_half_size"]


def kernel_half_size(sigma: float, eps: float = 1e-2) -> int:
    """``ceil(sigma * sqrt(-2 log(sqrt(2 pi) sigma eps)))``: 4 for sigma = 1.4."""
    return int(math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * eps))))


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-(x**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))


@lru_cache(maxsize=8)
def gaussian_derivative_factors(sigma: float = 1.4, eps: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """1-D factors ``(along_y, along_x)`` (float64) with ``hx = outer(along_y, along_x)`` already normalised."""
    half = kernel_half_size(sigma, eps)
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    smooth = _gauss(offsets, sigma)
    derivative = -offsets * smooth / sigma**2
    # ||outer(a, b)||_F = ||a|| * ||b||, so normalising the factors normalises hx.
    smooth = smooth / np.sqrt(np.sum(smooth**2))
    derivative = derivative / np.sqrt(np.sum(derivative**2))
    smooth.setflags(write=False)
    derivative.setflags(write=False)
    return smooth, derivative


def gaussian_derivative_kernel(sigma: float = 1.4, eps: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """The full 2-D pair ``(hx, hy)`` (float64), ``hx[y, x] = G(y) G'(x)`` normalised, ``hy = hx.T``."""
    smooth, derivative = gaussian_derivative_factors(sigma, eps)
    hx = np.outer(smooth, derivative)
    return hx, hx.T.copy()
