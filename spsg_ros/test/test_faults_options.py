"""Options that make no sense are argparse errors naming the option and its range; unwritable
outputs are messages, not tracebacks, found before any work; datasets without absolute
stamps start at a base time that is not zero."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from spsg_ros.cli.main import build_parser, main
from spsg_ros.config import ConfigError
from spsg_ros.datasets import DatasetError, open_source
from spsg_ros.datasets.base import DEFAULT_BASE_TIME_NS
from spsg_ros.frontend.config import check_parameters, load_config

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_permissions = pytest.mark.skipif(
    IS_ROOT, reason="root ignores folder permissions: a read-only folder is writable"
)


def _argparse_error(argv: list[str], capsys) -> str:
    """The stderr of an argparse rejection (exit code 2)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def _images(tmp_path: Path, size: int = 96) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), (rng.random((size, size)) * 255).astype(np.uint8))
        paths.append(str(tmp_path / name))
    return paths[0], paths[1]


def _tartanair(root: Path, n: int = 3) -> list[np.ndarray]:
    """A small TartanAir tree; returns the optical poses the reader should give."""
    (root / "image_left").mkdir(parents=True)
    rng = np.random.default_rng(1)
    lines = []
    for i in range(n):
        image = (rng.random((64, 80)) * 255).astype(np.uint8)
        cv2.imwrite(str(root / "image_left" / f"{i:06d}_left.png"), image)
        lines.append(f"{0.5 * i} 0 0 0 0 0 1")
    (root / "pose_left.txt").write_text("\n".join(lines) + "\n")
    return [pose for pose in (f.gt_pose for f in open_source(root))]


# ------------------------------------------------------------------ network options (schema)

NETWORK_CASES = [
    # (option values, parameter, the words of the message after "argument --option: ")
    (["--max-keypoints", "-3"], "max_keypoints", "-3 is outside the range [-1, 100000]"),
    (
        ["--max-keypoints", "0"],
        "max_keypoints",
        "0 is not a valid value of parameter max_keypoints",
    ),
    (["--nms-radius", "-1"], "nms_radius", "-1 is outside the range [0, 64]"),
    (["--resize", "-5"], "resize", "-5 is outside the range [-1, 16384]"),
    (["--resize", "0"], "resize", "0 is not a valid value of parameter resize"),
    (["--resize", "640", "0"], "resize", "640 0 is not a valid value of parameter resize"),
    (["--resize", "640", "480", "3"], "resize", "640 480 3 is not a valid value"),
    (
        ["--keypoint-threshold", "1.5"],
        "keypoint_threshold",
        "1.5 is outside the range [0.0, 0.999]",
    ),
    (["--keypoint-threshold", "nan"], "keypoint_threshold", "nan is outside the range"),
    (["--sinkhorn-iterations", "-1"], "sinkhorn_iterations", "-1 is outside the range [0, 1000]"),
    (["--match-threshold", "-0.1"], "match_threshold", "-0.1 is outside the range [0.0, 1.0]"),
    (["--remove-borders", "-4"], "remove_borders", "-4 is outside the range [0, 256]"),
]


@pytest.mark.parametrize("values,parameter,words", NETWORK_CASES)
def test_match_pair_network_options_out_of_range(values, parameter, words, capsys):
    err = _argparse_error(["match-pair", "a.png", "b.png", *values], capsys)
    option = values[0]
    assert f"argument {option}: {words}" in err and f"parameter {parameter}" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv,option,words",
    [
        (["replay", "src", "--out", "o", "--max-keypoints", "0"], "--max-keypoints", "0 is not"),
        (["replay", "src", "--out", "o", "--nms-radius", "65"], "--nms-radius", "[0, 64]"),
        (["evaluate-pairs", "p.txt", "--images", "i", "--resize", "-2"], "--resize", "[-1, "),
        (["evaluate-pairs", "p.txt", "--images", "i", "--nn-ratio", "0"], "--nn-ratio", "[0.01"),
        (["export", "--sinkhorn-iterations", "1001"], "--sinkhorn-iterations", "[0, 1000]"),
    ],
)
def test_other_commands_use_the_schema_ranges(argv, option, words, capsys):
    err = _argparse_error(argv, capsys)
    assert f"argument {option}: " in err and words in err and "of parameter" in err, err


def test_valid_edge_values_are_accepted():
    parser = build_parser()
    args = parser.parse_args(
        ["match-pair", "a", "b", "--max-keypoints", "-1", "--nms-radius", "0", "--resize", "-1"]
    )
    assert args.max_keypoints == -1 and args.nms_radius == 0 and args.resize == [-1]
    args = parser.parse_args(["match-pair", "a", "b", "--resize", "-1", "-1"])
    assert args.resize == [-1, -1]
    args = parser.parse_args(["match-pair", "a", "b", "--resize", "320"])
    assert args.resize == [320]


