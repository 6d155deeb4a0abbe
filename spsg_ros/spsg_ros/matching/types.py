"""Matching output between two keypoint sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Matches:
    """Upstream SuperGlue output for one pair.

    ``matches0[i]`` is the index in image 1 matched to keypoint i of image 0, or -1;
    ``matches1`` likewise the other way; ``scores0/1`` the matching confidence
    (0 where unmatched).
    """

    matches0: np.ndarray
    matches1: np.ndarray
    scores0: np.ndarray
    scores1: np.ndarray

    @classmethod
    def empty(cls, n0: int, n1: int) -> "Matches":
        return cls(
            np.full(n0, -1, np.int64),
            np.full(n1, -1, np.int64),
            np.zeros(n0, np.float32),
            np.zeros(n1, np.float32),
        )

    @property
    def num_matches(self) -> int:
        return int((self.matches0 > -1).sum())

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indices in image 0, indices in image 1, scores) of the valid matches."""
        idx0 = np.flatnonzero(self.matches0 > -1)
        return idx0, self.matches0[idx0], self.scores0[idx0]
