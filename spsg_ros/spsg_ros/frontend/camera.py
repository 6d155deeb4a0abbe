"""Intrinsics and stereo calibration from CameraInfo (or the config's fallback camera).

Stereo calibration is looked up in this order:
1. ``T_right_left`` (general extrinsics, e.g. EuRoC): each camera's own K and D;
2. a right projection matrix with ``P[0, 3] != 0`` (rectified images, ROS
   convention ``P[0, 3] = -fx * baseline``): intrinsics from each P, no distortion;
3. a ``baseline`` (rectified): each camera's K and D, right camera at +x.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np

from ..geometry.triangulation import baseline_from_projection, rectified_extrinsics
from .config import camera_matrix
from .types import CameraInfo


class CalibrationError(ValueError):
    """Camera intrinsics or extrinsics are unusable; the message says why."""


@dataclass
class Intrinsics:
    K: np.ndarray
    D: np.ndarray

    @property
    def focal(self) -> float:
        return float((self.K[0, 0] + self.K[1, 1]) / 2.0)


@dataclass
class StereoCalibration:
    left: Intrinsics
    right: Intrinsics
    T_right_left: np.ndarray
    baseline: float


def camera_info_from_config(
    camera: Optional[Mapping[str, Any]], width: int, height: int
) -> Optional[CameraInfo]:
    if camera is None:
        return None
    return CameraInfo(
        K=camera_matrix(camera),
        width=width,
        height=height,
        D=np.asarray(camera["distortion"], np.float64),
        baseline=camera["baseline"],
    )


def _check_K(K: Any, what: str) -> np.ndarray:
    K = np.asarray(K, np.float64) if K is not None else None
    if (
        K is None
        or K.shape != (3, 3)
        or not np.all(np.isfinite(K))
        or K[0, 0] <= 0
        or K[1, 1] <= 0
    ):
        raise CalibrationError(f"{what} is not a valid camera matrix (3x3, fx, fy > 0)")
    return K


def _resized_K(K: np.ndarray, info: CameraInfo, width: int, height: int) -> np.ndarray:
    """K for the actual image size when the CameraInfo was calibrated at another size."""
    if not info.width or not info.height or (info.width, info.height) == (width, height):
        return K
    sx, sy = width / info.width, height / info.height
    S = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    return S @ K


def intrinsics(
    info: Optional[CameraInfo], width: int, height: int, use_projection: bool = False
) -> Optional[Intrinsics]:
    """K and D of a camera for an image of the given size; None without CameraInfo."""
    if info is None:
        return None
    if use_projection:
        P = np.asarray(info.P, np.float64).reshape(3, 4)
        K = _check_K(P[:, :3], "CameraInfo.P[:, :3]")
        D = np.zeros(0)
    else:
        K = _check_K(info.K, "CameraInfo.K")
        D = np.zeros(0) if info.D is None else np.asarray(info.D, np.float64).ravel()
        if not np.all(np.isfinite(D)):
            raise CalibrationError("CameraInfo.D holds NaN or infinite values")
    return Intrinsics(_resized_K(K, info, width, height), D)


def _rectified_P(info: Optional[CameraInfo]) -> bool:
    if info is None or info.P is None:
        return False
    P = np.asarray(info.P, np.float64)
    return P.size == 12 and np.all(np.isfinite(P)) and P.reshape(3, 4)[0, 3] != 0


def stereo_calibration(
    left: Optional[CameraInfo], right: Optional[CameraInfo], width: int, height: int
) -> Optional[StereoCalibration]:
    """Stereo calibration from the two CameraInfos; None when no extrinsics are known."""
    if left is None:
        return None
    right = right if right is not None else left
    T = next(
        (
            np.asarray(i.T_right_left, np.float64)
            for i in (right, left)
            if i.T_right_left is not None
        ),
        None,
    )
    if T is not None:
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise CalibrationError("CameraInfo.T_right_left is not a finite 4x4 matrix")
        baseline = float(np.linalg.norm(T[:3, 3]))
        return StereoCalibration(
            intrinsics(left, width, height), intrinsics(right, width, height), T, baseline
        )
    if _rectified_P(right):
        P_right = np.asarray(right.P, np.float64).reshape(3, 4)
        baseline = baseline_from_projection(P_right)
        use_left_P = left.P is not None and np.asarray(left.P).size == 12
        return StereoCalibration(
            intrinsics(left, width, height, use_projection=use_left_P),
            intrinsics(right, width, height, use_projection=True),
            rectified_extrinsics(baseline),
            abs(baseline),
        )
    baseline = next((i.baseline for i in (right, left) if i.baseline), None)
    if baseline is not None:
        return StereoCalibration(
            intrinsics(left, width, height),
            intrinsics(right, width, height),
            rectified_extrinsics(float(baseline)),
            abs(float(baseline)),
        )
    return None
