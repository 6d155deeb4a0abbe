"""Bag writers: results bag read back with rosbags (every message deserialised) and the
dataset -> bag converter read back by the bag reader."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rosbags")

from rosbags.highlevel import AnyReader  # noqa: E402

from spsg_ros.bagio.convert import sequence_to_bag  # noqa: E402
from spsg_ros.bagio.typestore import get_spsg_typestore  # noqa: E402
from spsg_ros.bagio.writer import RESULT_TOPICS, BagWriteError, ResultsBagWriter  # noqa: E402
from spsg_ros.messages.topics import GROUND_TRUTH_TOPICS, TF_STATIC_TOPIC, output_topics  # noqa: E402
from spsg_ros.datasets import open_source  # noqa: E402
from spsg_ros.features.types import Features  # noqa: E402
from spsg_ros.frontend.types import FrameMetrics, FrameResult, RelativePose  # noqa: E402
from spsg_ros.matching.types import Matches  # noqa: E402
from spsg_ros.messages.conversions import features_from_msg, image_msg_to_array  # noqa: E402

from test_datasets_readers import write_tartanair  # noqa: E402


def _result(stamp, ref_stamp, n=20, seed=0, stereo=False):
    rng = np.random.default_rng(seed)
    desc = rng.normal(size=(256, n)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=0)
    feats = Features(
        rng.uniform(0, 150, (n, 2)).astype(np.float32),
        rng.random(n).astype(np.float32),
        desc,
        (160, 120),
    )
    matches = None
    pose = RelativePose(status="no reference frame")
    if ref_stamp is not None:
        m0 = np.full(n, -1)
        m0[:10] = np.arange(10)[::-1]
        matches = Matches(
            m0,
            np.full(n, -1),
            np.where(m0 > -1, 0.9, 0).astype(np.float32),
            np.zeros(n, np.float32),
        )
        pose = RelativePose(
            valid=True,
            status="ok",
            rotation=np.eye(3),
            translation=np.array([0, 0, -1.0]),
            num_matches=10,
            num_inliers=8,
            inlier_mask=np.arange(10) < 8,
        )
    result = FrameResult(
        stamp_ns=stamp,
        frame_id="camera_left",
        image_size=(160, 120),
        features=feats,
        ref_stamp_ns=ref_stamp,
        ref_frame_id="camera_left" if ref_stamp is not None else None,
        matches=matches,
        pose=pose,
        metrics=FrameMetrics(
            num_kp=n,
            num_matches=10 if matches else 0,
            match_prec=0.5,
            outlier_prec=0.1,
            num_inliers=8,
        ),
        is_keyframe=True,
        timings_ms={"superpoint": 3.0, "match": 1.0, "total": 5.0},
    )
    if stereo:
        result.right_features = feats
        result.stereo_matches = Matches(
            np.arange(n), np.arange(n), np.ones(n, np.float32), np.ones(n, np.float32)
        )
    return result


def test_results_bag_roundtrip(tmp_path):
    path = tmp_path / "results.mcap"
    picture = np.zeros((60, 170, 3), np.uint8)
    picture[:, :, 2] = 200
    with ResultsBagWriter(path, backend_name="torch", path_every=2) as writer:
        for i in range(3):
            T = np.eye(4)
            T[2, 3] = 0.1 * i
            writer.write_frame(
                _result(1_000 + i, None if i == 0 else 1_000 + i - 1, seed=i, stereo=True),
                T_world_cur=T,
                matches_image=picture,
                gt_pose=T,
                latency_ms=5.0,
                right_frame_id="camera_right",
            )
    ts = get_spsg_typestore()
    seen: dict[str, list] = {}
    with AnyReader([path], default_typestore=ts) as reader:
        assert reader.message_count > 0
        types = {conn.topic: conn.msgtype for conn in reader.connections}
        for conn, t, raw in reader.messages():
            seen.setdefault(conn.topic, []).append(
                reader.deserialize(raw, conn.msgtype)
            )  # every message
    assert len(seen[RESULT_TOPICS["keypoints"]]) == 3 and len(seen[RESULT_TOPICS["matches"]]) == 2
    assert (
        len(seen[RESULT_TOPICS["frontend_status"]]) == 3
        and len(seen[RESULT_TOPICS["relative_pose"]]) == 3
    )
    assert (
        len(seen[RESULT_TOPICS["right/keypoints"]]) == 3
        and len(seen[RESULT_TOPICS["stereo_matches"]]) == 3
    )
    assert (
        len(seen[RESULT_TOPICS["matches_image"]]) == 3
        and len(seen[RESULT_TOPICS["odometry"]]) == 3
    )
    # the node's stereo topic set, under /frontend, with the table's types; plus ground truth
    assert {t: types[t] for t in types if t.startswith("/frontend/")} == {
        topic.bag_topic: topic.type_name for topic in output_topics("stereo")
    }
    assert set(types) - set(RESULT_TOPICS.values()) == set(GROUND_TRUTH_TOPICS.values()) | {
        TF_STATIC_TOPIC
    }
    # named as ros2 bag record names it, with metadata.yaml
    assert sorted(p.name for p in path.iterdir()) == ["metadata.yaml", "results.mcap_0.mcap"]
    odometry = seen[RESULT_TOPICS["odometry"]][2]
    assert odometry.header.frame_id == "odom" and odometry.child_frame_id == "camera_left"
    assert odometry.pose.pose.position.z == pytest.approx(0.2)
    assert seen[GROUND_TRUTH_TOPICS["pose"]][0].__msgtype__ == "geometry_msgs/msg/PoseStamped"
    # the path every 2 frames and once more at the end, with all poses so far
    paths = seen[RESULT_TOPICS["trajectory"]]
    assert [len(p.poses) for p in paths] == [2, 3]
    assert paths[-1].poses[2].pose.position.z == pytest.approx(0.2)
    assert [len(p.poses) for p in seen[GROUND_TRUTH_TOPICS["path"]]] == [2, 3]
    kp = features_from_msg(seen[RESULT_TOPICS["keypoints"]][1])
    np.testing.assert_allclose(
        kp.descriptors, _result(1_001, 1_000, seed=1).features.descriptors, atol=1e-6
    )
    status = seen[RESULT_TOPICS["frontend_status"]][2]
    assert (
        status.backend == "torch"
        and status.num_inliers == 8
        and list(status.stage_names)[:2] == ["superpoint", "match"]
    )
    rel = seen[RESULT_TOPICS["relative_pose"]][1]
    assert rel.valid and rel.transform.translation.z == pytest.approx(-1.0)
    image, encoding = image_msg_to_array(seen[RESULT_TOPICS["matches_image"]][0])
    assert encoding == "bgr8" and image.shape == (60, 170, 3) and image[0, 0, 2] == 200
    matches = seen[RESULT_TOPICS["matches"]][0]
    assert (
        matches.kind == 0
        and len(matches.current_indices) == 10
        and list(matches.inliers).count(True) == 8
    )
    # the bag is there: a second writer refuses to overwrite it
    with pytest.raises(BagWriteError, match="already exists"):
        ResultsBagWriter(path)
    with pytest.raises(BagWriteError, match="does not exist"):
        ResultsBagWriter(tmp_path / "no" / "such" / "bag")


def test_sequence_to_bag_and_back(tmp_path):
    root = tmp_path / "P000"
    write_tartanair(root, n=4, stereo=True)
    (root / "image_left" / "000002_left.png").write_bytes(b"corrupt")
    seq = open_source(root, stereo=True)
    report = sequence_to_bag(seq, tmp_path / "bag", progress=False, start_time_ns=5_000_000_000)
    assert (
        report.frames_written == 3
        and report.frames_skipped == 1
        and "000002_left.png" in report.skipped[0]
    )
    assert (
        report.topics["/camera/left/image_raw"] == 3 and report.topics["/ground_truth/pose"] == 3
    )
    assert sorted(p.name for p in (tmp_path / "bag").iterdir()) == ["bag_0.mcap", "metadata.yaml"]
    back = open_source(tmp_path / "bag", stereo=True)
    assert back.topic == "/camera/left/image_raw" and back.right_topic == "/camera/right/image_raw"
    frames = list(back)
    assert [f.stamp_ns for f in frames] == [5_000_000_000, 5_100_000_000, 5_300_000_000]
    original = list(open_source(root, stereo=True))
    np.testing.assert_array_equal(frames[2].image, original[3].image)
    np.testing.assert_array_equal(frames[2].right_image, original[3].right_image)
    np.testing.assert_allclose(frames[0].camera_info.K, original[0].camera_info.K)
    assert frames[0].camera_info.baseline == pytest.approx(0.25)  # right P carries -fx * baseline
    np.testing.assert_allclose(frames[2].gt_pose, original[3].gt_pose, atol=1e-9)


def test_to_bag_cli_asl_and_tum(tmp_path, capsys):
    from spsg_ros.cli.main import main
    from test_datasets_readers import write_asl

    write_asl(tmp_path / "MH", n=3)
    assert main(["to-bag", str(tmp_path / "MH"), str(tmp_path / "mh_bag"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 3 frames" in printed and "/camera/image_raw: 3 messages" in printed
    back = list(open_source(tmp_path / "mh_bag"))
    assert len(back) == 3 and back[0].camera_info.D.size == 5 and back[2].gt_pose is not None
    original = list(open_source(tmp_path / "MH"))
    np.testing.assert_allclose(back[2].gt_pose, original[2].gt_pose, atol=1e-9)
    # the output exists now: a clear error, exit code 2
    assert main(["to-bag", str(tmp_path / "MH"), str(tmp_path / "mh_bag"), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (
        main(["to-bag", str(tmp_path / "nowhere"), str(tmp_path / "x_bag"), "--no-progress"]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
