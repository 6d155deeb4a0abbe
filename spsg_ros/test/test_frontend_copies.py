"""No image copied or converted twice between the message and the network (issue #13).

How copies are counted: numpy reports every array buffer it allocates to tracemalloc
(domain ``np.lib.tracemalloc_domain``), and OpenCV's Python binding returns its
results in numpy buffers, so a full-size image made anywhere on the way shows there.
Each stage of the node's path (message decoding, grey conversion, resize/CLAHE/
undistortion, the uint8 -> float32 network input) is wrapped; for each call the test
records

* the full-size buffers (at least H * W bytes) the stage leaves alive, from
  tracemalloc snapshots before and after it, and
* the peak of traced memory during the stage above its start, which must not exceed
  those buffers by more than ``SLACK`` (small objects): a full-size temporary made
  next to the stage's output (an ``astype`` before a divide, an ``np.stack`` before a
  conversion, a copy before ``cvtColor``) would show there.

Buffers inside OpenCV that never become numpy arrays (the codec's own) are not seen.
The counts asserted are those of the default pipeline at 640x480 in steady state
(a first frame warms the caches), so a new copy anywhere fails the test.
"""

from __future__ import annotations

import array
import tracemalloc
from collections import Counter
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from spsg_ros import images
from spsg_ros.features import extractor as extractor_module
from spsg_ros.features import superpoint_post
from spsg_ros.features.types import Features
from spsg_ros.frontend.pipeline import Frontend
from spsg_ros.frontend.preprocess import Preprocessor
from spsg_ros.frontend.types import Frame
from spsg_ros.messages import conversions

WIDTH, HEIGHT = 640, 480
PIXELS = WIDTH * HEIGHT
#: small objects a stage may make besides its images (numpy's 64 KiB casting buffer ...)
SLACK = 128 * 1024
NUMPY_DOMAIN = np.lib.tracemalloc_domain

#: encoding -> stage -> bytes per pixel of each full-size buffer the stage leaves alive
#: (the frame's own image included); defaults: no resize at 640x480, no CLAHE, no remap
EXPECTED = {
    # the message's bytes viewed as the image; the float32 network input is the one buffer
    "mono8": {"decode": [], "gray": [], "prepare": [], "network_input": [4]},
    # bgr8 -> grey is one new uint8 image (cvtColor)
    "bgr8": {"decode": [], "gray": [1], "prepare": [], "network_input": [4]},
    # 16 -> 8 bit through a 65536-entry table: no float32 or uint32 temporaries
    "mono16": {"decode": [], "gray": [1], "prepare": [], "network_input": [4]},
    # the codec's BGR image (numpy's copy of it), then grey, then the network input
    "jpeg": {"decode": [3], "gray": [1], "prepare": [], "network_input": [4]},
}


def _big_blocks() -> Counter:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.DomainFilter(inclusive=True, domain=NUMPY_DOMAIN)]
    )
    return Counter(trace.size for trace in snapshot.traces if trace.size >= PIXELS)


class StageMeter:
    """Per stage: full-size numpy buffers left alive and the peak memory above the start."""

    def __init__(self):
        self.stages: dict[str, dict] = {}

    def measure(self, name, function, *args, **kwargs):
        before = _big_blocks()
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = function(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
        made = _big_blocks() - before
        self.stages[name] = {"made": sorted(made.elements()), "peak": peak - start}
        return result

    def wrap(self, name, function):
        def measured(*args, **kwargs):
            return self.measure(name, function, *args, **kwargs)

        return measured


class InputRecordingBackend:
    """Stands in for a backend: records what reaches it, and what was alive then."""

    name = "recording"
    supports_batch = True

    def __init__(self):
        self.inputs: list[np.ndarray] = []

    def superpoint(self, batch, config):
        self.inputs.append(batch)
        return [Features.empty((batch.shape[3], batch.shape[2])) for _ in range(len(batch))]

    def close(self):
        pass


@pytest.fixture(scope="module")
def bgr(shared_dir):
    path = sorted((shared_dir / "data" / "freiburg_sequence").glob("*.png"))[0]
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def _image_msg(array_: np.ndarray, encoding: str) -> SimpleNamespace:
    """A sensor_msgs/Image as rclpy hands it over: ``data`` an array.array('B')."""
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(array_).tobytes())
    return SimpleNamespace(
        height=array_.shape[0],
        width=array_.shape[1],
        encoding=encoding,
        step=array_.shape[1] * array_.itemsize * (1 if array_.ndim == 2 else array_.shape[2]),
        is_bigendian=0,
        data=data,
    )


def _message(bgr: np.ndarray, encoding: str):
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    if encoding == "mono8":
        return _image_msg(gray, "mono8")
    if encoding == "bgr8":
        return _image_msg(bgr, "bgr8")
    if encoding == "mono16":  # a 12-bit camera's values in 16-bit words
        return _image_msg(gray.astype(np.uint16) * 16, "mono16")
    ok, encoded = cv2.imencode(".jpg", bgr)
    assert ok
    return SimpleNamespace(format="bgr8; jpeg compressed bgr8", data=array.array("B", encoded))


