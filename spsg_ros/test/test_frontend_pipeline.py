"""Frontend plumbing: backend call counts, match convention, coordinates, pairing modes,
and every robustness case (flagged results, never an exception out of process)."""

from __future__ import annotations

import numpy as np
import pytest

from spsg_ros.backends.base import Backend
from spsg_ros.config import ConfigError
from spsg_ros.datasets.synthetic import SyntheticScene, make_trajectory
from spsg_ros.frontend import CameraInfo, Frame, Frontend
from spsg_ros.frontend.pipeline import REFERENCE_MAX_MISSES

W, H = 320, 240
K_SMALL = np.array([[160.0, 0, 160], [0, 160, 120], [0, 0, 1]])


class CountingBackend(Backend):
    """Wraps a real backend and counts the images and pairs it is given."""

    name = "counting"

    def __init__(self, inner: Backend, batch: bool = True):
        self.inner = inner
        self.supports_batch = batch
        self.superpoint_calls: list[int] = []  # images per call
        self.superglue_calls = 0

    def superpoint_dense(self, images):
        self.superpoint_calls.append(len(images))
        return self.inner.superpoint_dense(images)

    def superpoint(self, images, config):
        self.superpoint_calls.append(len(images))
        return self.inner.superpoint(images, config)

    def superglue_log_assignment(self, features0, features1):
        self.superglue_calls += 1
        return self.inner.superglue_log_assignment(features0, features1)

    def superglue(self, features0, features1, match_threshold):
        self.superglue_calls += 1
        return self.inner.superglue(features0, features1, match_threshold)


@pytest.fixture(scope="module")
def torch_backend(shared_weights):
    from spsg_ros.backends import create_backend

    return create_backend(
        "torch",
        superpoint_weights=shared_weights["superpoint"],
        superglue_weights=shared_weights["superglue"],
    )


@pytest.fixture(scope="module")
def images():
    scene = SyntheticScene(seed=3)
    poses = make_trajectory(4, step=0.1)
    return [scene.render(p, K_SMALL, W, H) for p in poses]


def _frontend(backend, **cfg):
    cfg.setdefault("superpoint", {"max_keypoints": 256})
    return Frontend(cfg, backend=backend)


def _frame(image, i, encoding="mono8", info=True, **kw):
    return Frame(
        image,
        stamp_ns=1000 + i,
        frame_id=f"f{i}",
        encoding=encoding,
        camera_info=CameraInfo(K=K_SMALL, width=W, height=H) if info else None,
        **kw,
    )


# ---------------------------------------------------------------- call counts


def test_one_superpoint_image_per_image_and_one_superglue_per_pair(torch_backend, images):
    counting = CountingBackend(torch_backend)
    fe = _frontend(
        counting, superpoint={"max_keypoints": 48}
    )  # few keypoints: SuperGlue is costly
    for i, img in enumerate(images[:3]):
        result = fe.process(_frame(img, i))
        assert result.ok, result.status
    assert counting.superpoint_calls == [1, 1, 1]
    assert counting.superglue_calls == 2  # pairs (0,1) and (1,2)
    fe.reset()
    counting.superpoint_calls.clear()
    counting.superglue_calls = 0
    for i, img in enumerate(images[:3]):
        result = fe.process_stereo(_frame(img, i), _frame(images[3], i))
        assert result.ok, result.status
        assert result.stereo_matches is not None and result.right_features is not None
    assert counting.superpoint_calls == [2, 2, 2]  # left and right in one batched call
    assert counting.superglue_calls == 2 + 3  # left-left pairs + left-right pairs
    # a backend that cannot batch gets one image per call, still once per image
    single = CountingBackend(torch_backend, batch=False)
    _frontend(single, matcher="nn").process_stereo(_frame(images[0], 0), _frame(images[1], 0))
    assert single.superpoint_calls == [1, 1]


def test_nn_matcher_runs_no_superglue(torch_backend, images):
    counting = CountingBackend(torch_backend)
    fe = _frontend(counting, matcher="nn")
    for i, img in enumerate(images[:2]):
        fe.process(_frame(img, i))
    assert counting.superglue_calls == 0 and counting.superpoint_calls == [1, 1]


# ---------------------------------------------------------------- conventions


