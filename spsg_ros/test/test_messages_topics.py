"""The outputs defined once: the topic table, the reference-image cache, flagged results."""

from __future__ import annotations

import numpy as np
import pytest

from spsg_ros.datasets.base import SequenceFrame
from spsg_ros.features.types import Features
from spsg_ros.frontend.types import CameraInfo, Frame, FrameResult
from spsg_ros.messages.conversions import MESSAGE_TYPE_NAMES
from spsg_ros.messages.references import ReferenceViews
from spsg_ros.messages.topics import (
    GROUND_TRUTH_TOPICS,
    OUTPUT_TOPICS,
    RESULTS_NAMESPACE,
    bag_topic,
    output_topics,
)

# ---------------------------------------------------------------- topic table


def test_topic_table_names_types_and_modes():
    mono = {t.name: t.type_name for t in output_topics("mono")}
    assert mono == {
        "keypoints": "spsg_ros_msgs/msg/Keypoints",
        "matches": "spsg_ros_msgs/msg/Matches",
        "relative_pose": "spsg_ros_msgs/msg/RelativePose",
        "frontend_status": "spsg_ros_msgs/msg/FrontendStatus",
        "odometry": "nav_msgs/msg/Odometry",
        "trajectory": "nav_msgs/msg/Path",
        "matches_image": "sensor_msgs/msg/Image",
    }
    stereo = {t.name: t.type_name for t in output_topics("stereo")}
    assert set(stereo) - set(mono) == {"right/keypoints", "stereo_matches"}
    assert set(mono) <= set(stereo)
    with pytest.raises(ValueError, match="mode"):
        output_topics("rgbd")


def test_topic_table_is_consistent():
    names = [t.name for t in OUTPUT_TOPICS]
    assert len(names) == len(set(names))
    for topic in OUTPUT_TOPICS:
        assert not topic.name.startswith("/")  # relative to the node namespace
        assert MESSAGE_TYPE_NAMES[topic.short_type] == topic.type_name  # the node can build it
        assert topic.bag_topic == f"{RESULTS_NAMESPACE}/{topic.name}" == bag_topic(topic.name)
        assert topic.carries
    assert bag_topic("odometry") == "/frontend/odometry"
    assert set(GROUND_TRUTH_TOPICS.values()) == {"/ground_truth/pose", "/ground_truth/path"}


# ---------------------------------------------------------------- reference images


def _result(stamp, ref=None, keyframe=True, n=3):
    kp = np.arange(2 * n, dtype=np.float32).reshape(n, 2) + stamp
    features = Features(kp, np.ones(n, np.float32), np.zeros((256, n), np.float32), (64, 48))
    return FrameResult(
        stamp_ns=stamp,
        frame_id="cam",
        image_size=(64, 48),
        features=features,
        ref_stamp_ns=ref,
        is_keyframe=keyframe,
    )


def test_reference_views_keep_the_newest_keyframe():
    views = ReferenceViews()
    image = np.zeros((48, 64), np.uint8)
    assert views.get(None) is None and views.get(1) is None
    first = _result(1)
    views.remember(first, image, "mono8")
    view = views.get(1)
    assert view.stamp_ns == 1 and view.image is image and view.encoding == "mono8"
    np.testing.assert_array_equal(view.keypoints, first.features.keypoints)
    first.features.keypoints[:] = -1  # a copy: later changes of the result do not reach it
    assert view.keypoints.min() >= 0
    # a frame matched against 1 that did not become a keyframe: 1 stays the reference
    views.remember(_result(2, ref=1, keyframe=False), image, "mono8")
    assert views.get(1) is view and views.get(2) is None
    # a flagged frame (never a keyframe) does not drop it either
    views.remember(FrameResult.flagged(Frame(image, 3), "bad"), image, "mono8")
    assert views.get(1) is view
    # a new keyframe replaces it
    views.remember(_result(4, ref=1), image, "rgb8")
    assert views.get(1) is None and views.get(4).encoding == "rgb8"
    views.clear()
    assert views.get(4) is None


# ---------------------------------------------------------------- flagged results


def test_flagged_result_of_a_frame():
    result = FrameResult.flagged(Frame(np.zeros((48, 64, 3), np.uint8), 7, "cam"), "too dark")
    assert (result.stamp_ns, result.frame_id, result.image_size) == (7, "cam", (64, 48))
    assert not result.ok and result.status == "too dark"
    assert not result.pose.valid and result.pose.status == "no pose: too dark"
    assert len(result.features.keypoints) == 0 and result.features.image_size == (64, 48)
    assert result.ref_stamp_ns is None and not result.is_keyframe


def test_flagged_result_without_an_image_uses_the_camera_info():
    info = CameraInfo(K=np.eye(3), width=640, height=480)
    frame = SequenceFrame(index=0, stamp_ns=5, image=None, camera_info=info, error="unreadable")
    result = FrameResult.flagged(frame, frame.error)
    assert (result.stamp_ns, result.frame_id, result.image_size) == (5, "camera", (640, 480))
    # anything else: stamp 0, empty frame id, size (0, 0)
    other = FrameResult.flagged("not a frame", "expected a Frame")
    assert (other.stamp_ns, other.frame_id, other.image_size) == (0, "", (0, 0))
