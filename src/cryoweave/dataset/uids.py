"""Item identifiers: 64-bit random uids, as CryoSPARC draws them."""

from __future__ import annotations

import numpy as np


def generate_uids(num: int = 0) -> np.ndarray:
    """``num`` random 64-bit uids from the operating system's entropy.

    >>> generate_uids(3).dtype
    dtype('uint64')
    """
    return np.random.default_rng().integers(0, 2**64, size=num, dtype=np.uint64, endpoint=False)
