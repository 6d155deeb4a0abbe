"""HPatches-protocol evaluation: metric functions on point sets with known answers,
HPatches-layout reading (bad files flagged), and making a set of random warps."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from spsg_ros.evaluation import homography as hp
from spsg_ros.evaluation import homography_set as hs
from spsg_ros.features.types import Features


def _grid(n: int = 10, spacing: float = 25.0) -> np.ndarray:
    """Points far apart (no two within the 3 px correspondence distance), not on a line."""
    return np.array([[20.0 + spacing * (i % 4), 30.0 + spacing * (i // 4)] for i in range(n)])


def test_repeatability_of_identical_points_is_one_with_zero_error():
    points = _grid()
    rep, mle, repeated = hp.repeatability(points, points.copy())
    assert (rep, mle, repeated) == (1.0, 0.0, 20)


def test_repeatability_of_shifted_points_counts_those_within_3px():
    points = _grid()
    shifted = points.copy()
    shifted[:5, 0] += 2.0  # within 3 px: repeated, 2 px error
    shifted[5:, 0] += 10.0  # beyond: not repeated
    rep, mle, repeated = hp.repeatability(points, shifted)
    assert rep == pytest.approx(0.5)
    assert mle == pytest.approx(2.0)
    assert repeated == 10
    # no keypoint in one image: repeatability 0, no localisation error
    assert hp.repeatability(points, np.zeros((0, 2))) == (0.0, None, 0)


def test_corner_error_of_a_known_homography():
    shift = np.array([[1.0, 0, 1.0], [0, 1.0, 2.0], [0, 0, 1.0]])
    assert hp.corner_error(shift, np.eye(3), (320, 240)) == pytest.approx(math.sqrt(5))
    assert hp.corner_error(np.eye(3), np.eye(3), (320, 240)) == 0.0
    assert hp.corner_error(None, np.eye(3), (320, 240)) == math.inf
    # a 2x zoom about the origin moves the corners by their own distance to (0, 0)
    zoom = np.diag([2.0, 2.0, 1.0])
    corners = np.array([[0, 0], [9, 0], [9, 4], [0, 4]], float)
    expected = np.mean(np.linalg.norm(corners, axis=1))
    assert hp.corner_error(zoom, np.eye(3), (10, 5)) == pytest.approx(expected)


def test_average_precision():
    assert hp.average_precision([1, 1, 0, 0], [4, 3, 2, 1]) == 1.0  # perfect ranking
    assert hp.average_precision([0, 0], [2, 1]) == 0.0  # no positive
    # ranks 1 and 3 correct: (1/2) * 1 + (1/2) * (2/3)
    assert hp.average_precision([1, 0, 1], [3, 2, 1]) == pytest.approx(5 / 6)
    # a tie between a correct and a wrong match counts as one threshold: precision 1/2
    assert hp.average_precision([1, 0], [1, 1]) == pytest.approx(0.5)


def test_estimated_homography_of_exact_matches_has_no_corner_error():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 300, (50, 2))
    H = np.array([[1.1, 0.05, 4.0], [-0.03, 0.95, -7.0], [1e-4, -2e-4, 1.0]])
    estimate = hp.estimate_homography(points, hp.warp_points(points, H))
    assert hp.corner_error(estimate, H, (320, 240)) < 1e-3  # LM refinement, not exact
    assert hp.estimate_homography(points[:3], points[:3]) is None  # under 4 matches


def test_resized_homography_agrees_with_resizing_each_image():
    H = np.array([[1.2, 0.1, 15.0], [-0.05, 0.9, 8.0], [2e-4, 1e-4, 1.0]])
    scales1, scales_k = (2.0, 2.0), (640 / 320, 480 / 200)
    Hr = hp.resized_homography(H, scales1, scales_k)
    points = np.array([[10.0, 20.0], [300.0, 200.0], [600.0, 400.0]])
    in_resized_1 = hp.warp_points(points, hp.resize_matrix(scales1))
    expected = hp.warp_points(hp.warp_points(points, H), hp.resize_matrix(scales_k))
    np.testing.assert_allclose(hp.warp_points(in_resized_1, Hr), expected, atol=1e-9)
    # pixel centres: pixel 0 of a 2x downscale samples between original pixels 0 and 1
    np.testing.assert_allclose(hp.warp_points([[0.5, 0.5]], hp.resize_matrix((2, 2))), [[0, 0]])
    np.testing.assert_allclose(hp.resized_homography(np.eye(3), (2, 2), (2, 2)), np.eye(3))


def test_shared_view_keeps_keypoints_seen_by_both_images():
    shift = np.array([[1.0, 0, 50.0], [0, 1.0, 0], [0, 0, 1.0]])  # image k = image 1 moved right
    points = np.array([[10.0, 10.0], [260.0, 10.0], [280.0, 50.0]])
    keep1, keep_k = hp.shared_view(points, points, shift, (320, 240), (320, 240))
    assert keep1.tolist() == [0, 1]  # 280 + 50 leaves image k
    assert keep_k.tolist() == [1, 2]  # 10 - 50 leaves image 1


def _features(points: np.ndarray, descriptors: np.ndarray, size=(320, 240)) -> Features:
    return Features(
        points.astype(np.float32),
        np.ones(len(points), np.float32),
        descriptors.astype(np.float32),
        size,
    )


def test_evaluate_pair_of_identical_features_is_perfect():
    rng = np.random.default_rng(1)
    points = _grid(12)
    desc = rng.normal(size=(256, 12))
    desc /= np.linalg.norm(desc, axis=0)
    f = _features(points, desc)
    figures = hp.evaluate_pair(
        f,
        f,
        np.eye(3),
        {"nn": lambda a, b: hp.mutual_nearest_neighbours(a.descriptors, b.descriptors)},
        sequence="v_test",
        index=2,
    )
    assert (figures.repeatability, figures.mle, figures.nn_ap) == (1.0, 0.0, 1.0)
    nn = figures.matchers["nn"]
    assert (nn.matches, nn.correct, nn.matching_score) == (12, 12, 1.0)
    assert nn.corner_error < 1e-6
    assert figures.split == "v"
    # shuffled descriptors: nearest neighbours are wrong, the detector figures are not
    shuffled = _features(points, desc[:, ::-1])
    figures = hp.evaluate_pair(
        f,
        shuffled,
        np.eye(3),
        {"nn": lambda a, b: hp.mutual_nearest_neighbours(a.descriptors, b.descriptors)},
    )
    assert figures.repeatability == 1.0
    assert figures.nn_ap == 0.0
    assert figures.matchers["nn"].correct == 0
    assert figures.matchers["nn"].matching_score == 0.0


def test_summary_splits_and_correctness():
    def pair(split, error, rep):
        return hp.PairFigures(
            f"{split}_x",
            2,
            split,
            (10, 10),
            (10, 10),
            rep,
            1.0,
            5,
            0.5,
            {"nn": hp.MatcherFigures(5, 4, 0.4, error)},
        )

    pairs = [pair("i", 0.5, 1.0), pair("i", 4.0, 0.5), pair("v", math.inf, 0.0)]
    summary = hp.summarise(pairs, ["nn"])
    assert summary["i"]["pairs"] == 2 and summary["v"]["pairs"] == 1
    assert summary["all"]["repeatability"] == pytest.approx(0.5)
    assert summary["i"]["nn"]["homography_correctness"]["1"] == 0.5
    assert summary["i"]["nn"]["homography_correctness"]["5"] == 1.0
    assert summary["v"]["nn"]["homography_correctness"]["10"] == 0.0  # no estimate: wrong
    table = hp.format_table([{"name": "m", "matchers": ["nn"], "summary": summary}])
    assert "H@1" in table and len(table.splitlines()) == 2 + 3


def test_read_homography_flags_bad_files(tmp_path):
    path = tmp_path / "H_1_2"
    path.write_text("1 0 0\n0 1 0\n0 0 1\n")
    np.testing.assert_array_equal(hp.read_homography(path), np.eye(3))
    for text, reason in (
        ("garbage here", "not 9 numbers"),
        ("1 0 0\n0 1 0\n0 0\n", "expected 9 finite numbers"),
        ("1 0 0\n0 1 0\n0 0 nan\n", "expected 9 finite numbers"),
        ("1 2 0\n2 4 0\n0 0 1\n", "singular"),
    ):
        path.write_text(text)
        with pytest.raises(hp.SequenceProblem, match=reason):
            hp.read_homography(path)
    with pytest.raises(hp.SequenceProblem, match="H_1_3 missing"):
        hp.read_homography(tmp_path / "H_1_3")


def test_find_sequences(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hp.find_sequences(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"no HPatches sequences"):
        hp.find_sequences(tmp_path)
    release = tmp_path / "hpatches-sequences-release"
    for name in ("v_b", "i_a", "other"):
        (release / name).mkdir(parents=True)
    assert [p.name for p in hp.find_sequences(tmp_path)] == ["i_a", "v_b"]


def _source_image(path, seed=0, size=(200, 150)):
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(
        rng.uniform(0, 255, (size[1], size[0], 3)).astype(np.uint8), (5, 5), 0
    )
    cv2.imwrite(str(path), image)
    return path


def test_make_homography_set_layout_and_determinism(tmp_path):
    sources = [_source_image(tmp_path / f"img {n}.png", n) for n in range(3)]
    written, skipped = hs.make_homography_set(sources, tmp_path / "a", seed=3, progress=False)
    assert [p.name for p in written] == ["i_img_0", "v_img_1", "i_img_2"] and not skipped
    again, _ = hs.make_homography_set(sources, tmp_path / "b", seed=3, progress=False)
    other, _ = hs.make_homography_set(sources, tmp_path / "c", seed=4, progress=False)
    for k in range(2, 7):
        assert (written[1] / f"{k}.ppm").read_bytes() == (again[1] / f"{k}.ppm").read_bytes()
        H = hp.read_homography(written[1] / f"H_1_{k}")
        assert not np.allclose(H, np.eye(3))
        assert hs.overlap_share(H, 200, 150) >= hs.MIN_OVERLAP
        np.testing.assert_array_equal(hp.read_homography(written[0] / f"H_1_{k}"), np.eye(3))
    assert (written[1] / "6.ppm").read_bytes() != (other[1] / "6.ppm").read_bytes()
    # image 1 is the source itself
    np.testing.assert_array_equal(
        cv2.imread(str(written[0] / "1.ppm")), cv2.imread(str(sources[0]))
    )
    with pytest.raises(FileExistsError, match="--overwrite"):
        hs.make_homography_set(sources, tmp_path / "a", seed=3, progress=False)


def test_viewpoint_warp_follows_its_homography(tmp_path):
    """Image k is image 1 seen through H_1_k: warping image 1 back matches it."""
    source = _source_image(tmp_path / "s.png", 5, (240, 180))
    (folder,), _ = hs.make_homography_set([source], tmp_path / "set", split="v", progress=False)
    image1 = cv2.imread(str(folder / "1.ppm"), cv2.IMREAD_GRAYSCALE).astype(float)
    imagek = cv2.imread(str(folder / "2.ppm"), cv2.IMREAD_GRAYSCALE).astype(float)
    H = hp.read_homography(folder / "H_1_2")
    expected = cv2.warpPerspective(image1, H, (240, 180))
    valid = cv2.warpPerspective(np.ones_like(image1), H, (240, 180)) > 0.999
    # mild photometric change only: strongly correlated where image 1 is seen
    correlation = np.corrcoef(expected[valid], imagek[valid])[0, 1]
    assert correlation > 0.9
    shifted = np.roll(expected, 7, axis=1)
    assert np.corrcoef(shifted[valid], imagek[valid])[0, 1] < correlation - 0.2


def test_make_homography_set_identity_and_unreadable(tmp_path):
    good = _source_image(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:200])  # cut short
    written, skipped = hs.make_homography_set(
        [good, bad], tmp_path / "set", identity=True, progress=False
    )
    assert len(written) == 1 and skipped[0][0] == bad and "truncated PNG" in skipped[0][1]
    first = (written[0] / "1.ppm").read_bytes()
    assert all((written[0] / f"{k}.ppm").read_bytes() == first for k in range(2, 7))
    with pytest.raises(ValueError, match="split must be one of"):
        hs.kinds_for("x", 2)
