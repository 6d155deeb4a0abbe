"""SuperGlue edge cases, host match extraction, and the match-pair command."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spsg_ros.backends import BackendUnavailable, create_backend  # noqa: E402
from spsg_ros.cli.main import main  # noqa: E402
from spsg_ros.features.extractor import SuperPointExtractor  # noqa: E402
from spsg_ros.features.image_io import process_resize  # noqa: E402
from spsg_ros.features.types import Features  # noqa: E402
from spsg_ros.matching.superglue_matcher import SuperGlueMatcher  # noqa: E402
from spsg_ros.matching.superglue_post import matches_from_log_assignment  # noqa: E402
from spsg_ros.networks.superglue import mutual_matches  # noqa: E402


@pytest.fixture(scope="module")
def backend(generated_weights):
    return create_backend(
        "torch",
        superpoint_weights=generated_weights["superpoint"],
        superglue_weights=generated_weights["superglue"],
        superglue_config={"sinkhorn_iterations": 20},
    )


def random_features(n: int, seed: int, size=(320, 240)) -> Features:
    rng = np.random.default_rng(seed)
    desc = rng.normal(size=(256, n)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=0, keepdims=True) + 1e-12
    kp = (rng.random((n, 2)) * size).astype(np.float32)
    return Features(kp, rng.random(n).astype(np.float32), desc, size)


@pytest.mark.parametrize("n0,n1", [(0, 0), (0, 5), (7, 0)])
def test_empty_superglue_inputs(backend, n0, n1):
    matches = SuperGlueMatcher(backend)(random_features(n0, 1), random_features(n1, 2))
    assert matches.matches0.shape == (n0,) and matches.matches1.shape == (n1,)
    assert np.all(matches.matches0 == -1) and np.all(matches.matches1 == -1)
    assert np.all(matches.scores0 == 0) and np.all(matches.scores1 == 0)


def test_upstream_style_forward_on_empty_input(backend):
    data = {"keypoints0": torch.zeros(1, 0, 2), "keypoints1": torch.zeros(1, 4, 2)}
    out = backend.superglue_net(data)
    assert out["matches0"].shape == (1, 0) and torch.all(out["matches1"] == -1)


def test_host_match_extraction_equals_torch():
    rng = np.random.default_rng(0)
    for m, n in [(1, 1), (5, 9), (40, 33)]:
        la = rng.normal(size=(1, m + 1, n + 1)).astype(np.float32) * 3
        la[0, :m, :n] += np.eye(m, n, dtype=np.float32) * 6  # plenty of mutual matches
        ref = mutual_matches(torch.from_numpy(la), 0.2)
        ours = matches_from_log_assignment(la[0], 0.2)
        np.testing.assert_array_equal(ours.matches0, ref["matches0"][0].numpy())
        np.testing.assert_array_equal(ours.matches1, ref["matches1"][0].numpy())
        np.testing.assert_allclose(ours.scores0, ref["matching_scores0"][0].numpy(), rtol=1e-6)
        np.testing.assert_allclose(ours.scores1, ref["matching_scores1"][0].numpy(), rtol=1e-6)


def test_single_keypoints_match_consistently(backend):
    f = random_features(1, 3)
    matches = SuperGlueMatcher(backend, {"match_threshold": 0.0})(f, f)
    assert matches.matches0.tolist() == matches.matches1.tolist()


def test_batched_extraction_equals_single(backend, textured):
    extractor = SuperPointExtractor(backend, {"max_keypoints": 200})
    a, b = textured(120, 160, seed=5), textured(120, 160, seed=6)
    batched = extractor.extract_batch([a, b])
    for img, f in zip((a, b), batched):
        single = extractor(img)
        np.testing.assert_array_equal(single.keypoints, f.keypoints)
        np.testing.assert_allclose(single.descriptors, f.descriptors, atol=1e-5)


def test_unknown_backend_and_missing_cuda(generated_weights):
    with pytest.raises(BackendUnavailable, match="unknown backend 'nope'"):
        create_backend("nope")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="no CUDA device"):
            create_backend(
                "torch",
                superpoint_weights=generated_weights["superpoint"],
                superglue_weights=generated_weights["superglue"],
                device="cuda",
            )


@pytest.mark.parametrize(
    "resize,expected",
    [([-1], (640, 480)), ([320], (320, 240)), ([200, 100], (200, 100)), ([-1, -1], (640, 480))],
)
def test_process_resize_upstream_semantics(resize, expected):
    assert process_resize(640, 480, resize) == expected


def test_match_pair_cli_outputs(tmp_path, generated_weights, textured):
    img0, img1 = textured(200, 260, seed=8), textured(200, 260, seed=8)
    img1 = np.roll(img1, 6, axis=1)
    p0, p1 = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(p0), img0)
    cv2.imwrite(str(p1), cv2.cvtColor(img1, cv2.COLOR_GRAY2BGR))  # colour input is read as gray
    out, viz = tmp_path / "out" / "m.npz", tmp_path / "m.png"
    code = main(
        [
            "match-pair",
            str(p0),
            str(p1),
            "--resize",
            "160",
            "--max-keypoints",
            "128",
            "--superpoint-weights",
            str(generated_weights["superpoint"]),
            "--superglue-weights",
            str(generated_weights["superglue"]),
            "--sinkhorn-iterations",
            "10",
            "--out",
            str(out),
            "--viz",
            str(viz),
        ]
    )
    assert code == 0
    data = np.load(out)
    assert set(data.files) == {
        "keypoints0",
        "keypoints1",
        "scores0",
        "scores1",
        "descriptors0",
        "descriptors1",
        "matches0",
        "matches1",
        "matching_scores0",
        "matching_scores1",
    }
    n0 = data["keypoints0"].shape[0]
    assert 0 < n0 <= 128 and data["keypoints0"].shape[1] == 2
    assert data["descriptors0"].shape == (256, n0) and data["matches0"].shape == (n0,)
    assert data["keypoints0"][:, 0].max() < 160  # resized to 160 x 123
    picture = cv2.imread(str(viz))
    assert picture.shape[0] == 123 and picture.shape[1] == 160 * 2 + 10


def test_match_pair_cli_errors_are_clear(tmp_path, capsys, generated_weights):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((64, 64), np.uint8))
    code = main(["match-pair", str(img), str(tmp_path / "missing.png")])
    assert code == 2 and "missing.png does not exist" in capsys.readouterr().err
    code = main(
        ["match-pair", str(img), str(img), "--superpoint-weights", str(tmp_path / "x.pth")]
    )
    assert code == 2 and "superpoint weight file not found" in capsys.readouterr().err
    code = main(
        [
            "match-pair",
            str(img),
            str(img),
            "--superpoint-weights",
            str(generated_weights["superglue"]),
            "--superglue-weights",
            str(generated_weights["superglue"]),
        ]
    )
    assert code == 2 and "--superglue-weights" in capsys.readouterr().err


def test_torch_backend_without_superglue(generated_weights, tmp_path):
    """SuperPoint-only use (nearest-neighbour matching) needs no SuperGlue file."""
    backend = create_backend(
        "torch",
        superpoint_weights=generated_weights["superpoint"],
        superglue_weights=tmp_path / "absent.pth",
        load_superglue=False,
    )
    assert backend.superglue_net is None
    with pytest.raises(BackendUnavailable, match="without SuperGlue"):
        backend.superglue(random_features(3, 1), random_features(3, 2), 0.2)


def test_torch_fp16_is_a_cuda_option(generated_weights):
    with pytest.raises(BackendUnavailable, match="fp16 on CUDA devices only"):
        create_backend(
            "torch",
            superpoint_weights=generated_weights["superpoint"],
            superglue_weights=generated_weights["superglue"],
            fp16=True,
        )


@pytest.mark.hardware
def test_torch_fp16_on_cuda_agrees_with_fp32(generated_weights, textured):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (torch fp16 runs on CUDA only)")
    kwargs = dict(
        superpoint_weights=generated_weights["superpoint"],
        superglue_weights=generated_weights["superglue"],
        device="cuda",
    )
    fp32, fp16 = create_backend("torch", **kwargs), create_backend("torch", fp16=True, **kwargs)
    image = textured(240, 320, seed=4)
    a = SuperPointExtractor(fp32, {"max_keypoints": 256})(image)
    b = SuperPointExtractor(fp16, {"max_keypoints": 256})(image)
    common = {tuple(k) for k in a.keypoints} & {tuple(k) for k in b.keypoints}
    assert len(common) >= 0.9 * len(a)
