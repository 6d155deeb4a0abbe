"""SuperGlue configuration and match extraction from the assignment matrix.

Match extraction runs on the host in numpy so that every backend, including
those that only return the log-assignment matrix, gives the upstream matches.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..config import ConfigError, check, is_int, is_number, merge_config
from .types import Matches

SUPERGLUE_DEFAULTS: dict[str, Any] = {
    "descriptor_dim": 256,
    "keypoint_encoder": [32, 64, 128, 256],
    "GNN_layers": ["self", "cross"] * 9,
    "sinkhorn_iterations": 100,
    "match_threshold": 0.2,
}


def superglue_config(user: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merged and validated SuperGlue configuration."""
    cfg = merge_config(SUPERGLUE_DEFAULTS, user, "superglue")
    check("superglue", "descriptor_dim", cfg["descriptor_dim"], lambda v: is_int(v) and v > 0,
          "a positive integer")
    check("superglue", "sinkhorn_iterations", cfg["sinkhorn_iterations"],
          lambda v: is_int(v) and v >= 0, "an integer >= 0")
    check("superglue", "match_threshold", cfg["match_threshold"],
          lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
    check("superglue", "keypoint_encoder", cfg["keypoint_encoder"],
          lambda v: len(v) > 0 and all(is_int(c) and c > 0 for c in v), "a list of positive integers")
    layers = list(cfg["GNN_layers"])
    if not layers or any(name not in ("self", "cross") for name in layers):
        raise ConfigError(f"superglue.GNN_layers = {layers!r}: expected a list of 'self'/'cross'")
    cfg["keypoint_encoder"] = list(cfg["keypoint_encoder"])
    cfg["GNN_layers"] = layers
    return cfg


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
    return Matches(np.where(valid0, indices0, -1).astype(np.int64),
                   np.where(valid1, indices1, -1).astype(np.int64), mscores0, mscores1)
