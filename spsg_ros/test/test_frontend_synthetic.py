"""Pose accuracy on the procedural scene with known motion (real SuperPoint weights, NN matching).

TartanAir camera (640x480, f = 320, 0.25 m stereo baseline); the trajectory moves
about 0.15-0.2 m and rotates about 2 degrees per frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from spsg_ros.datasets.synthetic import (
    STEREO_BASELINE,
    TARTANAIR_K,
    TARTANAIR_SIZE,
    SyntheticScene,
    make_trajectory,
    right_camera_pose,
)
from spsg_ros.frontend import CameraInfo, Frame, Frontend
from spsg_ros.geometry import (
    relative_pose,
    rotation_error_deg,
    translation_angle_deg,
    translation_relative_error,
)

W, H = TARTANAIR_SIZE
N_FRAMES = 3


@pytest.fixture(scope="module")
def sequence():
    scene = SyntheticScene(seed=0)
    poses = make_trajectory(N_FRAMES, step=0.15, rotation_deg=2.0)
    left = [scene.render(p, TARTANAIR_K, W, H) for p in poses]
    right = [scene.render(right_camera_pose(p), TARTANAIR_K, W, H) for p in poses]
    return poses, left, right


@pytest.fixture(scope="module")
def backend(shared_weights):
    from spsg_ros.backends import create_backend

    return create_backend(
        "torch",
        superpoint_weights=shared_weights["superpoint"],
        superglue_weights=shared_weights["superglue"],
    )


CONFIG = {"matcher": "nn", "superpoint": {"max_keypoints": 512}}


def _truth(poses, i):
    T = relative_pose(poses[i - 1], poses[i])
    return T[:3, :3], T[:3, 3]


def test_mono_relative_pose_accuracy(sequence, backend):
    poses, left, _ = sequence
    fe = Frontend(CONFIG, backend=backend)
    info = CameraInfo(K=TARTANAIR_K, width=W, height=H)
    results = [fe.process(Frame(img, i, "cam", "mono8", info)) for i, img in enumerate(left)]
    assert results[0].ok and not results[0].pose.valid  # first frame: no reference
    for i in range(1, N_FRAMES):
        r = results[i]
        R_true, t_true = _truth(poses, i)
        assert r.ok and r.pose.valid, r.pose.status
        assert not r.pose.scale_known and r.pose.covariance is None
        assert np.linalg.norm(r.pose.translation) == pytest.approx(1.0)
        assert rotation_error_deg(r.pose.rotation, R_true) < 1.0
        assert translation_angle_deg(r.pose.translation, t_true) < 5.0
        assert r.pose.num_inliers == r.pose.inlier_mask.sum() >= 100
        assert len(r.pose.inlier_mask) == r.matches.num_matches == r.metrics.num_matches
        assert r.metrics.outlier_prec < 0.1 and r.metrics.match_prec > 0.2


def _stereo_infos(mode):
    K = TARTANAIR_K
    if mode == "projection":  # ROS rectified convention: right P[0, 3] = -fx * baseline
        left = CameraInfo(K=K, width=W, height=H, P=np.hstack([K, np.zeros((3, 1))]))
        right = CameraInfo(
            K=K, width=W, height=H, P=np.hstack([K, [[-K[0, 0] * STEREO_BASELINE], [0], [0]]])
        )
        return left, right
    T = np.eye(4)  # general extrinsics
    T[0, 3] = -STEREO_BASELINE
    return (
        CameraInfo(K=K, width=W, height=H, T_right_left=T),
        CameraInfo(K=K, width=W, height=H, T_right_left=T),
    )


@pytest.mark.parametrize("mode, frames", [("projection", N_FRAMES), ("extrinsics", 2)])
def test_stereo_metric_pose_accuracy(sequence, backend, mode, frames):
    poses, left, right = sequence
    fe = Frontend(CONFIG, backend=backend)
    info_l, info_r = _stereo_infos(mode)
    for i in range(frames):
        r = fe.process_stereo(
            Frame(left[i], i, "left", "mono8", info_l),
            Frame(right[i], i, "right", "mono8", info_r),
        )
        assert r.ok, r.status
        assert r.stereo_matches.num_matches > 100
        if i == 0:
            continue
        R_true, t_true = _truth(poses, i)
        assert r.pose.valid and r.pose.scale_known, r.pose.status
        assert rotation_error_deg(r.pose.rotation, R_true) < 1.0
        assert translation_relative_error(r.pose.translation, t_true) < 0.05
        cov = r.pose.covariance
        assert cov.shape == (6, 6) and np.all(np.linalg.eigvalsh(cov) > 0)
        assert np.sqrt(cov[0, 0]) < 0.05  # a few cm at most for the x translation
    # the reference keeps triangulated points for the next PnP
    assert np.isfinite(fe.reference.points3d).all(axis=1).sum() > 100


def test_stereo_baseline_from_config_camera(sequence, backend):
    """No CameraInfo at all: the config's camera (with baseline) gives intrinsics and stereo."""
    poses, left, right = sequence
    cfg = dict(
        CONFIG,
        camera={"fx": 320.0, "fy": 320.0, "cx": 320.0, "cy": 240.0, "baseline": STEREO_BASELINE},
    )
    fe = Frontend(cfg, backend=backend)
    fe.process_stereo(Frame(left[0], 0), Frame(right[0], 0))
    r = fe.process_stereo(Frame(left[1], 1), Frame(right[1], 1))
    R_true, t_true = _truth(poses, 1)
    assert r.pose.valid and translation_relative_error(r.pose.translation, t_true) < 0.05


