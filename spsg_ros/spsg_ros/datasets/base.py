"""What every dataset reader yields, and the helpers the readers share.

A reader (:class:`Sequence`) is an iterable of :class:`SequenceFrame`. Images
stay in the layout they were stored in (``mono8``/``mono16``/``bgr8``/``bgra8``
as the ROS encodings name them); ground truth is given, when the dataset has
it, as the 4x4 pose of the LEFT camera's optical frame (x right, y down, z
forward) in the dataset's world frame (``T_world_camera``, world-from-camera).
Position-only ground truth (Leica total stations) fills ``gt_position`` only.

A frame whose image cannot be read is still yielded, with ``image=None`` and
``error`` saying why, so that a replay can flag it and go on.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from ..geometry.rotations import quaternion_to_rotation, rotation_to_quaternion

from ..frontend.types import CameraInfo, Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


class DatasetError(ValueError):
    """A sequence is missing, incomplete or malformed; the message names the file."""


@dataclass
class SequenceFrame:
    """One time step of a sequence (mono, or a stereo pair)."""

    index: int
    stamp_ns: int
    image: Optional[np.ndarray]
    encoding: str = "mono8"
    frame_id: str = "camera"
    camera_info: Optional[CameraInfo] = None
    right_image: Optional[np.ndarray] = None
    right_encoding: str = "mono8"
    right_frame_id: Optional[str] = None
    right_camera_info: Optional[CameraInfo] = None
    gt_pose: Optional[np.ndarray] = None  # 4x4 T_world_camera (left optical frame)
    gt_position: Optional[np.ndarray] = None  # (3,) camera (or prism) position in the world
    source: str = ""  # file (or bag/topic) the image came from
    error: Optional[str] = None  # why the image could not be read

    @property
    def ok(self) -> bool:
        return self.error is None and self.image is not None

    @property
    def is_stereo(self) -> bool:
        return self.right_image is not None

    def frame(self) -> Frame:
        """The left (or mono) image as a frontend :class:`Frame`."""
        if self.image is None:
            raise DatasetError(f"frame {self.index} has no image: {self.error}")
        return Frame(
            image=self.image,
            stamp_ns=self.stamp_ns,
            frame_id=self.frame_id,
            encoding=self.encoding,
            camera_info=self.camera_info,
        )

    def right_frame(self) -> Frame:
        if self.right_image is None:
            raise DatasetError(
                f"frame {self.index} has no right image: {self.error or 'mono sequence'}"
            )
        return Frame(
            image=self.right_image,
            stamp_ns=self.stamp_ns,
            frame_id=self.right_frame_id or f"{self.frame_id}_right",
            encoding=self.right_encoding,
            camera_info=self.right_camera_info,
        )


class Sequence(ABC):
    """Base of the readers: iteration with a start offset, duration and frame limit.

    Subclasses implement :meth:`_frames` (all frames, in time order) and may set
    ``camera_info``, ``right_camera_info``, ``stereo``, ``world_frame``
    (``"optical"`` = y down, or ``"z_up"``), ``kind`` and ``name``.
    """

    kind = "sequence"

    def __init__(
        self,
        path: str | Path,
        *,
        start: float = 0.0,
        duration: Optional[float] = None,
        max_frames: Optional[int] = None,
        step: int = 1,
    ):
        self.path = Path(path)
        if start < 0:
            raise DatasetError(f"start offset must be >= 0 s, got {start}")
        if duration is not None and duration <= 0:
            raise DatasetError(f"duration must be > 0 s, got {duration}")
        if step < 1:
            raise DatasetError(f"step must be >= 1, got {step}")
        self.start = float(start)
        self.duration = duration
        self.max_frames = max_frames
        self.step = int(step)
        self.stereo = False
        self.camera_info: Optional[CameraInfo] = None
        self.right_camera_info: Optional[CameraInfo] = None
        self.world_frame = "z_up"
        self.has_ground_truth = False
        self.ground_truth_kind = "none"  # "pose", "position" or "none"
        self.name = self.path.name

    @abstractmethod
    def _stamps(self) -> list[int]:
        """Stamps (ns) of all frames in time order (drives selection and len())."""

    @abstractmethod
    def _load(self, position: int, index: int) -> SequenceFrame:
        """Frame at ``position`` among all frames, numbered ``index`` in the selection."""

    def selected_positions(self) -> list[int]:
        stamps = self._stamps()
        if not stamps:
            return []
        t0 = stamps[0] + int(round(self.start * 1e9))
        t1 = None if self.duration is None else t0 + int(round(self.duration * 1e9))
        chosen = [i for i, s in enumerate(stamps) if s >= t0 and (t1 is None or s <= t1)]
        chosen = chosen[:: self.step]
        if self.max_frames is not None and self.max_frames >= 0:
            chosen = chosen[: self.max_frames]
        return chosen

    def __len__(self) -> int:
        return len(self.selected_positions())

    def __iter__(self) -> Iterator[SequenceFrame]:
        for index, position in enumerate(self.selected_positions()):
            yield self._load(position, index)

    def describe(self) -> dict:
        info = self.camera_info
        return {
            "kind": self.kind,
            "path": str(self.path),
            "name": self.name,
            "frames": len(self),
            "stereo": self.stereo,
            "ground_truth": self.ground_truth_kind,
            "world_frame": self.world_frame,
            "camera": None
            if info is None
            else {
                "width": info.width,
                "height": info.height,
                "K": np.asarray(info.K).round(6).tolist(),
                "D": np.asarray(info.D).round(8).tolist(),
                "baseline": info.baseline,
            },
        }


# ----------------------------------------------------------------------------- images


def encoding_of(image: np.ndarray) -> str:
    """ROS encoding name of an image array as OpenCV loads it."""
    if image.ndim == 2:
        return "mono16" if image.dtype == np.uint16 else "mono8"
    channels = image.shape[2]
    if image.dtype != np.uint8:
        raise DatasetError(f"unsupported colour image type {image.dtype} with {channels} channels")
    if channels == 1:
        return "mono8"
    if channels == 3:
        return "bgr8"
    if channels == 4:
        return "bgra8"
    raise DatasetError(f"unsupported number of channels: {channels}")


def load_image(path: Path) -> tuple[Optional[np.ndarray], str, Optional[str]]:
    """(image, encoding, error): the image as stored (8/16-bit grey, BGR or BGRA)."""
    if not path.is_file():
        return None, "mono8", f"image file {path} does not exist"
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        return None, "mono8", f"image file {path} is not an image OpenCV can read (corrupt?)"
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype not in (np.uint8, np.uint16):
        return None, "mono8", f"image file {path} has unsupported pixel type {image.dtype}"
    if image.ndim == 3 and image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    return image, encoding_of(image), None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, or DatasetError."""
    image, _, error = load_image(path)
    if image is None:
        raise DatasetError(error)
    return image.shape[1], image.shape[0]


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