# --------------------------------------------------------------------- config files agree


@pytest.mark.parametrize(
    "values,name",
    [
        ({"resize": [-5]}, "resize"),
        ({"resize": [0]}, "resize"),
        ({"resize": [640, -1]}, "resize"),
        ({"max_keypoints": 0}, "max_keypoints"),
        ({"max_keypoints": -3}, "max_keypoints"),
        ({"nms_radius": -1}, "nms_radius"),
    ],
)
def test_node_parameters_reject_the_same_values(values, name):
    reason = check_parameters(values)
    assert reason is not None and name in reason


@pytest.mark.parametrize(
    "text,where",
    [
        ("preprocess:\n  resize: [-5]\n", "resize"),
        ("preprocess:\n  resize: [0]\n", "resize"),
        ("superpoint:\n  max_keypoints: 0\n", "max_keypoints"),
        ("/**/frontend_node:\n  ros__parameters:\n    resize: [-5]\n", "resize"),
        ("/**/frontend_node:\n  ros__parameters:\n    max_keypoints: 0\n", "max_keypoints"),
    ],
)
def test_config_files_reject_the_same_values(tmp_path, text, where):
    path = tmp_path / "frontend.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=where):
        load_config(path)


def test_nms_radius_zero_means_no_suppression():
    """0 is upstream's "no suppression", not nonsense: every local score stays."""
    from spsg_ros.features.superpoint_post import simple_nms

    scores = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    np.testing.assert_array_equal(simple_nms(scores, 0), scores)
    assert check_parameters({"nms_radius": 0}) is None


# ---------------------------------------------------------------- source and replay options

SOURCE_CASES = [
    (["--max-frames", "0"], "0 is outside the range -1 or >= 1"),
    (["--max-frames", "-3"], "-3 is outside the range -1 or >= 1"),
    (["--step", "0"], "0 is outside the range >= 1"),
    (["--start", "-1"], "-1 is outside the range >= 0"),
    (["--duration", "0"], "0 is outside the range > 0"),
    (["--rate", "0"], "0 is outside the range (0, "),
    (["--rate", "inf"], "inf is outside the range (0, "),
    (["--base-time", "0"], "0 is outside the range (0, 2147483647]"),
    (["--base-time", "-5"], "-5 is outside the range (0, "),
]


@pytest.mark.parametrize("command", ["replay", "to-bag"])
@pytest.mark.parametrize("values,words", SOURCE_CASES)
def test_source_options_out_of_range(command, values, words, capsys):
    argv = [command, "src", "out"] if command == "to-bag" else [command, "src", "--out", "o"]
    err = _argparse_error(argv + values, capsys)
    assert f"argument {values[0]}: {words}" in err, err


@pytest.mark.parametrize(
    "values,words",
    [
        (["--viz-every", "-1"], "-1 is outside the range >= 0"),
        (["--viz-scale", "0"], "0 is outside the range (0, 4]"),
        (["--viz-scale", "5"], "5 is outside the range (0, 4]"),
        (["--path-every", "0"], "0 is outside the range >= 1"),
    ],
)
def test_replay_options_out_of_range(values, words, capsys):
    err = _argparse_error(["replay", "src", "--out", "o", *values], capsys)
    assert f"argument {values[0]}: {words}" in err, err


def test_source_edge_values_are_accepted():
    args = build_parser().parse_args(
        ["replay", "s", "--out", "o", "--max-frames", "-1", "--viz-every", "0", "--base-time", "2"]
    )
    from spsg_ros.cli.source_args import source_options

    options = source_options(args)
    assert options["max_frames"] == -1 and options["base_time_ns"] == 2_000_000_000
    assert (
        source_options(build_parser().parse_args(["replay", "s", "--out", "o"]))["base_time_ns"]
        is None
    )


@pytest.mark.parametrize(
    "values,words",
    [
        (["--num-slots", "0"], "argument --num-slots: 0 is outside the range >= 1"),
        (
            ["--threads", "300"],
            "argument --num-threads/--threads: 300 is outside the range [0, 256] of parameter "
            "num_threads",
        ),
    ],
)
def test_runtime_options_out_of_range(values, words, capsys):
    assert words in _argparse_error(["match-pair", "a", "b", *values], capsys)


# ----------------------------------------------------------------------- match-pair outputs


