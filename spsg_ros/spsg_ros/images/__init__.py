"""ROS-free decoding of sensor_msgs/Image and CompressedImage payloads (numpy and OpenCV only).

The bottom layer shared by the frontend (grey conversion), the ROS 2 node and the
bag reader; see :mod:`.decode`.
"""

from .decode import (
    ALIASES,
    LAYOUTS,
    MONO16_MODES,
    STANDARD_ENCODINGS,
    ImageDecodeError,
    as_bytes,
    canonical_encoding,
    check_array,
    decode_compressed,
    decode_image,
    layout,
    to_display_bgr,
    to_gray,
    to_standard,
    unpack,
)

__all__ = [
    "ALIASES",
    "LAYOUTS",
    "MONO16_MODES",
    "STANDARD_ENCODINGS",
    "ImageDecodeError",
    "as_bytes",
    "canonical_encoding",
    "check_array",
    "decode_compressed",
    "decode_image",
    "layout",
    "to_display_bgr",
    "to_gray",
    "to_standard",
    "unpack",
]
