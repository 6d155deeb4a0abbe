"""Geometry on exact synthetic correspondences: essential, fundamental, triangulation, PnP."""

from __future__ import annotations

import numpy as np
import pytest

from spsg_ros.geometry import (
    epipolar_line_distance,
    essential_pose,
    fundamental_ransac,
    median_parallax,
    rectified_extrinsics,
    relative_pose,
    rotation_error_deg,
    solve_pnp,
    translation_angle_deg,
    translation_relative_error,
    triangulate,
)
from spsg_ros.geometry.triangulation import baseline_from_projection
from spsg_ros.datasets.synthetic import rotation_xyz

K = np.array([[320.0, 0, 320], [0, 320.0, 240], [0, 0, 1]])


def _scene(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-3, 3, n), rng.uniform(-2, 2, n), rng.uniform(3, 9, n)])


def _project(X, R=np.eye(3), t=np.zeros(3)):
    Xc = X @ R.T + t
    return Xc[:, :2] / Xc[:, 2:3]


def _pixels(xn):
    return xn * K[0, 0] + K[:2, 2]


R_TRUE = rotation_xyz(0.02, -0.05, 0.01)
T_TRUE = np.array([0.3, -0.05, 0.2])


def test_essential_pose_recovers_rotation_and_unit_translation():
    X = _scene()
    p0, p1 = _project(X), _project(X, R_TRUE, T_TRUE)
    for method in ("ransac", "usac_accurate"):
        est = essential_pose(p0, p1, 0.5 / 320, method=method)
        assert est is not None
        assert rotation_error_deg(est.rotation, R_TRUE) < 0.01
        assert translation_angle_deg(est.translation, T_TRUE) < 0.05
        assert abs(np.linalg.norm(est.translation) - 1) < 1e-9
        assert est.inlier_mask.sum() >= 195


def test_essential_pose_rejects_outliers_and_too_few_points():
    X = _scene(300, seed=1)
    p0, p1 = _project(X), _project(X, R_TRUE, T_TRUE)
    rng = np.random.default_rng(3)
    bad = rng.choice(300, 60, replace=False)
    p1[bad] += rng.uniform(0.05, 0.2, (60, 2)) * rng.choice([-1, 1], (60, 2))
    est = essential_pose(p0, p1, 1.0 / 320, method="usac_accurate")
    assert rotation_error_deg(est.rotation, R_TRUE) < 0.05
    assert not est.inlier_mask[bad].any()
    assert essential_pose(p0[:4], p1[:4], 1e-3) is None
    with pytest.raises(ValueError, match="essential-matrix method"):
        essential_pose(p0, p1, 1e-3, method="bogus")


def test_fundamental_and_point_to_line_distance_in_pixels():
    X = _scene(150, seed=2)
    q0, q1 = _pixels(_project(X)), _pixels(_project(X, R_TRUE, T_TRUE))
    F = fundamental_ransac(q0, q1, 1.0)
    assert F is not None
    assert np.max(epipolar_line_distance(F, q0, q1)) < 0.05
    # a point moved perpendicular to its epipolar line by d is d pixels away
    line = np.array([*q0[0], 1.0]) @ F.T
    normal = line[:2] / np.hypot(*line[:2])
    moved = q1[:1] + 7.0 * normal
    assert epipolar_line_distance(F, q0[:1], moved)[0] == pytest.approx(7.0, abs=0.05)
    assert fundamental_ransac(q0[:7], q1[:7], 1.0) is None


def test_median_parallax_zero_for_pure_rotation():
    X = _scene()
    p0, p1 = _project(X), _project(X, R_TRUE, np.zeros(3))
    assert median_parallax(p0, p1, R_TRUE) < 1e-9
    p2 = _project(X, R_TRUE, T_TRUE)
    assert median_parallax(p0, p2, R_TRUE) > 0.01


def test_triangulation_rectified_and_general():
    X = _scene(50, seed=4)
    T = rectified_extrinsics(0.25)
    tri = triangulate(_project(X), _project(X, T[:3, :3], T[:3, 3]), T)
    assert tri.valid.all()
    np.testing.assert_allclose(tri.points, X, atol=1e-6)
    assert np.max(tri.reprojection) < 1e-9
    T2 = np.eye(4)
    T2[:3, :3], T2[:3, 3] = R_TRUE, [-0.4, 0.02, 0.05]
    tri2 = triangulate(_project(X), _project(X, R_TRUE, T2[:3, 3]), T2)
    np.testing.assert_allclose(tri2.points, X, atol=1e-6)
    # a point behind the cameras is flagged invalid
    behind = triangulate(np.array([[0.1, 0.0]]), np.array([[0.2, 0.0]]), T)
    assert not behind.valid[0]
    P_right = np.hstack([K, [[-320 * 0.25], [0], [0]]])
    assert baseline_from_projection(P_right) == pytest.approx(0.25)


def test_pnp_metric_pose_and_covariance():
    X = _scene(120, seed=5)
    rng = np.random.default_rng(6)
    x = _project(X, R_TRUE, T_TRUE) + rng.normal(0, 0.3 / 320, (120, 2))
    x[:15] += 0.1  # gross outliers
    est = solve_pnp(X, x, 2.0 / 320)
    assert est is not None
    assert rotation_error_deg(est.rotation, R_TRUE) < 0.1
    assert translation_relative_error(est.translation, T_TRUE) < 0.02
    assert not est.inlier_mask[:15].any() and est.inlier_mask[15:].mean() > 0.95
    assert est.covariance.shape == (6, 6)
    assert np.all(np.linalg.eigvalsh(est.covariance) > 0)
    assert solve_pnp(X[:5], x[:5], 1e-2) is None


def test_error_functions():
    assert rotation_error_deg(np.eye(3), rotation_xyz(0, np.radians(10), 0)) == pytest.approx(10)
    assert translation_angle_deg([1, 0, 0], [0, 1, 0]) == pytest.approx(90)
    assert translation_angle_deg([1, 0, 0], [-1, 0.0, 0]) == pytest.approx(180)
    assert translation_angle_deg([1, 0, 0], [-1, 0.0, 0], fold=True) == pytest.approx(0)
    assert translation_angle_deg([0, 0, 0], [1, 0, 0]) == 180.0
    assert translation_relative_error([1.1, 0, 0], [1, 0, 0]) == pytest.approx(0.1)
    Tw0, Tw1 = np.eye(4), np.eye(4)
    Tw1[:3, 3] = [
        0,
        0,
        1,
    ]  # camera 1 one metre forward: a point 5 m ahead of cam 0 is 4 m ahead of cam 1
    T10 = relative_pose(Tw0, Tw1)
    assert (T10 @ [0, 0, 5, 1])[2] == pytest.approx(4)
