"""Parity with the upstream reference outputs in ../shared/fixtures (README tolerances)."""

from __future__ import annotations

import ast

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spsg_ros.backends import create_backend  # noqa: E402
from spsg_ros.features.extractor import SuperPointExtractor  # noqa: E402
from spsg_ros.features.superpoint_post import postprocess, superpoint_config  # noqa: E402
from spsg_ros.features.types import Features  # noqa: E402
from spsg_ros.matching.superglue_matcher import SuperGlueMatcher  # noqa: E402

FIXTURES = ["freiburg_pair_max1024", "freiburg_pair_unlimited_nms3", "freiburg_pair_320x240"]


def configs(data):
    sp = ast.literal_eval(str(data["sp_config"]))
    sg = ast.literal_eval(str(data["sg_config"]))
    sg.pop("weights")  # upstream names the file; we pass a path
    return sp, sg


@pytest.fixture(scope="module", params=FIXTURES)
def case(request, fixture_files, shared_weights):
    data = dict(np.load(fixture_files[request.param]))
    sp_cfg, sg_cfg = configs(data)
    backend = create_backend(
        "torch",
        superpoint_weights=shared_weights["superpoint"],
        superglue_weights=shared_weights["superglue"],
        superpoint_config=sp_cfg,
        superglue_config=sg_cfg,
    )
    return request.param, data, sp_cfg, sg_cfg, backend


def test_dense_outputs_equal_reference(case):
    _, data, _, _, backend = case
    images = np.stack([data["image0"], data["image1"]])[:, None].astype(np.float32) / 255
    semi, desc = backend.superpoint_dense(images)
    for i in (0, 1):
        np.testing.assert_allclose(semi[i], data[f"semi{i}"], atol=1e-4)
        np.testing.assert_allclose(desc[i], data[f"coarse_desc{i}"], atol=1e-4)


def test_end_to_end_matches_reference(case):
    name, data, sp_cfg, sg_cfg, backend = case
    features = SuperPointExtractor(backend, sp_cfg).extract_batch([data["image0"], data["image1"]])
    for i, f in enumerate(features):
        np.testing.assert_array_equal(f.keypoints, data[f"keypoints{i}"], err_msg=name)
        np.testing.assert_allclose(f.scores, data[f"scores{i}"], atol=1e-5)
        np.testing.assert_allclose(f.descriptors, data[f"descriptors{i}"], atol=1e-4)
    log_assignment = backend.superglue_log_assignment(*features)
    np.testing.assert_allclose(log_assignment, data["log_assignment"], atol=1e-3)
    matches = SuperGlueMatcher(backend, sg_cfg)(*features)
    np.testing.assert_array_equal(matches.matches0, data["matches0"])
    np.testing.assert_array_equal(matches.matches1, data["matches1"])
    np.testing.assert_allclose(matches.scores0, data["matching_scores0"], atol=1e-5)
    np.testing.assert_allclose(matches.scores1, data["matching_scores1"], atol=1e-5)
    assert matches.num_matches > 0


def test_numpy_host_postprocess_matches_reference(case):
    """The torch-free path every accelerator backend uses: identical keypoints."""
    name, data, sp_cfg, _, _ = case
    config = superpoint_config(sp_cfg)
    for i in (0, 1):
        f = postprocess(data[f"semi{i}"], data[f"coarse_desc{i}"], config)
        np.testing.assert_array_equal(f.keypoints, data[f"keypoints{i}"], err_msg=name)
        np.testing.assert_allclose(f.scores, data[f"scores{i}"], atol=1e-5)
        np.testing.assert_allclose(f.descriptors, data[f"descriptors{i}"], atol=1e-4)


def test_superglue_on_reference_features_is_exact(case):
    _, data, _, sg_cfg, backend = case
    f0, f1 = (
        Features(
            data[f"keypoints{i}"],
            data[f"scores{i}"],
            data[f"descriptors{i}"],
            data[f"image{i}"].shape[::-1],
        )
        for i in (0, 1)
    )
    matches = SuperGlueMatcher(backend, sg_cfg)(f0, f1)
    np.testing.assert_array_equal(matches.matches0, data["matches0"])
    np.testing.assert_array_equal(matches.matches1, data["matches1"])


def test_match_pair_cli_reproduces_fixture(
    tmp_path, freiburg_frames, fixture_files, shared_weights
):
    """The issue's acceptance command on frames 1 and 2 of the sorted sequence."""
    from spsg_ros.cli.main import main

    out = tmp_path / "pair.npz"
    viz = tmp_path / "pair.png"
    code = main(
        [
            "match-pair",
            str(freiburg_frames[0]),
            str(freiburg_frames[1]),
            "--superpoint-weights",
            str(shared_weights["superpoint"]),
            "--superglue-weights",
            str(shared_weights["superglue"]),
            "--max-keypoints",
            "1024",
            "--resize",
            "-1",
            "--out",
            str(out),
            "--viz",
            str(viz),
        ]
    )
    assert code == 0
    got = np.load(out)
    ref = np.load(fixture_files["freiburg_pair_max1024"])
    for key in ("keypoints0", "keypoints1", "matches0", "matches1"):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    for key in ("scores0", "scores1", "matching_scores0", "matching_scores1"):
        np.testing.assert_allclose(got[key], ref[key], atol=1e-5, err_msg=key)
    for key in ("descriptors0", "descriptors1"):
        assert got[key].shape == ref[key].shape
        np.testing.assert_allclose(got[key], ref[key], atol=1e-4, err_msg=key)
    import cv2

    picture = cv2.imread(str(viz))
    assert picture is not None and picture.shape[0] == 480 and picture.shape[1] > 1280
