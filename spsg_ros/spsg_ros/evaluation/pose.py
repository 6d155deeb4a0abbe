"""Pose accuracy: AUC of pose errors (SPEC section 3), per-pair errors of a
sequence against ground truth, relative pose error and trajectory error.

ATE / RPE are those of evo (``evo_ape`` / ``evo_rpe --delta 1 --delta_unit f``) on
the published trajectory: mono after Sim(3) (Umeyama with scale) alignment,
stereo after SE(3) alignment (ATE) or none (RPE); see ``TRAJECTORY_DEFINITION``.

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
    """(4x4 rigid T, scale s) minimising ``|target - (s R source + t)|`` (Umeyama 1991).

    The same estimator as evo's ``geometry.umeyama_alignment``; degenerate point
    sets (collinear, or all equal) are not refused: the error stays defined, the
    rotation about the line is then arbitrary, and s is 1 without spread.
    """
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


def apply_alignment(poses: Sequence[np.ndarray], T: np.ndarray, scale: float) -> list[np.ndarray]:
    """Poses with their translations scaled by ``scale``, then ``T`` applied on the left
    (evo's ``align(..., correct_scale=True)``: ``scale()`` then ``transform()``)."""
    out = []
    for P in poses:
        Q = np.array(P, float)
        Q[:3, 3] *= scale
        out.append(T @ Q)
    return out


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of a rotation matrix in degrees, accurate near 0 (atan2 of sin and cos)."""
    R = np.asarray(R, float)
    cos = (np.trace(R) - 1.0) / 2.0
    sin = np.linalg.norm([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2.0
    return float(np.degrees(math.atan2(sin, cos)))


def absolute_trajectory_error(
    estimated: np.ndarray, reference: np.ndarray, with_scale: bool
) -> dict[str, float]:
    """Position error statistics after the best rigid (or, ``with_scale``, similarity)
    alignment of ``estimated`` onto ``reference`` (N, 3); empty below 3 positions.

    ``ate_rmse_m`` etc. equal evo's ``evo_ape`` (translation part) with ``-a``
    (rigid) or ``-as`` (similarity); ``ate_scale`` is the scale applied (1 when rigid).
    """
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
        "ate_median_m": float(np.median(err)),
        "ate_max_m": float(err.max()),
        "ate_scale": float(s),
        "ate_poses": int(len(err)),
    }


def trajectory_rpe(
    estimated: Sequence[np.ndarray], reference: Sequence[np.ndarray], delta: int = 1
) -> dict[str, float]:
    """Relative pose error (Sturm et al. 2012) over pose pairs ``delta`` list entries apart:
    statistics of the translation norm and rotation angle of
    ``inv(inv(Q_i) Q_i+d) inv(P_i) P_i+d`` (P estimated, Q reference). Equals evo's
    ``evo_rpe --delta d --delta_unit f`` (translation part / rotation angle in degrees)."""
    trans, rots = [], []
    for i in range(len(estimated) - delta):
        Q = np.linalg.inv(reference[i]) @ reference[i + delta]
        P = np.linalg.inv(estimated[i]) @ estimated[i + delta]
        E = np.linalg.inv(Q) @ P
        trans.append(float(np.linalg.norm(E[:3, 3])))
        rots.append(rotation_angle_deg(E[:3, :3]))
    if not trans:
        return {}
    t, r = np.asarray(trans), np.asarray(rots)
    return {
        "rpe_trans_rmse_m": float(np.sqrt(np.mean(t**2))),
        "rpe_trans_mean_m": float(t.mean()),
        "rpe_trans_median_m": float(np.median(t)),
        "rpe_trans_max_m": float(t.max()),
        "rpe_rot_rmse_deg": float(np.sqrt(np.mean(r**2))),
        "rpe_rot_mean_deg": float(r.mean()),
        "rpe_rot_median_deg": float(np.median(r)),
        "rpe_rot_max_deg": float(r.max()),
        "rpe_pairs": len(trans),
        "rpe_delta_frames": delta,
    }


def _renamed(stats: dict, old: str, new: str) -> dict:
    return {new + k[len(old) :] if k.startswith(old) else k: v for k, v in stats.items()}


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


TRAJECTORY_DEFINITION = (
    "ATE/RPE of the published trajectory (the world poses the frontend published; frames "
    "without a valid pose publish none and are left out, never copied) against ground truth "
    "at the same stamps. ATE: position error after Umeyama alignment, Sim(3) for mono "
    "(scale estimated: ate_scale), SE(3) for stereo; as evo_ape -as / -a. RPE: consecutive "
    "published poses with ground truth (delta 1 frame), translation norm and rotation angle "
    "of the relative error; mono after the Sim(3) alignment (evo_rpe -as), stereo unaligned "
    "(a rigid alignment does not change RPE)."
)
GT_SCALED_DEFINITION = (
    "mono only, optimistic, not comparable with evo: the estimated relative poses chained "
    "with each step's translation rescaled to the true step length (ground truth), frames "
    "without a valid pose (or whose reference has no chained pose, or whose true step length "
    "is unknown) left out; ATE after rigid SE(3) alignment, RPE unaligned."
)


@dataclass
class SequenceAccuracy:
    """Collects per-frame pose errors of a sequence and the trajectories they imply.

    For each frame with ground truth for itself and its reference frame,
    :meth:`add` compares the estimated ``T_cur_ref`` with the true one (AUC,
    rotation / direction errors). The trajectory measures (ATE, RPE) use the
    poses the frontend *published* (``T_world``, see :meth:`add`); a frame that
    published none is left out of them, and counted. Mono also keeps the
    ground-truth-scaled chain (``*_gt_scaled_*`` keys, see ``GT_SCALED_DEFINITION``).
    """

    metric: bool
    position_only: bool = False
    errors: list[PairError] = field(default_factory=list)
    #: stamp -> published T_world_cam (world = optical frame of the first frame)
    published: dict[int, np.ndarray] = field(default_factory=dict)
    #: mono: stamp -> T_world_cam chained with true step lengths, anchored at ground truth
    gt_scaled: dict[int, np.ndarray] = field(default_factory=dict)
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
        T_world: Optional[np.ndarray] = None,
    ) -> Optional[PairError]:
        """Record one frame; returns its errors when they can be computed.

        ``T_cur_ref_est`` is the estimated relative pose (None: not valid);
        ``T_world`` the 4x4 world pose the frontend published for this frame (None:
        it published none, so the frame is left out of ATE/RPE; there is no
        fallback, a caller that never passes it gets no headline ATE/RPE). Every
        frame after the first without a valid relative pose counts in
        ``frames_without_pose``.
        """
        stamp = int(stamp)
        first = not self.order
        self.order.append(stamp)
        if gt_pose is not None:
            self.ground_truth[stamp] = np.asarray(gt_pose, float)
        if gt_position is not None:
            self.gt_positions[stamp] = np.asarray(gt_position, float).reshape(3)
        if T_world is not None:
            self.published[stamp] = np.array(T_world, float).reshape(4, 4)
        ref = None if ref_stamp is None else int(ref_stamp)
        if T_cur_ref_est is None and not first:
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
        if not self.metric:
            self._chain_gt_scaled(stamp, ref, T_cur_ref_est, error, first)
        return error

    def _gt_position(self, stamp: int) -> Optional[np.ndarray]:
        if stamp in self.ground_truth:
            return self.ground_truth[stamp][:3, 3]
        return self.gt_positions.get(stamp)

    def _chain_gt_scaled(
        self,
        stamp: int,
        ref: Optional[int],
        T_est: Optional[np.ndarray],
        error: Optional[PairError],
        first: bool,
    ) -> None:
        if first:
            start = self.ground_truth.get(stamp)
            if start is None:
                start = np.eye(4)
                if stamp in self.gt_positions:
                    start[:3, 3] = self.gt_positions[stamp]
            self.gt_scaled[stamp] = start.copy()
            return
        base = self.gt_scaled.get(ref) if ref is not None else None
        if T_est is None or base is None:
            return  # no valid pose, or its reference has none: left out, never copied
        if error is not None:
            length = error.gt_motion_m
        else:
            here, there = self._gt_position(stamp), self._gt_position(ref)
            if here is None or there is None:
                return  # true step length unknown: left out
            length = float(np.linalg.norm(here - there))
        T = np.array(T_est, float)
        T[:3, 3] = T[:3, 3] * length
        self.gt_scaled[stamp] = base @ np.linalg.inv(T)

    def _with_gt_position(self, poses: dict[int, np.ndarray]) -> list[int]:
        return [s for s in self.order if s in poses and self._gt_position(s) is not None]

    def _alignment(self) -> Optional[tuple[np.ndarray, float, str, list[int]]]:
        """(T, s, name, stamps) of the headline alignment of the published trajectory
        onto ground truth, from published poses with a true position; None below 3."""
        stamps = self._with_gt_position(self.published)
        if len(stamps) < 3:
            return None
        est = np.array([self.published[s][:3, 3] for s in stamps])
        ref = np.array([self._gt_position(s) for s in stamps])
        T, s = umeyama_alignment(est, ref, with_scale=not self.metric)
        return T, s, ("se3" if self.metric else "sim3"), stamps

    def summary(self) -> dict:
        out: dict = {
            "frames": len(self.order),
            "pairs_evaluated": len(self.errors),
            "frames_without_pose": self.frames_without_pose,
            "poses_published": len(self.published),
            "poses_evaluated": len(self._with_gt_position(self.published)),
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
        out.update(self._published_trajectory_errors())
        if not self.metric:
            out.update(self._gt_scaled_errors())
        return out

    def _published_trajectory_errors(self) -> dict:
        out: dict = {}
        alignment = self._alignment()
        if alignment is not None:
            T, s, name, stamps = alignment
            est = np.array([self.published[t][:3, 3] for t in stamps])
            ref = np.array([self._gt_position(t) for t in stamps])
            out.update(absolute_trajectory_error(est, ref, with_scale=not self.metric))
            out["ate_alignment"] = name
        rpe_stamps = [t for t in self.order if t in self.published and t in self.ground_truth]
        if self.metric and len(rpe_stamps) >= 2:
            est = [self.published[t] for t in rpe_stamps]
            out.update(trajectory_rpe(est, [self.ground_truth[t] for t in rpe_stamps]))
            out["rpe_alignment"] = "none"
        elif not self.metric and alignment is not None and len(rpe_stamps) >= 2:
            T, s = alignment[0], alignment[1]
            est = apply_alignment([self.published[t] for t in rpe_stamps], T, s)
            out.update(trajectory_rpe(est, [self.ground_truth[t] for t in rpe_stamps]))
            out["rpe_alignment"] = "sim3"
        if out:
            out["trajectory_definition"] = TRAJECTORY_DEFINITION
        return out

    def _gt_scaled_errors(self) -> dict:
        out: dict = {}
        stamps = self._with_gt_position(self.gt_scaled)
        if len(stamps) >= 3:
            est = np.array([self.gt_scaled[t][:3, 3] for t in stamps])
            ref = np.array([self._gt_position(t) for t in stamps])
            ate = absolute_trajectory_error(est, ref, with_scale=False)
            ate.pop("ate_scale", None)
            out.update(_renamed(ate, "ate_", "ate_gt_scaled_"))
            out["ate_gt_scaled_alignment"] = "se3"
        rpe_stamps = [t for t in self.order if t in self.gt_scaled and t in self.ground_truth]
        if len(rpe_stamps) >= 2:
            est = [self.gt_scaled[t] for t in rpe_stamps]
            rpe = trajectory_rpe(est, [self.ground_truth[t] for t in rpe_stamps])
            out.update(_renamed(rpe, "rpe_", "rpe_gt_scaled_"))
        if out:
            out["gt_scaled_definition"] = GT_SCALED_DEFINITION
        return out

    def aligned_trajectories(self) -> tuple[np.ndarray, np.ndarray, str]:
        """(published positions (N, 3) after the headline alignment, true positions (N, 3),
        NaN where unknown, alignment name: "sim3" (mono), "se3" (stereo) or "none" when
        fewer than 3 published poses have a true position; the positions are then the
        published ones, in the world of the first frame (mono: one unit per step))."""
        stamps = [s for s in self.order if s in self.published]
        est = np.array([self.published[s][:3, 3] for s in stamps]).reshape(-1, 3)
        alignment = self._alignment()
        name = "none"
        if alignment is not None and len(est):
            T, s, name, _ = alignment
            est = s * est @ T[:3, :3].T + T[:3, 3]
        ref = np.full((len(stamps), 3), np.nan)
        for i, stamp in enumerate(stamps):
            position = self._gt_position(stamp)
            if position is not None:
                ref[i] = position
        return est, ref, name

    def trajectories(self) -> tuple[np.ndarray, np.ndarray]:
        """The first two entries of :meth:`aligned_trajectories`."""
        est, ref, _ = self.aligned_trajectories()
        return est, ref
