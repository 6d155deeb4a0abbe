"""Bad input is refused or read right, never silently degraded (issue #11).

Each test does the fault to real data (the shared freiburg frames, the shared
SuperPoint weights; modified copies in tmp_path) and checks the outcome: 12-bit
data in 16-bit images, JPEG and PNG files cut short, a float32 TIFF, weights
with NaN or inf, a .pth of random bytes.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from spsg_ros import images
from spsg_ros.config import ConfigError
from spsg_ros.datasets import open_source
from spsg_ros.datasets.image_files import load_image
from spsg_ros.frontend import Frame, Frontend
from spsg_ros.frontend.config import load_config
from spsg_ros.frontend.preprocess import Preprocessor, to_gray

TWELVE_BIT_LOG = "16-bit image with values <= 4095: read as 12-bit (set bit_depth to override)"
TRUNCATED_JPEG = "truncated JPEG: no end-of-image marker (file cut short?)"
TRUNCATED_PNG = "truncated PNG: no complete IEND chunk (file cut short?)"


@pytest.fixture(scope="module")
def superpoint_backend(shared_weights):
    from spsg_ros.backends import create_backend

    return create_backend(
        "torch", superpoint_weights=shared_weights["superpoint"], load_superglue=False
    )


def _keypoints(backend, image, encoding, **preprocess):
    """Real SuperPoint keypoints of one frame through the whole frontend (320 px wide)."""
    config = {"matcher": "nn", "preprocess": {"resize": [320], **preprocess}}
    with Frontend(config, backend=backend) as frontend:
        result = frontend.process(Frame(image, 1, "cam", encoding))
    assert len(result.features) > 0, result.status
    return result.features.keypoints


def _bgr(path) -> np.ndarray:
    image, encoding, error = load_image(path)
    assert error is None and encoding == "bgr8"
    return image


def _twelve_bit(image8: np.ndarray) -> np.ndarray:
    """What a 12-bit camera stores: 0..4095 in 16-bit words."""
    return np.round(image8.astype(np.float64) * 4095 / 255).astype(np.uint16)


# ----------------------------------------------------------------------------- bit depth


def test_12_bit_mono16_png_reads_like_the_8_bit_original(
    freiburg_frames, tmp_path, caplog, superpoint_backend
):
    gray8 = cv2.cvtColor(_bgr(freiburg_frames[0]), cv2.COLOR_BGR2GRAY)
    path = tmp_path / "frame_12bit.png"
    assert cv2.imwrite(str(path), _twelve_bit(gray8))
    image, encoding, error = load_image(path)
    assert error is None and encoding == "mono16" and image.max() <= 4095

    with caplog.at_level(logging.INFO, logger="spsg_ros.images"):
        gray = to_gray(image, encoding, source="test-12-bit-mono")
        again = to_gray(image, encoding, source="test-12-bit-mono")
    np.testing.assert_array_equal(gray, gray8)  # scaled by its real depth: bit-exact
    np.testing.assert_array_equal(again, gray8)
    said = [r for r in caplog.records if TWELVE_BIT_LOG in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO  # once per source
    assert "test-12-bit-mono" in said[0].getMessage()

    as_16_bit = to_gray(image, encoding, bit_depth=16)  # what was done before: v / 257
    assert as_16_bit.max() <= 16

    expected = _keypoints(superpoint_backend, gray8, "mono8")
    got = _keypoints(superpoint_backend, image, "mono16")
    old = _keypoints(superpoint_backend, as_16_bit, "mono8")
    np.testing.assert_array_equal(got, expected)
    assert len(old) < 0.6 * len(expected)  # the silent loss the auto depth removes


def test_12_bit_colour_png_is_scaled_by_its_depth(freiburg_frames, tmp_path):
    bgr8 = _bgr(freiburg_frames[1])
    path = tmp_path / "colour_12bit.png"
    assert cv2.imwrite(str(path), _twelve_bit(bgr8))
    image, encoding, error = load_image(path)
    assert error is None and encoding == "bgr16" and image.max() <= 4095  # kept 16-bit
    gray8 = cv2.cvtColor(bgr8, cv2.COLOR_BGR2GRAY)
    gray = images.to_gray(image, encoding, source="test-12-bit-colour")
    assert np.abs(gray.astype(int) - gray8).max() <= 1  # v * 255 // 4095 (floor, as // 257)
    assert images.to_gray(image, encoding, bit_depth=16).max() <= 16
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    np.testing.assert_array_equal(images.to_gray(rgb, "rgb16"), gray)


def test_16_bit_data_and_8_bit_paths_are_unchanged(freiburg_frames, caplog):
    bgr8 = _bgr(freiburg_frames[2])
    gray8 = cv2.cvtColor(bgr8, cv2.COLOR_BGR2GRAY)
    with caplog.at_level(logging.INFO, logger="spsg_ros.images"):
        deep = gray8.astype(np.uint16) * 257  # real 16-bit data
        np.testing.assert_array_equal(to_gray(deep, "mono16", source="deep"), gray8)
        np.testing.assert_array_equal(
            to_gray(bgr8.astype(np.uint16) * 257, "bgr16", source="deep"), gray8
        )
    assert not [r for r in caplog.records if "12-bit" in r.getMessage()]
    for depth in images.BIT_DEPTHS:  # 8-bit input ignores the setting
        np.testing.assert_array_equal(to_gray(gray8, "mono8", bit_depth=depth), gray8)
        np.testing.assert_array_equal(to_gray(bgr8, "bgr8", bit_depth=depth), gray8)


def test_a_16_bit_source_stays_16_bit_on_dark_frames(freiburg_frames):
    gray8 = cv2.cvtColor(_bgr(freiburg_frames[3]), cv2.COLOR_BGR2GRAY)
    bright = gray8.astype(np.uint16) * 257
    dark = bright // 32  # a dark frame of the same 16-bit camera: max <= 4095
    assert dark.max() <= 4095
    source = "test-16-bit-camera"
    assert images.bit_depth_of(bright, 0, source) == 16
    assert images.bit_depth_of(dark, 0, source) == 16  # not brightened 16 times
    assert images.bit_depth_of(dark, 0, "test-another-camera") == 12


def test_bit_depth_setting(freiburg_frames):
    gray8 = cv2.cvtColor(_bgr(freiburg_frames[4]), cv2.COLOR_BGR2GRAY)
    twelve = _twelve_bit(gray8)
    config = load_config(None)
    assert config["preprocess"]["bit_depth"] == 0
    ten = Preprocessor(load_config({"preprocess": {"bit_depth": 10}})["preprocess"])
    clipped = ten.gray(twelve, "mono16")
    assert clipped.max() == 255
    np.testing.assert_array_equal(clipped[twelve >= 1023], 255)  # above 2**10 - 1: clipped
    sixteen = Preprocessor(load_config({"preprocess": {"bit_depth": 16}})["preprocess"])
    assert sixteen.gray(twelve, "mono16").max() <= 16
    auto = Preprocessor(config["preprocess"])
    np.testing.assert_array_equal(auto.gray(twelve, "mono16"), gray8)
    np.testing.assert_array_equal(
        to_gray(twelve, "mono16", "shift", bit_depth=12), (np.minimum(twelve, 4095) >> 4)
    )
    for bad in (4, 17, -1, 12.0, True):
        with pytest.raises(ConfigError, match="bit_depth"):
            load_config({"preprocess": {"bit_depth": bad}})
    with pytest.raises(ValueError, match="bit_depth"):
        images.to_gray(twelve, "mono16", bit_depth=7)


# ----------------------------------------------------------------------------- truncated files


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def test_truncated_jpeg_is_flagged_not_grey_filled(freiburg_frames, tmp_path):
    folder = tmp_path / "jpegs"
    folder.mkdir()
    for i, frame in enumerate(freiburg_frames[:3]):
        data = _jpeg(_bgr(frame))
        if i == 1:
            data = data[: len(data) // 2]
        (folder / f"{i:04d}.jpg").write_bytes(data)
    cut = folder / "0001.jpg"
    # what happened before: OpenCV decodes the half file, the rest grey
    assert cv2.imread(str(cut), cv2.IMREAD_UNCHANGED) is not None

    image, _, error = load_image(cut)
    assert image is None and error == f"image file {cut}: {TRUNCATED_JPEG}"
    frames = list(open_source(folder))
    assert [f.error is None for f in frames] == [True, False, True]
    assert TRUNCATED_JPEG in frames[1].error and frames[1].image is None

    with pytest.raises(images.ImageDecodeError, match=r"truncated JPEG: no end-of-image"):
        images.decode_compressed(cut.read_bytes(), "bgr8; jpeg compressed bgr8")


def test_complete_jpegs_with_padding_or_appended_data_are_read(freiburg_frames):
    data = _jpeg(_bgr(freiburg_frames[0]))
    expected, _ = images.decode_compressed(data, "jpeg")
    thumbnail = _jpeg(np.zeros((16, 16, 3), np.uint8))
    appended = (b"\x00\x01 metadata after the image", thumbnail, thumbnail + b"\x00\x07")
    for variant in [data + bytes(64)] + [data + extra for extra in appended]:
        assert images.truncation_error(variant) is None
        np.testing.assert_array_equal(images.decode_compressed(variant, "jpeg")[0], expected)
    cut = data[: len(data) * 2 // 3]
    assert images.truncation_error(cut + bytes(64)) == TRUNCATED_JPEG  # padding: still cut


def test_truncated_png_is_flagged(freiburg_frames, tmp_path):
    data = freiburg_frames[0].read_bytes()
    assert images.truncation_error(data) is None
    assert images.truncation_error(data + b"trailing") is None
    for name, cut in (("half", data[: len(data) // 2]), ("no_crc", data[:-4])):
        path = tmp_path / f"{name}.png"
        path.write_bytes(cut)
        image, _, error = load_image(path)
        assert image is None and error == f"image file {path}: {TRUNCATED_PNG}"
        with pytest.raises(images.ImageDecodeError, match="truncated PNG"):
            images.decode_compressed(cut, "png")


def test_float32_tiff_names_its_pixel_type(freiburg_frames, tmp_path):
    gray = cv2.cvtColor(_bgr(freiburg_frames[0]), cv2.COLOR_BGR2GRAY)
    path = tmp_path / "float.tiff"
    assert cv2.imwrite(str(path), gray.astype(np.float32) / 255)
    image, _, error = load_image(path)
    assert image is None
    assert "pixel type float32 (32-bit floating-point, 1 channel)" in error
    assert "supported: 8- or 16-bit unsigned integer" in error
    assert "cannot be decoded" not in error and "can read" not in error
    with pytest.raises(images.ImageDecodeError, match="pixel type float32"):
        images.decode_compressed(path.read_bytes(), "tiff")


# ----------------------------------------------------------------------------- weights


@pytest.mark.parametrize("value, count", [(float("nan"), "1 NaN"), (float("inf"), "1 inf")])
def test_weights_with_nan_or_inf_are_refused(shared_weights, tmp_path, value, count):
    torch = pytest.importorskip("torch")
    from spsg_ros.backends import create_backend
    from spsg_ros.networks.weights import WeightError, load_superpoint

    state = torch.load(shared_weights["superpoint"], map_location="cpu", weights_only=True)
    state["convPb.weight"][3, 7, 0, 0] = value
    path = tmp_path / "superpoint_damaged.pth"
    torch.save(state, path)
    with pytest.raises(WeightError) as err:
        load_superpoint(path)
    assert str(path) in str(err.value) and f"convPb.weight ({count})" in str(err.value)
    with pytest.raises(WeightError, match="NaN or infinite"):
        create_backend("torch", superpoint_weights=path, load_superglue=False)


def test_a_pth_of_random_bytes_is_not_a_checkpoint(shared_weights, tmp_path):
    pytest.importorskip("torch")
    from spsg_ros.networks.weights import WeightError, load_superpoint

    real = shared_weights["superpoint"].read_bytes()
    random = np.random.default_rng(0).bytes(len(real))
    cases = {
        "random.pth": (random, "is not a PyTorch checkpoint"),
        "cut.pth": (real[: len(real) // 2], "damaged PyTorch checkpoint"),
        "pickle_garbage.pth": (b"\x80\x02" + random[:4096], "not a readable PyTorch checkpoint"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(WeightError, match=message) as err:
            load_superpoint(path)
        text = str(err.value)
        assert "damaged or the wrong file" in text or "download or copy it again" in text
        assert "weights_only" not in text, name
