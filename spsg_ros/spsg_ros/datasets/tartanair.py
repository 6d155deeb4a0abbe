"""TartanAir trajectory folders (``ENV/Easy/P000``): ``image_left/000000_left.png``,
``image_right/000000_right.png``, ``pose_left.txt``.

``pose_left.txt`` holds one ``tx ty tz qx qy qz qw`` line per frame: the left
camera body pose in a NED world (x forward, y right, z down), no timestamps.
Poses are converted to the optical convention for both the camera and the
world (``T_opt = M^T T_ned M`` with ``M = R_ned_from_optical``), which is what
the TartanAir tools do; the first camera looking along the world's x (north)
then looks along the optical world's z. Stamps are synthesised from a rate, starting
at a base time (:data:`~.base.DEFAULT_BASE_TIME_NS` unless given).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from .base import (
    DEFAULT_BASE_TIME_NS,
    DatasetError,
    Sequence,
    SequenceFrame,
    synthesised_stamps,
)

from .image_files import frame_from_file, first_image_size, load_image

from .intrinsics import pinhole_camera_info, read_intrinsics_yaml, scaled_camera_info

from .poses import matrix_to_quat_xyzw, pose_matrix, quat_xyzw_to_matrix

log = logging.getLogger(__name__)

#: optical (x right, y down, z forward) -> NED body (x forward, y right, z down)
R_NED_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
TARTANAIR_FX = TARTANAIR_FY = 320.0
TARTANAIR_CX, TARTANAIR_CY = 320.0, 240.0
TARTANAIR_WIDTH, TARTANAIR_HEIGHT = 640, 480
TARTANAIR_BASELINE = 0.25


def _M() -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = R_NED_FROM_OPTICAL
    return M


def ned_to_optical(T_ned: np.ndarray) -> np.ndarray:
    """World-from-body pose with NED axes -> world-from-camera with optical axes."""
    M = _M()
    return M.T @ np.asarray(T_ned, float) @ M


def optical_to_ned(T_opt: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ned_to_optical`."""
    M = _M()
    return M @ np.asarray(T_opt, float) @ M.T


def read_tartanair_poses(path: Path) -> list[np.ndarray]:
    """NED poses (4x4) of a ``pose_left.txt`` file, one per line."""
    if not path.is_file():
        raise DatasetError(f"TartanAir pose file {path} does not exist")
    poses = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: not numbers: {line!r}") from exc
        if len(values) != 7:
            raise DatasetError(
                f"{path}:{number}: expected 7 values 'tx ty tz qx qy qz qw', got {len(values)}"
            )
        try:
            poses.append(pose_matrix(quat_xyzw_to_matrix(values[3:]), values[:3]))
        except DatasetError as exc:
            raise DatasetError(f"{path}:{number}: {exc}") from exc
    return poses


def format_tartanair_pose(T_ned: np.ndarray) -> str:
    q = matrix_to_quat_xyzw(T_ned[:3, :3])
    values = list(T_ned[:3, 3]) + list(q)
    return " ".join(f"{v:.9e}" for v in values)


def write_tartanair_poses(path: Path, poses_optical: list[np.ndarray]) -> None:
    """Write optical-frame world-from-camera poses as a NED ``pose_left.txt``."""
    with open(path, "w") as f:
        for T in poses_optical:
            f.write(format_tartanair_pose(optical_to_ned(T)) + "\n")


def is_tartanair(path: Path) -> bool:
    return (path / "image_left").is_dir() and (
        (path / "pose_left.txt").is_file() or any((path / "image_left").glob("*_left.png"))
    )