def _distorted_view(scene, pose, D):
    """The scene through a lens with distortion D (OpenCV model), TartanAir K."""
    import cv2

    margin = 80  # a wider pinhole render covers the barrel-distorted corners
    K_wide = TARTANAIR_K.copy()
    K_wide[0, 2] += margin
    K_wide[1, 2] += margin
    pinhole = scene.render(pose, K_wide, W + 2 * margin, H + 2 * margin)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    pix = np.stack([xs.ravel(), ys.ravel()], axis=1).reshape(-1, 1, 2)
    rays = cv2.undistortPoints(pix, TARTANAIR_K, D).reshape(H, W, 2)
    map_x = (rays[..., 0] * K_wide[0, 0] + K_wide[0, 2]).astype(np.float32)
    map_y = (rays[..., 1] * K_wide[1, 1] + K_wide[1, 2]).astype(np.float32)
    return cv2.remap(pinhole, map_x, map_y, cv2.INTER_LINEAR)


@pytest.mark.parametrize("undistort", ["points", "image"])
def test_mono_pose_with_lens_distortion(sequence, backend, undistort):
    poses = sequence[0]
    scene = SyntheticScene(seed=0)
    D = np.array([-0.12, 0.03, 0.0, 0.0, 0.0])
    info = CameraInfo(K=TARTANAIR_K, width=W, height=H, D=D)
    fe = Frontend(dict(CONFIG, preprocess={"undistort": undistort}), backend=backend)
    fe.process(Frame(_distorted_view(scene, poses[0], D), 0, "cam", "mono8", info))
    r = fe.process(Frame(_distorted_view(scene, poses[1], D), 1, "cam", "mono8", info))
    R_true, t_true = _truth(poses, 1)
    assert r.pose.valid, r.pose.status
    # tighter than the general bounds: ignoring this distortion gives about 1 and 8 degrees
    assert rotation_error_deg(r.pose.rotation, R_true) < 0.3
    assert translation_angle_deg(r.pose.translation, t_true) < 3.0
    # keypoints are reported in the distorted input image, inside its bounds
    kp = r.features.keypoints
    assert (
        kp[:, 0].min() >= 0 and kp[:, 0].max() < W and kp[:, 1].min() >= 0 and kp[:, 1].max() < H
    )
