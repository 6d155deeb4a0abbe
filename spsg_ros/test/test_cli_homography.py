"""`spsg-ros make-homography-set` and `spsg-ros evaluate-homography` end to end on sets
made from the shared frames, with the shared SuperPoint weights (small and fast:
160x120 images, at most 300 keypoints, two sequences)."""

from __future__ import annotations

import json
import shutil

import pytest

from spsg_ros.cli.main import main

SMALL = ["--resize", "160", "120", "--max-keypoints", "300", "--no-progress"]


@pytest.fixture(scope="module")
def made_set(tmp_path_factory, freiburg_frames):
    """One illumination and one viewpoint sequence from two shared frames."""
    out = tmp_path_factory.mktemp("homography_set")
    code = main(["make-homography-set", *map(str, freiburg_frames[:2]), str(out), "--no-progress"])
    assert code == 0
    return out


def _evaluate(root, out, weights, *extra):
    return main(
        [
            "evaluate-homography",
            str(root),
            "--superpoint-weights",
            str(weights),
            "--out",
            str(out),
            *SMALL,
            *extra,
        ]
    )


def test_identity_warps_give_repeatability_one_and_no_homography_error(
    tmp_path, freiburg_frames, shared_weights
):
    root = tmp_path / "identity"
    assert (
        main(
            [
                "make-homography-set",
                str(freiburg_frames[0]),
                str(root),
                "--identity",
                "--no-progress",
            ]
        )
        == 0
    )
    assert _evaluate(root, tmp_path / "out", shared_weights["superpoint"]) == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    (model,) = result["models"]
    summary = model["summary"]["all"]
    assert summary["pairs"] == 5
    assert summary["repeatability"] == 1.0
    assert summary["mle"] == 0.0
    assert summary["nn_map"] == 1.0
    assert summary["nn"]["matching_score"] == 1.0
    assert summary["nn"]["homography_correctness"]["1"] == 1.0
    assert max(p["nn"]["corner_error_px"] for p in model["pairs"]) < 1e-3


def test_evaluation_of_two_backends_on_a_made_set(tmp_path, made_set, shared_weights, capsys):
    out = tmp_path / "out"
    code = _evaluate(
        made_set,
        out,
        shared_weights["superpoint"],
        "--backend",
        "torch",
        "onnxruntime",
        "--model-cache",
        str(tmp_path / "cache"),
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "superpoint_seed_ir torch fp32" in printed
    assert "superpoint_seed_ir onnxruntime fp32" in printed
    assert (out / "homography_accuracy.png").stat().st_size > 10_000
    result = json.loads((out / "results.json").read_text())
    assert result["settings"]["resize"] == [160, 120]
    assert result["settings"]["superpoint"]["max_keypoints"] == 300
    assert result["skipped"] == []
    torch_model, ort_model = result["models"]
    assert (torch_model["backend"], ort_model["backend"]) == ("torch", "onnxruntime")
    for model in result["models"]:
        summary = model["summary"]
        assert (summary["i"]["pairs"], summary["v"]["pairs"], summary["all"]["pairs"]) == (
            5,
            5,
            10,
        )
        for split in ("i", "v", "all"):
            s = summary[split]
            for value in (
                s["repeatability"],
                s["nn_map"],
                s["nn"]["matching_score"],
                *s["nn"]["homography_correctness"].values(),
            ):
                assert 0.0 <= value <= 1.0
            assert s["repeatability"] > 0.3  # real weights find repeated corners
        assert len(model["pairs"]) == 10
    # the exported model reproduces the reference's keypoints: nearly equal figures
    for split in ("i", "v", "all"):
        a, b = torch_model["summary"][split], ort_model["summary"][split]
        assert a["repeatability"] == pytest.approx(b["repeatability"], abs=0.01)
        assert a["nn_map"] == pytest.approx(b["nn_map"], abs=0.01)
        assert a["nn"]["matching_score"] == pytest.approx(b["nn"]["matching_score"], abs=0.01)
        for e in ("1", "3", "5"):
            ha = a["nn"]["homography_correctness"][e]
            assert ha == pytest.approx(b["nn"]["homography_correctness"][e], abs=0.11)


def test_bad_files_are_flagged_and_skipped(tmp_path, made_set, shared_weights):
    root = tmp_path / "set"
    shutil.copytree(made_set, root)
    (v_seq,) = root.glob("v_*")
    (i_seq,) = root.glob("i_*")
    third = v_seq / "3.ppm"
    third.write_bytes(third.read_bytes()[:1000])  # truncated
    (v_seq / "H_1_4").write_text("this is not a homography\n")
    (v_seq / "H_1_5").write_text("1 2 0\n2 4 0\n0 0 1\n")  # not invertible
    (v_seq / "6.ppm").unlink()
    (i_seq / "1.ppm").unlink()  # no reference image: the whole sequence goes
    assert _evaluate(root, tmp_path / "out", shared_weights["superpoint"]) == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    reasons = {(s["sequence"], s["pair"]): s["reason"] for s in result["skipped"]}
    assert "no usable reference image: 1.ppm missing" in reasons[(i_seq.name, None)]
    assert "3.ppm" in reasons[(v_seq.name, "1-3")]
    assert "not 9 numbers" in reasons[(v_seq.name, "1-4")]
    assert "singular" in reasons[(v_seq.name, "1-5")]
    assert reasons[(v_seq.name, "1-6")] == "6.ppm missing"
    (model,) = result["models"]
    assert [p["pair"] for p in model["pairs"]] == ["1-2"]
    assert model["summary"]["i"]["pairs"] == 0


def test_nothing_to_evaluate_is_exit_2(tmp_path, shared_weights, capsys):
    assert _evaluate(tmp_path / "missing", tmp_path / "out", shared_weights["superpoint"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert _evaluate(tmp_path / "empty", tmp_path / "out", shared_weights["superpoint"]) == 2
    assert "no HPatches sequences" in capsys.readouterr().err
    (tmp_path / "bad" / "v_x").mkdir(parents=True)
    assert _evaluate(tmp_path / "bad", tmp_path / "out", shared_weights["superpoint"]) == 2
    assert "no pair of" in capsys.readouterr().err
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["skipped"][0]["reason"].startswith("no usable reference image")


def test_make_homography_set_errors(tmp_path, freiburg_frames, made_set, capsys):
    assert main(["make-homography-set", str(tmp_path / "none"), str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    frame = str(freiburg_frames[0])
    assert main(["make-homography-set", frame, str(tmp_path / "o"), "--no-progress"]) == 0
    assert main(["make-homography-set", frame, str(tmp_path / "o"), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (
        main(["make-homography-set", frame, str(tmp_path / "o"), "--overwrite", "--no-progress"])
        == 0
    )
