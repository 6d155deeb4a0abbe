"""The one decoder of ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` payloads.

ROS-free and message-class-free: every function takes plain fields (height,
width, encoding, step, is_bigendian, data), so the node (rclpy messages), the
bag reader (rosbags messages) and the frontend share it. Only numpy and OpenCV.

Three stages:

* :func:`unpack` -- raw bytes to an array in the encoding's *raw layout*
  (what cv_bridge's ``passthrough`` gives): honours ``step`` (row padding; the
  last row may come without it) and ``is_bigendian``; the array is in native
  byte order and owns its memory.
* :func:`to_standard` -- Bayer mosaics and YUV 4:2:2 to BGR (OpenCV
  ``cvtColor``); every other encoding is already standard.
* :func:`to_gray` -- the frontend's uint8 grey image of an array in any
  supported layout, raw or standard. The one place of the grey rule.

:func:`decode_image` is unpack + to_standard; :func:`decode_compressed` decodes
JPEG/PNG/... through ``cv2.imdecode``.
"""

from __future__ import annotations

import array
import sys
from typing import Any, Optional

import cv2
import numpy as np


class ImageDecodeError(ValueError):
    """Image data cannot be decoded or does not fit its encoding; the message says why."""


#: Encoding -> (dtype, channels) of the raw layout of its pixels.
LAYOUTS: dict[str, tuple[type, int]] = {
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "rgb16": (np.uint16, 3),
    "bgr16": (np.uint16, 3),
    "rgba16": (np.uint16, 4),
    "bgra16": (np.uint16, 4),
    "bayer_rggb8": (np.uint8, 1),
    "bayer_bggr8": (np.uint8, 1),
    "bayer_gbrg8": (np.uint8, 1),
    "bayer_grbg8": (np.uint8, 1),
    "bayer_rggb16": (np.uint16, 1),
    "bayer_bggr16": (np.uint16, 1),
    "bayer_gbrg16": (np.uint16, 1),
    "bayer_grbg16": (np.uint16, 1),
    "yuv422": (np.uint8, 2),  # UYVY
    "yuv422_yuy2": (np.uint8, 2),  # YUYV
}

#: Other spellings some drivers publish, read as the named encoding (any letter case).
ALIASES: dict[str, str] = {
    "8UC1": "mono8",
    "16UC1": "mono16",
    "8UC3": "bgr8",
    "8UC4": "bgra8",
    "uyvy": "yuv422",
    "yuyv": "yuv422_yuy2",
}

#: Camera formats -> OpenCV code to BGR (same bit depth). OpenCV names a Bayer pattern
#: by its second row's first two pixels, so ROS RGGB is OpenCV's BayerBG (as in cv_bridge).
TO_BGR: dict[str, int] = {
    "bayer_rggb8": cv2.COLOR_BayerBG2BGR,
    "bayer_bggr8": cv2.COLOR_BayerRG2BGR,
    "bayer_gbrg8": cv2.COLOR_BayerGR2BGR,
    "bayer_grbg8": cv2.COLOR_BayerGB2BGR,
    "bayer_rggb16": cv2.COLOR_BayerBG2BGR,
    "bayer_bggr16": cv2.COLOR_BayerRG2BGR,
    "bayer_gbrg16": cv2.COLOR_BayerGR2BGR,
    "bayer_grbg16": cv2.COLOR_BayerGB2BGR,
    "yuv422": cv2.COLOR_YUV2BGR_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUYV,
}

#: Standard colour encodings -> OpenCV code to grey.
TO_GRAY: dict[str, int] = {
    "rgb8": cv2.COLOR_RGB2GRAY,
    "bgr8": cv2.COLOR_BGR2GRAY,
    "rgba8": cv2.COLOR_RGBA2GRAY,
    "bgra8": cv2.COLOR_BGRA2GRAY,
    "rgb16": cv2.COLOR_RGB2GRAY,
    "bgr16": cv2.COLOR_BGR2GRAY,
    "rgba16": cv2.COLOR_RGBA2GRAY,
    "bgra16": cv2.COLOR_BGRA2GRAY,
}

#: Encodings :func:`decode_image` and :func:`decode_compressed` return.
STANDARD_ENCODINGS = tuple(name for name in LAYOUTS if name not in TO_BGR)

MONO16_MODES = ("scale", "shift", "minmax")

_ALIASES_LOWER = {alias.lower(): name for alias, name in ALIASES.items()}


# ----------------------------------------------------------------------------- encodings


def canonical_encoding(encoding: str) -> str:
    """The name in :data:`LAYOUTS` of ``encoding`` (aliases and letter case resolved)."""
    text = str(encoding)
    if text in LAYOUTS:
        return text
    lower = text.lower()
    name = _ALIASES_LOWER.get(lower, lower)
    if name not in LAYOUTS:
        supported = ", ".join(list(LAYOUTS) + list(ALIASES))
        raise ImageDecodeError(f"unsupported image encoding '{encoding}' (supported: {supported})")
    return name


