"""SPEC section 4 per-frame metrics against the reference frame.

- ``num_kp``: keypoints of the current image;
- ``match_prec`` = matches / current keypoints (0 when there are no keypoints);
- ``outlier_prec`` = outliers / matches (1 when there are no matches); a match is
  an outlier when the current keypoint lies farther than ``f_rej_th`` pixels
  from the epipolar line of its reference keypoint under a fundamental matrix
  estimated by RANSAC (threshold ``f_rej_th``) on all matches, in original
  image pixels. With fewer than 8 matches no fundamental matrix can be
  estimated and every match counts as an outlier (none can be verified).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..geometry.epipolar import epipolar_line_distance, fundamental_ransac
from .types import FrameMetrics


def epipolar_outliers(
    ref_points: np.ndarray, cur_points: np.ndarray, f_rej_th: float, confidence: float = 0.99
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(outlier mask over the matches, fundamental matrix or None)."""
    n = len(ref_points)
    F = fundamental_ransac(ref_points, cur_points, f_rej_th, confidence)
    if F is None:
        return np.ones(n, bool), None
    return epipolar_line_distance(F, ref_points, cur_points) > f_rej_th, F


def frame_metrics(
    num_kp: int,
    ref_points: np.ndarray,
    cur_points: np.ndarray,
    f_rej_th: float,
    confidence: float = 0.99,
    num_inliers: int = 0,
) -> tuple[FrameMetrics, np.ndarray]:
    """Metrics of one frame from its keypoint count and the matched point pairs
    (pixels, reference and current); also returns the outlier mask."""
    num_matches = int(len(cur_points))
    outliers, _ = epipolar_outliers(ref_points, cur_points, f_rej_th, confidence)
    metrics = FrameMetrics(
        num_kp=int(num_kp),
        num_matches=num_matches,
        match_prec=float(num_matches / num_kp) if num_kp > 0 else 0.0,
        outlier_prec=float(outliers.sum() / num_matches) if num_matches > 0 else 1.0,
        num_inliers=int(num_inliers),
    )
    return metrics, outliers