def _decode(msg):
    """The node's decoding (the built-in conversion, as without cv_bridge); jpeg as bags do."""
    if hasattr(msg, "format"):
        return images.decode_compressed(msg.data, msg.format)
    return conversions.image_msg_to_array(msg, copy=False)


def _run(frontend, meter, msg, stamp_ns):
    image, encoding = meter.measure("decode", _decode, msg)
    frame = Frame(image=image, stamp_ns=stamp_ns, frame_id="camera", encoding=encoding)
    result = frontend.process(frame)
    assert result.timings_ms and "superpoint" in result.timings_ms, result.status
    return frame


@pytest.mark.parametrize("encoding", sorted(EXPECTED))
def test_full_size_buffers_per_frame(bgr, encoding, monkeypatch):
    backend = InputRecordingBackend()
    frontend = Frontend({"matcher": "nn"}, backend=backend)
    meter = StageMeter()
    monkeypatch.setattr(Preprocessor, "gray", meter.wrap("gray", Preprocessor.gray))
    monkeypatch.setattr(Preprocessor, "__call__", meter.wrap("prepare", Preprocessor.__call__))
    network_input = meter.wrap("network_input", extractor_module.to_network_input)
    made_inputs = []

    def recorded_network_input(batch_images):
        made_inputs.append(network_input(batch_images))
        return made_inputs[-1]

    monkeypatch.setattr(extractor_module, "to_network_input", recorded_network_input)
    msg = _message(bgr, encoding)
    tracemalloc.start()
    try:
        _run(frontend, meter, msg, 1)  # warm-up: look-up tables, lazy imports
        meter.stages.clear()
        frame = _run(frontend, meter, msg, 2)
    finally:
        tracemalloc.stop()

    made = {
        name: [size / PIXELS for size in stage["made"]] for name, stage in meter.stages.items()
    }
    assert made == EXPECTED[encoding]
    for name, stage in meter.stages.items():
        assert stage["peak"] <= sum(stage["made"]) + SLACK, (
            f"{encoding} {name}: peak {stage['peak'] / PIXELS:.2f} bytes per pixel above "
            f"its start, {sum(stage['made']) / PIXELS:.2f} kept: a full-size temporary"
        )
    # the decoded raw image is the message's memory (jpeg: the codec's output)
    if encoding != "jpeg":
        assert np.shares_memory(frame.image, np.frombuffer(msg.data, np.uint8))
    # what to_network_input made is what the backend got: no copy in between, and in
    # the layout backends take as is (np.ascontiguousarray(x, np.float32) is no copy)
    assert backend.inputs[-1] is made_inputs[-1]
    batch = backend.inputs[-1]
    assert batch.dtype == np.float32 and batch.flags.c_contiguous
    assert batch.shape == (1, 1, HEIGHT, WIDTH)


def test_a_redundant_copy_would_be_counted(bgr, monkeypatch):
    """The meter sees a copy: an np.stack + astype network input shows its temporaries."""
    meter = StageMeter()
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)

    def copying_input(batch_images):
        stacked = np.stack([np.asarray(image) for image in batch_images])
        return (stacked.astype(np.float32) / np.float32(255.0))[:, None]

    tracemalloc.start()
    try:
        meter.measure("copying", copying_input, [gray])
        meter.measure("direct", extractor_module.to_network_input, [gray])
    finally:
        tracemalloc.stop()
    copying, direct = meter.stages["copying"], meter.stages["direct"]
    assert copying["made"] == direct["made"] == [4 * PIXELS]
    assert copying["peak"] > sum(copying["made"]) + SLACK
    assert direct["peak"] <= sum(direct["made"]) + SLACK


# ----------------------------------------------------------------------------- same values


def test_network_input_is_the_reference_arithmetic():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    images_ = [values, values[::-1].copy()]
    reference = (np.stack(images_).astype(np.float32) / np.float32(255.0))[:, None]
    out = extractor_module.to_network_input(images_)
    assert out.dtype == np.float32 and out.shape == reference.shape
    assert out.tobytes() == reference.tobytes()
    floats = np.linspace(0, 1, 256, dtype=np.float64).reshape(16, 16)
    as_float = extractor_module.to_network_input([floats])
    assert as_float.tobytes() == floats.astype(np.float32)[None, None].tobytes()


def test_network_input_refuses_what_it_cannot_batch():
    with pytest.raises(ValueError, match="grayscale"):
        extractor_module.to_network_input([np.zeros((4, 4, 3), np.uint8)])
    with pytest.raises(ValueError, match="one size"):
        extractor_module.to_network_input([np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8)])
    with pytest.raises(ValueError, match="no images"):
        extractor_module.to_network_input([])


