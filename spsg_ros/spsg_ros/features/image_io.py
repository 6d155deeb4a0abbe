"""Reading images for the networks the way upstream match_pairs.py does."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..images import ImageDecodeError, read_image_file, truncation_error


def process_resize(width: int, height: int, resize: Sequence[int]) -> tuple[int, int]:
    """Target (w, h): ``[-1]`` keeps the size, ``[N]`` scales the longest side to N,
    ``[W, H]`` is an exact size (upstream semantics)."""
    resize = list(resize)
    if not 1 <= len(resize) <= 2:
        raise ValueError(f"resize takes 1 or 2 values, got {resize}")
    if len(resize) == 1 and resize[0] > -1:
        scale = resize[0] / max(height, width)
        return int(round(width * scale)), int(round(height * scale))
    if len(resize) == 1:
        return width, height
    if resize[0] <= 0 or resize[1] <= 0:
        if resize[0] == -1 and resize[1] == -1:
            return width, height
        raise ValueError(f"resize W H must be positive, got {resize}")
    return int(resize[0]), int(resize[1])


def read_gray(
    path: str | Path, resize: Sequence[int] = (-1,)
) -> tuple[np.ndarray, tuple[float, float]]:
    """Grayscale uint8 image resized with cv2's default interpolation on the uint8
    image, and the (sx, sy) factors that map its pixels back to the original."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    why = truncation_error(path.read_bytes())  # OpenCV decodes a cut JPEG/PNG as grey rows
    if why:
        raise ImageDecodeError(f"image file {path}: {why}")
    if image is None:
        read_image_file(path)  # raises with the reason (unsupported pixel type, not an image)
        raise ImageDecodeError(f"image file {path} is not an image OpenCV can read")
    height, width = image.shape
    new_w, new_h = process_resize(width, height, resize)
    if (new_w, new_h) != (width, height):
        image = cv2.resize(image, (new_w, new_h))
    return image, (width / new_w, height / new_h)
