"""SPEC section 3 pairs evaluation: file parsing, geometry of the protocol, and
`spsg-ros evaluate-pairs` on rendered pairs whose relative pose is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from spsg_ros.datasets.poses import pose_matrix
from spsg_ros.evaluation.pairs import (
    PairEntry,
    PairsFileError,
    estimate_pose,
    evaluate_matches,
    load_pair_images,
    parse_pairs_file,
    scale_intrinsics,
    summarise,
    symmetric_epipolar_error,
)

K = np.array([[320.0, 0, 320], [0, 320, 240], [0, 0, 1]])


def _rot(axis, deg):
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _pair_line(name0, name1, T, K0=K, K1=K, rot0=0, rot1=0):
    values = [rot0, rot1] + list(K0.ravel()) + list(K1.ravel()) + list(T.ravel())
    return f"{name0} {name1} " + " ".join(f"{v:.10g}" for v in values)


def _projected_matches(T_0to1, n=200, seed=0):
    """Keypoints of random 3D points seen by camera 0 and camera 1 (exact correspondences)."""
    rng = np.random.default_rng(seed)
    X0 = np.c_[rng.uniform(-3, 3, n), rng.uniform(-2, 2, n), rng.uniform(4, 10, n)]
    X1 = X0 @ T_0to1[:3, :3].T + T_0to1[:3, 3]
    p0 = X0 @ K.T
    p1 = X1 @ K.T
    return p0[:, :2] / p0[:, 2:], p1[:, :2] / p1[:, 2:]


def test_parse_pairs_file(tmp_path):
    T = pose_matrix(_rot("y", 5), [0.1, 0, 0])
    path = tmp_path / "pairs.txt"
    path.write_text("# comment\n\n" + _pair_line("a.png", "b.png", T, rot1=1) + "\n")
    (entry,) = parse_pairs_file(path)
    assert (entry.name0, entry.name1, entry.rot0, entry.rot1, entry.line) == (
        "a.png",
        "b.png",
        0,
        1,
        3,
    )
    np.testing.assert_allclose(entry.K0, K)
    np.testing.assert_allclose(entry.T_0to1, T)
    path.write_text("a.png b.png 0 0 1 2 3\n")
    with pytest.raises(PairsFileError, match=r"pairs.txt:1: expected 38 fields"):
        parse_pairs_file(path)
    path.write_text(_pair_line("a.png", "b.png", T).replace(" 320 ", " x ", 1) + "\n")
    with pytest.raises(PairsFileError, match="must be numbers"):
        parse_pairs_file(path)
    path.write_text(_pair_line("a.png", "b.png", T, rot0=5) + "\n")
    with pytest.raises(PairsFileError, match="rotations must be 0..3"):
        parse_pairs_file(path)
    path.write_text("# nothing\n")
    with pytest.raises(PairsFileError, match="holds no pairs"):
        parse_pairs_file(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_pairs_file(tmp_path / "missing.txt")


def test_exact_correspondences_give_perfect_scores():
    T = pose_matrix(_rot("y", 8) @ _rot("x", 3), [0.3, -0.05, 0.1])
    k0, k1 = _projected_matches(T)
    errs = symmetric_epipolar_error(k0, k1, T, K, K)
    assert errs.max() < 1e-12
    R, t, inliers = estimate_pose(k0, k1, K, K)
    assert inliers.sum() >= 195
    entry = PairEntry("a", "b", K0=K, K1=K, T_0to1=T)
    # every keypoint of image 0 matched to its own projection in image 1
    result = evaluate_matches(entry, k0, k1, np.arange(len(k0)), K, K, T)
    assert result.precision == 1.0 and result.matching_score == 1.0 and result.num_matches == 200
    assert result.rotation_err_deg < 0.01 and result.translation_err_deg < 0.05
    # shuffled matches: no epipolar agreement, pose lost
    shuffled = np.random.default_rng(1).permutation(len(k0))
    bad = evaluate_matches(entry, k0, k1, shuffled, K, K, T)
    assert bad.precision < 0.1 and bad.pose_err_deg > 5
    # fewer than 5 matches: no pose, infinite error (AUC counts it as a failure)
    few = np.full(len(k0), -1)
    few[:4] = np.arange(4)
    none = evaluate_matches(entry, k0, k1, few, K, K, T)
    assert math.isinf(none.pose_err_deg) and none.precision == 1.0
    summary = summarise([result, none])
    assert summary["auc@20"] == pytest.approx(50.0, abs=0.5) and summary["pairs_without_pose"] == 1
    assert summary["precision"] == pytest.approx(100.0) and summary[
        "mean_matches"
    ] == pytest.approx(102.0)


def test_resize_and_rotation_bookkeeping(tmp_path):
    """Image 0 stored at twice the size (its K doubled), image 1 with an EXIF rotation
    rot1 = 1: after loading (resize to 640x480, np.rot90), projected correspondences
    moved the way the pixels moved must fit the scaled / rotated K and pose exactly."""
    T = pose_matrix(_rot("y", 6), [0.2, 0.0, 0.05])
    k0, k1 = _projected_matches(T, n=60, seed=3)
    canvas = np.zeros((480, 640), np.uint8)
    cv2.rectangle(canvas, (10, 10), (100, 50), 255, -1)
    cv2.imwrite(str(tmp_path / "a.png"), cv2.resize(canvas, (1280, 960)))
    cv2.imwrite(str(tmp_path / "b.png"), canvas)
    entry = PairEntry("a.png", "b.png", 0, 1, np.diag([2.0, 2.0, 1.0]) @ K, K.copy(), T)
    image0, image1, K0, K1, T_loaded = load_pair_images(entry, tmp_path, [640, 480])
    assert image0.shape == (480, 640) and image1.shape == (640, 480)
    np.testing.assert_allclose(K0, K)  # intrinsics scaled by the resize (1280 -> 640)
    # np.rot90 (counter-clockwise) moves pixel (x, y) of a 640-wide image to (y, 639 - x)
    q1 = np.c_[k1[:, 1], 639.0 - k1[:, 0]]
    np.testing.assert_array_equal(
        image1[int(q1[0, 1]), int(q1[0, 0])], canvas[int(k1[0, 1]), int(k1[0, 0])]
    )
    assert symmetric_epipolar_error(k0, q1, T_loaded, K0, K1).max() < 1e-10
    # without the rotation bookkeeping the same points would not fit
    assert symmetric_epipolar_error(k0, q1, T, K, K).max() > 1e-3
    R, t, _ = estimate_pose(k0, q1, K0, K1)
    assert np.degrees(np.arccos(np.clip((np.trace(R.T @ T_loaded[:3, :3]) - 1) / 2, -1, 1))) < 0.01
    assert scale_intrinsics(K, (2.0, 2.0))[0, 0] == pytest.approx(160.0)


def _render_pairs(folder: Path, count: int = 4):
    from spsg_ros.datasets.synthetic import make_trajectory, render

    folder.mkdir(parents=True, exist_ok=True)
    poses = make_trajectory(count + 3, step=0.1, rotation_deg=2.0)
    lines = []
    for i in range(count):
        T_w0, T_w1 = poses[i], poses[i + 3]
        for j, T in ((0, T_w0), (1, T_w1)):
            cv2.imwrite(str(folder / f"p{i}_{j}.png"), render(T, K, 640, 480))
        T_0to1 = np.linalg.inv(T_w1) @ T_w0
        lines.append(_pair_line(f"p{i}_0.png", f"p{i}_1.png", T_0to1))
    (folder / "pairs.txt").write_text("\n".join(lines) + "\n")
    return folder / "pairs.txt"


def test_evaluate_pairs_cli_on_rendered_pairs(tmp_path, shared_weights, capsys):
    """Rendered views 0.3 m and ~6 degrees apart with their true relative pose: with
    trained SuperPoint and NN matching the protocol must find the poses (high AUC)."""
    from spsg_ros.cli.main import main

    pairs = _render_pairs(tmp_path / "imgs", count=3)
    out = tmp_path / "res.json"
    code = main(
        [
            "evaluate-pairs",
            str(pairs),
            "--images",
            str(tmp_path / "imgs"),
            "--resize",
            "320",
            "240",
            "--matcher",
            "nn",
            "--superpoint-weights",
            str(shared_weights["superpoint"]),
            "--superglue-weights",
            str(shared_weights["superglue"]),
            "--max-keypoints",
            "512",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "recall.png"),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "AUC@5" in printed and "Prec" in printed
    data = json.loads(out.read_text())
    s = data["summary"]
    assert s["pairs"] == 3 and len(data["per_pair"]) == 3
    assert s["auc@20"] > 70.0, s
    assert s["precision"] > 80.0 and s["mean_matches"] > 50
    assert 0 < s["matching_score"] <= 100
    assert (tmp_path / "recall.png").stat().st_size > 1000
    # a wrong ground truth (identity pose) must ruin precision and AUC
    lines = pairs.read_text().splitlines()
    wrong = [" ".join(line.split()[:22] + [f"{v:g}" for v in np.eye(4).ravel()]) for line in lines]
    wrong_pairs = tmp_path / "imgs" / "wrong.txt"
    wrong_pairs.write_text("\n".join(wrong) + "\n")
    code = main(
        [
            "evaluate-pairs",
            str(wrong_pairs),
            "--images",
            str(tmp_path / "imgs"),
            "--resize",
            "320",
            "240",
            "--matcher",
            "nn",
            "--superpoint-weights",
            str(shared_weights["superpoint"]),
            "--superglue-weights",
            str(shared_weights["superglue"]),
            "--max-keypoints",
            "512",
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    bad = json.loads(out.read_text())["summary"]
    assert bad["auc@20"] < 5.0 and bad["precision"] < s["precision"]


def test_evaluate_pairs_cli_errors(tmp_path, generated_weights, capsys):
    from spsg_ros.cli.main import main

    T = np.eye(4)
    T[0, 3] = 0.1
    (tmp_path / "pairs.txt").write_text(_pair_line("missing0.png", "missing1.png", T) + "\n")
    code = main(
        [
            "evaluate-pairs",
            str(tmp_path / "pairs.txt"),
            "--images",
            str(tmp_path),
            "--matcher",
            "nn",
            "--superpoint-weights",
            str(generated_weights["superpoint"]),
            "--superglue-weights",
            str(generated_weights["superglue"]),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "2 image(s) of the pairs file missing" in capsys.readouterr().err
    (tmp_path / "missing0.png").write_bytes(b"broken")
    (tmp_path / "missing1.png").write_bytes(b"broken")
    code = main(
        [
            "evaluate-pairs",
            str(tmp_path / "pairs.txt"),
            "--images",
            str(tmp_path),
            "--matcher",
            "nn",
            "--superpoint-weights",
            str(generated_weights["superpoint"]),
            "--superglue-weights",
            str(generated_weights["superglue"]),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "pair on line 1" in capsys.readouterr().err