def _old_mono16_to_8(image, mode, depth):
    """The arithmetic before the look-up tables (float32 and integer temporaries)."""
    if depth < 16:
        image = np.minimum(image, (1 << depth) - 1)
    if mode == "shift":
        return (image >> (depth - 8)).astype(np.uint8)
    divisor = np.float32(((1 << depth) - 1) / 255.0)
    return np.round(image.astype(np.float32) / divisor).astype(np.uint8)


def _old_reduce_16_to_8(image, depth):
    if depth == 16:
        return (image // 257).astype(np.uint8)
    peak = (1 << depth) - 1
    wide = np.minimum(image, peak).astype(np.uint32)
    return (wide * 255 // peak).astype(np.uint8)


@pytest.mark.parametrize("depth", range(8, 17))
def test_16_bit_tables_equal_the_arithmetic_on_every_value(depth):
    every = np.arange(1 << 16, dtype=np.uint16).reshape(256, 256)
    for mode in ("scale", "shift"):
        got = images.to_gray(every, "mono16", mode, depth)
        np.testing.assert_array_equal(got, _old_mono16_to_8(every, mode, depth), err_msg=mode)
    colour = np.stack([every, every[::-1], every.T], axis=2)
    np.testing.assert_array_equal(
        images.decode.reduce_16_to_8(colour, depth), _old_reduce_16_to_8(colour, depth)
    )


def test_minmax_in_place_equals_the_arithmetic():
    rng = np.random.default_rng(3)
    image = rng.integers(100, 60000, (40, 50), dtype=np.uint16)
    lo, hi = int(image.min()), int(image.max())
    reference = np.round((image.astype(np.float32) - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    np.testing.assert_array_equal(images.to_gray(image, "mono16", "minmax"), reference)


# ----------------------------------------------------------------------------- views


@pytest.mark.parametrize("encoding", ["mono8", "bgr8", "mono16", "rgba16"])
def test_decode_without_copy_is_a_read_only_view(encoding):
    dtype, channels = images.layout(encoding)
    shape = (6, 8) if channels == 1 else (6, 8, channels)
    image = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    data = bytearray(image.tobytes())
    step = 8 * channels * dtype.itemsize
    view, _ = images.decode_image(6, 8, encoding, step, 0, data, copy=False)
    np.testing.assert_array_equal(view, image)
    assert np.shares_memory(view, np.frombuffer(data, np.uint8))
    assert not view.flags.writeable and view.flags.c_contiguous
    copied, _ = images.decode_image(6, 8, encoding, step, 0, data)
    assert not np.shares_memory(copied, np.frombuffer(data, np.uint8))


def test_decode_without_copy_handles_padding_and_byte_order():
    image = np.arange(48, dtype=np.uint16).reshape(6, 8) * 257
    padded = np.zeros((6, 10), np.uint16)
    padded[:, :8] = image
    data = padded.tobytes()[:-4]  # the last row without its padding
    view, _ = images.decode_image(6, 8, "mono16", 20, 0, data, copy=False)
    np.testing.assert_array_equal(view, image)
    assert not view.flags.c_contiguous  # rows strided by step: still no copy
    big = image.byteswap().tobytes()
    swapped, _ = images.decode_image(6, 8, "mono16", 16, 1, big, copy=False)
    np.testing.assert_array_equal(swapped, image)
    assert swapped.flags.writeable  # byte-swapped: a copy of its own


def test_truncation_check_needs_no_copy_of_a_complete_jpeg():
    ok, encoded = cv2.imencode(".jpg", np.full((32, 32, 3), 90, np.uint8))
    assert ok
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        assert images.truncation_error(encoded) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - start < encoded.size
    assert images.truncation_error(encoded[:-10]) is not None


# ----------------------------------------------------------------------------- SuperPoint


def test_descriptors_are_sampled_only_for_the_kept_keypoints(monkeypatch):
    """NMS, threshold and top-k first; sampling and normalisation only for the survivors,
    straight from the caller's descriptor map (no normalised or copied full map)."""
    rng = np.random.default_rng(7)
    h, w, dim = 30, 40, 256
    semi = rng.normal(0, 3, (65, h, w)).astype(np.float32)
    raw = rng.normal(0, 1, (dim, h, w)).astype(np.float32)
    config = superpoint_post.superpoint_config(
        {"max_keypoints": 50, "keypoint_threshold": 0.001, "nms_radius": 2}
    )
    unlimited = superpoint_post.postprocess(semi, raw, {**config, "max_keypoints": -1})
    assert len(unlimited) > 4 * 50  # many candidates: top-k does cut

    calls = []
    sample = superpoint_post.sample_descriptors

    def counting_sample(keypoints, raw_descriptors):
        calls.append((keypoints.shape[0], raw_descriptors))
        return sample(keypoints, raw_descriptors)

    monkeypatch.setattr(superpoint_post, "sample_descriptors", counting_sample)
    features = superpoint_post.postprocess(semi, raw, config)
    assert len(features) == 50
    assert [n for n, _ in calls] == [50]
    assert calls[0][1] is raw
    assert features.descriptors.shape == (dim, 50)
