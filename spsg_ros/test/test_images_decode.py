"""spsg_ros.images: the one decoder of sensor_msgs/Image and CompressedImage payloads."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from spsg_ros import images
from spsg_ros.images import (
    ImageDecodeError,
    canonical_encoding,
    check_array,
    decode_compressed,
    decode_image,
    to_display_bgr,
    to_gray,
    to_standard,
    unpack,
)

BAYER = [
    "bayer_rggb8",
    "bayer_bggr8",
    "bayer_gbrg8",
    "bayer_grbg8",
    "bayer_rggb16",
    "bayer_bggr16",
    "bayer_gbrg16",
    "bayer_grbg16",
]
YUV = ["yuv422", "yuv422_yuy2"]
STANDARD = [
    "mono8",
    "mono16",
    "rgb8",
    "bgr8",
    "rgba8",
    "bgra8",
    "rgb16",
    "bgr16",
    "rgba16",
    "bgra16",
]
ALL = STANDARD + BAYER + YUV
BAYER_CODES = {
    "rggb": cv2.COLOR_BayerBG2BGR,
    "bggr": cv2.COLOR_BayerRG2BGR,
    "gbrg": cv2.COLOR_BayerGR2BGR,
    "grbg": cv2.COLOR_BayerGB2BGR,
}


def raw_array(encoding, height=6, width=8, seed=0):
    """Random pixels in the raw layout of ``encoding``."""
    dtype, channels = images.layout(encoding)
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)


def pack(image, padding=0, big_endian=False):
    """(step, bytes) of an array as a sensor_msgs/Image would carry it."""
    height = image.shape[0]
    order = ">" if big_endian else "<"
    rows = image.astype(image.dtype.newbyteorder(order)).reshape(height, -1).view(np.uint8)
    step = rows.shape[1] + padding
    padded = np.full((height, step), 0xEE, np.uint8)
    padded[:, : rows.shape[1]] = rows
    return step, padded.tobytes()


def fields(image, encoding, padding=0, big_endian=False):
    step, data = pack(image, padding, big_endian)
    return dict(
        height=image.shape[0],
        width=image.shape[1],
        encoding=encoding,
        step=step,
        is_bigendian=int(big_endian),
        data=data,
    )


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("encoding", STANDARD)
@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("big_endian", [False, True])
def test_standard_encodings_round_trip(encoding, padding, big_endian):
    image = raw_array(encoding)
    back, name = decode_image(**fields(image, encoding, padding, big_endian))
    assert name == encoding and back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)
    assert back.flags.c_contiguous and back.flags.writeable and back.dtype.isnative


@pytest.mark.parametrize("encoding", ALL)
@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("big_endian", [False, True])
def test_every_encoding_unpacks_to_its_raw_layout(encoding, padding, big_endian):
    image = raw_array(encoding, seed=1)
    np.testing.assert_array_equal(unpack(**fields(image, encoding, padding, big_endian)), image)


def test_last_row_may_come_without_its_padding():
    image = raw_array("mono16")
    f = fields(image, "mono16", padding=4, big_endian=True)
    f["data"] = f["data"][:-4]
    np.testing.assert_array_equal(decode_image(**f)[0], image)


def test_byte_order_is_honoured_only_as_declared():
    image = np.array([[0x0102, 0xA0B0]], np.uint16)
    little = decode_image(1, 2, "mono16", 4, 0, bytes([0x02, 0x01, 0xB0, 0xA0]))[0]
    big = decode_image(1, 2, "mono16", 4, 1, bytes([0x01, 0x02, 0xA0, 0xB0]))[0]
    np.testing.assert_array_equal(little, image)
    np.testing.assert_array_equal(big, image)
    # 8-bit data ignores the flag
    np.testing.assert_array_equal(decode_image(1, 2, "mono8", 2, 1, b"\x01\x02")[0], [[1, 2]])


@pytest.mark.parametrize(
    "make",
    [
        bytes,
        bytearray,
        memoryview,
        lambda b: array.array("B", b),
        lambda b: np.frombuffer(b, np.uint8),
        lambda b: list(b),
        lambda b: np.frombuffer(b, np.uint8).astype(np.int8),
    ],
)
def test_data_containers(make):
    """rosbags holds uint8[] as numpy, rclpy as array.array('B'); bytes and memoryviews work."""
    image = raw_array("bgr16", seed=2)
    f = fields(image, "bgr16", padding=2)
    f["data"] = make(f["data"])
    back = decode_image(**f)[0]
    np.testing.assert_array_equal(back, image)


def test_result_owns_its_memory():
    data = bytearray(raw_array("mono8").tobytes())
    back, _ = decode_image(6, 8, "mono8", 8, 0, data)
    data[0] ^= 0xFF
    assert back.flags.writeable and back[0, 0] != data[0]


def test_aliases_and_letter_case():
    image = raw_array("bgr8")
    for alias, name in [
        ("8UC1", "mono8"),
        ("8uc1", "mono8"),
        ("16UC1", "mono16"),
        ("8UC3", "bgr8"),
        ("8UC4", "bgra8"),
        ("uyvy", "yuv422"),
        ("YUYV", "yuv422_yuy2"),
        ("BAYER_RGGB8", "bayer_rggb8"),
        ("Mono8", "mono8"),
    ]:
        assert canonical_encoding(alias) == name
    back, name = decode_image(**fields(image, "8UC3"))
    assert name == "bgr8"
    np.testing.assert_array_equal(back, image)


# ----------------------------------------------------------------------------- Bayer and YUV


@pytest.mark.parametrize("encoding", BAYER)
@pytest.mark.parametrize("big_endian", [False, True])
def test_bayer_against_opencv(encoding, big_endian):
    mosaic = raw_array(encoding, height=10, width=12, seed=4)
    back, name = decode_image(**fields(mosaic, encoding, padding=6, big_endian=big_endian))
    pattern = encoding[len("bayer_") : len("bayer_rggb")]
    expected = cv2.cvtColor(mosaic, BAYER_CODES[pattern])
    assert name == ("bgr16" if encoding.endswith("16") else "bgr8")
    assert back.dtype == mosaic.dtype
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_pattern_names_mean_what_ros_says(pattern, bits):
    """A flat colour scene mosaicked as ROS names the pattern comes back as that colour."""
    bgr = {"b": 40, "g": 120, "r": 200}
    scale = 257 if bits == 16 else 1
    mosaic = np.zeros((8, 8), np.uint16 if bits == 16 else np.uint8)
    for (dy, dx), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pattern):
        mosaic[dy::2, dx::2] = bgr[colour] * scale
    back, _ = decode_image(**fields(mosaic, f"bayer_{pattern}{bits}"))
    np.testing.assert_array_equal(
        back[2:-2, 2:-2].reshape(-1, 3), np.tile(np.array([40, 120, 200]) * scale, (16, 1))
    )


@pytest.mark.parametrize(
    "encoding, code", [("yuv422", cv2.COLOR_YUV2BGR_UYVY), ("yuv422_yuy2", cv2.COLOR_YUV2BGR_YUYV)]
)
def test_yuv422_against_opencv(encoding, code):
    packed = raw_array(encoding, height=6, width=10, seed=5)
    back, name = decode_image(**fields(packed, encoding, padding=4))
    assert name == "bgr8"
    np.testing.assert_array_equal(back, cv2.cvtColor(packed, code))


def test_uyvy_and_yuyv_of_the_same_pixels_agree():
    uyvy = raw_array("yuv422", height=4, width=6, seed=6)
    flat = uyvy.reshape(4, -1)
    yuyv = np.empty_like(flat)
    yuyv[:, 0::2], yuyv[:, 1::2] = flat[:, 1::2], flat[:, 0::2]  # U Y V Y -> Y U Y V
    a = decode_image(**fields(uyvy, "yuv422"))[0]
    b = decode_image(**fields(yuyv.reshape(4, 6, 2), "yuv422_yuy2"))[0]
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- grey, one rule


def test_gray_rule_of_the_encodings_the_frontend_always_took():
    bgr = raw_array("bgr8", 20, 30, seed=7)
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(to_gray(bgr, "bgr8"), expected)
    np.testing.assert_array_equal(to_gray(bgr[:, :, ::-1].copy(), "rgb8"), expected)
    bgra = np.dstack([bgr, np.full((20, 30), 9, np.uint8)])
    np.testing.assert_array_equal(to_gray(bgra, "bgra8"), expected)
    np.testing.assert_array_equal(to_gray(bgra[:, :, [2, 1, 0, 3]].copy(), "rgba8"), expected)
    np.testing.assert_array_equal(to_gray(expected, "mono8"), expected)
    m16 = raw_array("mono16", 20, 30, seed=8)
    np.testing.assert_array_equal(
        to_gray(m16, "mono16"), np.round(m16.astype(np.float32) / 257.0).astype(np.uint8)
    )
    np.testing.assert_array_equal(to_gray(m16, "mono16", "shift"), (m16 >> 8).astype(np.uint8))
    stretched = to_gray(m16, "mono16", "minmax")
    assert stretched.min() == 0 and stretched.max() == 255


@pytest.mark.parametrize("encoding", ["rgb16", "bgr16", "rgba16", "bgra16"])
def test_16_bit_colour_is_reduced_by_257_then_grey(encoding):
    """What the bag reader always did with 16-bit colour PNGs (bgr8 = v // 257)."""
    image = raw_array(encoding, 20, 30, seed=9)
    eight = (image // 257).astype(np.uint8)
    np.testing.assert_array_equal(to_gray(image, encoding), to_gray(eight, encoding[:-2] + "8"))


@pytest.mark.parametrize("encoding", ALL)
def test_gray_of_raw_layout_equals_gray_of_decoded(encoding):
    """cv_bridge 'passthrough' (raw layout) and the built-in decoder give the same grey."""
    image = raw_array(encoding, 12, 16, seed=10)
    f = fields(image, encoding, padding=2, big_endian=True)
    decoded, name = decode_image(**f)
    raw = unpack(**f)
    np.testing.assert_array_equal(to_gray(raw, encoding), to_gray(decoded, name))
    assert to_gray(raw, encoding).shape == (12, 16)
    assert to_display_bgr(raw, encoding).shape == (12, 16, 3)
    np.testing.assert_array_equal(to_display_bgr(raw, encoding), to_display_bgr(decoded, name))


def test_display_bgr():
    bgr = raw_array("bgr8", seed=11)
    np.testing.assert_array_equal(to_display_bgr(bgr[:, :, ::-1].copy(), "rgb8"), bgr)
    np.testing.assert_array_equal(to_display_bgr(bgr, "bgr8"), bgr)
    m16 = np.array([[0, 100], [200, 400]], np.uint16)
    np.testing.assert_array_equal(to_display_bgr(m16, "mono16")[:, :, 0], [[0, 63], [127, 255]])


# ----------------------------------------------------------------------------- compressed


def encoded(image, ext):
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    "encoding, ext",
    [
        ("mono8", ".png"),
        ("mono16", ".png"),
        ("bgr8", ".png"),
        ("bgra8", ".png"),
        ("bgr16", ".png"),
        ("bgra16", ".png"),
    ],
)
def test_compressed_png_is_lossless(encoding, ext):
    image = raw_array(encoding, 10, 12, seed=12)
    back, name = decode_compressed(encoded(image, ext), "png")
    assert name == encoding
    np.testing.assert_array_equal(back, image)


def test_compressed_jpeg_and_format_strings():
    image = np.zeros((32, 48, 3), np.uint8)
    image[:, :24] = (10, 200, 30)
    data = encoded(image, ".jpg")
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    for fmt in ["bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8", "jpeg", ""]:
        back, name = decode_compressed(np.frombuffer(data, np.uint8), fmt)
        assert name == "bgr8"
        np.testing.assert_array_equal(back, expected)
    data = encoded(np.ascontiguousarray(image[:, :, 1]), ".jpg")
    grey = decode_compressed(array.array("B", data), "mono8; jpeg compressed mono8")
    assert grey[1] == "mono8" and grey[0].shape == (32, 48)


def test_16_bit_colour_png_keeps_the_grey_of_the_old_bag_reader():
    image = raw_array("bgr16", 20, 30, seed=13)
    back, name = decode_compressed(encoded(image, ".png"), "png")
    old = cv2.cvtColor((image // 257).astype(np.uint8), cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(to_gray(back, name), old)


def test_compressed_errors():
    with pytest.raises(ImageDecodeError, match="compressedDepth images are not supported"):
        decode_compressed(b"\x00" * 20, "16UC1; compressedDepth png")
    with pytest.raises(ImageDecodeError, match=r"format 'jpeg'\) cannot be decoded"):
        decode_compressed(b"not an image at all", "jpeg")
    with pytest.raises(ImageDecodeError, match="cannot be decoded"):
        decode_compressed(b"", "png")


# ----------------------------------------------------------------------------- errors


def test_unknown_encoding_lists_the_supported_ones():
    with pytest.raises(ImageDecodeError, match="unsupported image encoding '32FC1'") as info:
        decode_image(2, 2, "32FC1", 8, 0, bytes(16))
    for name in ALL + ["8UC1", "8UC3"]:
        assert name in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(height=0), r"empty image \(8 x 0 pixels\)"),
        (dict(width=-1), "empty image"),
        (dict(step=23), r"image step 23 is shorter than a row of 8 bgr8 pixels \(24 bytes\)"),
        (dict(data=bytes(100)), r"image data holds 100 bytes, 8 x 6 bgr8 with step 24 needs 144"),
        (dict(data=None), "image data is missing"),
        (dict(data=object()), "not a byte sequence"),
        (dict(encoding="yuv9"), "unsupported image encoding 'yuv9'"),
    ],
)
def test_bad_image_fields(change, message):
    f = fields(raw_array("bgr8"), "bgr8")
    f.update(change)
    with pytest.raises(ImageDecodeError, match=message):
        decode_image(**f)


