"""The one decoder of ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` payloads.

ROS-free and message-class-free: every function takes plain fields (height,
width, encoding, step, is_bigendian, data), so the node (rclpy messages), the
bag reader (rosbags messages) and the frontend share it. Only numpy and OpenCV.

Three stages:

* :func:`unpack` -- raw bytes to an array in the encoding's *raw layout*
  (what cv_bridge's ``passthrough`` gives): honours ``step`` (row padding; the
  last row may come without it) and ``is_bigendian``; the array is in native
  byte order and owns its memory (``copy=False``: a read-only view of the data
  where the layout allows, as the node uses it: no image copied twice).
* :func:`to_standard` -- Bayer mosaics and YUV 4:2:2 to BGR (OpenCV
  ``cvtColor``); every other encoding is already standard.
* :func:`to_gray` -- the frontend's uint8 grey image of an array in any
  supported layout, raw or standard. The one place of the grey rule, including
  the bit depth of 16-bit data (:func:`bit_depth_of`: 12-bit cameras store their
  values in 16-bit words).

:func:`decode_image` is unpack + to_standard; :func:`decode_compressed` decodes
JPEG/PNG/... through ``cv2.imdecode`` and :func:`read_image_file` does the same for
a file; both refuse a JPEG or PNG that was cut short (:func:`truncation_error`)
instead of letting the codec fill the missing part with grey.
"""

from __future__ import annotations

import array
import logging
import os
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

#: ``bit_depth`` 0: read 16-bit data whose values never exceed this as 12-bit.
AUTO_12BIT_MAX = 4095
#: ``bit_depth`` values: 0 (auto) or a fixed depth of 8 to 16 bits.
BIT_DEPTHS = (0,) + tuple(range(8, 17))

