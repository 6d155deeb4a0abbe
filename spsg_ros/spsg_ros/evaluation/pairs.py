"""The upstream pairs evaluation protocol (SPEC section 3).

A pairs file line is ``name0 name1 rot0 rot1 K0(9) K1(9) T_0to1(16)``: two
image paths relative to an image folder, their EXIF rotations (multiples of 90
degrees, counter-clockwise as ``np.rot90``), the 3x3 intrinsics of the
original images and the 4x4 pose mapping camera-0 points to camera 1.

Per pair: both images are read grayscale, resized (intrinsics scaled by the
inverse resize factors), rotated; keypoints are detected and matched; the
precision is the share of matches whose symmetric epipolar error (normalised
coordinates) is below 5e-4; the matching score is correct matches / keypoints
of image 0; the relative pose comes from an essential matrix by RANSAC on
K-normalised points (threshold 1 px / f_mean with ``f_mean = mean(K0[0,0],
K1[1,1], K0[0,0], K1[1,1])``, confidence 0.99999; fewer than 5 matches: no
pose), recovering the pose of every candidate E and keeping the one with most
inliers. Pair error = max(rotation error, translation direction error folded
to min(e, 180 - e)), infinite without a pose; AUC at 5/10/20 degrees.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..geometry.epipolar import essential_pose
from ..geometry.errors import rotation_error_deg, translation_angle_deg
from .pose import AUC_THRESHOLDS, auc_dict

log = logging.getLogger(__name__)

EPIPOLAR_THRESHOLD = 5e-4
POSE_THRESHOLD_PX = 1.0
RANSAC_CONFIDENCE = 0.99999
MIN_POSE_MATCHES = 5


class PairsFileError(ValueError):
    """A pairs file line is malformed; the message names the file and line."""


@dataclass
class PairEntry:
    name0: str
    name1: str
    rot0: int = 0
    rot1: int = 0
    K0: Optional[np.ndarray] = None
    K1: Optional[np.ndarray] = None
    T_0to1: Optional[np.ndarray] = None
    line: int = 0

    @property
    def has_ground_truth(self) -> bool:
        return self.T_0to1 is not None


def parse_pairs_file(path: str | Path, require_ground_truth: bool = True) -> list[PairEntry]:
    """Entries of a pairs file (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {path} does not exist")
    entries = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) == 38:
            try:
                values = [float(v) for v in parts[2:]]
            except ValueError as exc:
                raise PairsFileError(
                    f"{path}:{number}: rotations, K0, K1 and T_0to1 must be numbers"
                ) from exc
            rot0, rot1 = values[0], values[1]
            if rot0 not in (0, 1, 2, 3) or rot1 not in (0, 1, 2, 3):
                raise PairsFileError(
                    f"{path}:{number}: rotations must be 0..3 (x 90 degrees), "
                    f"got {parts[2]} {parts[3]}"
                )
            entries.append(
                PairEntry(
                    parts[0],
                    parts[1],
                    int(rot0),
                    int(rot1),
                    np.array(values[2:11]).reshape(3, 3),
                    np.array(values[11:20]).reshape(3, 3),
                    np.array(values[20:36]).reshape(4, 4),
                    number,
                )
            )
        elif len(parts) in (2, 4) and not require_ground_truth:
            rots = [int(v) for v in parts[2:4]] if len(parts) == 4 else [0, 0]
            entries.append(PairEntry(parts[0], parts[1], rots[0], rots[1], line=number))
        else:
            raise PairsFileError(
                f"{path}:{number}: expected 38 fields 'name0 name1 rot0 rot1 K0(9) K1(9) "
                f"T_0to1(16)', got {len(parts)}"
            )
    if not entries:
        raise PairsFileError(f"{path} holds no pairs")
    return entries


# ------------------------------------------------------------ geometry of the protocol


