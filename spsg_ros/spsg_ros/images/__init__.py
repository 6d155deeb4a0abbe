"""ROS-free decoding of sensor_msgs/Image and CompressedImage payloads (numpy and OpenCV only).

The bottom layer shared by the frontend (grey conversion), the ROS 2 node and the
bag reader; see :mod:`.decode`.
"""

from .decode import (
    ALIASES,
    AUTO_12BIT_MAX,
    BIT_DEPTHS,
    LAYOUTS,
    MONO16_MODES,
    STANDARD_ENCODINGS,
    ImageDecodeError,
    as_bytes,
    bit_depth_of,
    canonical_encoding,
    check_array,
    check_bit_depth,
    decode_compressed,
    decode_image,
    layout,
    read_image_file,
    to_display_bgr,
    to_gray,
    to_standard,
    truncation_error,
    unpack,
)

__all__ = [
    "ALIASES",
    "AUTO_12BIT_MAX",
    "BIT_DEPTHS",
    "LAYOUTS",
    "MONO16_MODES",
    "STANDARD_ENCODINGS",
    "ImageDecodeError",
    "as_bytes",
    "bit_depth_of",
    "canonical_encoding",
    "check_array",
    "check_bit_depth",
    "decode_compressed",
    "decode_image",
    "layout",
    "read_image_file",
    "to_display_bgr",
    "to_gray",
    "to_standard",
    "truncation_error",
    "unpack",
]
