"""`spsg-ros make-synthetic` + `spsg-ros replay` end to end, and replay robustness
(bad frames, exceptions, Ctrl-C) on a few small rendered frames."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")
pytest.importorskip("matplotlib")

from spsg_ros.cli.main import main  # noqa: E402
from spsg_ros.cli.make_synthetic import make_synthetic  # noqa: E402

PLOTS = {"metrics.png", "latency.png", "trajectory.png", "errors.png"}


@pytest.fixture(scope="module")
def synthetic_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "P000"
    make_synthetic(root, frames=5, progress=False, width=320, height=240)
    return root


def _weights_args(weights: dict) -> list[str]:
    return [
        "--superpoint-weights",
        str(weights["superpoint"]),
        "--superglue-weights",
        str(weights["superglue"]),
    ]


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _read_bag(path: Path) -> dict[str, list]:
    from rosbags.highlevel import AnyReader

    from spsg_ros.bagio.typestore import get_spsg_typestore

    out: dict[str, list] = {}
    with AnyReader([path], default_typestore=get_spsg_typestore()) as reader:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    return out


def test_make_synthetic_layout(synthetic_tree):
    from spsg_ros.datasets import open_source
    from spsg_ros.datasets.synthetic import make_trajectory

    assert (
        sorted(p.name for p in (synthetic_tree / "image_left").iterdir())[0] == "000000_left.png"
    )
    assert (synthetic_tree / "image_right" / "000004_right.png").is_file()
    lines = (synthetic_tree / "pose_left.txt").read_text().splitlines()
    assert len(lines) == 5 and all(len(line.split()) == 7 for line in lines)
    seq = open_source(synthetic_tree, stereo=True)
    frames = list(seq)
    # the reader's NED -> optical conversion gives back the renderer's trajectory
    for frame, pose in zip(frames, make_trajectory(5)):
        np.testing.assert_allclose(frame.gt_pose, pose, atol=1e-7)
    assert frames[0].image.shape == (240, 320) and frames[
        0
    ].right_camera_info.baseline == pytest.approx(0.25)
    np.testing.assert_allclose(
        frames[0].camera_info.K[0], [160, 0, 160]
    )  # TartanAir K at half size
    assert (
        main(["make-synthetic", str(synthetic_tree), "--frames", "2", "--no-progress"]) == 2
    )  # not empty


def test_replay_mono_outputs(synthetic_tree, generated_weights, tmp_path):
    out = tmp_path / "out"
    code = main(
        [
            "replay",
            str(synthetic_tree),
            "--out",
            str(out),
            "--matcher",
            "nn",
            "--max-keypoints",
            "256",
            "--no-progress",
            "--path-every",
            "2",
        ]
        + _weights_args(generated_weights)
    )
    assert code == 0
    rows = _read_csv(out / "metrics.csv")
    assert (
        len(rows) == 5
        and rows[0]["ref_stamp_ns"] == ""
        and rows[1]["ref_stamp_ns"] == rows[0]["stamp_ns"]
    )
    for key in (
        "stamp_ns",
        "num_kp",
        "num_matches",
        "match_prec",
        "outlier_prec",
        "inliers",
        "ms_superpoint",
        "ms_match",
        "ms_pose",
        "rot_err_deg",
        "t_dir_err_deg",
    ):
        assert key in rows[0]
    assert all(int(r["num_kp"]) <= 256 for r in rows) and int(rows[1]["num_kp"]) > 0
    assert all(r["gt_motion_m"] != "" for r in rows[1:])  # ground truth rows for every pair
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 5 and summary["mode"] == "mono" and not summary["interrupted"]
    acc = summary["accuracy"]
    assert acc["pairs_evaluated"] == 4 and set(acc) >= {
        "auc@5",
        "auc@10",
        "auc@20",
        "rot_err_deg_count",
    }
    assert summary["latency_ms"]["superpoint"]["mean"] > 0
    assert {Path(p).name for p in summary["plots"]} == PLOTS
    for name in PLOTS:
        assert (out / "plots" / name).stat().st_size > 5000
    bag = _read_bag(out / "results")
    assert len(bag["/frontend/keypoints"]) == 5 and len(bag["/frontend/matches"]) == 4
    assert len(bag["/frontend/matches_image"]) == 5 and len(bag["/frontend/odometry"]) == 5
    assert len(bag["/ground_truth/pose"]) == 5 and len(bag["/frontend/trajectory"]) == 3
    picture = bag["/frontend/matches_image"][1]
    assert (
        picture.encoding == "bgr8" and picture.width == 320 // 2 + 10 + 320 // 2
    )  # side by side, each image drawn at scale 0.5
    # outputs exist: refused without --overwrite, replaced with it
    assert main(["replay", str(synthetic_tree), "--out", str(out), "--no-progress"]) == 2
    assert (
        main(
            [
                "replay",
                str(synthetic_tree),
                "--out",
                str(out),
                "--matcher",
                "nn",
                "--max-keypoints",
                "64",
                "--no-progress",
                "--overwrite",
                "--no-bag",
                "--max-frames",
                "2",
            ]
            + _weights_args(generated_weights)
        )
        == 0
    )
    assert len(_read_csv(out / "metrics.csv")) == 2 and not (out / "results").exists()


def test_replay_stereo_accuracy(synthetic_tree, shared_weights, tmp_path):
    """Trained SuperPoint + NN matching on the rendered stereo sequence: metric poses
    close to the ground truth."""
    out = tmp_path / "stereo"
    code = main(
        [
            "replay",
            str(synthetic_tree),
            "--out",
            str(out),
            "--stereo",
            "--matcher",
            "nn",
            "--max-keypoints",
            "512",
            "--no-progress",
        ]
        + _weights_args(shared_weights)
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    acc = summary["accuracy"]
    assert summary["mode"] == "stereo" and summary["poses_valid"] == 4
    assert acc["pairs_evaluated"] == 4 and acc["translation"].startswith("metric")
    assert acc["rot_err_deg_median"] < 1.0, acc
    assert acc["t_err_m_median"] < 0.03, acc  # steps are about 0.1 m
    assert acc["auc@20"] > 50.0
    bag = _read_bag(out / "results")
    assert len(bag["/frontend/right/keypoints"]) == 5 and len(bag["/frontend/stereo_matches"]) == 5


class _Scripted:
    """Frontend stand-in around a real one that fails on chosen calls (0-based)."""

    def __init__(self, frontend, fail_at=(), interrupt_at=None):
        self.inner, self.fail_at, self.interrupt_at = frontend, set(fail_at), interrupt_at
        self.backend = frontend.backend
        self.calls = 0

    def process(self, frame):
        index = self.calls
        self.calls += 1
        if index == self.interrupt_at:
            raise KeyboardInterrupt
        if index in self.fail_at:
            raise RuntimeError("simulated failure")
        return self.inner.process(frame)


@pytest.fixture(scope="module")
def small_frontend(generated_weights):
    from spsg_ros.frontend.pipeline import Frontend

    cfg = {
        "matcher": "nn",
        "superpoint": {"max_keypoints": 128},
        "backend": {
            "superpoint_weights": str(generated_weights["superpoint"]),
            "superglue_weights": str(generated_weights["superglue"]),
        },
    }
    with Frontend(cfg) as frontend:
        yield frontend


def test_replay_survives_bad_frames_and_exceptions(synthetic_tree, small_frontend, tmp_path):
    import shutil

    from spsg_ros.datasets import open_source
    from spsg_ros.evaluation.replay import Replay

    tree = tmp_path / "P"
    shutil.copytree(synthetic_tree, tree)
    (tree / "image_left" / "000001_left.png").write_bytes(b"\x89PNG broken")
    small_frontend.reset()
    replay = Replay(
        open_source(tree), _Scripted(small_frontend, fail_at={1}), tmp_path / "out", progress=False
    )
    summary = replay.run()
    rows = _read_csv(tmp_path / "out" / "metrics.csv")
    assert [r["ok"] for r in rows] == ["1", "0", "0", "1", "1"]
    assert "000001_left.png" in rows[1]["status"] and "corrupt" in rows[1]["status"]
    assert rows[2]["status"].startswith("replay error: RuntimeError: simulated failure")
    assert summary["frames_flagged"] == 2 and [f["index"] for f in summary["flagged"]] == [1, 2]
    # the frontend's reference stayed frame 0 across the two bad frames
    assert rows[3]["ref_stamp_ns"] == rows[0]["stamp_ns"]
    bag = _read_bag(tmp_path / "out" / "results")
    statuses = bag["/frontend/frontend_status"]
    assert (
        len(statuses) == 4 and not statuses[1].ok
    )  # frame 1 flagged in the bag; frame 2 never written


def test_replay_interrupted_leaves_valid_outputs(synthetic_tree, small_frontend, tmp_path):
    from spsg_ros.datasets import open_source
    from spsg_ros.evaluation.replay import Replay

    small_frontend.reset()
    replay = Replay(
        open_source(synthetic_tree),
        _Scripted(small_frontend, interrupt_at=3),
        tmp_path / "out",
        progress=False,
    )
    summary = replay.run()
    assert summary["interrupted"] is True and summary["frames"] == 3
    rows = _read_csv(tmp_path / "out" / "metrics.csv")
    assert len(rows) == 3
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["interrupted"] is True and saved["accuracy"]["pairs_evaluated"] == 2
    bag = _read_bag(tmp_path / "out" / "results")  # closed properly: readable
    assert len(bag["/frontend/keypoints"]) == 3 and len(bag["/frontend/trajectory"]) == 1
    assert (tmp_path / "out" / "plots" / "metrics.png").is_file()


def test_replay_source_errors(tmp_path, capsys):
    assert (
        main(["replay", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--no-progress"])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert (
        main(["replay", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--no-progress"])
        == 2
    )
    assert "cannot tell what" in capsys.readouterr().err


def test_replay_config_precedence(tmp_path):
    """Network options given on the command line override the --config file; the
    others keep the file's values (not the CLI defaults)."""
    from spsg_ros.cli.main import build_parser
    from spsg_ros.cli.replay import frontend_config

    cfg_file = tmp_path / "frontend.yaml"
    cfg_file.write_text(
        "superpoint:\n  max_keypoints: 300\n  nms_radius: 3\nmatcher: nn\npair_with: keyframe\n"
    )
    args = build_parser().parse_args(
        [
            "replay",
            "src",
            "--out",
            "o",
            "--config",
            str(cfg_file),
            "--max-keypoints",
            "200",
            "--device",
            "cpu",
            "--threads",
            "2",
        ]
    )
    cfg = frontend_config(args)
    # --threads (alias of --num-threads) sets the backend's thread count, handed on to it
    assert cfg["backend"]["num_threads"] == 2
    assert cfg["backend"]["options"] == {"num_threads": 2}
    assert cfg["superpoint"]["max_keypoints"] == 200 and cfg["superpoint"]["nms_radius"] == 3
    assert cfg["matcher"] == "nn" and cfg["pair_with"] == "keyframe"
    args = build_parser().parse_args(["replay", "src", "--out", "o", "--matcher", "superglue"])
    cfg = frontend_config(args)
    assert cfg["superpoint"]["max_keypoints"] == 1024 and cfg["matcher"] == "superglue"
    cfg_file.write_text("superpoint:\n  max_keypoint: 3\n")
    args = build_parser().parse_args(["replay", "src", "--out", "o", "--config", str(cfg_file)])
    with pytest.raises(ValueError, match="max_keypoint"):
        frontend_config(args)


def test_replay_source_failing_half_way(synthetic_tree, small_frontend, tmp_path):
    """A source that dies after two frames (e.g. a truncated bag): outputs still valid,
    error in the summary."""
    from spsg_ros.datasets import DatasetError, open_source
    from spsg_ros.evaluation.replay import Replay

    class Dying:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __len__(self):
            return len(self.inner)

        def __iter__(self):
            for frame in self.inner:
                if frame.index == 2:
                    raise DatasetError("cannot read bag x.bag: truncated")
                yield frame

    small_frontend.reset()
    summary = Replay(
        Dying(open_source(synthetic_tree)),
        small_frontend,
        tmp_path / "out",
        progress=False,
        viz_every=0,
    ).run()
    assert summary["error"] == "cannot read bag x.bag: truncated" and summary["frames"] == 2
    assert len(_read_csv(tmp_path / "out" / "metrics.csv")) == 2
    assert "/frontend/matches_image" not in _read_bag(tmp_path / "out" / "results")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["error"].startswith(
        "cannot read bag"
    )