def scale_intrinsics(K: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """K of a resized image: ``scales`` = (orig_w / new_w, orig_h / new_h)."""
    return np.diag([1.0 / scales[0], 1.0 / scales[1], 1.0]) @ np.asarray(K, float)


def rotate_intrinsics(K: np.ndarray, image_shape: Sequence[int], rot: int) -> np.ndarray:
    """K after ``np.rot90(image, rot)``; ``image_shape`` is the rotated image's (h, w)."""
    rot = int(rot) % 4
    if rot == 0:
        return np.asarray(K, float)
    h, w = (image_shape[1], image_shape[0]) if rot % 2 else (image_shape[0], image_shape[1])
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if rot == 1:
        return np.array([[fy, 0.0, cy], [0.0, fx, w - 1 - cx], [0.0, 0.0, 1.0]])
    if rot == 2:
        return np.array([[fx, 0.0, w - 1 - cx], [0.0, fy, h - 1 - cy], [0.0, 0.0, 1.0]])
    return np.array([[fy, 0.0, h - 1 - cy], [0.0, fx, cx], [0.0, 0.0, 1.0]])


def rotate_pose_inplane(T_cam_world: np.ndarray, rot: int) -> np.ndarray:
    """Camera pose after an in-plane image rotation by ``rot`` x 90 degrees."""
    angle = np.deg2rad([0.0, 270.0, 180.0, 90.0][int(rot) % 4])
    R = np.eye(4)
    R[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return R @ np.asarray(T_cam_world, float)


def normalise(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return (p - K[[0, 1], [2, 2]][None]) / K[[0, 1], [0, 1]][None]


def symmetric_epipolar_error(
    kpts0: np.ndarray, kpts1: np.ndarray, T_0to1: np.ndarray, K0: np.ndarray, K1: np.ndarray
) -> np.ndarray:
    """Squared symmetric epipolar distance in normalised coordinates (upstream measure):
    ``(x1' E x0)^2 (1 / |(E x0)_12|^2 + 1 / |(E' x1)_12|^2)``."""
    x0 = np.hstack([normalise(kpts0, K0), np.ones((len(kpts0), 1))])
    x1 = np.hstack([normalise(kpts1, K1), np.ones((len(kpts1), 1))])
    t = T_0to1[:3, 3]
    t_cross = np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])
    E = t_cross @ T_0to1[:3, :3]
    Ex0 = x0 @ E.T
    Etx1 = x1 @ E
    x1Ex0 = np.sum(x1 * Ex0, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return x1Ex0**2 * (
            1.0 / (Ex0[:, 0] ** 2 + Ex0[:, 1] ** 2) + 1.0 / (Etx1[:, 0] ** 2 + Etx1[:, 1] ** 2)
        )


def estimate_pose(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    K0: np.ndarray,
    K1: np.ndarray,
    threshold_px: float = POSE_THRESHOLD_PX,
    confidence: float = RANSAC_CONFIDENCE,
):
    """(R, t, inlier mask) of the protocol, or None (fewer than 5 matches, no model,
    or no candidate with a point in front of both cameras).

    The RANSAC and the per-candidate pose recovery are the frontend's
    :func:`spsg_ros.geometry.essential_pose`, fed with K-normalised points and the
    threshold ``threshold_px / f_mean``.
    """
    if len(kpts0) < MIN_POSE_MATCHES:
        return None
    f_mean = float(np.mean([K0[0, 0], K1[1, 1], K0[0, 0], K1[1, 1]]))
    pose = essential_pose(
        normalise(kpts0, K0), normalise(kpts1, K1), threshold_px / f_mean, confidence
    )
    if pose is None or not pose.inlier_mask.any():
        return None
    return pose.rotation, pose.translation, pose.inlier_mask


def pose_errors(T_0to1: np.ndarray, R: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """(translation direction error folded to min(e, 180 - e), rotation error), degrees."""
    return (
        translation_angle_deg(t, T_0to1[:3, 3], fold=True),
        rotation_error_deg(R, T_0to1[:3, :3]),
    )


# ----------------------------------------------------------------------------- running it


@dataclass
class PairResult:
    name0: str
    name1: str
    num_kp0: int
    num_kp1: int
    num_matches: int
    num_correct: int
    precision: float
    matching_score: float
    rotation_err_deg: float = math.inf
    translation_err_deg: float = math.inf
    pose_err_deg: float = math.inf
    num_inliers: int = 0


def load_pair_images(entry: PairEntry, images_dir: Path, resize: Sequence[int]):
    """(image0, image1, K0, K1, T_0to1) after resizing and rotating as the protocol does."""
    from ..features.image_io import read_gray
    from ..images import ImageDecodeError

    images, Ks = [], []
    for name, rot, K in ((entry.name0, entry.rot0, entry.K0), (entry.name1, entry.rot1, entry.K1)):
        try:
            image, scales = read_gray(images_dir / name, resize)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"pair on line {entry.line}: {exc}") from exc
        except ImageDecodeError as exc:
            raise ImageDecodeError(f"pair on line {entry.line}: {exc}") from exc
        if rot:
            image = np.ascontiguousarray(np.rot90(image, k=rot))
            if rot % 2:
                scales = scales[::-1]
        images.append(image)
        Ks.append(None if K is None else scale_intrinsics(K, scales))
    T = entry.T_0to1
    if T is not None and (entry.rot0 or entry.rot1):
        cam0_T_w, cam1_T_w = np.eye(4), np.asarray(T, float)
        if entry.rot0:
            Ks[0] = rotate_intrinsics(Ks[0], images[0].shape, entry.rot0)
            cam0_T_w = rotate_pose_inplane(cam0_T_w, entry.rot0)
        if entry.rot1:
            Ks[1] = rotate_intrinsics(Ks[1], images[1].shape, entry.rot1)
            cam1_T_w = rotate_pose_inplane(cam1_T_w, entry.rot1)
        T = cam1_T_w @ np.linalg.inv(cam0_T_w)
    return images[0], images[1], Ks[0], Ks[1], T


def evaluate_matches(
    entry: PairEntry,
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    matches0: np.ndarray,
    K0: np.ndarray,
    K1: np.ndarray,
    T_0to1: np.ndarray,
) -> PairResult:
    """Protocol figures of one pair from its keypoints and ``matches0`` (-1 = unmatched)."""
    matches0 = np.asarray(matches0).reshape(-1)
    valid = matches0 > -1
    mk0 = np.asarray(kpts0, np.float64).reshape(-1, 2)[valid]
    mk1 = np.asarray(kpts1, np.float64).reshape(-1, 2)[matches0[valid]]
    errors = symmetric_epipolar_error(mk0, mk1, T_0to1, K0, K1) if len(mk0) else np.zeros(0)
    correct = errors < EPIPOLAR_THRESHOLD
    num_correct = int(correct.sum())
    result = PairResult(
        entry.name0,
        entry.name1,
        int(len(kpts0)),
        int(len(kpts1)),
        int(len(mk0)),
        num_correct,
        precision=float(correct.mean()) if len(correct) else 0.0,
        matching_score=num_correct / len(kpts0) if len(kpts0) else 0.0,
    )
    estimate = estimate_pose(mk0, mk1, K0, K1)
    if estimate is not None:
        R, t, inliers = estimate
        result.translation_err_deg, result.rotation_err_deg = pose_errors(T_0to1, R, t)
        result.pose_err_deg = max(result.translation_err_deg, result.rotation_err_deg)
        result.num_inliers = int(inliers.sum())
    return result


MatchFunction = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def evaluate_pairs(
    entries: Sequence[PairEntry],
    images_dir: str | Path,
    match: MatchFunction,
    resize: Sequence[int] = (640, 480),
    progress: bool = True,
) -> tuple[list[PairResult], dict]:
    """Run ``match(image0, image1) -> (kpts0, kpts1, matches0)`` on every pair and
    score it; returns per-pair results and the summary (percentages)."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"image folder {images_dir} does not exist")
    missing = sorted(
        {n for e in entries for n in (e.name0, e.name1) if not (images_dir / n).is_file()}
    )
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise FileNotFoundError(
            f"{len(missing)} image(s) of the pairs file missing under {images_dir}: {shown}"
        )
    without_gt = [e.line for e in entries if not e.has_ground_truth]
    if without_gt:
        raise ValueError(
            f"pairs on lines {without_gt[:5]} have no intrinsics/pose: cannot evaluate"
        )
    from tqdm import tqdm

    results = []
    for entry in tqdm(entries, desc="pairs", unit="pair", disable=not progress):
        image0, image1, K0, K1, T = load_pair_images(entry, images_dir, resize)
        kpts0, kpts1, matches0 = match(image0, image1)
        results.append(evaluate_matches(entry, kpts0, kpts1, matches0, K0, K1, T))
    return results, summarise(results)


def summarise(results: Sequence[PairResult]) -> dict:
    if not results:
        return {"pairs": 0}
    errors = [r.pose_err_deg for r in results]
    out = {"pairs": len(results)}
    out.update(auc_dict(errors, AUC_THRESHOLDS))
    out.update(
        {
            "precision": 100.0 * float(np.mean([r.precision for r in results])),
            "matching_score": 100.0 * float(np.mean([r.matching_score for r in results])),
            "mean_matches": float(np.mean([r.num_matches for r in results])),
            "mean_keypoints": float(np.mean([(r.num_kp0 + r.num_kp1) / 2 for r in results])),
            "pairs_without_pose": int(
                sum(1 for r in results if not math.isfinite(r.pose_err_deg))
            ),
        }
    )
    return out


def results_as_dicts(results: Sequence[PairResult]) -> list[dict]:
    return [
        {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(r).items()
        }
        for r in results
    ]
