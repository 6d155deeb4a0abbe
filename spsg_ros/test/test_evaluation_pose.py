"""Pose accuracy measures: AUC (SPEC section 3), pair errors, chained trajectories, RPE, ATE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spsg_ros.datasets.poses import pose_matrix, quat_xyzw_to_matrix
from spsg_ros.evaluation.pose import (
    SequenceAccuracy,
    absolute_trajectory_error,
    pose_auc,
    relative_pose_error,
    trajectory_rpe,
    umeyama_alignment,
)


def _rot_y(deg):
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def test_auc_known_values():
    # one perfect pair: recall 1 from error 0 -> AUC 1 at every threshold
    assert pose_auc([0.0]) == pytest.approx([1.0, 1.0, 1.0])
    # one pair at 10 deg: recall rises linearly 0 -> 1 between 0 and 10 (trapezoid), then holds.
    # AUC@5: the error lies beyond 5 -> 0; AUC@10: an error equal to the threshold does not
    # count (upstream searchsorted) -> 0; AUC@20: (0.5 * 10 + 1 * 10) / 20 = 0.75
    assert pose_auc([10.0]) == pytest.approx([0.0, 0.0, 0.75])
    assert pose_auc([8.0], [10.0]) == pytest.approx([(0.5 * 8 + 2) / 10])
    # two pairs at 2 and inf (no pose): recall 0.5 after 2 deg
    # AUC@5 = (triangle 0.5 * 2 * 0.5 + rectangle 3 * 0.5) / 5 = 0.4
    a5, a10, a20 = pose_auc([math.inf, 2.0])
    assert a5 == pytest.approx(0.4) and a10 == pytest.approx((0.5 + 8 * 0.5) / 10)
    assert a20 == pytest.approx((0.5 + 18 * 0.5) / 20)
    # errors exactly at a threshold are not counted below it (searchsorted left)
    assert pose_auc([5.0], [5.0]) == pytest.approx([0.0])
    assert pose_auc([], [5.0]) == [0.0]
    assert pose_auc([float("nan")], [5.0]) == [0.0]
    # brute-force check against a fine numerical integral of the recall curve
    rng = np.random.default_rng(0)
    errors = rng.exponential(6.0, 50)
    grid = np.linspace(0, 20, 200001)
    recall = np.searchsorted(np.sort(errors), grid, side="right") / len(errors)
    # piecewise-linear interpolation of the recall between sorted errors is what the
    # trapezoid integrates; the step curve integral bounds it from below
    step_auc = (
        np.trapezoid(recall, grid) / 20
        if hasattr(np, "trapezoid")
        else np.trapz(recall, grid) / 20
    )
    assert step_auc <= pose_auc(errors, [20.0])[0] <= step_auc + 1.0 / len(errors)


def test_relative_pose_error_mono_and_stereo():
    T_gt = pose_matrix(_rot_y(5.0), [0.0, 0.0, -0.2])
    # estimate: rotation off by 1 deg about y, translation direction off by 90 deg
    T_est = pose_matrix(_rot_y(6.0), [1.0, 0.0, 0.0])
    e = relative_pose_error(T_est, T_gt, metric=False)
    assert e.rotation_deg == pytest.approx(1.0, abs=1e-9)
    assert e.translation_dir_deg == pytest.approx(90.0)
    assert e.pose_error_deg == pytest.approx(90.0)
    assert math.isnan(e.translation_m) and e.gt_motion_m == pytest.approx(0.2)
    # opposite direction: 180 deg, folded (SPEC section 3) to 0 for the AUC error
    e = relative_pose_error(pose_matrix(_rot_y(5.0), [0, 0, 1.0]), T_gt, metric=False)
    assert e.translation_dir_deg == pytest.approx(180.0) and e.pose_error_deg == pytest.approx(
        0.0, abs=1e-6
    )
    # metric (stereo): translation error in metres
    e = relative_pose_error(pose_matrix(_rot_y(5.0), [0.0, 0.03, -0.2]), T_gt, metric=True)
    assert e.translation_m == pytest.approx(0.03) and e.translation_rel == pytest.approx(0.15)
    # no pose: infinite error; no ground-truth motion: direction undefined
    assert math.isinf(relative_pose_error(None, T_gt, metric=False).pose_error_deg)
    still = relative_pose_error(
        pose_matrix(_rot_y(2.0), [1, 0, 0]), pose_matrix(_rot_y(0.0), [0, 0, 0]), False
    )
    assert math.isnan(still.translation_dir_deg) and still.pose_error_deg == pytest.approx(2.0)


def _poses(n=6, seed=0):
    rng = np.random.default_rng(seed)
    poses = [np.eye(4)]
    for _ in range(n - 1):
        step = pose_matrix(
            quat_xyzw_to_matrix(np.r_[rng.normal(0, 0.02, 3), 1.0]), rng.normal(0, 0.1, 3)
        )
        poses.append(poses[-1] @ step)
    return poses


def test_sequence_accuracy_chains_exact_estimates():
    world = pose_matrix(_rot_y(30.0), [1.0, 2.0, 3.0])
    gt = [world @ T for T in _poses()]
    for metric in (True, False):
        acc = SequenceAccuracy(metric=metric)
        acc.add(0, None, None, gt[0])
        for i in range(1, len(gt)):
            T_cur_ref = np.linalg.inv(gt[i]) @ gt[i - 1]
            if not metric:  # mono estimates carry unit-length translations
                T_cur_ref[:3, 3] /= np.linalg.norm(T_cur_ref[:3, 3])
            err = acc.add(i, i - 1, T_cur_ref, gt[i])
            assert err.rotation_deg == pytest.approx(0.0, abs=1e-5)
            assert err.translation_dir_deg == pytest.approx(0.0, abs=1e-5)
        s = acc.summary()
        assert s["pairs_evaluated"] == len(gt) - 1 and s["auc@5"] == pytest.approx(100.0, abs=1e-3)
        assert s["rpe_trans_rmse_m"] == pytest.approx(0.0, abs=1e-9)
        assert s["ate_rmse_m"] == pytest.approx(0.0, abs=1e-9)
        est, ref = acc.trajectories()
        np.testing.assert_allclose(est, ref, atol=1e-9)  # anchored at the first ground-truth pose


def test_sequence_accuracy_missing_pose_and_drift():
    gt = _poses(5)
    acc = SequenceAccuracy(metric=True)
    acc.add(0, None, None, gt[0])
    acc.add(1, 0, None, gt[1])  # no estimate: infinite error, trajectory holds still
    T = np.linalg.inv(gt[2]) @ gt[1]
    T[:3, 3] += [0.01, 0, 0]  # 1 cm error
    err = acc.add(2, 1, T, gt[2])
    assert err.translation_m == pytest.approx(0.01)
    s = acc.summary()
    assert s["frames_without_pose"] == 1  # frame 1 (the first frame has no reference: not counted)
    assert s["auc@20"] < 100.0
    assert s["t_err_m_max"] == pytest.approx(0.01)


def test_rpe_and_ate_known_offsets():
    ref = _poses(8, seed=3)
    # estimate = reference with a constant world transform: ATE after alignment 0, RPE 0
    W = pose_matrix(_rot_y(40.0), [5, -1, 2])
    est = [W @ T for T in ref]
    assert trajectory_rpe(est, ref)["rpe_trans_rmse_m"] == pytest.approx(0.0, abs=1e-9)
    ate = absolute_trajectory_error(
        np.array([T[:3, 3] for T in est]), np.array([T[:3, 3] for T in ref]), False
    )
    assert ate["ate_rmse_m"] == pytest.approx(0.0, abs=1e-9)
    # a scaled copy needs the similarity alignment; its scale is recovered
    src = np.array([T[:3, 3] for T in ref])
    _, s = umeyama_alignment(2.5 * src, src, with_scale=True)
    assert s == pytest.approx(0.4)
    # one step 5 cm off: RPE sees it in exactly one pair
    bumped = [T.copy() for T in ref]
    for T in bumped[4:]:
        T[:3, 3] += [0.05, 0, 0]
    rpe = trajectory_rpe(bumped, ref)
    assert rpe["rpe_pairs"] == 7 and rpe["rpe_trans_mean_m"] == pytest.approx(0.05 / 7, rel=1e-6)
