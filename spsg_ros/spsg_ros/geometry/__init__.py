"""Multi-view geometry with OpenCV and numpy: epipolar, stereo, PnP, errors."""

from .epipolar import (
    TwoViewPose,
    epipolar_line_distance,
    essential_pose,
    fundamental_ransac,
    median_parallax,
)
from .errors import (
    relative_pose,
    rotation_error_deg,
    translation_angle_deg,
    translation_relative_error,
)
from .pnp import PnPPose, pose_covariance, solve_pnp
from .triangulation import (
    Triangulation,
    baseline_from_projection,
    rectified_extrinsics,
    triangulate,
)

__all__ = [
    "TwoViewPose",
    "epipolar_line_distance",
    "essential_pose",
    "fundamental_ransac",
    "median_parallax",
    "relative_pose",
    "rotation_error_deg",
    "translation_angle_deg",
    "translation_relative_error",
    "PnPPose",
    "pose_covariance",
    "solve_pnp",
    "Triangulation",
    "baseline_from_projection",
    "rectified_extrinsics",
    "triangulate",
]