log = logging.getLogger(__name__)

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
    height: int,
    width: int,
    encoding: str,
    step: int,
    is_bigendian: Any,
    data: Any,
    copy: bool = True,
) -> np.ndarray:
    """Array (H, W) or (H, W, C) of raw image data in the raw layout of ``encoding``.

    Honours ``step`` (row padding; the last row need not carry its padding) and
    ``is_bigendian`` (16-bit data); the array is in native byte order and owns its memory.
    ``copy=False``: a read-only view of ``data`` instead (rows strided by ``step``) when
    it is in native byte order and aligned, else a copy as with ``copy=True``; the view
    keeps ``data`` alive and must not outlive changes to it.
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
    # rows of row_bytes, step apart: the last row's missing padding is never read
    rows = np.lib.stride_tricks.as_strided(
        raw, shape=(height, row_bytes), strides=(step, 1), writeable=False
    )
    swap = dtype.itemsize > 1 and bool(is_bigendian) != (sys.byteorder == "big")
    aligned = raw.ctypes.data % dtype.itemsize == 0 and step % dtype.itemsize == 0
    if copy or swap or not aligned:
        pixels = np.array(rows, order="C").view(dtype)  # a copy: owns its memory
        if swap:
            pixels.byteswap(inplace=True)
    else:
        pixels = rows.view(dtype)
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
    height: int,
    width: int,
    encoding: str,
    step: int,
    is_bigendian: Any,
    data: Any,
    copy: bool = True,
) -> tuple[np.ndarray, str]:
    """(array, encoding) of the fields of a ``sensor_msgs/Image``: :func:`unpack`, then
    :func:`to_standard`. The encoding returned is one of :data:`STANDARD_ENCODINGS`.
    ``copy=False``: a read-only view of ``data`` where :func:`unpack` allows it (standard
    encodings only: Bayer and YUV are converted into a new array either way)."""
    name = canonical_encoding(encoding)
    return to_standard(unpack(height, width, name, step, is_bigendian, data, copy), name)


def decode_compressed(data: Any, format: str = "") -> tuple[np.ndarray, str]:
    """(array, encoding) of the fields of a ``sensor_msgs/CompressedImage``.

    ``format`` (e.g. ``"bgr8; jpeg compressed bgr8"``, ``"png"``) is only checked for
    ``compressedDepth``, which is not supported; the codec is read from the data by
    ``cv2.imdecode``. Grey decodes to mono8/mono16, colour to bgr8/bgra8 (bgr16/bgra16
    for 16-bit PNG or TIFF). A JPEG or PNG cut short is refused (:func:`truncation_error`).
    """
    text = str(format)
    if "compresseddepth" in text.lower():
        raise ImageDecodeError(
            f"compressed image (format '{text}'): compressedDepth images are not supported"
        )
    return _decode_encoded(as_bytes(data), f"compressed image (format '{text}')")


def read_image_file(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """(array, encoding) of an image file as stored, like :func:`decode_compressed`.

    ImageDecodeError names the file and says why it cannot be used: missing, a JPEG or
    PNG cut short, a format OpenCV does not read, or an unsupported pixel type.
    """
    where = f"image file {os.fspath(path)}"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ImageDecodeError(f"{where} does not exist") from None
    except OSError as exc:
        raise ImageDecodeError(f"{where} cannot be read: {exc.strerror or exc}") from None
    return _decode_encoded(np.frombuffer(raw, np.uint8), where)


def _decode_encoded(raw: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    if raw.size == 0:
        raise ImageDecodeError(f"{where} cannot be decoded: it is empty (0 bytes)")
    why = truncation_error(raw)
    if why:
        raise ImageDecodeError(f"{where}: {why}")
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageDecodeError(
            f"{where} cannot be decoded: not in an image format OpenCV can read "
            "(corrupt file, or not an image)"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageDecodeError(
            f"{where} decodes, but to pixel type {_pixel_type_text(image)}, which is not "
            "supported (supported: 8- or 16-bit unsigned integer pixels, grey, BGR or BGRA)"
        )
    bits = 8 * image.itemsize
    if image.ndim == 2:
        return image, f"mono{bits}"
    if image.shape[2] not in (3, 4):
        raise ImageDecodeError(f"{where} has {image.shape[2]} channels (supported: 1, 3 or 4)")
    return image, f"{'bgr' if image.shape[2] == 3 else 'bgra'}{bits}"


def _pixel_type_text(image: np.ndarray) -> str:
    kind = {"f": "floating-point", "i": "signed integer", "u": "unsigned integer"}.get(
        image.dtype.kind, image.dtype.kind
    )
    channels = 1 if image.ndim == 2 else image.shape[2]
    return f"{image.dtype.name} ({8 * image.itemsize}-bit {kind}, {channels} channel" + (
        "s)" if channels > 1 else ")"
    )


# ----------------------------------------------------------------------------- truncation

_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def truncation_error(data: Any) -> Optional[str]:
    """Why encoded image ``data`` is incomplete, or None.

    A JPEG must end with its end-of-image marker (trailing zero padding allowed;
    data appended after the image, as some cameras do, is found by walking the
    marker segments); a PNG must hold a complete IEND chunk. Decoders accept both
    cut short and fill the missing rows with grey. Other formats: None.
    """
    raw = as_bytes(data)
    if raw.size >= 3 and bytes(raw[:3]) == _JPEG_SOI:
        if bytes(raw[-2:]) == _JPEG_EOI:  # the usual case: no copy of the data
            return None
        body = bytes(raw)
        if body.rstrip(b"\0").endswith(_JPEG_EOI) or _jpeg_has_end(body):
            return None
        return "truncated JPEG: no end-of-image marker (file cut short?)"
    if raw.size >= 8 and bytes(raw[:8]) == _PNG_SIGNATURE:
        if _png_has_end(memoryview(raw)):
            return None
        return "truncated PNG: no complete IEND chunk (file cut short?)"
    return None


def _jpeg_has_end(data: bytes) -> bool:
    """Whether the marker segments of a JPEG lead to its end-of-image marker."""
    n, pos = len(data), 2
    while pos < n:
        if data[pos] != 0xFF:
            return False  # not at a marker: damaged
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return False
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return True
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length field
            continue
        if pos + 2 > n:
            return False
        pos += int.from_bytes(data[pos : pos + 2], "big")
        if marker != 0xDA:
            continue
        while True:  # entropy-coded data after start-of-scan: up to the next real marker
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= n:
                return False
            following = data[pos + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffed byte, restart
                pos += 2
            elif following == 0xFF:
                pos += 1
            else:
                break
    return False


def _png_has_end(data: memoryview) -> bool:
    """Whether the chunks of a PNG lead to a complete IEND chunk."""
    n, pos = len(data), len(_PNG_SIGNATURE)
    while pos + 12 <= n:
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        if end > n:
            return False
        if data[pos + 4 : pos + 8] == b"IEND":
            return True
        pos = end
    return False


# ----------------------------------------------------------------------------- bit depth


def check_bit_depth(bit_depth: Any) -> int:
    """``bit_depth`` as an int if it is 0 (auto) or 8..16, else ValueError."""
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer)):
        raise ValueError(f"bit_depth {bit_depth!r}: expected 0 (auto) or an integer 8..16")
    if int(bit_depth) not in BIT_DEPTHS:
        raise ValueError(f"bit_depth {bit_depth}: expected 0 (auto) or 8..16")
    return int(bit_depth)


_READ_AS_12: set[str] = set()  # sources told that their data is read as 12-bit
_SEEN_16: set[str] = set()  # named sources that showed values above AUTO_12BIT_MAX
_MAX_SOURCES = 1024


def bit_depth_of(image: np.ndarray, bit_depth: int = 0, source: Optional[str] = None) -> int:
    """Significant bits of the 16-bit ``image``: ``bit_depth`` when set (8..16).

    0 (auto): 12 when no value exceeds 4095 (:data:`AUTO_12BIT_MAX`; alpha not
    counted), else 16. Logs once per ``source`` that it reads 12-bit; a named
    ``source`` that has shown a value above 4095 stays 16-bit, so that the dark
    frames of a 16-bit camera are not brightened 16 times.
    """
    depth = check_bit_depth(bit_depth)
    if depth:
        return depth
    colour = image if image.ndim == 2 else image[:, :, : min(3, image.shape[2])]
    key = "" if source is None else str(source)
    if colour.size and int(colour.max()) > AUTO_12BIT_MAX:
        if source is not None and key not in _SEEN_16:
            if key in _READ_AS_12:
                log.warning(
                    "%s: 16-bit image with values above %d after images read as 12-bit: "
                    "read as 16-bit from now on (set bit_depth to fix the depth)",
                    key,
                    AUTO_12BIT_MAX,
                )
            _remember(_SEEN_16, key)
        return 16
    if source is not None and key in _SEEN_16:
        return 16
    if key not in _READ_AS_12:
        _remember(_READ_AS_12, key)
        log.info(
            "%s16-bit image with values <= %d: read as 12-bit (set bit_depth to override)",
            f"{key}: " if key else "",
            AUTO_12BIT_MAX,
        )
    return 12


def _remember(seen: set[str], key: str) -> None:
    if len(seen) >= _MAX_SOURCES:  # e.g. one source name per file: keep it bounded
        seen.clear()
    seen.add(key)


def reduce_16_to_8(image: np.ndarray, depth: int) -> np.ndarray:
    """uint8 of 16-bit colour data of ``depth`` bits: v * 255 // (2**depth - 1), values
    above 2**depth - 1 clipped (depth 16: v // 257, as always)."""
    return _lookup_16_to_8(image, ("reduce", depth))


def _mono16_to_8(image: np.ndarray, mode: str, depth: int = 16) -> np.ndarray:
    if mode == "minmax":
        if depth < 16:
            image = np.minimum(image, (1 << depth) - 1)
        lo, hi = int(image.min()), int(image.max())
        if hi == lo:
            return np.zeros(image.shape, np.uint8)
        # one float32 temporary, updated in place (same arithmetic as out-of-place)
        stretched = image.astype(np.float32)
        np.subtract(stretched, np.float32(lo), out=stretched)
        np.multiply(stretched, np.float32(255.0 / (hi - lo)), out=stretched)
        np.round(stretched, out=stretched)
        return stretched.astype(np.uint8)
    return _lookup_16_to_8(image, (mode, depth))


# (rule, depth) -> 65536-entry uint8 table of a per-value 16 -> 8 bit rule: one look-up
# instead of full-size float or uint32 temporaries, and the same values (the table is
# computed with the very arithmetic the rule states, on every possible input)
_TABLES_16_TO_8: dict[tuple[str, int], np.ndarray] = {}


def _table_16_to_8(rule: str, depth: int) -> np.ndarray:
    values = np.arange(1 << 16, dtype=np.uint32)
    peak = (1 << depth) - 1
    if depth < 16:
        values = np.minimum(values, peak)
    if rule == "reduce":
        table = values // 257 if depth == 16 else values * 255 // peak
    elif rule == "shift":
        table = values >> (depth - 8)
    else:  # scale: round(v / ((2**depth - 1) / 255)): depth 16 divides by 257.0
        divisor = np.float32(peak / 255.0)
        table = np.round(values.astype(np.float32) / divisor)
    return table.astype(np.uint8)


def _lookup_16_to_8(image: np.ndarray, key: tuple[str, int]) -> np.ndarray:
    table = _TABLES_16_TO_8.get(key)
    if table is None:
        table = _TABLES_16_TO_8[key] = _table_16_to_8(*key)
    return table[image]


def to_gray(
    image: Any,
    encoding: str,
    mono16: str = "scale",
    bit_depth: int = 0,
    source: Optional[str] = None,
) -> np.ndarray:
    """uint8 (H, W) grey image of an array in any supported layout (raw or standard).

    The grey rule, in one place:

    * mono8 as is; mono16 to 8 bits by ``mono16``: ``scale`` (round(v * 255 / peak),
      peak = 2**depth - 1: round(v / 257) for 16-bit data), ``shift`` (v >> (depth - 8))
      or ``minmax`` (stretch min..max to 0..255);
    * 8-bit colour through OpenCV's ``*2GRAY``;
    * 16-bit colour: each channel v * 255 // peak (v // 257 for 16-bit data) to
      8 bits, then as 8-bit colour;
    * Bayer and YUV 4:2:2: to BGR first (:func:`to_standard`), then as colour.

    The depth of 16-bit data is :func:`bit_depth_of` (``bit_depth`` 0: auto, 12-bit
    when no value exceeds 4095; 8..16: fixed, larger values clipped); ``source`` names
    the stream for its log line.
    """
    check_bit_depth(bit_depth)
    image, name = to_standard(image, encoding)
    if name == "mono8":
        return np.ascontiguousarray(image)
    if name == "mono16":
        if mono16 == "minmax" and not bit_depth:
            return _mono16_to_8(image, mono16)
        return _mono16_to_8(image, mono16, bit_depth_of(image, bit_depth, source))
    if image.dtype == np.uint16:
        image = reduce_16_to_8(image, bit_depth_of(image, bit_depth, source))
    return cv2.cvtColor(np.ascontiguousarray(image), TO_GRAY[name])


def to_display_bgr(image: Any, encoding: str) -> np.ndarray:
    """BGR uint8 picture of an array in any supported layout, for drawing (mono16 is
    stretched from 0..peak, 16-bit colour reduced like :func:`to_gray` with auto depth)."""
    image, name = to_standard(image, encoding)
    if name == "mono16":
        peak = int(image.max()) if image.size else 0
        image = (image.astype(np.float32) * (255.0 / max(peak, 1))).astype(np.uint8)
        name = "mono8"
    if name == "mono8":
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    if image.dtype == np.uint16:
        colour = image[:, :, :3]
        peak = int(colour.max()) if colour.size else 0
        image = reduce_16_to_8(image, 12 if peak <= AUTO_12BIT_MAX else 16)
    conversion: Optional[int] = {
        "rgb": cv2.COLOR_RGB2BGR,
        "rgba": cv2.COLOR_RGBA2BGR,
        "bgra": cv2.COLOR_BGRA2BGR,
    }.get(name.rstrip("0123456789"))
    if conversion is not None:
        return cv2.cvtColor(np.ascontiguousarray(image), conversion)
    return np.ascontiguousarray(image)
