"""Image pre-processing for the frontend and the coordinate maps back to the input.

Input arrays come in ROS encoding layouts (decoded by :mod:`spsg_ros.images`); the
networks take uint8 grayscale.
Coordinates follow the pixel-centre convention of ``cv2.resize``: network pixel
x maps to ``(x + 0.5) * sx - 0.5`` in the original image, ``sx = W_orig / W_net``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import cv2
import numpy as np

from .. import images
from ..features.image_io import process_resize

log = logging.getLogger(__name__)

MIN_SIDE = 16

INTERPOLATION = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}


class FrameError(ValueError):
    """The image cannot be processed; the message says why (reported as a flagged result)."""


def to_gray(
    image: Any,
    encoding: str,
    mono16: str = "scale",
    bit_depth: int = 0,
    source: Optional[str] = None,
) -> np.ndarray:
    """uint8 (H, W) grayscale from an image array in a ROS encoding layout.

    The conversion is :func:`spsg_ros.images.to_gray` (any encoding the image decoder
    supports, raw Bayer/YUV layouts included); this adds the frontend's minimum size.
    ``bit_depth`` (the ``preprocess.bit_depth`` setting) is the depth of 16-bit data:
    0 (auto) reads data that never exceeds 4095 as 12-bit; ``source`` names the stream
    for the log line saying so.
    """
    try:
        image = images.check_array(image, encoding)
        height, width = image.shape[:2]
        if min(height, width) < MIN_SIDE:
            raise FrameError(
                f"image too small ({width}x{height}; at least {MIN_SIDE} px a side needed)"
            )
        return images.to_gray(image, encoding, mono16, bit_depth, source)
    except images.ImageDecodeError as exc:
        raise FrameError(str(exc)) from exc


@dataclass
class Prepared:
    """The network input of one image and how to map back to the original image."""

    image: np.ndarray  # uint8 (h, w) network input
    original_size: tuple[int, int]  # (W, H) of the input image
    scale: tuple[float, float]  # (sx, sy) = original / network
    undistorted_with: Optional[tuple[np.ndarray, np.ndarray]] = (
        None  # (K, D) when the image was remapped
    )


class Preprocessor:
    """Resize, optional image undistortion and CLAHE, from a validated ``preprocess`` section."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = dict(config)
        self._clahe = (
            cv2.createCLAHE(
                clipLimit=float(config["clahe_clip_limit"]),
                tileGridSize=(int(config["clahe_tile_grid"]),) * 2,
            )
            if config["clahe"]
            else None
        )
        self._maps: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._downscaled: set[tuple[int, int]] = set()

    def gray(self, image: Any, encoding: str, source: Optional[str] = None) -> np.ndarray:
        """:func:`to_gray` with this section's ``mono16`` and ``bit_depth``."""
        return to_gray(
            image,
            encoding,
            self.config.get("mono16", "scale"),
            self.config.get("bit_depth", 0),
            source,
        )

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        """Network input size: ``resize``; with ``[-1]``, bounded by ``max_side``."""
        resize = list(self.config["resize"])
        limit = int(self.config.get("max_side", 0))
        if limit and resize in ([-1], [-1, -1]) and max(width, height) > limit:
            size = process_resize(width, height, [limit])
            if (width, height) not in self._downscaled:
                self._downscaled.add((width, height))
                log.info(
                    "%dx%d input downscaled to %dx%d for the networks (max_image_side %d; "
                    "keypoints stay in input pixels; max_image_side 0 keeps the full size)",
                    width,
                    height,
                    *size,
                    limit,
                )
            return size
        return process_resize(width, height, resize)

    def __call__(
        self, gray: np.ndarray, K: Optional[np.ndarray] = None, D: Optional[np.ndarray] = None
    ) -> Prepared:
        height, width = gray.shape
        undistorted = None
        if self.config["undistort"] == "image" and K is not None and has_distortion(D):
            gray = self._undistort(gray, K, D)
            undistorted = (K, np.asarray(D, np.float64))
        new_w, new_h = self.network_size(width, height)
        if min(new_w, new_h) < MIN_SIDE:
            raise FrameError(
                f"network input too small ({new_w}x{new_h} after resize "
                f"{self.config['resize']}; at least {MIN_SIDE} px a side needed)"
            )
        if (new_w, new_h) != (width, height):
            gray = cv2.resize(
                gray, (new_w, new_h), interpolation=INTERPOLATION[self.config["interpolation"]]
            )
        if self._clahe is not None:
            gray = self._clahe.apply(gray)
        return Prepared(gray, (width, height), (width / new_w, height / new_h), undistorted)

    def _undistort(self, gray: np.ndarray, K: np.ndarray, D: np.ndarray) -> np.ndarray:
        height, width = gray.shape
        key = (
            np.asarray(K, np.float64).tobytes()
            + np.asarray(D, np.float64).tobytes()
            + bytes(f"{width}x{height}", "ascii")
        )
        if key not in self._maps:
            if len(self._maps) > 8:  # calibration changes are rare: keep the cache small
                self._maps.clear()
            self._maps[key] = cv2.initUndistortRectifyMap(
                K, np.asarray(D, np.float64), None, K, (width, height), cv2.CV_32FC1
            )
        map_x, map_y = self._maps[key]
        return cv2.remap(gray, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def has_distortion(D: Optional[np.ndarray]) -> bool:
    return D is not None and np.asarray(D).size > 0 and bool(np.any(np.asarray(D) != 0))


def to_original(points: np.ndarray, prepared: Prepared) -> np.ndarray:
    """Network-image pixel coordinates -> original-image pixel coordinates (float32).

    Through the resize (pixel-centre convention) and, when the image was
    undistorted, back through the lens distortion.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    sx, sy = prepared.scale
    out = np.empty_like(pts)
    out[:, 0] = (pts[:, 0] + 0.5) * sx - 0.5
    out[:, 1] = (pts[:, 1] + 0.5) * sy - 0.5
    if prepared.undistorted_with is not None and len(out):
        K, D = prepared.undistorted_with
        rays = np.hstack([out, np.ones((len(out), 1))]) @ np.linalg.inv(K).T
        projected, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K, D)
        out = projected.reshape(-1, 2)
    return out.astype(np.float32)


def normalized_points(
    points: np.ndarray, prepared: Prepared, K: np.ndarray, D: Optional[np.ndarray], undistort: str
) -> np.ndarray:
    """Normalised, undistorted coordinates (K^-1 p) of network-image keypoints."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((0, 2))
    if prepared.undistorted_with is not None:
        # keypoints live in the undistorted image: only the resize lies between
        sx, sy = prepared.scale
        pix = np.stack([(pts[:, 0] + 0.5) * sx - 0.5, (pts[:, 1] + 0.5) * sy - 0.5], axis=1)
        return _apply_inverse_K(pix, K)
    pix = to_original(pts, prepared).astype(np.float64)
    if undistort == "points" and has_distortion(D):
        return cv2.undistortPoints(pix.reshape(-1, 1, 2), K, np.asarray(D, np.float64)).reshape(
            -1, 2
        )
    return _apply_inverse_K(pix, K)


def _apply_inverse_K(pix: np.ndarray, K: np.ndarray) -> np.ndarray:
    rays = np.hstack([pix, np.ones((len(pix), 1))]) @ np.linalg.inv(np.asarray(K, np.float64)).T
    return rays[:, :2] / rays[:, 2:3]


def scale_intrinsics(K: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Intrinsics of the network-size image from the original K, (sx, sy) = original / network,
    consistent with the pixel-centre mapping of :func:`to_original`."""
    sx, sy = scale
    S = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
    return S @ np.asarray(K, np.float64)
