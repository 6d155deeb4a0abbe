"""numpy host post-processing vs the upstream torch post-processing, self-contained."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spsg_ros.config import ConfigError  # noqa: E402
from spsg_ros.features.superpoint_post import (
    detector_scores,
    postprocess,
    simple_nms,  # noqa: E402
    superpoint_config,
)
from spsg_ros.networks.superpoint import SuperPoint, reference_postprocess  # noqa: E402
from spsg_ros.networks.superpoint import simple_nms as torch_nms  # noqa: E402


@pytest.fixture(scope="module")
def trained_like_net():
    """A SuperPoint whose random detector head is sharpened so that scores are peaky
    (as with trained weights) and thresholds/top-k actually select."""
    torch.manual_seed(3)
    net = SuperPoint().eval()
    with torch.no_grad():
        net.convPb.weight.mul_(40.0)
    return net


def run_both(net, image: np.ndarray, config: dict):
    cfg = superpoint_config(config)
    x = torch.from_numpy(image.astype(np.float32) / 255)[None, None]
    with torch.no_grad():
        semi, desc = net.forward_dense(x)
        ref = reference_postprocess(semi, desc, cfg)
    ours = postprocess(semi[0].numpy(), desc[0].numpy(), cfg, image.shape[::-1])
    return ours, ref


def assert_agree(ours, ref):
    np.testing.assert_array_equal(ours.keypoints, ref["keypoints"][0].numpy())
    np.testing.assert_allclose(ours.scores, ref["scores"][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(ours.descriptors, ref["descriptors"][0].numpy(), atol=1e-5)


@pytest.mark.parametrize("shape", [(240, 320), (123, 197), (64, 71), (17, 16)])
def test_numpy_agrees_with_torch_for_any_size(trained_like_net, textured, shape):
    image = textured(*shape, seed=sum(shape))
    ours, ref = run_both(trained_like_net, image, {})
    assert_agree(ours, ref)
    h8, w8 = (shape[0] // 8) * 8, (shape[1] // 8) * 8
    if len(ours):  # last H mod 8 rows / W mod 8 columns never hold keypoints
        assert ours.keypoints[:, 0].max() < w8 - 4 and ours.keypoints[:, 1].max() < h8 - 4


@pytest.mark.parametrize("max_keypoints", [0, 1, 25, 100000])
def test_top_k_smaller_and_larger_than_count(trained_like_net, textured, max_keypoints):
    image = textured(160, 200, seed=1)
    ours, ref = run_both(trained_like_net, image, {"max_keypoints": max_keypoints})
    assert_agree(ours, ref)
    unlimited, _ = run_both(trained_like_net, image, {"max_keypoints": -1})
    assert len(unlimited) > 25
    assert len(ours) == min(max_keypoints, len(unlimited))
    if 0 < max_keypoints < len(unlimited):
        assert np.all(np.diff(ours.scores) <= 0), "top-k keeps descending score order"
        assert ours.scores[-1] >= np.sort(unlimited.scores)[-max_keypoints]


def test_zero_keypoints(trained_like_net, textured):
    image = textured(96, 128, seed=2)
    ours, ref = run_both(trained_like_net, image, {"keypoint_threshold": 0.999999})
    assert len(ours) == 0 and ours.descriptors.shape == (256, 0)
    assert len(ref["keypoints"][0]) == 0


def test_one_keypoint_from_crafted_logits():
    h, w = 6, 7
    semi = np.full((65, h, w), -10.0, np.float32)
    semi[64] = 10.0  # every cell "no keypoint"
    semi[3 * 8 + 5, 2, 4] = 20.0  # one cell votes for pixel (row 8*2+3, col 8*4+5)
    desc = np.random.default_rng(0).normal(size=(256, h, w)).astype(np.float32)
    cfg = superpoint_config({})
    ours = postprocess(semi, desc, cfg)
    ref = reference_postprocess(torch.from_numpy(semi)[None], torch.from_numpy(desc)[None], cfg)
    np.testing.assert_array_equal(ours.keypoints, [[8 * 4 + 5, 8 * 2 + 3]])
    assert_agree(ours, ref)
    np.testing.assert_allclose(np.linalg.norm(ours.descriptors, axis=0), 1, atol=1e-6)


def test_cell_to_pixel_layout():
    semi = np.full((65, 2, 3), -5.0, np.float32)
    semi[10, 1, 2] = 8.0  # channel 10 -> (row 8*1 + 1, col 8*2 + 2)
    scores = detector_scores(semi)
    assert scores.shape == (16, 24)
    assert np.unravel_index(scores.argmax(), scores.shape) == (9, 18)


@pytest.mark.parametrize("radius", [1, 3, 4])
def test_nms_equals_torch(radius):
    rng = np.random.default_rng(radius)
    scores = rng.random((40, 56)).astype(np.float32) ** 4
    scores[5:9, 5:9] = 0.5  # a plateau: ties must be resolved the same way
    expected = torch_nms(torch.from_numpy(scores)[None], radius)[0].numpy()
    np.testing.assert_array_equal(simple_nms(scores, radius), expected)


def test_tiny_image_gives_no_keypoints():
    semi = np.zeros((65, 0, 3), np.float32)
    f = postprocess(semi, np.zeros((256, 0, 3), np.float32), superpoint_config({}), (30, 5))
    assert len(f) == 0 and f.image_size == (30, 5)


@pytest.mark.parametrize(
    "bad",
    [
        {"nms_radius": -1},
        {"max_keypoints": -2},
        {"keypoint_threshold": "x"},
        {"remove_borders": 1.5},
        {"nms_radus": 4},
    ],
)
def test_bad_config_names_the_parameter(bad):
    with pytest.raises(ConfigError) as err:
        superpoint_config(bad)
    assert next(iter(bad)) in str(err.value)