def layout(encoding: str) -> tuple[np.dtype, int]:
    """(dtype, channels) of the raw layout of ``encoding``."""
    dtype, channels = LAYOUTS[canonical_encoding(encoding)]
    return np.dtype(dtype), channels


def _shape_text(channels: int) -> str:
    return "(H, W)" if channels == 1 else f"(H, W, {channels})"


def check_array(image: Any, encoding: str) -> np.ndarray:
    """``image`` if it is an array in the raw layout of ``encoding`` (a trailing axis of
    size 1 of a one-channel image is dropped); ImageDecodeError saying what does not fit."""
    name = canonical_encoding(encoding)
    dtype, channels = LAYOUTS[name]
    if image is None:
        raise ImageDecodeError("no image")
    if not isinstance(image, np.ndarray):
        raise ImageDecodeError(f"image is a {type(image).__name__}, not a numpy array")
    if image.size == 0:
        raise ImageDecodeError(f"empty image array of shape {image.shape}")
    if image.ndim == 3 and channels == 1 and image.shape[2] == 1:
        image = image[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if image.ndim != expected_ndim or (channels > 1 and image.shape[2] != channels):
        raise ImageDecodeError(
            f"image array of shape {image.shape} does not fit encoding {name} "
            f"({_shape_text(channels)} expected)"
        )
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise ImageDecodeError("image contains NaN or infinite values")
    if image.dtype != dtype:
        raise ImageDecodeError(
            f"image array of dtype {image.dtype} does not fit encoding {name} "
            f"({np.dtype(dtype).name} expected)"
        )
    if name in ("yuv422", "yuv422_yuy2") and image.shape[1] % 2:
        raise ImageDecodeError(_odd_width_text(name, image.shape[1]))
    return image


def _odd_width_text(name: str, width: int) -> str:
    return (
        f"{name} image of odd width {width}: YUV 4:2:2 pixels come in pairs sharing U and V, "
        "so the width must be even"
    )


# ----------------------------------------------------------------------------- raw data


def as_bytes(data: Any) -> np.ndarray:
    """uint8 view (no copy where possible) of a message's ``data``: bytes, bytearray,
    memoryview, ``array.array`` (rclpy), a numpy array (rosbags) or a list of ints."""
    if isinstance(data, np.ndarray):
        if data.dtype in (np.uint8, np.int8):
            return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        return data.astype(np.uint8).reshape(-1)
    if isinstance(data, array.array):
        values = np.frombuffer(data, dtype=np.dtype(data.typecode))
        return values.view(np.uint8) if values.itemsize == 1 else values.astype(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    if data is None:
        raise ImageDecodeError("image data is missing (None)")
    try:
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ImageDecodeError(
            f"image data of type {type(data).__name__} is not a byte sequence: {exc}"
        ) from exc


def unpack(
    height: int, width: int, encoding: str, step: int, is_bigendian: Any, data: Any
) -> np.ndarray:
    """Array (H, W) or (H, W, C) of raw image data in the raw layout of ``encoding``.

    Honours ``step`` (row padding; the last row need not carry its padding) and
    ``is_bigendian`` (16-bit data); the array is in native byte order and owns its memory.
    """
    name = canonical_encoding(encoding)
    dtype, channels = layout(name)
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty image ({width} x {height} pixels)")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(
            f"image step {step} is shorter than a row of {width} {name} pixels ({row_bytes} bytes)"
        )
    if name in ("yuv422", "yuv422_yuy2") and width % 2:
        raise ImageDecodeError(_odd_width_text(name, width))
    raw = as_bytes(data)
    needed = step * (height - 1) + row_bytes
    if raw.size < needed:
        raise ImageDecodeError(
            f"image data holds {raw.size} bytes, {width} x {height} {name} "
            f"with step {step} needs {needed}"
        )
    total = step * height
    if raw.size < total:  # the missing padding of the last row
        raw = np.concatenate([raw, np.zeros(total - raw.size, np.uint8)])
    rows = raw[:total].reshape(height, step)[:, :row_bytes]
    pixels = np.array(rows, order="C").view(dtype)  # a copy: owns its memory
    if dtype.itemsize > 1 and bool(is_bigendian) != (sys.byteorder == "big"):
        pixels.byteswap(inplace=True)
    return pixels.reshape((height, width) if channels == 1 else (height, width, channels))


# ----------------------------------------------------------------------------- colour


def to_standard(image: np.ndarray, encoding: str) -> tuple[np.ndarray, str]:
    """(array, encoding) with Bayer mosaics and YUV 4:2:2 turned into BGR by OpenCV
    (``bgr8``, or ``bgr16`` for 16-bit Bayer); other encodings come back unchanged."""
    name = canonical_encoding(encoding)
    image = check_array(image, name)
    if name not in TO_BGR:
        return image, name
    try:
        bgr = cv2.cvtColor(np.ascontiguousarray(image), TO_BGR[name])
    except cv2.error as exc:
        raise ImageDecodeError(
            f"OpenCV cannot convert the {image.shape[1]} x {image.shape[0]} "
            f"{name} image to BGR: {str(exc).strip()}"
        ) from exc
    return bgr, "bgr16" if bgr.dtype == np.uint16 else "bgr8"


def decode_image(
    height: int, width: int, encoding: str, step: int, is_bigendian: Any, data: Any
) -> tuple[np.ndarray, str]:
    """(array, encoding) of the fields of a ``sensor_msgs/Image``: :func:`unpack`, then
    :func:`to_standard`. The encoding returned is one of :data:`STANDARD_ENCODINGS`."""
    name = canonical_encoding(encoding)
    return to_standard(unpack(height, width, name, step, is_bigendian, data), name)


def decode_compressed(data: Any, format: str = "") -> tuple[np.ndarray, str]:
    """(array, encoding) of the fields of a ``sensor_msgs/CompressedImage``.

    ``format`` (e.g. ``"bgr8; jpeg compressed bgr8"``, ``"png"``) is only checked for
    ``compressedDepth``, which is not supported; the codec is read from the data by
    ``cv2.imdecode``. Grey decodes to mono8/mono16, colour to bgr8/bgra8 (bgr16/bgra16
    for 16-bit PNG or TIFF).
    """
    text = str(format)
    if "compresseddepth" in text.lower():
        raise ImageDecodeError(f"compressedDepth images are not supported (format '{text}')")
    raw = as_bytes(data)
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None:
        raise ImageDecodeError(f"compressed image (format '{text}') cannot be decoded")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageDecodeError(
            f"compressed image (format '{text}') decodes to unsupported pixel type {image.dtype}"
        )
    bits = 8 * image.itemsize
    if image.ndim == 2:
        return image, f"mono{bits}"
    if image.shape[2] not in (3, 4):
        raise ImageDecodeError(
            f"compressed image (format '{text}') decodes to {image.shape[2]} channels"
        )
    return image, f"{'bgr' if image.shape[2] == 3 else 'bgra'}{bits}"


def _mono16_to_8(image: np.ndarray, mode: str) -> np.ndarray:
    if mode == "shift":
        return (image >> 8).astype(np.uint8)
    if mode == "minmax":
        lo, hi = int(image.min()), int(image.max())
        if hi == lo:
            return np.zeros(image.shape, np.uint8)
        return np.round((image.astype(np.float32) - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    return np.round(image.astype(np.float32) / 257.0).astype(np.uint8)


def to_gray(image: Any, encoding: str, mono16: str = "scale") -> np.ndarray:
    """uint8 (H, W) grey image of an array in any supported layout (raw or standard).

    The grey rule, in one place:

    * mono8 as is; mono16 to 8 bits by ``mono16``: ``scale`` (round(v / 257)),
      ``shift`` (v >> 8) or ``minmax`` (stretch min..max to 0..255);
    * 8-bit colour through OpenCV's ``*2GRAY``;
    * 16-bit colour: each channel v // 257 to 8 bits, then as 8-bit colour;
    * Bayer and YUV 4:2:2: to BGR first (:func:`to_standard`), then as colour.
    """
    image, name = to_standard(image, encoding)
    if name == "mono8":
        return np.ascontiguousarray(image)
    if name == "mono16":
        return _mono16_to_8(image, mono16)
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(image), TO_GRAY[name])


def to_display_bgr(image: Any, encoding: str) -> np.ndarray:
    """BGR uint8 picture of an array in any supported layout, for drawing (mono16 is
    stretched from 0..peak, 16-bit colour reduced by v // 257)."""
    image, name = to_standard(image, encoding)
    if name == "mono16":
        peak = int(image.max()) if image.size else 0
        image = (image.astype(np.float32) * (255.0 / max(peak, 1))).astype(np.uint8)
        name = "mono8"
    if name == "mono8":
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    conversion: Optional[int] = {
        "rgb": cv2.COLOR_RGB2BGR,
        "rgba": cv2.COLOR_RGBA2BGR,
        "bgra": cv2.COLOR_BGRA2BGR,
    }.get(name.rstrip("0123456789"))
    if conversion is not None:
        return cv2.cvtColor(np.ascontiguousarray(image), conversion)
    return np.ascontiguousarray(image)
