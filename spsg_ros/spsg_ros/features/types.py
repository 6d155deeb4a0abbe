"""Per-image SuperPoint output, in the upstream layout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Features:
    """Keypoints of one image as the network saw it.

    ``keypoints`` (N, 2) float32 as (x, y) = (col, row); ``scores`` (N,) float32;
    ``descriptors`` (D, N) float32, unit L2 norm per column (upstream layout);
    ``image_size`` (width, height) of the network input, which SuperGlue uses to
    normalise keypoints.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @classmethod
    def empty(cls, image_size: tuple[int, int], descriptor_dim: int = 256) -> "Features":
        return cls(
            np.zeros((0, 2), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((descriptor_dim, 0), np.float32),
            tuple(image_size),
        )

    def subset(self, index: np.ndarray) -> "Features":
        """Features restricted to ``index`` (kept in the given order)."""
        return Features(
            self.keypoints[index], self.scores[index], self.descriptors[:, index], self.image_size
        )
