"""Relative pose of the current frame against its reference.

Mono: essential matrix RANSAC on normalised coordinates and pose recovery (unit
translation). Stereo: left-right matches triangulated per frame; PnP RANSAC
between the reference's 3D points and the current left keypoints (metric).
``inlier_mask`` runs over the valid matches in ``Matches.pairs()`` order
(ascending current keypoint index).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..geometry.epipolar import essential_pose, median_parallax
from ..geometry.pnp import solve_pnp
from ..geometry.triangulation import triangulate
from ..matching.types import Matches
from .camera import StereoCalibration
from .types import RelativePose

if TYPE_CHECKING:
    from .pipeline import View


def _mean_focal(*views: "View") -> float:
    return float(np.mean([v.intrinsics.focal for v in views]))


def mono_pose(ref: "View", cur: "View", matches: Matches, cfg: Mapping[str, Any]) -> RelativePose:
    idx_cur, idx_ref, _ = matches.pairs()
    n = len(idx_cur)
    pose = RelativePose(scale_known=False, num_matches=n, inlier_mask=np.zeros(n, bool))
    if ref.normalized is None or cur.normalized is None:
        pose.status = "no intrinsics (no CameraInfo and no camera in the config)"
        return pose
    if n < cfg["min_matches"]:
        pose.status = f"too few matches ({n} < {cfg['min_matches']})"
        return pose
    focal = _mean_focal(ref, cur)
    p_ref, p_cur = ref.normalized[idx_ref], cur.normalized[idx_cur]
    flow = float(np.median(np.linalg.norm(p_cur - p_ref, axis=1))) * focal
    if flow < cfg["min_parallax_px"]:  # the essential matrix is undefined without motion
        pose.status = (
            f"degenerate motion: standstill (median flow {flow:.2f} px < "
            f"{cfg['min_parallax_px']} px)"
        )
        return pose
    est = essential_pose(
        p_ref,
        p_cur,
        cfg["ransac_threshold_px"] / focal,
        cfg["ransac_confidence"],
        cfg["ransac_max_iters"],
        cfg["essential_method"],
    )
    if est is None:
        pose.status = "essential matrix estimation failed"
        return pose
    pose.rotation, pose.translation = est.rotation, est.translation
    pose.inlier_mask = est.inlier_mask
    pose.num_inliers = int(est.inlier_mask.sum())
    if pose.num_inliers < cfg["min_matches"]:
        pose.status = f"too few inliers ({pose.num_inliers} < {cfg['min_matches']})"
        return pose
    parallax = (
        median_parallax(p_ref[est.inlier_mask], p_cur[est.inlier_mask], est.rotation) * focal
    )
    if parallax < cfg["min_parallax_px"]:
        pose.status = (
            f"degenerate motion: no parallax (median {parallax:.2f} px < "
            f"{cfg['min_parallax_px']} px; pure rotation or standstill)"
        )
        return pose
    pose.valid, pose.status = True, "ok"
    return pose


def triangulate_stereo(
    left: "View", right: "View", matches: Matches, calib: StereoCalibration, cfg: Mapping[str, Any]
) -> np.ndarray:
    """(N_left, 3) points in the left camera frame, NaN where no good stereo match."""
    points = np.full((len(left.features), 3), np.nan)
    idx_l, idx_r, _ = matches.pairs()
    if len(idx_l) == 0 or left.normalized is None or right.normalized is None:
        return points
    tri = triangulate(left.normalized[idx_l], right.normalized[idx_r], calib.T_right_left)
    focal = min(calib.left.focal, calib.right.focal)
    max_depth = focal * calib.baseline / cfg["stereo_min_disparity_px"]
    good = (
        tri.valid
        & (tri.reprojection * focal < cfg["stereo_max_reprojection_px"])
        & (tri.points[:, 2] < max_depth)
    )
    points[idx_l[good]] = tri.points[good]
    return points


def stereo_pose(
    ref: "View", cur: "View", matches: Matches, cfg: Mapping[str, Any], calibrated: bool
) -> RelativePose:
    idx_cur, idx_ref, _ = matches.pairs()
    n = len(idx_cur)
    pose = RelativePose(scale_known=True, num_matches=n, inlier_mask=np.zeros(n, bool))
    if not calibrated or ref.points3d is None or cur.normalized is None:
        pose.status = "no stereo calibration (T_right_left, rectified P or baseline)"
        return pose
    if n < cfg["min_matches"]:
        pose.status = f"too few matches ({n} < {cfg['min_matches']})"
        return pose
    X = ref.points3d[idx_ref]
    has3d = np.all(np.isfinite(X), axis=1)
    if has3d.sum() < cfg["min_matches"]:
        pose.status = (
            f"too few matches with stereo depth ({int(has3d.sum())} < {cfg['min_matches']})"
        )
        return pose
    est = solve_pnp(
        X[has3d],
        cur.normalized[idx_cur][has3d],
        cfg["pnp_threshold_px"] / cur.intrinsics.focal,
        cfg["pnp_confidence"],
        cfg["pnp_max_iters"],
    )
    if est is None:
        pose.status = "PnP RANSAC failed"
        return pose
    mask = np.zeros(n, bool)
    mask[np.flatnonzero(has3d)[est.inlier_mask]] = True
    pose.rotation, pose.translation, pose.inlier_mask = est.rotation, est.translation, mask
    pose.num_inliers = int(mask.sum())
    pose.covariance = est.covariance
    if pose.num_inliers < cfg["min_matches"]:
        pose.status = f"too few PnP inliers ({pose.num_inliers} < {cfg['min_matches']})"
        return pose
    pose.valid, pose.status = True, "ok"
    return pose