def test_match_convention_and_original_coordinates(torch_backend, images):
    """Current = reference shifted 8 px right: matches0[i] is the reference keypoint of
    current keypoint i, and keypoints are in the original image's pixels despite a resize."""
    big = np.kron(images[0], np.ones((2, 2), np.uint8))  # 640x480
    ref_img, cur_img = big[:, 16:624], big[:, 0:608]  # content moves right by 16 px
    fe = _frontend(torch_backend, matcher="nn", preprocess={"resize": [304, 240]})
    r0 = fe.process(Frame(np.ascontiguousarray(ref_img), 1, "a"))
    r1 = fe.process(Frame(np.ascontiguousarray(cur_img), 2, "b"))
    assert r1.ok and r1.ref_stamp_ns == 1 and r1.ref_frame_id == "a"
    assert r1.image_size == (608, 480) and r1.features.image_size == (608, 480)
    idx_cur, idx_ref, _ = r1.matches.pairs()
    assert len(idx_cur) > 50 and r1.metrics.num_matches == len(idx_cur)
    shift = r1.features.keypoints[idx_cur] - r0.features.keypoints[idx_ref]
    assert np.median(shift[:, 0]) == pytest.approx(16.0, abs=0.5)
    assert np.median(np.abs(shift[:, 1])) < 0.5
    assert r1.features.keypoints[:, 0].max() > 400  # scaled back from the 304-wide network image
    assert r1.metrics.match_prec == pytest.approx(len(idx_cur) / len(r1.features))
    assert set(r1.timings_ms) >= {"preprocess", "superpoint", "match", "pose", "total"}
    assert r1.pose.status.startswith("no intrinsics") and not r1.pose.valid


def test_standstill_is_degenerate_motion(torch_backend, images):
    fe = _frontend(torch_backend, matcher="nn")
    fe.process(_frame(images[0], 0))
    r = fe.process(_frame(images[0], 1))
    assert r.ok and r.metrics.match_prec > 0.9 and r.metrics.outlier_prec < 0.05
    assert not r.pose.valid and r.pose.status.startswith("degenerate motion")


def test_keyframe_pairing(torch_backend, images):
    fe = _frontend(torch_backend, matcher="nn", pair_with="keyframe", keyframe_min_tracked=0.2)
    r0 = fe.process(_frame(images[0], 0))
    r1 = fe.process(_frame(images[1], 1))
    r2 = fe.process(_frame(images[2], 2))
    assert r0.is_keyframe and not r1.is_keyframe
    assert r1.ref_stamp_ns == r2.ref_stamp_ns == 1000  # both against the keyframe
    other = SyntheticScene(seed=9).render(
        np.eye(4), K_SMALL, W, H
    )  # unrelated view: tracking lost
    r3 = fe.process(_frame(other, 3))
    # no valid pose against the keyframe: the frame cannot anchor anything, the keyframe stays
    assert r3.ref_stamp_ns == 1000 and not r3.pose.valid and not r3.is_keyframe
    r4 = fe.process(_frame(images[3], 4))
    assert r4.ref_stamp_ns == 1000 and r4.pose.valid
    # tracking lost for good: the keyframe is given up after REFERENCE_MAX_MISSES failures
    results = [fe.process(_frame(other, 5 + i)) for i in range(REFERENCE_MAX_MISSES)]
    assert [r.pose.valid for r in results] == [False] * REFERENCE_MAX_MISSES
    assert [r.is_keyframe for r in results] == [False] * (REFERENCE_MAX_MISSES - 1) + [True]
    assert fe.process(_frame(other, 20)).ref_stamp_ns == results[-1].stamp_ns
    # previous mode: each frame pairs with the one before
    fe = _frontend(torch_backend, matcher="nn")
    fe.process(_frame(images[0], 0))
    fe.process(_frame(images[1], 1))
    assert fe.process(_frame(images[2], 2)).ref_stamp_ns == 1001


# ---------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "image, encoding, message",
    [
        (np.zeros((0, 0), np.uint8), "mono8", "empty image"),
        (np.zeros((0, 640), np.uint8), "mono8", "empty image"),
        (np.zeros((12, 12), np.uint8), "mono8", "too small"),
        (np.full((64, 64), np.nan, np.float32), "mono8", "NaN"),
        (np.zeros((64, 64), np.int32), "mono8", "dtype int32"),
        (np.zeros((64, 64), np.float64), "mono16", "dtype float64"),
        (np.zeros((64, 64, 3), np.uint8), "32FC1", "unsupported image encoding"),
        (np.zeros((64, 64, 3), np.uint8), "yuv422", "does not fit encoding yuv422"),
        (None, "mono8", "no image"),
    ],
)
def test_bad_frames_are_flagged_not_raised(primed, image, encoding, message):
    fe, counting = primed
    r = fe.process(Frame(image, 7, "bad", encoding))
    assert not r.ok and message in r.status and not r.pose.valid
    assert len(r.features) == 0 and r.stamp_ns == 7 and "total" in r.timings_ms
    # nothing reached the network and the last good frame stays the reference
    assert counting.superpoint_calls == [1] and fe.reference.stamp_ns == 1000


@pytest.fixture(scope="module")
def primed(torch_backend, images):
    """A frontend that has processed one good frame (shared by the bad-frame cases)."""
    counting = CountingBackend(torch_backend)
    fe = _frontend(counting)
    assert fe.process(_frame(images[0], 0)).ok
    return fe, counting


def test_not_a_frame_is_flagged(torch_backend):
    fe = _frontend(torch_backend)
    r = fe.process("not a frame")
    assert not r.ok and "expected a Frame" in r.status
    r = fe.process(Frame(np.zeros((32, 32), np.uint8), stamp_ns="soon"))
    assert not r.ok and r.stamp_ns == 0


