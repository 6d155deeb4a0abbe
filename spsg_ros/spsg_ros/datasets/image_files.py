"""Image files of a sequence: listing, reading (in the stored layout), sizes, frames."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .. import images
from ..frontend.types import CameraInfo
from .base import DatasetError, SequenceFrame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


def encoding_of(image: np.ndarray) -> str:
    """ROS encoding name of an image array as OpenCV loads it (8/16-bit grey, BGR, BGRA)."""
    if image.dtype not in (np.uint8, np.uint16):
        raise DatasetError(f"unsupported image pixel type {image.dtype}")
    bits = 8 * image.itemsize
    if image.ndim == 2 or image.shape[2] == 1:
        return f"mono{bits}"
    channels = image.shape[2]
    if channels == 3:
        return f"bgr{bits}"
    if channels == 4:
        return f"bgra{bits}"
    raise DatasetError(f"unsupported number of channels: {channels}")


def load_image(path: Path) -> tuple[Optional[np.ndarray], str, Optional[str]]:
    """(image, encoding, error): the image as stored (8/16-bit grey, BGR or BGRA).

    16-bit colour stays 16-bit (bgr16/bgra16): the grey conversion knows its real
    bit depth. A file that cannot be used (missing, a JPEG or PNG cut short, an
    unsupported pixel type ...) gives no image and the reason
    (:func:`spsg_ros.images.read_image_file`).
    """
    try:
        image, encoding = images.read_image_file(path)
    except images.ImageDecodeError as exc:
        return None, "mono8", str(exc)
    return image, encoding, None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, or DatasetError."""
    image, _, error = load_image(path)
    if image is None:
        raise DatasetError(error)
    return image.shape[1], image.shape[0]


def first_image_size(paths: Iterable[Path], tries: int = 50) -> tuple[int, int]:
    """(width, height) of the first readable image among the first ``tries`` of ``paths``.

    An unreadable first frame is flagged when the sequence reaches it; it must not stop
    the sequence from opening (the intrinsics only need the size).
    """
    errors = []
    for path in itertools.islice(paths, tries):
        image, _, error = load_image(Path(path))
        if image is not None:
            if errors:
                log.warning("%s; image size taken from %s", errors[0], path)
            return image.shape[1], image.shape[0]
        errors.append(error)
    raise DatasetError(
        f"none of the first {len(errors)} images can be read; first: "
        f"{errors[0] if errors else 'no images'}"
    )


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
