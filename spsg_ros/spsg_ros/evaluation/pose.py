"""Pose accuracy: AUC of pose errors (SPEC section 3), per-pair errors of a
sequence against ground truth, relative pose error and trajectory error.

The angle error functions are :mod:`spsg_ros.geometry.errors`'; this module
adds the statistics on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from ..geometry.errors import relative_pose, rotation_error_deg, translation_angle_deg

AUC_THRESHOLDS = (5.0, 10.0, 20.0)
#: below this ground-truth motion (m) a translation direction is undefined
MIN_DIRECTION_MOTION = 1e-6


def pose_auc(errors: Iterable[float], thresholds: Sequence[float] = AUC_THRESHOLDS) -> list[float]:
    """Area under the recall-vs-error curve up to each threshold, divided by it.

    Errors are sorted; recall after the k-th smallest is k / N; the curve starts at
    (0, 0) and is integrated by trapezoids up to the threshold, where it is held
    at the recall reached by the last error below it. Infinite errors (no pose)
    count in N but never in the area. An empty list gives 0 for every threshold.
    """
    e = np.asarray(list(errors), np.float64).reshape(-1)
    n = len(e)
    if n == 0:
        return [0.0 for _ in thresholds]
    e = np.sort(np.where(np.isnan(e), np.inf, e))
    recall = np.arange(1, n + 1) / n
    xs = np.concatenate([[0.0], e])
    ys = np.concatenate([[0.0], recall])
    aucs = []
    for t in thresholds:
        last = int(np.searchsorted(xs, t))  # points with error < t (xs[0] = 0 always kept)
        x = np.concatenate([xs[:last], [t]])
        y = np.concatenate([ys[:last], [ys[last - 1]]])
        area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
        aucs.append(area / t)
    return aucs


def auc_dict(
    errors: Iterable[float], thresholds: Sequence[float] = AUC_THRESHOLDS, percent: bool = True
) -> dict[str, float]:
    scale = 100.0 if percent else 1.0
    return {
        f"auc@{int(t) if float(t).is_integer() else t}": scale * a
        for t, a in zip(thresholds, pose_auc(errors, thresholds))
    }


@dataclass
class PairError:
    """Errors of one estimated relative pose against ground truth (degrees / metres)."""

    rotation_deg: float = math.inf
    translation_dir_deg: float = math.nan  # angle between directions, not folded
    translation_dir_folded_deg: float = math.nan  # min(e, 180 - e), SPEC section 3
    translation_m: float = math.nan  # |t_est - t_gt| (metric poses only)
    translation_rel: float = math.nan  # |t_est - t_gt| / |t_gt|
    gt_motion_m: float = 0.0
    gt_rotation_deg: float = 0.0
    pose_error_deg: float = math.inf  # max(rotation, folded direction): the AUC input

    def as_row(self) -> dict[str, float]:
        return {
            "rot_err_deg": self.rotation_deg,
            "t_dir_err_deg": self.translation_dir_deg,
            "t_err_m": self.translation_m,
            "t_rel_err": self.translation_rel,
            "pose_err_deg": self.pose_error_deg,
            "gt_motion_m": self.gt_motion_m,
            "gt_rot_deg": self.gt_rotation_deg,
        }


def relative_pose_error(
    T_cur_ref_est: Optional[np.ndarray], T_cur_ref_gt: np.ndarray, metric: bool
) -> PairError:
    """Errors of an estimated ``T_cur_ref`` (None: no pose) against the true one.

    The direction error needs ground-truth motion above 1 um (NaN otherwise; the
    pose error then is the rotation error alone). ``metric`` poses also get the
    translation error in metres and relative to the true motion.
    """
    gt_t = T_cur_ref_gt[:3, 3]
    out = PairError(
        gt_motion_m=float(np.linalg.norm(gt_t)),
        gt_rotation_deg=rotation_error_deg(np.eye(3), T_cur_ref_gt[:3, :3]),
    )
    if T_cur_ref_est is None:
        return out
    R, t = T_cur_ref_est[:3, :3], T_cur_ref_est[:3, 3]
    out.rotation_deg = rotation_error_deg(R, T_cur_ref_gt[:3, :3])
    moving = out.gt_motion_m > MIN_DIRECTION_MOTION and np.linalg.norm(t) > 1e-12
    if moving:
        out.translation_dir_deg = translation_angle_deg(t, gt_t)
        out.translation_dir_folded_deg = translation_angle_deg(t, gt_t, fold=True)
        out.pose_error_deg = max(out.rotation_deg, out.translation_dir_folded_deg)
    else:
        out.pose_error_deg = out.rotation_deg
    if metric:
        out.translation_m = float(np.linalg.norm(t - gt_t))
        if out.gt_motion_m > MIN_DIRECTION_MOTION:
            out.translation_rel = out.translation_m / out.gt_motion_m
    return out


def umeyama_alignment(
    source: np.ndarray, target: np.ndarray, with_scale: bool
) -> tuple[np.ndarray, float]:
    """(4x4 rigid T, scale s) minimising ``|target - (s R source + t)|`` (Umeyama 1991)."""
    src, dst = np.asarray(source, float), np.asarray(target, float)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    var = float(np.mean(np.sum(xs**2, axis=1)))
    s = float(np.trace(np.diag(S) @ D) / var) if with_scale and var > 1e-12 else 1.0
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = mu_d - s * R @ mu_s
    return T, s


def absolute_trajectory_error(
    estimated: np.ndarray, reference: np.ndarray, with_scale: bool
) -> dict[str, float]:
    """RMSE / mean / max position error after the best rigid (or similarity) alignment."""
    est, ref = (
        np.asarray(estimated, float).reshape(-1, 3),
        np.asarray(reference, float).reshape(-1, 3),
    )
    if len(est) < 3:
        return {}
    T, s = umeyama_alignment(est, ref, with_scale)
    aligned = s * est @ T[:3, :3].T + T[:3, 3]
    err = np.linalg.norm(aligned - ref, axis=1)
    return {
        "ate_rmse_m": float(np.sqrt(np.mean(err**2))),
        "ate_mean_m": float(err.mean()),
        "ate_max_m": float(err.max()),
        "ate_scale": float(s),
        "ate_poses": int(len(err)),
    }


def trajectory_rpe(
    estimated: Sequence[np.ndarray], reference: Sequence[np.ndarray], delta: int = 1
) -> dict[str, float]:
    """Relative pose error (Sturm et al. 2012) over pose pairs ``delta`` frames apart:
    RMSE of the translation and mean of the rotation of
    ``inv(inv(Q_i) Q_i+d) inv(P_i) P_i+d``."""
    trans, rots = [], []
    for i in range(len(estimated) - delta):
        Q = np.linalg.inv(reference[i]) @ reference[i + delta]
        P = np.linalg.inv(estimated[i]) @ estimated[i + delta]
        E = np.linalg.inv(Q) @ P
        trans.append(float(np.linalg.norm(E[:3, 3])))
        rots.append(rotation_error_deg(np.eye(3), E[:3, :3]))
    if not trans:
        return {}
    t = np.asarray(trans)
    return {
        "rpe_trans_rmse_m": float(np.sqrt(np.mean(t**2))),
        "rpe_trans_mean_m": float(t.mean()),
        "rpe_rot_rmse_deg": float(np.sqrt(np.mean(np.square(rots)))),
        "rpe_rot_mean_deg": float(np.mean(rots)),
        "rpe_pairs": len(trans),
        "rpe_delta_frames": delta,
    }


def _stats(values: Iterable[float], prefix: str) -> dict[str, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if v.size == 0:
        return {f"{prefix}_count": 0}
    return {
        f"{prefix}_mean": float(v.mean()),
        f"{prefix}_median": float(np.median(v)),
        f"{prefix}_rmse": float(np.sqrt(np.mean(v**2))),
        f"{prefix}_max": float(v.max()),
        f"{prefix}_count": int(v.size),
    }


@dataclass
class SequenceAccuracy:
    """Collects per-frame pose errors of a sequence and the trajectories they imply.

    For each frame with ground truth for itself and its reference frame,
    :meth:`add` compares the estimated ``T_cur_ref`` with the true one. It also
    chains the estimates into a trajectory anchored at the first ground-truth
    pose; mono translations (unit directions) are scaled by the true motion
    length there ("scale from ground truth"), stereo ones are used as they are.
    """

    metric: bool
    position_only: bool = False
    errors: list[PairError] = field(default_factory=list)
    estimated: dict[int, np.ndarray] = field(
        default_factory=dict
    )  # stamp -> T_world_cam (anchored)
    ground_truth: dict[int, np.ndarray] = field(default_factory=dict)
    gt_positions: dict[int, np.ndarray] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    frames_without_pose: int = 0
    scale_errors: list[float] = field(default_factory=list)

    def add(
        self,
        stamp: int,
        ref_stamp: Optional[int],
        T_cur_ref_est: Optional[np.ndarray],
        gt_pose: Optional[np.ndarray],
        gt_position: Optional[np.ndarray] = None,
    ) -> Optional[PairError]:
        """Record one frame; returns its errors when they can be computed."""
        stamp = int(stamp)
        self.order.append(stamp)
        if gt_pose is not None:
            self.ground_truth[stamp] = np.asarray(gt_pose, float)
        if gt_position is not None:
            self.gt_positions[stamp] = np.asarray(gt_position, float).reshape(3)
        ref = None if ref_stamp is None else int(ref_stamp)
        if T_cur_ref_est is None and ref is not None:
            self.frames_without_pose += 1
        error = None
        gt_ref = self.ground_truth.get(ref) if ref is not None else None
        if gt_pose is not None and gt_ref is not None:
            error = relative_pose_error(T_cur_ref_est, relative_pose(gt_ref, gt_pose), self.metric)
            self.errors.append(error)
        elif (
            self.position_only
            and self.metric
            and T_cur_ref_est is not None
            and ref is not None
            and stamp in self.gt_positions
            and ref in self.gt_positions
        ):
            gt_len = float(np.linalg.norm(self.gt_positions[stamp] - self.gt_positions[ref]))
            self.scale_errors.append(abs(float(np.linalg.norm(T_cur_ref_est[:3, 3])) - gt_len))
        self._chain(stamp, ref, T_cur_ref_est, error)
        return error

    def _chain(
        self,
        stamp: int,
        ref: Optional[int],
        T_est: Optional[np.ndarray],
        error: Optional[PairError],
    ) -> None:
        if not self.estimated:
            start = self.ground_truth.get(stamp)
            if start is None:
                start = np.eye(4)
                if stamp in self.gt_positions:
                    start[:3, 3] = self.gt_positions[stamp]
            self.estimated[stamp] = start
            return
        previous = self.estimated[self.order[-2]] if len(self.order) > 1 else np.eye(4)
        base = self.estimated.get(ref) if ref is not None else None
        if T_est is None or base is None:
            self.estimated[stamp] = previous.copy()
            return
        T = np.array(T_est, float)
        if not self.metric:
            if error is not None:
                scale = error.gt_motion_m
            elif ref in self.gt_positions and stamp in self.gt_positions:
                scale = float(np.linalg.norm(self.gt_positions[stamp] - self.gt_positions[ref]))
            else:
                scale = 1.0
            T[:3, 3] = T[:3, 3] * scale
        self.estimated[stamp] = base @ np.linalg.inv(T)

    def summary(self) -> dict:
        out: dict = {
            "pairs_evaluated": len(self.errors),
            "frames_without_pose": self.frames_without_pose,
            "translation": "metric (stereo)" if self.metric else "direction only (mono)",
        }
        if self.errors:
            pose_errors = [e.pose_error_deg for e in self.errors]
            out.update(auc_dict(pose_errors))
            out["auc_definition"] = (
                "SPEC section 3: pose error = max(rotation error, translation "
                "direction error folded to min(e, 180 - e)), inf without a pose"
            )
            out.update(_stats([e.rotation_deg for e in self.errors], "rot_err_deg"))
            out.update(_stats([e.translation_dir_deg for e in self.errors], "t_dir_err_deg"))
            if self.metric:
                out.update(_stats([e.translation_m for e in self.errors], "t_err_m"))
                out.update(_stats([e.translation_rel for e in self.errors], "t_rel_err"))
        if self.scale_errors:
            out.update(_stats(self.scale_errors, "step_length_err_m"))
        stamps = [s for s in self.order if s in self.estimated]
        with_pose = [s for s in stamps if s in self.ground_truth]
        if len(with_pose) >= 2:
            est = [self.estimated[s] for s in with_pose]
            ref = [self.ground_truth[s] for s in with_pose]
            out.update(trajectory_rpe(est, ref))
        with_pos = [s for s in stamps if s in self.ground_truth or s in self.gt_positions]
        if len(with_pos) >= 3:
            est = np.array([self.estimated[s][:3, 3] for s in with_pos])
            ref = np.array(
                [
                    self.ground_truth[s][:3, 3] if s in self.ground_truth else self.gt_positions[s]
                    for s in with_pos
                ]
            )
            out.update(absolute_trajectory_error(est, ref, with_scale=False))
        if not self.metric and (self.errors or self.gt_positions):
            out["trajectory_scale"] = "per-step translation length taken from ground truth (mono)"
        return out

    def trajectories(self) -> tuple[np.ndarray, np.ndarray]:
        """(estimated positions (N, 3), ground-truth positions (N, 3) with NaN where unknown)."""
        stamps = [s for s in self.order if s in self.estimated]
        est = np.array([self.estimated[s][:3, 3] for s in stamps]).reshape(-1, 3)
        ref = np.full((len(stamps), 3), np.nan)
        for i, s in enumerate(stamps):
            if s in self.ground_truth:
                ref[i] = self.ground_truth[s][:3, 3]
            elif s in self.gt_positions:
                ref[i] = self.gt_positions[s]
        return est, ref
