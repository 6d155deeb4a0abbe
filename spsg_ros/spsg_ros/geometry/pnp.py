"""Metric pose from 3D-2D correspondences: PnP RANSAC, refinement, covariance.

Image points are normalised (K^-1 p, undistorted), so the camera matrix is the
identity and thresholds are pixels divided by the focal length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

MIN_PNP_POINTS = 6


@dataclass
class PnPPose:
    rotation: np.ndarray  # 3x3, X_cam = R @ X_obj + t
    translation: np.ndarray  # (3,) metric
    inlier_mask: np.ndarray  # (N,) bool
    covariance: Optional[np.ndarray]  # 6x6 over (tx, ty, tz, rx, ry, rz) or None


def solve_pnp(
    points3d: np.ndarray,
    points2d: np.ndarray,
    threshold: float,
    confidence: float = 0.999,
    max_iters: int = 1000,
) -> Optional[PnPPose]:
    """PnP RANSAC (EPnP hypotheses), then Levenberg-Marquardt on the inliers.

    ``threshold`` is the reprojection threshold in normalised units. None when
    there are too few points or RANSAC fails.
    """
    obj = np.ascontiguousarray(np.asarray(points3d, np.float64).reshape(-1, 3))
    img = np.ascontiguousarray(np.asarray(points2d, np.float64).reshape(-1, 2))
    if len(obj) < MIN_PNP_POINTS or len(obj) != len(img):
        return None
    K = np.eye(3)
    try:
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(
            obj,
            img,
            K,
            None,
            iterationsCount=max_iters,
            reprojectionError=threshold,
            confidence=confidence,
            flags=cv2.SOLVEPNP_EPNP,
        )
    except cv2.error:
        return None
    if not ok or inliers is None or len(inliers) < MIN_PNP_POINTS:
        return None
    mask = np.zeros(len(obj), bool)
    mask[inliers.ravel()] = True
    rvec, tvec = cv2.solvePnPRefineLM(obj[mask], img[mask], K, None, rvec, tvec)
    # re-select inliers with the refined pose (RANSAC's set came from a minimal model)
    residual = reprojection_errors(obj, img, rvec, tvec)
    refined = residual < threshold
    if refined.sum() >= MIN_PNP_POINTS:
        mask = refined
    R, _ = cv2.Rodrigues(rvec)
    cov = pose_covariance(obj[mask], img[mask], rvec, tvec)
    return PnPPose(R, tvec.ravel(), mask, cov)


def reprojection_errors(
    points3d: np.ndarray, points2d: np.ndarray, rvec: np.ndarray, tvec: np.ndarray
) -> np.ndarray:
    projected, _ = cv2.projectPoints(points3d, rvec, tvec, np.eye(3), None)
    return np.linalg.norm(projected.reshape(-1, 2) - points2d, axis=1)


def pose_covariance(
    points3d: np.ndarray, points2d: np.ndarray, rvec: np.ndarray, tvec: np.ndarray
) -> Optional[np.ndarray]:
    """Gauss-Newton covariance sigma^2 (J^T J)^-1 of the pose, ordered (t, r).

    sigma^2 is the residual variance of the inliers; r is the rotation vector,
    which for small rotations equals (roll, pitch, yaw) about x, y, z. None when
    the problem is under-determined or J^T J is singular.
    """
    n = len(points3d)
    if n * 2 <= 6:
        return None
    projected, jac = cv2.projectPoints(points3d, rvec, tvec, np.eye(3), None)
    residual = projected.reshape(-1, 2) - points2d
    J = np.hstack([jac[:, 3:6], jac[:, 0:3]])  # columns: tvec, rvec
    sigma2 = float(np.sum(residual**2)) / (2 * n - 6)
    JtJ = J.T @ J
    if np.linalg.cond(JtJ) > 1e12:
        return None
    cov = sigma2 * np.linalg.inv(JtJ)
    return 0.5 * (cov + cov.T)