def _match_pair_error(argv: list[str], capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "viz,words",
    [
        (".", "is a folder"),
        ("m.foo", "unknown image type '.foo'"),
        ("m", "unknown image type '(no extension)'"),
    ],
)
def test_match_pair_viz_is_checked_first(tmp_path, capsys, viz, words):
    a, b = _images(tmp_path)
    # missing weights: the output check comes first, before any network is loaded
    argv = ["match-pair", a, b, "--superpoint-weights", str(tmp_path / "none.pth")]
    err = _match_pair_error(argv + ["--viz", str(tmp_path / viz)], capsys)
    assert "--viz" in err and words in err and "weight" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_match_pair_out_under_a_file_or_a_folder(tmp_path, capsys):
    a, b = _images(tmp_path)
    argv = ["match-pair", a, b, "--superpoint-weights", str(tmp_path / "none.pth"), "--out"]
    err = _match_pair_error(argv + [str(tmp_path / "a.png" / "m.npz")], capsys)
    assert f"--out {tmp_path / 'a.png' / 'm.npz'}" in err and "is not a folder" in err
    err = _match_pair_error(argv + [str(tmp_path)], capsys)
    assert "--out" in err and "is a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


@needs_permissions
@pytest.mark.parametrize("option", ["--out", "--viz"])
def test_match_pair_read_only_folder(tmp_path, capsys, option):
    a, b = _images(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        target = locked / ("m.npz" if option == "--out" else "m.png")
        err = _match_pair_error(["match-pair", a, b, option, str(target)], capsys)
        assert f"{option} {target}" in err and "is not writable" in err
        assert not any(locked.iterdir())
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("option", ["--out", "--viz"])
def test_match_pair_unwritable_folder_message(tmp_path, capsys, monkeypatch, option):
    """The read-only case as root too: the permission check itself answers no."""
    a, b = _images(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode)
    )
    target = locked / "sub" / ("m.npz" if option == "--out" else "m.png")
    err = _match_pair_error(["match-pair", a, b, option, str(target)], capsys)
    assert f"{option} {target}: folder {locked} is not writable" in err
    assert not any(locked.iterdir())


def test_match_pair_too_small_resize(tmp_path, capsys):
    a, b = _images(tmp_path)
    err = _match_pair_error(
        ["match-pair", a, b, "--resize", "8", "--superpoint-weights", str(tmp_path / "x.pth")],
        capsys,
    )
    assert "8x8 after --resize 8" in err and "at least 16 px a side" in err


def test_match_pair_writes_exactly_the_given_name(tmp_path, capsys, generated_weights):
    a, b = _images(tmp_path)
    out = tmp_path / "afile"
    argv_without_out = [
        "match-pair",
        a,
        b,
        "--resize",
        "-1",
        "--max-keypoints",
        "32",
        "--sinkhorn-iterations",
        "5",
        "--superpoint-weights",
        str(generated_weights["superpoint"]),
        "--superglue-weights",
        str(generated_weights["superglue"]),
    ]
    code = main(argv_without_out + ["--out", str(out)])
    assert code == 0 and f"wrote {out}\n" in capsys.readouterr().out
    assert out.is_file() and not (tmp_path / "afile.npz").exists()
    assert "matches0" in np.load(out).files
    # a name the file system refuses is a message too (before or after the networks ran)
    code = main(argv_without_out + ["--out", str(tmp_path / ("x" * 300 + ".npz"))])
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and "cannot write" in err and "Traceback" not in err


# --------------------------------------------------------------------------------- export


def test_export_rejects_bad_ks_before_writing(tmp_path, capsys):
    out = tmp_path / "models"
    err = _argparse_error(["export", "--out", str(out), "--ks", "512", "0"], capsys)
    assert "argument --ks: 0 is outside the range >= 1" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "values,words",
    [
        (["--atc-k-gears", "0"], "argument --atc-k-gears: 0 is outside the range >= 1"),
        (["--opset", "5"], "argument --opset: 5 is outside the range >= 9"),
        (["--descriptor-dim", "0"], "argument --descriptor-dim: 0 is outside the range >= 1"),
    ],
)
def test_export_argument_ranges(tmp_path, capsys, values, words):
    err = _argparse_error(["export", "--out", str(tmp_path / "m"), *values], capsys)
    assert words in err and not (tmp_path / "m").exists()