def test_sixteen_bit_step_counts_bytes():
    with pytest.raises(
        ImageDecodeError, match=r"shorter than a row of 8 mono16 pixels \(16 bytes\)"
    ):
        decode_image(6, 8, "mono16", 8, 0, bytes(96))


@pytest.mark.parametrize("encoding", YUV)
def test_yuv422_needs_an_even_width(encoding):
    with pytest.raises(ImageDecodeError, match=f"{encoding} image of odd width 5"):
        decode_image(2, 5, encoding, 10, 0, bytes(20))
    with pytest.raises(ImageDecodeError, match="odd width 5"):
        to_gray(np.zeros((4, 5, 2), np.uint8), encoding)


@pytest.mark.parametrize(
    "image, encoding, message",
    [
        (None, "mono8", "no image"),
        ([[1, 2]], "mono8", "image is a list, not a numpy array"),
        (np.zeros((0, 3), np.uint8), "mono8", r"empty image array of shape \(0, 3\)"),
        (
            np.zeros((4, 4, 3), np.uint8),
            "mono8",
            r"does not fit encoding mono8 \(\(H, W\) expected\)",
        ),
        (
            np.zeros((4, 4), np.uint8),
            "rgb16",
            r"does not fit encoding rgb16 \(\(H, W, 3\) expected\)",
        ),
        (np.zeros((4, 4, 3), np.uint8), "yuv422", r"\(H, W, 2\) expected"),
        (np.zeros((4, 4), np.uint8), "bayer_rggb16", r"dtype uint8 .* \(uint16 expected\)"),
        (np.full((4, 4), np.nan, np.float32), "mono8", "NaN"),
    ],
)
def test_bad_arrays(image, encoding, message):
    with pytest.raises(ImageDecodeError, match=message):
        check_array(image, encoding)
    with pytest.raises(ImageDecodeError, match=message):
        to_gray(image, encoding)