# ----------------------------------------------------------------------------- poses


def quat_xyzw_to_matrix(q) -> np.ndarray:
    """Rotation matrix of a quaternion given as (x, y, z, w); normalised first."""
    values = [float(v) for v in q]
    if (
        len(values) != 4
        or not all(math.isfinite(v) for v in values)
        or math.sqrt(sum(v * v for v in values)) < 1e-12
    ):
        raise DatasetError(f"invalid quaternion (x y z w) = {tuple(q)}")
    return quaternion_to_rotation(*values)


def matrix_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) with w >= 0 of a rotation matrix."""
    return np.array(rotation_to_quaternion(R))


def pose_matrix(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, float).reshape(3)
    return T


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(1.0, dot))
    return (math.sin((1 - a) * theta) * q0 + math.sin(a * theta) * q1) / math.sin(theta)


class Trajectory:
    """Stamped ground truth: positions (N, 3) and optional quaternions (N, 4) x y z w.

    :meth:`at` interpolates (linear position, slerp orientation) between the two
    samples around a stamp when they are at most ``max_gap_ns`` apart;
    :meth:`nearest` associates the closest sample within ``max_diff_ns``.
    """

    def __init__(self, stamps_ns, positions, quats_xyzw=None):
        order = np.argsort(np.asarray(stamps_ns, np.int64), kind="stable")
        self.stamps = np.asarray(stamps_ns, np.int64)[order]
        self.positions = np.asarray(positions, float).reshape(-1, 3)[order]
        self.quats = (
            None if quats_xyzw is None else np.asarray(quats_xyzw, float).reshape(-1, 4)[order]
        )
        if self.quats is not None:
            norms = np.linalg.norm(self.quats, axis=1, keepdims=True)
            if np.any(~np.isfinite(norms)) or np.any(norms < 1e-9):
                raise DatasetError("ground truth holds a zero or non-finite quaternion")
            self.quats = self.quats / norms

    def __len__(self) -> int:
        return len(self.stamps)

    def _result(self, position, quat) -> tuple[Optional[np.ndarray], np.ndarray]:
        if quat is None:
            return None, position
        return pose_matrix(quat_xyzw_to_matrix(quat), position), position

    def at(
        self, stamp_ns: int, max_gap_ns: int
    ) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """(T_world_body or None, position or None) at ``stamp_ns`` by interpolation."""
        if len(self.stamps) == 0:
            return None, None
        i = int(np.searchsorted(self.stamps, stamp_ns))
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            return self._result(self.positions[i], None if self.quats is None else self.quats[i])
        if i == 0 or i == len(self.stamps):
            return None, None
        t0, t1 = int(self.stamps[i - 1]), int(self.stamps[i])
        if t1 - t0 > max_gap_ns:
            return None, None
        a = (stamp_ns - t0) / (t1 - t0)
        position = (1 - a) * self.positions[i - 1] + a * self.positions[i]
        quat = None if self.quats is None else _slerp(self.quats[i - 1], self.quats[i], a)
        return self._result(position, quat)

    def nearest(
        self, stamp_ns: int, max_diff_ns: int
    ) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        if len(self.stamps) == 0:
            return None, None
        i = int(np.searchsorted(self.stamps, stamp_ns))
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self.stamps)]
        j = min(candidates, key=lambda k: abs(int(self.stamps[k]) - stamp_ns))
        if abs(int(self.stamps[j]) - stamp_ns) > max_diff_ns:
            return None, None
        return self._result(self.positions[j], None if self.quats is None else self.quats[j])


# ----------------------------------------------------------------------------- intrinsics


def default_camera_info(width: int, height: int) -> CameraInfo:
    """A guess for images without calibration: f = max(w, h) (about 53 deg wide), centred."""
    f = float(max(width, height))
    K = np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1.0]])
    return CameraInfo(
        K=K,
        width=int(width),
        height=int(height),
        D=np.zeros(5),
        P=np.hstack([K, np.zeros((3, 1))]),
    )


def pinhole_camera_info(
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
    D=None,
    baseline: Optional[float] = None,
    right: bool = False,
) -> CameraInfo:
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]], float)
    P = np.hstack([K, np.zeros((3, 1))])
    if right and baseline is not None:
        P[0, 3] = -fx * baseline
    T_rl = None
    if baseline is not None:
        T_rl = np.eye(4)
        T_rl[0, 3] = -baseline
    return CameraInfo(
        K=K,
        width=int(width),
        height=int(height),
        D=np.zeros(5) if D is None else np.asarray(D, float),
        P=P,
        baseline=baseline,
        T_right_left=T_rl,
    )


def _read_yaml(path: Path) -> dict:
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def _opencv_matrix(loader, node):
        return loader.construct_mapping(node, deep=True)

    _Loader.add_constructor("tag:yaml.org,2002:opencv-matrix", _opencv_matrix)
    _Loader.add_multi_constructor(
        "!",
        lambda loader, suffix, node: (
            loader.construct_mapping(node, deep=True)
            if isinstance(node, yaml.MappingNode)
            else loader.construct_scalar(node)
        ),
    )
    if not path.is_file():
        raise DatasetError(f"calibration file {path} does not exist")
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    if lines and lines[0].startswith("%YAML:"):  # OpenCV FileStorage header, not YAML 1.x
        text = "\n".join(lines[1:])
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise DatasetError(f"calibration file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"calibration file {path} does not hold a mapping")
    return data


def _matrix_values(value, count: int, what: str, path: Path) -> np.ndarray:
    if isinstance(value, dict):
        value = value.get("data")
    try:
        array = np.asarray(value, float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: {what} is not numeric") from exc
    if count and array.size != count:
        raise DatasetError(f"{path}: {what} needs {count} values, got {array.size}")
    return array


def read_intrinsics_yaml(
    path: str | Path, image_wh: Optional[tuple[int, int]] = None
) -> CameraInfo:
    """Intrinsics from a YAML file in one of three layouts:

    - ROS ``camera_info`` YAML (``image_width``, ``image_height``, ``camera_matrix``,
      ``distortion_coefficients``, optional ``projection_matrix``);
    - Kalibr / ASL ``sensor.yaml`` (``intrinsics: [fu, fv, cu, cv]``, ``resolution``,
      ``distortion_coefficients``);
    - plain keys ``fx, fy, cx, cy`` (+ ``width``, ``height``, ``D``/``distortion``,
      ``baseline``).
    """
    path = Path(path)
    data = _read_yaml(path)
    width = height = None
    D = np.zeros(5)
    P = None
    baseline = data.get("baseline")
    if "camera_matrix" in data:
        K = _matrix_values(data["camera_matrix"], 9, "camera_matrix", path).reshape(3, 3)
        width, height = data.get("image_width"), data.get("image_height")
        if "distortion_coefficients" in data:
            D = _matrix_values(data["distortion_coefficients"], 0, "distortion_coefficients", path)
        if "projection_matrix" in data:
            P = _matrix_values(data["projection_matrix"], 12, "projection_matrix", path).reshape(
                3, 4
            )
    elif "intrinsics" in data:
        fu, fv, cu, cv = _matrix_values(data["intrinsics"], 4, "intrinsics", path)
        K = np.array([[fu, 0, cu], [0, fv, cv], [0, 0, 1.0]])
        if "resolution" in data:
            width, height = (
                int(v) for v in _matrix_values(data["resolution"], 2, "resolution", path)
            )
        if "distortion_coefficients" in data:
            D = _matrix_values(data["distortion_coefficients"], 0, "distortion_coefficients", path)
    elif all(k in data for k in ("fx", "fy", "cx", "cy")):
        try:
            K = np.array(
                [
                    [float(data["fx"]), 0, float(data["cx"])],
                    [0, float(data["fy"]), float(data["cy"])],
                    [0, 0, 1.0],
                ]
            )
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: fx, fy, cx, cy must be numbers") from exc
        width, height = data.get("width"), data.get("height")
        dist = data.get("D", data.get("distortion"))
        if dist is not None:
            D = _matrix_values(dist, 0, "distortion", path)
    else:
        raise DatasetError(
            f"{path}: no intrinsics found (expected camera_matrix, intrinsics: "
            f"[fu, fv, cu, cv], or fx/fy/cx/cy keys)"
        )
    if width is None or height is None:
        if image_wh is None:
            raise DatasetError(
                f"{path}: image size missing (image_width/image_height, resolution "
                f"or width/height)"
            )
        width, height = image_wh
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise DatasetError(f"{path}: focal lengths must be positive, got {K[0, 0]}, {K[1, 1]}")
    if P is None:
        P = np.hstack([K, np.zeros((3, 1))])
    return CameraInfo(
        K=K,
        width=int(width),
        height=int(height),
        D=np.asarray(D, float),
        P=P,
        baseline=None if baseline is None else float(baseline),
    )


def scaled_camera_info(info: CameraInfo, width: int, height: int) -> CameraInfo:
    """Intrinsics of ``info`` for the same camera at another image size."""
    sx, sy = width / info.width, height / info.height
    S = np.diag([sx, sy, 1.0])
    P = None if info.P is None else S @ info.P
    return replace(info, K=S @ info.K, P=P, width=int(width), height=int(height))


def frame_from_file(
    path, index: int, stamp_ns: int, frame_id: str, camera_info
) -> "SequenceFrame":
    """A SequenceFrame for one image file; a file that cannot be read, or whose size
    contradicts the calibration, gives a frame with ``error`` set and no image."""
    image, encoding, error = load_image(path)
    frame = SequenceFrame(
        index=index,
        stamp_ns=stamp_ns,
        image=image,
        encoding=encoding,
        frame_id=frame_id,
        camera_info=camera_info,
        source=str(path),
        error=error,
    )
    mismatch = check_size(camera_info, image, str(path)) if error is None else None
    if mismatch:
        frame.error, frame.image = mismatch, None
    return frame


def check_size(
    info: Optional[CameraInfo], image: Optional[np.ndarray], source: str
) -> Optional[str]:
    """A warning when an image does not have the calibrated size, else None."""
    if info is None or image is None:
        return None
    h, w = image.shape[:2]
    if (w, h) != (info.width, info.height):
        return f"{source}: image is {w}x{h} but the calibration is for {info.width}x{info.height}"
    return None


def synthesised_stamps(count: int, rate_hz: float, start_ns: int = 0) -> list[int]:
    if not rate_hz > 0:
        raise DatasetError(f"frame rate must be > 0 Hz, got {rate_hz}")
    return [start_ns + int(round(i * 1e9 / rate_hz)) for i in range(count)]


__all__ = [
    "DatasetError",
    "SequenceFrame",
    "Sequence",
    "Trajectory",
    "load_image",
    "list_images",
    "quat_xyzw_to_matrix",
    "matrix_to_quat_xyzw",
    "pose_matrix",
    "read_intrinsics_yaml",
    "default_camera_info",
    "pinhole_camera_info",
    "scaled_camera_info",
    "synthesised_stamps",
    "encoding_of",
    "image_size",
    "check_size",
]
