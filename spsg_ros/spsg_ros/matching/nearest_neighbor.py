"""Mutual nearest-neighbour matching with Lowe's ratio test on L2 descriptor distance.

The classic baseline (and the method of the seed report) to compare SuperGlue
against. SuperPoint descriptors have unit norm, but distances are computed in
full so any descriptors work.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..config import check, is_number, merge_config
from ..features.types import Features
from .types import Matches

NN_DEFAULTS: dict[str, Any] = {
    "ratio": 0.7,  # keep a match when best / second-best distance < ratio
    "mutual": True,  # and (if True) when the two keypoints are each other's nearest neighbour
}


def nn_config(user: Mapping[str, Any] | None = None) -> dict[str, Any]:
    cfg = merge_config(NN_DEFAULTS, user, "nn")
    check("nn", "ratio", cfg["ratio"], lambda v: is_number(v) and 0 < v <= 1, "a number in (0, 1]")
    check("nn", "mutual", cfg["mutual"], lambda v: isinstance(v, bool), "true or false")
    return cfg


def l2_distances(desc0: np.ndarray, desc1: np.ndarray) -> np.ndarray:
    """(N0, N1) Euclidean distances between descriptor columns (D, N0) and (D, N1)."""
    d0 = np.asarray(desc0, np.float64)
    d1 = np.asarray(desc1, np.float64)
    sq = np.sum(d0**2, axis=0)[:, None] + np.sum(d1**2, axis=0)[None, :] - 2.0 * d0.T @ d1
    return np.sqrt(np.maximum(sq, 0.0))


def match_nearest_neighbor(
    desc0: np.ndarray, desc1: np.ndarray, ratio: float = 0.7, mutual: bool = True
) -> Matches:
    """Matches of descriptor sets (D, N0) and (D, N1).

    A keypoint of image 0 is matched to its nearest neighbour j in image 1 when
    ``dist_best < ratio * dist_second`` (always true when image 1 has a single
    keypoint: there is no second neighbour) and, with ``mutual``, when j's
    nearest neighbour in image 0 is that keypoint. Scores are the cosine
    similarity ``1 - d^2 / 2`` of unit descriptors, clipped to [0, 1].
    """
    n0, n1 = desc0.shape[1], desc1.shape[1]
    if n0 == 0 or n1 == 0:
        return Matches.empty(n0, n1)
    dist = l2_distances(desc0, desc1)
    rows = np.arange(n0)
    if n1 >= 2:
        nearest2 = np.argpartition(dist, 1, axis=1)[:, :2]
        d_pair = dist[rows[:, None], nearest2]
        order = np.argsort(d_pair, axis=1)
        best = nearest2[rows, order[:, 0]]
        d_best, d_second = d_pair[rows, order[:, 0]], d_pair[rows, order[:, 1]]
        keep = d_best < ratio * d_second
    else:
        best = np.zeros(n0, np.int64)
        d_best = dist[:, 0]
        keep = np.ones(n0, bool)
    if mutual:
        keep &= np.argmin(dist, axis=0)[best] == rows
    matches0 = np.where(keep, best, -1).astype(np.int64)
    scores0 = np.where(keep, np.clip(1.0 - d_best**2 / 2.0, 0.0, 1.0), 0.0).astype(np.float32)
    matches1 = np.full(n1, -1, np.int64)
    scores1 = np.zeros(n1, np.float32)
    # without the mutual check two keypoints may share a target: keep the closer one
    for i in np.flatnonzero(keep)[np.argsort(-d_best[keep])]:
        matches1[best[i]] = i
        scores1[best[i]] = scores0[i]
    if not mutual:
        owner = matches1[best]
        lost = keep & (owner != rows)
        matches0[lost] = -1
        scores0[lost] = 0.0
    return Matches(matches0, matches1, scores0, scores1)


class NearestNeighborMatcher:
    """Matcher with the same call signature as SuperGlueMatcher."""

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.config = nn_config(config)

    def __call__(self, features0: Features, features1: Features) -> Matches:
        return match_nearest_neighbor(
            features0.descriptors,
            features1.descriptors,
            self.config["ratio"],
            self.config["mutual"],
        )
