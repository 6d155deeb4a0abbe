"""Frontend configuration, pre-processing and SPEC section 4 metric definitions (no networks)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT as REPO
from spsg_ros.config import ConfigError
from spsg_ros.frontend.config import DEFAULT_CONFIG, load_config
from spsg_ros.frontend.metrics import frame_metrics
from spsg_ros.frontend.preprocess import (
    FrameError,
    Prepared,
    Preprocessor,
    normalized_points,
    scale_intrinsics,
    to_gray,
    to_original,
)


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "user, name",
    [
        ({"matcher": "orb"}, "frontend.matcher"),
        ({"pair_with": "last"}, "frontend.pair_with"),
        ({"keyframe_min_tracked": 1.5}, "frontend.keyframe_min_tracked"),
        ({"f_rej_th": 0}, "frontend.f_rej_th"),
        ({"bogus": 1}, "unknown parameter 'bogus'"),
        ({"pose": {"min_matches": 3}}, "frontend.pose.min_matches"),
        ({"pose": {"ransac_threshold_px": -1}}, "frontend.pose.ransac_threshold_px"),
        ({"pose": {"essential_method": "8point"}}, "frontend.pose.essential_method"),
        ({"pose": {"typo": 1}}, "frontend.pose: unknown parameter 'typo'"),
        ({"preprocess": {"resize": [0, 10]}}, "frontend.preprocess.resize"),
        ({"preprocess": {"undistort": "yes"}}, "frontend.preprocess.undistort"),
        ({"preprocess": {"clahe": "on"}}, "frontend.preprocess.clahe"),
        ({"superpoint": {"max_keypoints": -5}}, "frontend.superpoint.max_keypoints"),
        ({"superpoint": {"nms": 3}}, "frontend.superpoint: unknown parameter 'nms'"),
        ({"superglue": {"match_threshold": 2}}, "frontend.superglue.match_threshold"),
        ({"nn": {"ratio": 0}}, "frontend.nn.ratio"),
        ({"backend": {"device": ""}}, "frontend.backend.device"),
        ({"backend": {"weights": "x"}}, "frontend.backend: unknown parameter 'weights'"),
        ({"camera": {"fx": 500, "fy": 500, "cx": 320}}, "frontend.camera.cy"),
        (
            {"camera": {"fx": 5, "fy": 5, "cx": 1, "cy": 1, "distortion": [1, 2]}},
            "frontend.camera.distortion",
        ),
        ({"pose": 3}, "frontend.pose = 3: expected a mapping"),
    ],
)
def test_config_errors_name_the_parameter(user, name):
    with pytest.raises(ConfigError, match=name.replace("(", r"\(").replace("[", r"\[")):
        load_config(user)


def test_node_params_file_is_a_frontend_config(tmp_path):
    """config/<mode>.yaml (the node's parameter file) configures the Python frontend."""
    from spsg_ros import parameters

    cfg = load_config(REPO / "spsg_ros" / "config" / "stereo.yaml")
    assert cfg == load_config(None)  # the files hold the defaults
    path = tmp_path / "node.yaml"
    path.write_text(
        "/**/frontend_node:\n  ros__parameters:\n    max_keypoints: 300\n"
        "    image_topic: cam\n    resize: [640, 480]\n    pair_with: keyframe\n"
    )
    cfg = load_config(path)
    assert cfg["superpoint"]["max_keypoints"] == 300 and cfg["pair_with"] == "keyframe"
    assert cfg["preprocess"]["resize"] == [640, 480]
    path.write_text("frontend_node:\n  ros__parameters:\n    max_keypoint: 300\n")
    with pytest.raises(ConfigError, match="unknown parameter.*max_keypoint"):
        load_config(path)
    path.write_text("/**:\n  ros__parameters:\n    min_matches: 3\n")
    with pytest.raises(ConfigError, match="min_matches = 3: below the minimum 6"):
        load_config(path)
    assert parameters.frontend_defaults()["superpoint"]["max_keypoints"] == 1024


def test_config_defaults_merge_and_yaml(tmp_path):
    cfg = load_config(None)
    assert cfg["matcher"] == "superglue" and cfg["f_rej_th"] == 5.0
    assert cfg["superpoint"]["max_keypoints"] == 1024 and cfg["superpoint"]["nms_radius"] == 4
    assert cfg["nn"]["ratio"] == 0.7 and cfg["pose"]["min_matches"] == 8
    cfg = load_config({"superpoint": {"nms_radius": 3}, "preprocess": {"resize": 320}})
    assert cfg["superpoint"]["max_keypoints"] == 1024 and cfg["superpoint"]["nms_radius"] == 3
    assert cfg["preprocess"]["resize"] == [320]
    assert DEFAULT_CONFIG["superpoint"]["nms_radius"] == 4  # defaults are not mutated
    assert load_config(cfg) == cfg  # a validated configuration validates to itself
    path = tmp_path / "frontend.yaml"
    path.write_text(
        "frontend:\n  matcher: nn\n  pair_with: keyframe\n  camera: "
        "{fx: 500, fy: 500, cx: 320, cy: 240}\n"
    )
    cfg = load_config(path)
    assert cfg["matcher"] == "nn" and cfg["pair_with"] == "keyframe" and cfg["camera"]["fx"] == 500
    path.write_text("matcher: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


# ---------------------------------------------------------------- encodings


def test_encodings_to_gray():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(to_gray(bgr, "bgr8"), expected)
    np.testing.assert_array_equal(to_gray(bgr[:, :, ::-1].copy(), "rgb8"), expected)
    bgra = np.dstack([bgr, np.full((20, 30), 7, np.uint8)])
    np.testing.assert_array_equal(to_gray(bgra, "bgra8"), expected)
    np.testing.assert_array_equal(
        to_gray(np.ascontiguousarray(bgra[:, :, [2, 1, 0, 3]]), "rgba8"), expected
    )
    np.testing.assert_array_equal(to_gray(expected, "mono8"), expected)
    np.testing.assert_array_equal(to_gray(expected[:, :, None], "mono8"), expected)
    m16 = np.array([[0, 257 * 100, 65535] + [0] * 13] * 16, np.uint16)
    assert to_gray(m16, "mono16")[0, :3].tolist() == [0, 100, 255]
    assert to_gray(m16, "mono16", "shift")[0, :3].tolist() == [0, 100, 255]
    stretched = to_gray((m16 // 16).astype(np.uint16), "mono16", "minmax")
    assert stretched.min() == 0 and stretched.max() == 255


@pytest.mark.parametrize(
    "image, encoding, message",
    [
        (None, "mono8", "no image"),
        (np.zeros((0, 0), np.uint8), "mono8", "empty image"),
        (np.zeros((10, 40), np.uint8), "mono8", "too small"),
        (np.zeros((32, 32), np.float32), "mono8", "dtype float32"),
        (np.full((32, 32), np.nan, np.float32), "mono8", "NaN"),
        (np.zeros((32, 32, 3), np.uint8), "mono8", "does not fit encoding mono8"),
        (np.zeros((32, 32), np.uint8), "rgb8", "does not fit encoding rgb8"),
        (np.zeros((32, 32), np.uint8), "32FC1", "unsupported image encoding '32FC1'"),
        (np.zeros((32, 32), np.uint8), "yuv422", "does not fit encoding yuv422"),
        (np.zeros((32, 32), np.uint8), "mono16", "uint16 expected"),
        ([[1, 2], [3, 4]], "mono8", "not a numpy array"),
    ],
)
def test_bad_images_raise_frame_error(image, encoding, message):
    with pytest.raises(FrameError, match=message):
        to_gray(image, encoding)


# ---------------------------------------------------------------- resize, CLAHE, coordinates


def _preprocess_cfg(**kw):
    return load_config({"preprocess": kw})["preprocess"]


def test_resize_policy_and_coordinates_back_to_original():
    image = np.zeros((480, 640), np.uint8)
    prep = Preprocessor(_preprocess_cfg(resize=[320]))(image)
    assert prep.image.shape == (240, 320) and prep.scale == (2.0, 2.0)
    prep = Preprocessor(_preprocess_cfg(resize=[160, 100]))(image)
    assert prep.image.shape == (100, 160) and prep.scale == (4.0, 4.8)
    # pixel centres: network pixel 0 covers original pixels 0..3 -> centre 1.5
    np.testing.assert_allclose(
        to_original(np.array([[0.0, 0.0], [10, 20]]), prep), [[1.5, 1.9], [41.5, 97.9]], atol=1e-4
    )
    assert Preprocessor(_preprocess_cfg())(image).scale == (1.0, 1.0)
    with pytest.raises(FrameError, match="network input too small"):
        Preprocessor(_preprocess_cfg(resize=[12]))(image)
    # intrinsics of the network image agree with the coordinate map
    K = np.array([[500.0, 0, 319.5], [0, 500, 239.5], [0, 0, 1]])
    Kn = scale_intrinsics(K, prep.scale)
    p_net = np.array([[37.0, 61.0]])
    ray_net = np.linalg.inv(Kn) @ [*p_net[0], 1]
    ray_orig = np.linalg.inv(K) @ [*to_original(p_net, prep)[0], 1]
    np.testing.assert_allclose(ray_net, ray_orig, atol=1e-6)


def test_clahe_raises_low_contrast():
    rng = np.random.default_rng(1)
    dull = (120 + rng.integers(0, 6, (64, 64))).astype(np.uint8)
    plain = Preprocessor(_preprocess_cfg())(dull).image
    enhanced = Preprocessor(_preprocess_cfg(clahe=True, clahe_clip_limit=4.0))(dull).image
    np.testing.assert_array_equal(plain, dull)
    assert enhanced.std() > 3 * dull.std()


def test_undistortion_points_and_image_modes_agree():
    K = np.array([[300.0, 0, 160], [0, 300, 120], [0, 0, 1]])
    D = np.array([-0.25, 0.08, 0.001, -0.001, 0.0])
    rays = np.array([[0.2, -0.15, 1], [-0.3, 0.25, 1], [0.0, 0.0, 1]])
    distorted, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K, D)
    distorted = distorted.reshape(-1, 2)
    # points mode: keypoints in the distorted image -> exact normalised coordinates
    prep = Prepared(np.zeros((240, 320), np.uint8), (320, 240), (1.0, 1.0))
    np.testing.assert_allclose(
        normalized_points(distorted, prep, K, D, "points"), rays[:, :2], atol=1e-5
    )
    # "none" ignores distortion
    assert not np.allclose(
        normalized_points(distorted, prep, K, D, "none"), rays[:, :2], atol=1e-3
    )
    # image mode: keypoints found in the undistorted image map back to the distorted pixels
    prep_img = Preprocessor(_preprocess_cfg(undistort="image"))(
        np.zeros((240, 320), np.uint8), K, D
    )
    assert prep_img.undistorted_with is not None
    undist_pix = rays[:, :2] * 300 + [160, 120]
    np.testing.assert_allclose(to_original(undist_pix, prep_img), distorted, atol=1e-3)
    np.testing.assert_allclose(
        normalized_points(undist_pix, prep_img, K, D, "image"), rays[:, :2], atol=1e-9
    )
    # image mode is a no-op without distortion coefficients
    no_distortion = Preprocessor(_preprocess_cfg(undistort="image"))(
        np.zeros((32, 32), np.uint8), K, np.zeros(5)
    )
    assert no_distortion.undistorted_with is None


# ---------------------------------------------------------------- SPEC section 4 metrics


def _epipolar_data(n=40, seed=0):
    """Matched pixels of a pure x-translation: epipolar lines are image rows."""
    rng = np.random.default_rng(seed)
    ref = np.column_stack([rng.uniform(20, 600, n), rng.uniform(20, 460, n)])
    cur = ref + np.column_stack([rng.uniform(5, 40, n), np.zeros(n)])
    return ref, cur


def test_metric_definitions_exact():
    ref, cur = _epipolar_data()
    cur[:4, 1] += [8.0, -12.0, 20.0, 15.0]  # 4 matches off their epipolar line by > 5 px
    cur[4:6, 1] += [2.0, -1.5]  # within 5 px: inliers
    m, outliers = frame_metrics(100, ref, cur, f_rej_th=5.0)
    assert m.num_kp == 100 and m.num_matches == 40
    assert m.match_prec == 40 / 100
    assert outliers[:4].all() and not outliers[4:].any()
    assert m.outlier_prec == 4 / 40
    # the threshold is a parameter: at 30 px every match is an inlier
    assert frame_metrics(100, ref, cur, f_rej_th=30.0)[0].outlier_prec == 0.0


def test_metric_edge_cases():
    none = np.zeros((0, 2))
    m, _ = frame_metrics(0, none, none, 5.0)
    assert (m.num_kp, m.match_prec, m.outlier_prec) == (0, 0.0, 1.0)
    m, _ = frame_metrics(50, none, none, 5.0)
    assert (m.match_prec, m.outlier_prec) == (0.0, 1.0)
    ref, cur = _epipolar_data(5)
    m, outliers = frame_metrics(50, ref, cur, 5.0)  # < 8 matches: no F, nothing verifiable
    assert m.match_prec == 0.1 and m.outlier_prec == 1.0 and outliers.all()
