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


def _chain_world(gt, rel_of):
    """Published poses of a frontend: T_world = T_world_ref @ inv(T_cur_ref), world = first."""
    world = {0: np.eye(4)}
    for i in range(1, len(gt)):
        world[i] = world[i - 1] @ np.linalg.inv(rel_of(i, i - 1))
    return world


def test_sequence_accuracy_chains_exact_estimates():
    world = pose_matrix(_rot_y(30.0), [1.0, 2.0, 3.0])
    gt = [world @ T for T in _poses()]
    for metric in (True, False):
        acc = SequenceAccuracy(metric=metric)

        def rel(i, j):
            T_cur_ref = np.linalg.inv(gt[i]) @ gt[j]
            if not metric:  # mono estimates carry unit-length translations
                T_cur_ref[:3, 3] /= np.linalg.norm(T_cur_ref[:3, 3])
            return T_cur_ref

        published = _chain_world(gt, rel)
        acc.add(0, None, None, gt[0], T_world=published[0])
        for i in range(1, len(gt)):
            err = acc.add(i, i - 1, rel(i, i - 1), gt[i], T_world=published[i])
            assert err.rotation_deg == pytest.approx(0.0, abs=1e-5)
            assert err.translation_dir_deg == pytest.approx(0.0, abs=1e-5)
        s = acc.summary()
        assert s["pairs_evaluated"] == len(gt) - 1 and s["auc@5"] == pytest.approx(100.0, abs=1e-3)
        assert s["poses_published"] == s["poses_evaluated"] == len(gt)
        assert s["ate_alignment"] == ("se3" if metric else "sim3")
        assert s["rpe_alignment"] == ("none" if metric else "sim3")
        if metric:  # stereo: the published trajectory is exact up to a rigid transform
            assert s["rpe_trans_rmse_m"] == pytest.approx(0.0, abs=1e-9)
            assert s["ate_rmse_m"] == pytest.approx(0.0, abs=1e-9)
            assert s["ate_scale"] == 1.0 and "ate_gt_scaled_rmse_m" not in s
        else:  # the ground-truth-scaled chain is exact; mono unit steps are not
            assert s["ate_gt_scaled_rmse_m"] == pytest.approx(0.0, abs=1e-9)
            assert s["rpe_gt_scaled_trans_rmse_m"] == pytest.approx(0.0, abs=1e-9)
            assert s["ate_gt_scaled_alignment"] == "se3" and "gt_scaled_definition" in s
        assert s["rpe_rot_rmse_deg"] == pytest.approx(0.0, abs=1e-6)
        est, ref, name = acc.aligned_trajectories()
        assert name == s["ate_alignment"] and est.shape == ref.shape == (len(gt), 3)
        if metric:
            np.testing.assert_allclose(est, ref, atol=1e-9)


def test_sequence_accuracy_missing_pose_and_drift():
    gt = _poses(5)
    acc = SequenceAccuracy(metric=True)
    acc.add(0, None, None, gt[0], T_world=np.eye(4))
    acc.add(1, 0, None, gt[1])  # no estimate: infinite error, no published pose
    T = np.linalg.inv(gt[2]) @ gt[1]
    T[:3, 3] += [0.01, 0, 0]  # 1 cm error
    err = acc.add(2, 1, T, gt[2])  # T_world not given: no published pose either
    assert err.translation_m == pytest.approx(0.01)
    s = acc.summary()
    assert s["frames_without_pose"] == 1  # frame 1 (the first frame has no reference: not counted)
    assert s["auc@20"] < 100.0
    assert s["t_err_m_max"] == pytest.approx(0.01)
    # one published pose: no trajectory error at all (no fallback to a chained trajectory)
    assert s["poses_published"] == 1 and "ate_rmse_m" not in s and "rpe_trans_rmse_m" not in s


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


# ----------------------------------------------------------------------------------------
# Trajectory measures of the published trajectory against independent computations and evo


