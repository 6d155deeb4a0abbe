"""Plain data carried into and out of the frontend (no ROS types).

Conventions, used by every consumer (ROS messages, bags, evaluation):
- Pixel coordinates are (x, y) in the ORIGINAL input image (before any resize).
- ``RelativePose`` maps points from the reference camera frame to the current
  camera frame: ``X_cur = rotation @ X_ref + translation`` (what OpenCV's
  recoverPose returns). The pose of the current camera expressed in the
  reference frame is its inverse (:meth:`RelativePose.inverse_matrix`).
- Camera frames are optical frames (x right, y down, z forward).
- Stamps are integer nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..features.types import Features
from ..matching.types import Matches


@dataclass
class CameraInfo:
    """Intrinsics as a ROS CameraInfo carries them.

    ``K`` 3x3; ``D`` distortion coefficients (plumb_bob / OpenCV order) or empty;
    ``P`` 3x4 projection (for a rectified stereo right camera P[0, 3] = -fx * baseline);
    ``width``/``height`` of the calibrated image; ``baseline`` in metres where known.
    ``T_right_left`` (4x4) general stereo extrinsics, when not rectified.
    """

    K: np.ndarray
    width: int
    height: int
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    P: Optional[np.ndarray] = None
    baseline: Optional[float] = None
    T_right_left: Optional[np.ndarray] = None


@dataclass
class Frame:
    """One image in: array in a ROS encoding layout, its stamp and frame id."""

    image: np.ndarray
    stamp_ns: int
    frame_id: str = "camera"
    encoding: str = "mono8"  # mono8, mono16, rgb8, bgr8, rgba8, bgra8
    camera_info: Optional[CameraInfo] = None


@dataclass
class RelativePose:
    valid: bool = False
    status: str = "not computed"  # "ok" or why the pose is invalid
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    scale_known: bool = False  # True: metric translation (stereo); False: unit direction
    num_matches: int = 0
    num_inliers: int = 0
    inlier_mask: np.ndarray = field(
        default_factory=lambda: np.zeros(0, bool)
    )  # over the valid matches
    covariance: Optional[np.ndarray] = None  # 6x6 (x, y, z, roll, pitch, yaw) or None

    def matrix(self) -> np.ndarray:
        """4x4 T_cur_ref."""
        T = np.eye(4)
        T[:3, :3] = self.rotation
        T[:3, 3] = self.translation
        return T

    def inverse_matrix(self) -> np.ndarray:
        """4x4 T_ref_cur: the current camera's pose in the reference camera frame."""
        T = np.eye(4)
        T[:3, :3] = self.rotation.T
        T[:3, 3] = -self.rotation.T @ self.translation
        return T


@dataclass
class FrameMetrics:
    """SPEC section 4 per-frame metrics against the reference frame."""

    num_kp: int = 0
    num_matches: int = 0
    match_prec: float = 0.0  # matches / current keypoints (0 without keypoints)
    outlier_prec: float = 1.0  # outliers / matches (1 without matches)
    num_inliers: int = 0


@dataclass
class MatcherInfo:
    """What an adaptive matcher (LightGlue) did for one pair: layers run of the
    network's ``n_layers`` (0: an image had no keypoint) and points pruned per image
    (current, reference or right) of its ``num_keypoints``."""

    matcher: str
    stop_layer: int
    n_layers: int
    num_pruned: tuple[int, int]
    num_keypoints: tuple[int, int]

    def summary(self) -> str:
        """``lightglue: 5/9 layers, pruned 312/2048`` (pruned points of both images)."""
        return (
            f"{self.matcher}: {self.stop_layer}/{self.n_layers} layers, "
            f"pruned {sum(self.num_pruned)}/{sum(self.num_keypoints)}"
        )


@dataclass
class FrameResult:
    """Everything the frontend knows about one processed frame (or stereo pair)."""

    stamp_ns: int
    frame_id: str
    image_size: tuple[int, int]  # (width, height) of the input image
    features: Features  # current (left) image, original pixel coords
    ref_stamp_ns: Optional[int] = None  # reference frame (previous or keyframe)
    ref_frame_id: Optional[str] = None
    matches: Optional[Matches] = None  # current -> reference: matches0 indexes reference keypoints
    pose: RelativePose = field(default_factory=RelativePose)
    metrics: FrameMetrics = field(default_factory=FrameMetrics)
    right_features: Optional[Features] = None  # stereo only
    stereo_matches: Optional[Matches] = None  # stereo only: left -> right
    # matcher lightglue: layers run and points pruned for ``matches`` / ``stereo_matches``
    matcher_info: Optional[MatcherInfo] = None
    stereo_matcher_info: Optional[MatcherInfo] = None
    is_keyframe: bool = False
    pairing_reset: bool = False  # the reference was dropped before this frame
    ok: bool = True  # False: flagged, see status
    status: str = "ok"
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def matcher_summary(self) -> str:
        """What the adaptive matcher did (empty for SuperGlue and nn): ``lightglue: 5/9
        layers, pruned 312/2048``, for stereo followed by ``; stereo lightglue: ...``."""
        parts = []
        if self.matcher_info is not None:
            parts.append(self.matcher_info.summary())
        if self.stereo_matcher_info is not None:
            parts.append("stereo " + self.stereo_matcher_info.summary())
        return "; ".join(parts)

    @classmethod
    def flagged(cls, frame: Any, status: str) -> "FrameResult":
        """The result of a frame that could not be processed (``ok`` False, no pose).

        ``frame`` is a :class:`Frame`, a dataset frame or anything with some of
        ``stamp_ns``, ``frame_id``, ``image`` and ``camera_info``; missing or unusable
        values give stamp 0, an empty frame id and the image size of the image, else
        of the camera info, else (0, 0).
        """
        try:
            stamp = int(getattr(frame, "stamp_ns", 0) or 0)
        except (TypeError, ValueError):
            stamp = 0
        size = _image_size(frame)
        result = cls(
            stamp_ns=stamp,
            frame_id=str(getattr(frame, "frame_id", "")),
            image_size=size,
            features=Features.empty(size),
            ok=False,
            status=status,
        )
        result.pose.status = f"no pose: {status}"
        return result


def _image_size(frame: Any) -> tuple[int, int]:
    """(width, height) of the frame's image, else of its camera info, else (0, 0)."""
    shape = getattr(getattr(frame, "image", None), "shape", ())
    if len(shape) >= 2:
        return int(shape[1]), int(shape[0])
    info = getattr(frame, "camera_info", None)
    try:
        return int(info.width), int(info.height)
    except (AttributeError, TypeError, ValueError):
        return 0, 0
