"""SuperGlue configuration and match extraction from the assignment matrix.

Match extraction runs on the host in numpy so that every backend, including
those that only return the log-assignment matrix, gives the upstream matches.
"""

from __future__ import annotations


import numpy as np

from ..networks.config import SUPERGLUE_DEFAULTS, superglue_config  # noqa: F401
from .types import Matches


def matches_from_log_assignment(log_assignment: np.ndarray, match_threshold: float) -> Matches:
    """Mutual-argmax matches from the (m+1) x (n+1) log assignment (with bins)."""
    scores = np.asarray(log_assignment)[:-1, :-1]
    m, n = scores.shape
    if m == 0 or n == 0:
        return Matches.empty(m, n)
    indices0 = scores.argmax(axis=1)
    indices1 = scores.argmax(axis=0)
    max0 = scores[np.arange(m), indices0]
    mutual0 = indices1[indices0] == np.arange(m)
    mutual1 = indices0[indices1] == np.arange(n)
    mscores0 = np.where(mutual0, np.exp(max0), 0).astype(np.float32)
    mscores1 = np.where(mutual1, mscores0[indices1], 0).astype(np.float32)
    valid0 = mutual0 & (mscores0 > np.float32(match_threshold))
    valid1 = mutual1 & valid0[indices1]
    return Matches(
        np.where(valid0, indices0, -1).astype(np.int64),
        np.where(valid1, indices1, -1).astype(np.int64),
        mscores0,
        mscores1,
    )