def _horn_alignment(src, dst, with_scale):
    """Horn (1987) closed-form absolute orientation with unit quaternions, written apart
    from the SVD (Umeyama) code: (R, t, s) minimising sum |dst - (s R src + t)|^2."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    M = a.T @ b  # M[i, j] = sum a_i b_j
    (Sxx, Sxy, Sxz), (Syx, Syy, Syz), (Szx, Szy, Szz) = M
    N = np.array(
        [
            [Sxx + Syy + Szz, Syz - Szy, Szx - Sxz, Sxy - Syx],
            [Syz - Szy, Sxx - Syy - Szz, Sxy + Syx, Szx + Sxz],
            [Szx - Sxz, Sxy + Syx, -Sxx + Syy - Szz, Syz + Szy],
            [Sxy - Syx, Szx + Sxz, Syz + Szy, -Sxx - Syy + Szz],
        ]
    )
    w, v = np.linalg.eigh(N)
    q0, qx, qy, qz = v[:, np.argmax(w)]
    R = np.array(
        [
            [q0**2 + qx**2 - qy**2 - qz**2, 2 * (qx * qy - q0 * qz), 2 * (qx * qz + q0 * qy)],
            [2 * (qy * qx + q0 * qz), q0**2 - qx**2 + qy**2 - qz**2, 2 * (qy * qz - q0 * qx)],
            [2 * (qz * qx - q0 * qy), 2 * (qz * qy + q0 * qx), q0**2 - qx**2 - qy**2 + qz**2],
        ]
    )
    # least-squares scale for a given rotation (the asymmetric form that the ATE minimises)
    s = float(np.sum(b * (a @ R.T)) / np.sum(a * a)) if with_scale else 1.0
    return R, mu_d - s * R @ mu_s, s


def _angle_from_quaternion_deg(R):
    """Rotation angle via the quaternion of R (Shepperd's branch choice): 2 atan2(|v|, |w|)."""
    tr = np.trace(R)
    diag = [tr, R[0, 0], R[1, 1], R[2, 2]]
    k = int(np.argmax(diag))
    if k == 0:
        w = math.sqrt(1 + tr) / 2
        v = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (4 * w)
    else:
        i, j, m = k - 1, k % 3, (k + 1) % 3
        v = np.zeros(3)
        v[i] = math.sqrt(1 + 2 * R[i, i] - tr) / 2
        v[j] = (R[j, i] + R[i, j]) / (4 * v[i])
        v[m] = (R[m, i] + R[i, m]) / (4 * v[i])
        w = (R[m, j] - R[j, m]) / (4 * v[i])
    return math.degrees(2 * math.atan2(np.linalg.norm(v), abs(w)))


def _independent_rpe(est, ref):
    """RPE delta 1 written with explicit rotation / translation parts (no 4x4 inverses)."""
    trans, rots = [], []
    for i in range(len(est) - 1):
        Rq = ref[i][:3, :3].T @ ref[i + 1][:3, :3]
        tq = ref[i][:3, :3].T @ (ref[i + 1][:3, 3] - ref[i][:3, 3])
        Rp = est[i][:3, :3].T @ est[i + 1][:3, :3]
        tp = est[i][:3, :3].T @ (est[i + 1][:3, 3] - est[i][:3, 3])
        trans.append(np.linalg.norm(Rq.T @ (tp - tq)))
        rots.append(_angle_from_quaternion_deg(Rq.T @ Rp))
    return np.asarray(trans), np.asarray(rots)


def _random_rotation(rng, sigma_deg):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = math.radians(rng.normal(0.0, sigma_deg))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def _true_trajectory(n, rng):
    """A curving walk in a world frame unrelated to the first camera, ~0.1 m steps."""
    poses = [pose_matrix(_random_rotation(rng, 60.0), rng.normal(0.0, 2.0, 3))]
    for _ in range(n - 1):
        step = pose_matrix(_random_rotation(rng, 3.0), [0.0, 0.0, 0.1] + rng.normal(0, 0.02, 3))
        poses.append(poses[-1] @ step)
    return poses


def _replay(gt, metric, rng, missing=(), noise_t=0.005, noise_deg=0.3, copy_missing=False):
    """Feed a SequenceAccuracy as the replay does: noisy relative poses to the last frame
    with a pose, published world poses chained from them; ``missing`` frames get no valid
    pose and publish none (``copy_missing``: the old behaviour, the previous pose copied)."""
    acc = SequenceAccuracy(metric=metric)
    world = {0: np.eye(4)}
    acc.add(0, None, None, gt[0], T_world=world[0])
    ref = 0
    for i in range(1, len(gt)):
        if i in missing:
            acc.add(i, ref, None, gt[i], T_world=world[ref].copy() if copy_missing else None)
            continue
        T = np.linalg.inv(gt[i]) @ gt[ref]
        T = pose_matrix(_random_rotation(rng, noise_deg) @ T[:3, :3], T[:3, 3])
        T[:3, 3] += rng.normal(0.0, noise_t, 3)
        if not metric:
            T[:3, 3] /= np.linalg.norm(T[:3, 3])
        world[i] = world[ref] @ np.linalg.inv(T)
        acc.add(i, ref, T, gt[i], T_world=world[i])
        ref = i
    return acc, world


def _independent_ate(est_pos, ref_pos, with_scale):
    R, t, s = _horn_alignment(est_pos, ref_pos, with_scale)
    err = np.linalg.norm(s * est_pos @ R.T + t - ref_pos, axis=1)
    return err, R, t, s


@pytest.mark.parametrize("with_scale", [False, True])
def test_umeyama_agrees_with_horn_quaternion_alignment(with_scale):
    rng = np.random.default_rng(11)
    for _ in range(5):
        ref = rng.normal(0, 3.0, (40, 3))
        R0 = _random_rotation(rng, 90.0)
        est = (0.3 * ref @ R0.T + [1.0, -2.0, 0.5]) + rng.normal(0, 0.05, (40, 3))
        T, s = umeyama_alignment(est, ref, with_scale)
        R, t, s_h = _independent_ate(est, ref, with_scale)[1:]
        np.testing.assert_allclose(T[:3, :3], R, atol=1e-9)
        np.testing.assert_allclose(T[:3, 3], t, atol=1e-9)
        assert s == pytest.approx(s_h, rel=1e-9)
        ate = absolute_trajectory_error(est, ref, with_scale)
        err = _independent_ate(est, ref, with_scale)[0]
        assert ate["ate_rmse_m"] == pytest.approx(np.sqrt(np.mean(err**2)), abs=1e-9)
        assert ate["ate_max_m"] == pytest.approx(err.max(), abs=1e-9)


@pytest.mark.parametrize("metric", [False, True])
def test_summary_agrees_with_independent_ate_and_rpe(metric):
    rng = np.random.default_rng(5 if metric else 6)
    gt = _true_trajectory(60, rng)
    acc, world = _replay(gt, metric, rng, missing={17, 40, 41})
    s = acc.summary()
    stamps = sorted(world)  # the published frames
    est_pos = np.array([world[i][:3, 3] for i in stamps])
    ref_pos = np.array([gt[i][:3, 3] for i in stamps])
    err, R, t, scale = _independent_ate(est_pos, ref_pos, with_scale=not metric)
    assert s["ate_alignment"] == ("se3" if metric else "sim3")
    assert s["ate_rmse_m"] == pytest.approx(np.sqrt(np.mean(err**2)), abs=1e-9)
    assert s["ate_mean_m"] == pytest.approx(err.mean(), abs=1e-9)
    assert s["ate_max_m"] == pytest.approx(err.max(), abs=1e-9)
    assert s["ate_scale"] == pytest.approx(scale, rel=1e-9)
    assert s["ate_poses"] == s["poses_evaluated"] == s["poses_published"] == 57
    # RPE: mono on the Sim(3)-aligned poses, stereo as published
    poses = [world[i].copy() for i in stamps]
    if not metric:
        aligned = []
        for P in poses:
            aligned.append(pose_matrix(R @ P[:3, :3], scale * R @ P[:3, 3] + t))
        poses = aligned
    trans, rots = _independent_rpe(poses, [gt[i] for i in stamps])
    assert s["rpe_alignment"] == ("none" if metric else "sim3") and s["rpe_pairs"] == 56
    assert s["rpe_trans_rmse_m"] == pytest.approx(np.sqrt(np.mean(trans**2)), abs=1e-9)
    assert s["rpe_trans_mean_m"] == pytest.approx(trans.mean(), abs=1e-9)
    assert s["rpe_rot_mean_deg"] == pytest.approx(rots.mean(), abs=1e-9)
    assert s["rpe_rot_rmse_deg"] == pytest.approx(np.sqrt(np.mean(rots**2)), abs=1e-9)
    est, ref, name = acc.aligned_trajectories()
    assert name == s["ate_alignment"]
    np.testing.assert_allclose(np.linalg.norm(est - ref, axis=1), err, atol=1e-9)
    assert np.array_equal(acc.trajectories()[0], est)


def test_missing_frame_is_excluded_not_copied():
    """Stereo: one frame without a pose mid-trajectory barely changes ATE; the old copy did."""
    n, miss = 80, 40
    gt = _true_trajectory(n, np.random.default_rng(2))
    full = _replay(gt, True, np.random.default_rng(3))[0].summary()
    holed = _replay(gt, True, np.random.default_rng(3), missing={miss})[0].summary()
    copied = _replay(gt, True, np.random.default_rng(3), missing={miss}, copy_missing=True)[0]
    copied = copied.summary()
    assert full["frames_without_pose"] == 0 and holed["frames_without_pose"] == 1
    assert holed["poses_published"] == holed["poses_evaluated"] == n - 1
    assert holed["rpe_pairs"] == n - 2
    # the same noise draws shift by one after the hole, so the trajectories differ a little
    assert abs(holed["ate_rmse_m"] - full["ate_rmse_m"]) < 0.5 * full["ate_rmse_m"]
    # a copied pose sits one 10 cm step away from the truth: much larger ATE and RPE
    assert copied["ate_max_m"] > 0.05 > holed["ate_max_m"]
    assert copied["rpe_trans_max_m"] > 0.05 > holed["rpe_trans_max_m"]


def test_frames_without_pose_counts():
    gt = _poses(6)
    acc = SequenceAccuracy(metric=True)
    acc.add(0, None, None, gt[0], T_world=np.eye(4))  # the first frame: never counted
    acc.add(1, 0, np.linalg.inv(gt[1]) @ gt[0], gt[1], T_world=gt[1])
    acc.add(2, 1, None, gt[2])  # invalid pose
    acc.add(3, None, None, gt[3])  # flagged frame without a reference
    acc.add(4, 1, np.linalg.inv(gt[4]) @ gt[1], None)  # valid, not published, no ground truth
    acc.add(5, 4, np.linalg.inv(gt[5]) @ gt[4], None, T_world=gt[5])  # published, no truth
    s = acc.summary()
    assert s["frames"] == 6 and s["frames_without_pose"] == 2
    assert s["poses_published"] == 3 and s["poses_evaluated"] == 2


@pytest.mark.parametrize("metric", [False, True])
def test_alignment_of_a_similar_copy(metric):
    """Sim(3) (mono) recovers a scaled, rotated, shifted copy exactly (scale 1/s); SE(3)
    (stereo) does not rescale, so the same copy keeps its scale error."""
    gt = _true_trajectory(30, np.random.default_rng(4))
    scale, W = 3.5, pose_matrix(_random_rotation(np.random.default_rng(9), 70.0), [4, -2, 1])
    acc = SequenceAccuracy(metric=metric)
    for i, T in enumerate(gt):
        published = W @ T
        published[:3, 3] = W[:3, :3] @ (scale * T[:3, 3]) + W[:3, 3]
        acc.add(i, i - 1 if i else None, None, T, T_world=published)
    s = acc.summary()
    est, ref, name = acc.aligned_trajectories()
    if metric:
        assert name == "se3" and s["ate_scale"] == 1.0
        assert s["ate_rmse_m"] > 0.1 and s["rpe_trans_rmse_m"] > 0.1
    else:
        assert name == "sim3" and s["ate_scale"] == pytest.approx(1 / scale, rel=1e-9)
        assert s["ate_rmse_m"] == pytest.approx(0.0, abs=1e-9)
        assert s["rpe_trans_rmse_m"] == pytest.approx(0.0, abs=1e-9)
        assert s["rpe_rot_rmse_deg"] == pytest.approx(0.0, abs=1e-6)
        np.testing.assert_allclose(est, ref, atol=1e-9)


def test_gt_scaled_chain_skips_frames_without_pose():
    gt = _true_trajectory(8, np.random.default_rng(8))

    def unit(i, j):
        T = np.linalg.inv(gt[i]) @ gt[j]
        T[:3, 3] /= np.linalg.norm(T[:3, 3])
        return T

    acc = SequenceAccuracy(metric=False)
    acc.add(0, None, None, gt[0])
    acc.add(1, 0, unit(1, 0), gt[1])
    acc.add(2, 1, unit(2, 1), gt[2])
    acc.add(3, 2, None, gt[3])  # no pose: not chained, not copied
    acc.add(4, 3, unit(4, 3), gt[4])  # its reference has no chained pose: skipped too
    acc.add(5, 2, unit(5, 2), gt[5])  # keyframe reference 2: chained
    acc.add(6, 5, unit(6, 5), None)  # true step length unknown: skipped
    acc.add(7, 5, unit(7, 5), gt[7])
    assert sorted(acc.gt_scaled) == [0, 1, 2, 5, 7]
    for i in acc.gt_scaled:
        np.testing.assert_allclose(acc.gt_scaled[i], gt[i], atol=1e-9)
    s = acc.summary()
    assert s["frames_without_pose"] == 1 and s["poses_published"] == 0
    assert s["ate_gt_scaled_poses"] == 5 and s["ate_gt_scaled_rmse_m"] == pytest.approx(
        0, abs=1e-9
    )
    assert s["rpe_gt_scaled_pairs"] == 4 and "ate_rmse_m" not in s
    assert acc.aligned_trajectories()[2] == "none"


def _evo_figures(est_poses, ref_poses, correct_scale):
    """evo_ape (translation part) and evo_rpe (delta 1 frame, translation / angle) after
    evo's Umeyama alignment (Sim(3) with ``correct_scale``, else SE(3))."""
    evo_metrics = pytest.importorskip("evo.core.metrics")
    from evo.core.trajectory import PoseTrajectory3D

    stamps = np.arange(len(est_poses), dtype=float)
    ref = PoseTrajectory3D(poses_se3=[np.array(P) for P in ref_poses], timestamps=stamps)
    est = PoseTrajectory3D(poses_se3=[np.array(P) for P in est_poses], timestamps=stamps)
    est.align(ref, correct_scale=correct_scale)
    rmse, mean = evo_metrics.StatisticsType.rmse, evo_metrics.StatisticsType.mean
    out = {}
    ape = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))
    out["ate_rmse_m"], out["ate_mean_m"] = ape.get_statistic(rmse), ape.get_statistic(mean)
    out["ate_max_m"] = ape.get_statistic(evo_metrics.StatisticsType.max)
    for relation, key in (
        (evo_metrics.PoseRelation.translation_part, "rpe_trans"),
        (evo_metrics.PoseRelation.rotation_angle_deg, "rpe_rot"),
    ):
        rpe = evo_metrics.RPE(relation, delta=1, delta_unit=evo_metrics.Unit.frames)
        rpe.process_data((ref, est))
        unit = "m" if key == "rpe_trans" else "deg"
        out[f"{key}_rmse_{unit}"] = rpe.get_statistic(rmse)
        out[f"{key}_mean_{unit}"] = rpe.get_statistic(mean)
    return out


@pytest.mark.parametrize("metric", [False, True])
def test_summary_agrees_with_evo(metric):
    pytest.importorskip("evo")
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        gt = _true_trajectory(120, rng)
        acc, world = _replay(gt, metric, rng, missing={30, 31, 77}, noise_t=0.01, noise_deg=0.5)
        s = acc.summary()
        stamps = sorted(world)  # evo reads the published poses only
        evo = _evo_figures([world[i] for i in stamps], [gt[i] for i in stamps], not metric)
        for key, value in evo.items():
            assert s[key] == pytest.approx(value, abs=1e-6), key
            assert s[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