class TartanAirSequence(Sequence):
    kind = "tartanair"

    def __init__(
        self,
        path: str | Path,
        *,
        stereo: bool = False,
        rate_hz: float = 10.0,
        base_time_ns: int = DEFAULT_BASE_TIME_NS,
        intrinsics: Optional[str | Path] = None,
        frame_id: str = "camera_left",
        **selection,
    ):
        super().__init__(path, **selection)
        root = self.path
        if not root.is_dir():
            raise DatasetError(f"TartanAir folder {root} does not exist")
        left_dir = root / "image_left"
        if not left_dir.is_dir():
            raise DatasetError(f"{root} is not a TartanAir trajectory folder: image_left/ missing")
        self.left_files = sorted(left_dir.glob("*_left.png"))
        if not self.left_files:
            raise DatasetError(f"no *_left.png images in {left_dir}")
        self.stereo = bool(stereo)
        self.right_files: list[Path] = []
        if self.stereo:
            right_dir = root / "image_right"
            if not right_dir.is_dir():
                raise DatasetError(f"stereo needs {right_dir}, which does not exist")
            self.right_files = [
                right_dir / (f.name[: -len("_left.png")] + "_right.png") for f in self.left_files
            ]
            missing = [str(p) for p in self.right_files if not p.is_file()]
            if len(missing) == len(self.right_files):
                raise DatasetError(f"no right images matching image_left/ in {right_dir}")
        self.rate_hz = float(rate_hz)
        self.stamps = synthesised_stamps(len(self.left_files), self.rate_hz, base_time_ns)
        pose_file = root / "pose_left.txt"
        self.gt: Optional[list[np.ndarray]] = None
        if pose_file.is_file():
            ned = read_tartanair_poses(pose_file)
            if len(ned) != len(self.left_files):
                raise DatasetError(
                    f"{pose_file} has {len(ned)} poses for {len(self.left_files)} images"
                )
            self.gt = [ned_to_optical(T) for T in ned]
            self.has_ground_truth = True
            self.ground_truth_kind = "pose"
        self.world_frame = "optical"
        self.frame_id = frame_id
        width, height = first_image_size(self.left_files)
        if intrinsics is not None:
            self.camera_info = read_intrinsics_yaml(intrinsics, (width, height))
            self.right_camera_info = self.camera_info
        else:
            base = TARTANAIR_BASELINE
            left = pinhole_camera_info(
                TARTANAIR_FX,
                TARTANAIR_FY,
                TARTANAIR_CX,
                TARTANAIR_CY,
                TARTANAIR_WIDTH,
                TARTANAIR_HEIGHT,
                baseline=base,
            )
            right = pinhole_camera_info(
                TARTANAIR_FX,
                TARTANAIR_FY,
                TARTANAIR_CX,
                TARTANAIR_CY,
                TARTANAIR_WIDTH,
                TARTANAIR_HEIGHT,
                baseline=base,
                right=True,
            )
            if (width, height) != (TARTANAIR_WIDTH, TARTANAIR_HEIGHT):
                log.warning(
                    "%s: images are %dx%d, not TartanAir's 640x480: intrinsics scaled",
                    root,
                    width,
                    height,
                )
                left, right = (
                    scaled_camera_info(left, width, height),
                    scaled_camera_info(right, width, height),
                )
            self.camera_info, self.right_camera_info = left, right
        parts = [p for p in root.resolve().parts[1:]][-3:]
        self.name = "/".join(parts) or str(root)

    def _stamps(self) -> list[int]:
        return self.stamps

    def _load(self, position: int, index: int) -> SequenceFrame:
        path = self.left_files[position]
        frame = frame_from_file(
            path, index, self.stamps[position], self.frame_id, self.camera_info
        )
        if self.stereo and frame.error is None:
            rpath = self.right_files[position]
            right, rencoding, rerror = load_image(rpath)
            if rerror is not None:
                frame.error, frame.image = rerror, None
            else:
                frame.right_image, frame.right_encoding = right, rencoding
                frame.right_frame_id = (
                    self.frame_id.replace("left", "right")
                    if "left" in self.frame_id
                    else self.frame_id + "_right"
                )
                frame.right_camera_info = self.right_camera_info
        if self.gt is not None:
            frame.gt_pose = self.gt[position]
            frame.gt_position = self.gt[position][:3, 3].copy()
        return frame