def test_export_checks_everything_before_the_first_model(tmp_path, capsys, generated_weights):
    pytest.importorskip("onnx")
    weights = [
        "--superpoint-weights",
        str(generated_weights["superpoint"]),
        "--superglue-weights",
        str(generated_weights["superglue"]),
    ]
    out = tmp_path / "models"
    cases = [
        # SuperPoint is fine, SuperGlue's file is missing: no SuperPoint model either
        (["--superglue-weights", str(tmp_path / "none.pth")], "--superglue-weights"),
        # the SuperPoint file given as SuperGlue weights
        (["--superglue-weights", str(generated_weights["superpoint"])], "--superglue-weights"),
        (["--atc", "--soc-versions", "bogus"], "--atc: soc_version 'bogus'"),
        (["--atc", "--precision-mode", "nope"], "--atc: precision_mode 'nope'"),
        (["--atc", "--sizes", "100x100"], "--atc: image size 100x100"),
        (["--atc", "--dynamic"], "--atc: the SuperPoint model has dynamic H, W"),
    ]
    for values, words in cases:
        code = main(["export", "--out", str(out), *weights, *values])
        err = capsys.readouterr().err
        assert code == 2 and words in err and "Traceback" not in err, (values, err)
        assert not out.exists(), values
    (tmp_path / "afile").write_text("")
    code = main(["export", "--out", str(tmp_path / "afile"), *weights])
    assert code == 2 and "is a file, expected a folder" in capsys.readouterr().err


@needs_permissions
def test_export_read_only_folder(tmp_path, capsys, generated_weights):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code = main(["export", "--out", str(locked / "models")])
        err = capsys.readouterr().err
        assert code == 2 and "--out" in err and "is not writable" in err
        assert not any(locked.iterdir())
    finally:
        locked.chmod(0o755)


# ------------------------------------------------------------------------- evaluate-pairs


def test_evaluate_pairs_outputs_and_limits(tmp_path, capsys):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("")
    err = _argparse_error(
        ["evaluate-pairs", str(pairs), "--images", str(tmp_path), "--max-pairs", "0"], capsys
    )
    assert "argument --max-pairs: 0 is outside the range >= 1" in err
    for option, name, words in (
        ("--plot", "recall.foo", "unknown plot type '.foo'"),
        ("--json", ".", "is a folder"),
    ):
        code = main(
            ["evaluate-pairs", str(pairs), "--images", str(tmp_path), option, str(tmp_path / name)]
        )
        err = capsys.readouterr().err
        assert code == 2 and f"{option} " in err and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.txt"]


# ------------------------------------------------------------------------------- base time


def test_synthesised_stamps_start_at_the_base_time(tmp_path):
    poses = _tartanair(tmp_path / "P000")
    frames = list(open_source(tmp_path / "P000"))
    assert DEFAULT_BASE_TIME_NS > 0
    assert [f.stamp_ns for f in frames] == [
        DEFAULT_BASE_TIME_NS + i * 100_000_000 for i in range(3)
    ]
    shifted = list(open_source(tmp_path / "P000", base_time_ns=7_500_000_000, rate_hz=20.0))
    assert [f.stamp_ns for f in shifted] == [7_500_000_000, 7_550_000_000, 7_600_000_000]
    # ground truth goes with the frame, whatever the base: the same poses in the same order
    for frame, pose in zip(shifted, poses):
        np.testing.assert_allclose(frame.gt_pose, pose)
    # --start is relative to the first frame, not to time 0
    assert [f.index for f in open_source(tmp_path / "P000", start=0.1)] == [0, 1]
    assert len(list(open_source(tmp_path / "P000", start=0.1))) == 2
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((32, 32), 60 * i, np.uint8))
    assert [f.stamp_ns for f in open_source(folder)][0] == DEFAULT_BASE_TIME_NS
    assert [f.stamp_ns for f in open_source(folder, base_time_ns=1)] == [1, 100_000_001]
    with pytest.raises(DatasetError, match="base time"):
        open_source(folder, base_time_ns=0)


def test_base_time_does_not_apply_to_stamped_sources(tmp_path):
    root = tmp_path / "MH" / "mav0" / "cam0"
    (root / "data").mkdir(parents=True)
    cv2.imwrite(str(root / "data" / "1403636579763555584.png"), np.zeros((32, 32), np.uint8))
    (root / "data.csv").write_text(
        "#timestamp [ns],filename\n1403636579763555584,1403636579763555584.png\n"
    )
    with pytest.raises(DatasetError, match="base_time_ns do not apply to a asl source"):
        open_source(tmp_path / "MH", base_time_ns=5_000_000_000)


def test_to_bag_base_time_and_ground_truth(tmp_path, capsys):
    pytest.importorskip("rosbags")
    poses = _tartanair(tmp_path / "P000")
    bag = tmp_path / "bag"
    argv = ["to-bag", str(tmp_path / "P000"), str(bag), "--base-time", "2.5", "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    frames = list(open_source(bag))
    assert [f.stamp_ns for f in frames] == [2_500_000_000, 2_600_000_000, 2_700_000_000]
    # the ground truth written at the image stamps is found again at those stamps
    for frame, pose in zip(frames, poses):
        np.testing.assert_allclose(frame.gt_pose, pose, atol=1e-9)
