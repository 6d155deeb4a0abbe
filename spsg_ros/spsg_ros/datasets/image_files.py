"""Image files of a sequence: listing, reading (in the stored layout), sizes, frames."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..frontend.types import CameraInfo
from .base import DatasetError, SequenceFrame

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


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