def test_one_channel_arrays_may_carry_a_trailing_axis():
    mono = raw_array("mono8")
    np.testing.assert_array_equal(to_gray(mono[:, :, None], "mono8"), mono)
    np.testing.assert_array_equal(
        to_standard(mono[:, :, None], "bayer_rggb8")[0], cv2.cvtColor(mono, cv2.COLOR_BayerBG2BGR)
    )


def test_only_numpy_opencv_and_the_standard_library_are_imported():
    import ast
    import inspect

    from spsg_ros.images import decode

    tree = ast.parse(inspect.getsource(decode))
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    modules |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
    }
    assert modules <= {"__future__", "array", "logging", "os", "sys", "typing", "cv2", "numpy"}, (
        modules
    )
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))


# ------------------------------------------------------------------------- node path == bag path


@pytest.mark.parametrize(
    "encoding", ["bayer_rggb8", "bayer_grbg8", "bayer_bggr16", "yuv422", "yuv422_yuy2"]
)
@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_node_and_bag_reader_decode_the_same(encoding, distro):
    """messages.conversions.image_msg_to_array (the node without cv_bridge) and the bag reader
    give the same array for the same rosbags-built Bayer or YUV message."""
    pytest.importorskip("rosbags")
    from spsg_ros.bagio.typestore import get_spsg_typestore
    from spsg_ros.datasets.rosbag import image_from_msg
    from spsg_ros.messages import conversions as conv

    typestore = get_spsg_typestore(distro)
    types = conv.MessageTypes.from_typestore(typestore)
    image = raw_array(encoding, 10, 12, seed=14)
    f = fields(image, encoding, padding=4, big_endian=encoding.endswith("16"))
    msg = types.Image(
        header=conv.make_header(types, 5, "cam"),
        height=f["height"],
        width=f["width"],
        encoding=encoding,
        is_bigendian=f["is_bigendian"],
        step=f["step"],
        data=np.frombuffer(f["data"], np.uint8).copy(),
    )
    msg = typestore.deserialize_cdr(typestore.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    node, node_encoding = conv.image_msg_to_array(msg)
    bag, bag_encoding = image_from_msg(msg)
    assert node_encoding == bag_encoding == ("bgr16" if encoding.endswith("16") else "bgr8")
    np.testing.assert_array_equal(node, bag)
    # the node with cv_bridge hands the frontend the raw layout under the message's encoding
    label = conv.canonical_encoding(msg.encoding)
    np.testing.assert_array_equal(to_gray(unpack(**f), label), to_gray(node, node_encoding))
    # and rclpy-style data (array.array) decodes the same
    msg.data = array.array("B", f["data"])
    np.testing.assert_array_equal(conv.image_msg_to_array(msg)[0], node)