def test_black_frame_gives_zero_keypoints_and_keeps_reference(torch_backend, images):
    fe = _frontend(torch_backend)
    fe.process(_frame(images[0], 0))
    r = fe.process(_frame(np.zeros((H, W), np.uint8), 1))
    assert not r.ok and "no keypoints" in r.status
    assert r.metrics.num_kp == 0 and r.metrics.match_prec == 0.0 and r.metrics.outlier_prec == 1.0
    assert (
        r.ref_stamp_ns == 1000 and not r.pose.valid and r.pose.status.startswith("too few matches")
    )
    r = fe.process(_frame(images[1], 2))
    assert r.ok and r.ref_stamp_ns == 1000


def test_stamp_going_back_resets_reference_and_keyframe(torch_backend, images):
    """A looped or restarted source: the older frame must not pair with the newer reference."""
    for pair_with in ("previous", "keyframe"):
        fe = _frontend(torch_backend, pair_with=pair_with)
        for i in range(3):
            r = fe.process(_frame(images[i], 10 + i))
            assert r.ok and not r.pairing_reset
        r = fe.process(_frame(images[0], 11))  # behind the newest frame (1012), not the keyframe
        assert not r.ok and r.pairing_reset and "stamp went back by 0.000 s" in r.status
        assert r.ref_stamp_ns is None and r.matches is None and not r.pose.valid
        assert r.is_keyframe and len(r.features) > 0
        r = fe.process(_frame(images[1], 12))
        assert r.ok and not r.pairing_reset and r.ref_stamp_ns == 1011


def test_resolution_change_resets_pairing_with_warning(torch_backend, images):
    fe = _frontend(torch_backend)
    fe.process(_frame(images[0], 0))
    smaller = np.ascontiguousarray(images[1][:200, :280])
    r = fe.process(Frame(smaller, 5, "cam"))
    assert not r.ok and "resolution changed from 320x240 to 280x200" in r.status
    assert any("pairing reset" in w for w in r.warnings)
    assert r.ref_stamp_ns is None and r.matches is None and len(r.features) > 0
    r = fe.process(Frame(np.ascontiguousarray(images[2][:200, :280]), 6, "cam"))
    assert r.ok and r.ref_stamp_ns == 5


def test_color_encodings_and_mono16_run(torch_backend, images):
    fe = _frontend(torch_backend)
    rgb = np.dstack([images[0]] * 3)
    r_rgb = fe.process(Frame(rgb, 1, encoding="rgb8"))
    fe.reset()
    r_bgra = fe.process(
        Frame(np.dstack([images[0]] * 3 + [np.full((H, W), 255, np.uint8)]), 2, encoding="bgra8")
    )
    fe.reset()
    r16 = fe.process(Frame(images[0].astype(np.uint16) * 257, 3, encoding="mono16"))
    assert r_rgb.ok and r_bgra.ok and r16.ok
    np.testing.assert_array_equal(r_rgb.features.keypoints, r_bgra.features.keypoints)
    np.testing.assert_array_equal(r_rgb.features.keypoints, r16.features.keypoints)


def test_stereo_problems_are_flagged(torch_backend, images):
    fe = _frontend(torch_backend, matcher="nn")
    r = fe.process_stereo(_frame(images[0], 0), Frame(images[1][:200], 0))
    assert not r.ok and "differ in size" in r.status
    # no stereo calibration: features and matches, but no metric pose, with a warning
    fe.process_stereo(_frame(images[0], 0), _frame(images[1], 0))
    r = fe.process_stereo(_frame(images[1], 1), _frame(images[2], 1))
    assert r.ok and not r.pose.valid and r.pose.status.startswith("no stereo calibration")
    assert any("no stereo calibration" in w for w in r.warnings)
    # switching from stereo to mono resets the pairing
    r = fe.process(_frame(images[2], 2))
    assert not r.ok and "stream changed from stereo to mono" in r.status
    bad_info = CameraInfo(K=np.full((3, 3), np.nan), width=W, height=H)
    r = fe.process(Frame(images[0], 9, camera_info=bad_info))
    assert not r.ok and "not a valid camera matrix" in r.status


def test_backend_failure_is_flagged(images):
    class Broken(Backend):
        name = "broken"

        def superpoint_dense(self, images):
            raise RuntimeError("device lost")

        def superglue_log_assignment(self, f0, f1):
            raise RuntimeError("device lost")

    r = _frontend(Broken()).process(_frame(images[0], 0))
    assert not r.ok and "internal error" in r.status and "device lost" in r.status


def test_construction_errors_name_the_parameter():
    with pytest.raises(ConfigError, match="frontend.matcher"):
        Frontend({"matcher": "flann"})
    with pytest.raises(ConfigError, match="frontend.preprocess.resize"):
        Frontend({"preprocess": {"resize": [1, 2, 3]}})
