"""Frontend results <-> ROS 2 messages, with real message classes built by rosbags.

Every message goes through a CDR round trip in the Humble and the Jazzy type
store, with our types registered from spsg_ros_msgs/msg/*.msg.
"""

from __future__ import annotations

import array

import numpy as np
import pytest

pytest.importorskip("rosbags")

from spsg_ros.bagio.typestore import get_spsg_typestore  # noqa: E402
from spsg_ros.features.types import Features
from spsg_ros.geometry.trajectory import TrajectoryAccumulator  # noqa: E402
from spsg_ros.frontend.types import FrameMetrics, FrameResult, RelativePose  # noqa: E402
from spsg_ros.matching.types import Matches  # noqa: E402
from spsg_ros.messages import conversions as conv  # noqa: E402


@pytest.fixture(scope="module", params=["humble", "jazzy"])
def store(request):
    typestore = get_spsg_typestore(request.param)
    return typestore, conv.MessageTypes.from_typestore(typestore)


def roundtrip(typestore, msg):
    raw = typestore.serialize_cdr(msg, msg.__msgtype__)
    return typestore.deserialize_cdr(raw, msg.__msgtype__)


def rotation_about(axis, angle):
    import cv2

    return cv2.Rodrigues(np.asarray(axis, np.float64) / np.linalg.norm(axis) * angle)[0]


def make_features(n, dim=256, seed=0, size=(640, 480)):
    rng = np.random.default_rng(seed)
    desc = rng.normal(size=(dim, n)).astype(np.float32)
    desc /= np.maximum(np.linalg.norm(desc, axis=0, keepdims=True), 1e-12)
    kp = (rng.random((n, 2)) * np.array(size)).astype(np.float32)
    return Features(kp, rng.random(n).astype(np.float32), desc, size)


def make_matches(n0, n1, pairs):
    m = Matches.empty(n0, n1)
    for i, j, s in pairs:
        m.matches0[i], m.matches1[j] = j, i
        m.scores0[i], m.scores1[j] = s, s
    return m


def mono_result(num_cur=50, num_ref=40):
    features = make_features(num_cur, seed=1)
    matches = make_matches(
        num_cur, num_ref, [(0, 3, 0.9), (5, 1, 0.5), (7, 39, 0.25), (49, 0, 0.75)]
    )
    R = rotation_about([0.1, 1.0, 0.2], 0.05)
    pose = RelativePose(
        valid=True,
        status="ok",
        rotation=R,
        translation=np.array([0.6, 0.0, 0.8]),
        scale_known=False,
        num_matches=4,
        num_inliers=3,
        inlier_mask=np.array([True, False, True, True]),
        covariance=np.diag(np.arange(1.0, 7.0)) * 1e-3,
    )
    return FrameResult(
        stamp_ns=1_700_000_000_123_456_789,
        frame_id="cam0_optical",
        image_size=(640, 480),
        features=features,
        ref_stamp_ns=1_700_000_000_023_456_789,
        ref_frame_id="cam0_optical",
        matches=matches,
        pose=pose,
        metrics=FrameMetrics(
            num_kp=num_cur, num_matches=4, match_prec=0.08, outlier_prec=0.25, num_inliers=3
        ),
        is_keyframe=True,
        warnings=["low texture"],
        timings_ms={"superpoint": 12.5, "match": 3.25, "total": 20.0},
    )


def test_message_types_need_registered_types():
    from rosbags.typesys import Stores, get_typestore

    with pytest.raises(KeyError, match="spsg_ros_msgs/msg/Keypoints"):
        conv.MessageTypes.from_typestore(get_typestore(Stores.ROS2_HUMBLE))


def test_mono_result_roundtrip(store):
    typestore, types = store
    result = mono_result()
    msgs = conv.frame_result_to_messages(
        types, result, backend="torch", latency_ms=33.5, frames_dropped=7
    )
    assert msgs.right_keypoints is None and msgs.stereo_matches is None
    back = {
        name: roundtrip(typestore, getattr(msgs, name))
        for name in ("keypoints", "matches", "relative_pose", "status")
    }
    # every message carries the input image's stamp and frame id
    for msg in back.values():
        assert conv.header_stamp_ns(msg) == result.stamp_ns
        assert msg.header.frame_id == "cam0_optical"
    kp = back["keypoints"]
    assert (kp.image_width, kp.image_height, kp.descriptor_dim) == (640, 480, 256)
    assert kp.keypoints_xy.shape == (100,) and kp.descriptors.shape == (50 * 256,)
    # row-major N x D: keypoint 1's descriptor is the second block of 256
    np.testing.assert_array_equal(kp.descriptors[256:512], result.features.descriptors[:, 1])
    m = back["matches"]
    assert m.kind == types.Matches.KIND_TEMPORAL
    assert conv.time_to_ns(m.reference_header.stamp) == result.ref_stamp_ns
    assert list(m.current_indices) == [0, 5, 7, 49] and list(m.reference_indices) == [3, 1, 39, 0]
    assert list(m.inliers) == [True, False, True, True]
    pose = back["relative_pose"]
    assert pose.valid and pose.covariance_known and not pose.scale_known and pose.is_keyframe
    assert (pose.num_matches, pose.num_inliers) == (4, 3)
    status = back["status"]
    assert status.backend == "torch" and status.frames_dropped == 7
    assert status.latency_ms == pytest.approx(33.5)
    assert list(status.stage_names) == ["superpoint", "match", "total"]

    rebuilt = conv.frame_result_from_messages(
        back["keypoints"], back["relative_pose"], back["status"], back["matches"]
    )
    assert rebuilt.stamp_ns == result.stamp_ns and rebuilt.ref_stamp_ns == result.ref_stamp_ns
    np.testing.assert_array_equal(rebuilt.features.keypoints, result.features.keypoints)
    np.testing.assert_array_equal(rebuilt.features.scores, result.features.scores)
    np.testing.assert_array_equal(rebuilt.features.descriptors, result.features.descriptors)
    np.testing.assert_array_equal(rebuilt.matches.matches0, result.matches.matches0)
    np.testing.assert_array_equal(rebuilt.matches.matches1, result.matches.matches1)
    np.testing.assert_allclose(rebuilt.matches.scores0, result.matches.scores0)
    np.testing.assert_allclose(rebuilt.pose.rotation, result.pose.rotation, atol=1e-12)
    np.testing.assert_allclose(rebuilt.pose.translation, result.pose.translation, atol=1e-12)
    np.testing.assert_allclose(rebuilt.pose.covariance, result.pose.covariance)
    np.testing.assert_array_equal(rebuilt.pose.inlier_mask, result.pose.inlier_mask)
    for name in ("num_kp", "num_matches", "num_inliers", "match_prec", "outlier_prec"):
        assert getattr(rebuilt.metrics, name) == pytest.approx(getattr(result.metrics, name))
    assert rebuilt.timings_ms == pytest.approx(result.timings_ms)
    assert rebuilt.warnings == ["low texture"] and rebuilt.is_keyframe


def test_empty_first_frame(store):
    """Zero keypoints and no reference: empty arrays, no Matches, an invalid pose."""
    typestore, types = store
    result = FrameResult(
        stamp_ns=5,
        frame_id="cam",
        image_size=(320, 240),
        features=Features.empty((320, 240)),
        ok=False,
        status="no keypoints (blank or featureless image)",
    )
    result.pose.status = "no reference frame"
    msgs = conv.frame_result_to_messages(types, result)
    assert msgs.matches is None
    kp = roundtrip(typestore, msgs.keypoints)
    assert kp.keypoints_xy.size == 0 and kp.scores.size == 0 and kp.descriptors.size == 0
    assert kp.descriptor_dim == 256
    features = conv.features_from_msg(kp)
    assert features.keypoints.shape == (0, 2) and features.descriptors.shape == (256, 0)
    pose = roundtrip(typestore, msgs.relative_pose)
    assert not pose.valid and pose.status == "no reference frame" and not pose.covariance_known
    assert conv.time_to_ns(pose.reference_header.stamp) == 0
    status = roundtrip(typestore, msgs.status)
    assert not status.ok and "no keypoints" in status.status
    rebuilt = conv.frame_result_from_messages(kp, pose, status)
    assert rebuilt.ref_stamp_ns is None and rebuilt.matches is None and not rebuilt.ok


def test_invalid_pose_carries_identity(store):
    typestore, types = store
    pose = RelativePose(
        valid=False,
        status="too few matches (3 < 8)",
        rotation=rotation_about([1, 0, 0], 0.3),
        translation=np.ones(3),
        num_matches=3,
        covariance=np.full((6, 6), np.nan),
    )
    msg = roundtrip(typestore, conv.relative_pose_msg(types, pose, 10, "cam", 5, "cam"))
    assert not msg.valid and msg.status == "too few matches (3 < 8)"
    np.testing.assert_allclose(conv.transform_from_msg(msg.transform), np.eye(4))
    assert not msg.covariance_known and not np.any(msg.covariance)  # NaN covariance dropped
    assert msg.num_matches == 3


def test_stereo_result(store):
    typestore, types = store
    left, right = make_features(30, seed=2), make_features(25, seed=3)
    stereo = make_matches(30, 25, [(i, 24 - i, 0.5 + i / 100) for i in range(20)])
    result = FrameResult(
        stamp_ns=2_000_000_001,
        frame_id="left",
        image_size=(640, 480),
        features=left,
        right_features=right,
        stereo_matches=stereo,
    )
    result.pose = RelativePose(
        valid=True,
        status="ok",
        translation=np.array([0.0, 0.0, 0.25]),
        scale_known=True,
        num_matches=20,
        num_inliers=18,
    )
    result.ref_stamp_ns, result.ref_frame_id = 1_900_000_000, "left"
    result.matches = make_matches(30, 30, [(i, i, 0.9) for i in range(10)])
    msgs = conv.frame_result_to_messages(
        types, result, right_stamp_ns=2_000_000_002, right_frame_id="right"
    )
    right_kp = roundtrip(typestore, msgs.right_keypoints)
    assert right_kp.header.frame_id == "right" and conv.header_stamp_ns(right_kp) == 2_000_000_002
    sm = roundtrip(typestore, msgs.stereo_matches)
    assert sm.kind == types.Matches.KIND_STEREO
    assert sm.header.frame_id == "left" and sm.reference_header.frame_id == "right"
    assert (sm.num_current_keypoints, sm.num_reference_keypoints) == (30, 25)
    assert sm.inliers.size == 0  # no pose for the left-right pair
    np.testing.assert_array_equal(conv.matches_from_msg(sm).matches0, stereo.matches0)
    pose = roundtrip(typestore, msgs.relative_pose)
    assert pose.scale_known and pose.transform.translation.z == pytest.approx(0.25)
    rebuilt = conv.frame_result_from_messages(
        msgs.keypoints, pose, None, msgs.matches, right_kp, sm
    )
    np.testing.assert_array_equal(rebuilt.right_features.descriptors, right.descriptors)
    np.testing.assert_array_equal(rebuilt.stereo_matches.matches1, stereo.matches1)


def test_inconsistent_messages_are_rejected(store):
    _, types = store
    msg = conv.keypoints_msg(types, make_features(4, dim=8), 1, "cam", (64, 48))
    msg.descriptors = msg.descriptors[:-1]
    with pytest.raises(ValueError, match="inconsistent"):
        conv.features_from_msg(msg)
    bad = conv.matches_msg(types, make_matches(3, 3, [(0, 2, 0.5)]), 0, 1, "a", 0, "b")
    bad.num_reference_keypoints = 2
    with pytest.raises(ValueError, match="out of range"):
        conv.matches_from_msg(bad)


# --- images -----------------------------------------------------------------


def image_for(encoding, height=5, width=7, seed=0):
    dtype, channels = conv.IMAGE_ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    high = 65535 if dtype == np.uint16 else 255
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, high + 1, size=shape).astype(dtype)


@pytest.mark.parametrize("encoding", list(conv.IMAGE_ENCODINGS))
def test_image_roundtrip_each_encoding(store, encoding):
    typestore, types = store
    image = image_for(encoding)
    msg = roundtrip(typestore, conv.array_to_image_msg(types, image, encoding, 42, "cam"))
    assert msg.encoding == encoding and msg.step == image.shape[1] * image[0, 0:1].nbytes
    back, enc = conv.image_msg_to_array(msg)
    assert enc == encoding and back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("encoding", list(conv.IMAGE_ENCODINGS))
@pytest.mark.parametrize("big_endian", [False, True])
def test_image_with_row_padding(store, encoding, big_endian):
    """Rows padded beyond width * pixel size, in either byte order."""
    typestore, types = store
    image = image_for(encoding, seed=3)
    height, width = image.shape[:2]
    pixel_bytes = image[0, 0:1].nbytes
    step = width * pixel_bytes + 5
    order = ">" if big_endian else "<"
    rows = image.astype(image.dtype.newbyteorder(order)).reshape(height, -1).view(np.uint8)
    padded = np.full((height, step), 0xEE, np.uint8)
    padded[:, : rows.shape[1]] = rows
    msg = types.Image(
        header=conv.make_header(types, 1, "cam"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=step,
        data=padded.ravel(),
    )
    back, _ = conv.image_msg_to_array(roundtrip(typestore, msg))
    np.testing.assert_array_equal(back, image)
    # the last row may come without its padding
    msg.data = padded.ravel()[:-5]
    np.testing.assert_array_equal(conv.image_msg_to_array(msg)[0], image)


def test_image_from_rclpy_style_buffers(store):
    """rclpy holds uint8[] as array.array('B'); bytes must work too."""
    _, types = store
    image = image_for("mono16")
    msg = conv.array_to_image_msg(types, image, "mono16", 1, "cam")
    raw = bytes(msg.data)
    msg.data = array.array("B", raw)
    np.testing.assert_array_equal(conv.image_msg_to_array(msg)[0], image)
    msg.data = raw
    np.testing.assert_array_equal(conv.image_msg_to_array(msg)[0], image)


def test_image_aliases_and_errors(store):
    _, types = store
    image = image_for("mono8")
    msg = conv.array_to_image_msg(types, image, "mono8", 1, "cam")
    msg.encoding = "8UC1"
    assert conv.image_msg_to_array(msg)[1] == "mono8"
    msg.encoding = "32FC1"
    with pytest.raises(conv.ImageConversionError, match="unsupported image encoding '32FC1'"):
        conv.image_msg_to_array(msg)
    # camera formats the node used to reject are decoded to BGR (as the bag reader does)
    msg.encoding, msg.width, msg.step = "yuv422", 2, 4
    decoded, encoding = conv.image_msg_to_array(msg)
    assert encoding == "bgr8" and decoded.shape == (5, 2, 3)
    msg.encoding, msg.width, msg.step = "bayer_rggb8", 7, 7
    assert conv.image_msg_to_array(msg)[1] == "bgr8"
    msg.encoding, msg.height = "mono8", 0
    with pytest.raises(conv.ImageConversionError, match="empty image"):
        conv.image_msg_to_array(msg)
    msg.height, msg.step = 5, 3
    with pytest.raises(conv.ImageConversionError, match="step 3 is shorter"):
        conv.image_msg_to_array(msg)
    msg.step, msg.data = 7, msg.data[:10]
    with pytest.raises(conv.ImageConversionError, match="holds 10 bytes"):
        conv.image_msg_to_array(msg)
    with pytest.raises(conv.ImageConversionError, match="does not fit encoding rgb8"):
        conv.array_to_image_msg(types, image, "rgb8", 1, "cam")
    with pytest.raises(conv.ImageConversionError, match="dtype uint8 does not fit"):
        conv.array_to_image_msg(types, image, "mono16", 1, "cam")
    with pytest.raises(conv.ImageConversionError, match="empty image array"):
        conv.array_to_image_msg(types, np.zeros((0, 4), np.uint8), "mono8", 1, "cam")


def test_sequences_in_rclpy_style():
    """The 'array' style gives what rclpy's generated setters accept."""
    types = conv.MessageTypes.from_typestore(get_spsg_typestore("humble"))
    rclpy_style = conv.MessageTypes(dict(types._classes), "array")
    seq = rclpy_style.sequence(np.array([1.5, 2.5]), np.float32)
    assert isinstance(seq, array.array) and seq.typecode == "f" and list(seq) == [1.5, 2.5]
    flags = rclpy_style.sequence([True, False], np.bool_)
    assert flags == [True, False] and all(type(v) is bool for v in flags)
    assert rclpy_style.sequence(np.arange(3), np.int32).typecode == "i"
    np.testing.assert_array_equal(conv.as_numpy(seq, np.float32), [1.5, 2.5])


# --- camera info ------------------------------------------------------------


def camera_info(typestore, types, fx=320.0, baseline=None, k=None):
    k = np.array([fx, 0, 320, 0, fx, 240, 0, 0, 1.0]) if k is None else np.asarray(k, float)
    p = np.array([fx, 0, 320, 0, 0, fx, 240, 0, 0, 0, 1, 0.0])
    if baseline is not None:
        p[3] = -fx * baseline
    Roi = typestore.types["sensor_msgs/msg/RegionOfInterest"]
    return types.CameraInfo(
        header=conv.make_header(types, 1, "cam"),
        height=480,
        width=640,
        distortion_model="plumb_bob",
        d=np.array([0.1, -0.05, 0, 0, 0.0]),
        k=k,
        r=np.eye(3).ravel(),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=Roi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def test_camera_info_conversion(store):
    typestore, types = store
    left = roundtrip(typestore, camera_info(typestore, types))
    right = roundtrip(typestore, camera_info(typestore, types, baseline=0.25))
    info = conv.camera_info_from_msg(left)
    assert info.K[0, 0] == 320 and info.K[1, 2] == 240 and (info.width, info.height) == (640, 480)
    assert info.D.shape == (5,) and info.P.shape == (3, 4) and info.baseline is None
    l_info, r_info = conv.stereo_camera_infos(left, right)
    assert l_info.baseline == pytest.approx(0.25) and r_info.baseline == pytest.approx(0.25)
    with pytest.raises(ValueError, match="right camera_info has no baseline"):
        conv.stereo_camera_infos(left, left)
    with pytest.raises(ValueError, match="uncalibrated"):
        conv.camera_info_from_msg(camera_info(typestore, types, k=np.zeros(9)))


# --- poses, trajectory, bag -----------------------------------------------------


def test_quaternion_conversions_cover_all_branches():
    rng = np.random.default_rng(5)
    angles = [0.0, np.pi, np.pi - 1e-9, 2.0, 0.3]
    for axis in ([1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], rng.normal(size=3)):
        for angle in angles:
            R = rotation_about(axis, angle)
            q = conv.rotation_to_quaternion(R)
            assert np.linalg.norm(q) == pytest.approx(1.0) and q[3] >= 0
            np.testing.assert_allclose(conv.quaternion_to_rotation(*q), R, atol=1e-9)


def test_trajectory_chains_poses_through_keyframes(store):
    typestore, types = store
    traj = TrajectoryAccumulator(history=4)
    step = RelativePose(valid=True, status="ok", translation=np.array([0.0, 0.0, -1.0]))
    # X_cur = X_ref - (0, 0, 1): the camera moved +1 along z
    assert traj.update(0, None, RelativePose(), becomes_reference=False) is None  # flagged
    T0 = traj.update(0, None, RelativePose())  # the first processed frame: the origin
    T1 = traj.update(1, 0, step)
    T2 = traj.update(2, 0, step)  # keyframe pairing: still against frame 0
    invalid = RelativePose(valid=False, status="degenerate")
    # no valid pose: nothing to publish, whether or not the frame becomes a reference
    assert traj.update(3, 2, invalid, becomes_reference=False) is None
    assert traj.pose_at(3) is None
    assert traj.update(3, 2, invalid, becomes_reference=True) is None
    np.testing.assert_allclose(traj.pose_at(3), T2)  # kept as an anchor, not published
    T4 = traj.update(4, 3, step)
    np.testing.assert_allclose(T0, np.eye(4))
    np.testing.assert_allclose(T1[:3, 3], [0, 0, 1])
    np.testing.assert_allclose(T2[:3, 3], [0, 0, 1])
    np.testing.assert_allclose(T4[:3, 3], [0, 0, 2])  # continues from the last valid pose
    np.testing.assert_allclose(traj.latest, T4)
    assert traj.pose_at(0) is None  # history of 4 dropped the oldest
    turn = RelativePose(valid=True, rotation=rotation_about([0, 1, 0], np.pi / 2))
    T5 = traj.update(5, 4, turn)
    np.testing.assert_allclose(T5[:3, :3], rotation_about([0, 1, 0], -np.pi / 2), atol=1e-12)
    assert traj.update(6, 99, step, becomes_reference=False) is None  # unknown reference

    odom = roundtrip(typestore, conv.odometry_msg(types, T5, 5, "odom", "cam"))
    assert odom.header.frame_id == "odom" and odom.child_frame_id == "cam"
    np.testing.assert_allclose(conv.pose_from_msg(odom.pose.pose), T5, atol=1e-12)
    tf = roundtrip(typestore, conv.transform_stamped_msg(types, T5, 5, "odom", "cam"))
    np.testing.assert_allclose(conv.transform_from_msg(tf.transform), T5, atol=1e-12)
    poses = [conv.pose_stamped_msg(types, T, i, "odom") for i, T in enumerate([T0, T1, T4])]
    path = roundtrip(typestore, conv.path_msg(types, poses, 4, "odom"))
    assert len(path.poses) == 3 and path.poses[2].pose.position.z == pytest.approx(2.0)


def test_results_bag_mcap_reads_back(tmp_path):
    """A ROS 2 bag (MCAP) of every output type, written and read back with rosbags."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    typestore = get_spsg_typestore("jazzy")
    types = conv.MessageTypes.from_typestore(typestore)
    result = mono_result()
    msgs = conv.frame_result_to_messages(types, result, backend="torch")
    image = conv.array_to_image_msg(
        types, image_for("bgr8", 20, 30), "bgr8", result.stamp_ns, result.frame_id
    )
    outputs = {
        "/keypoints": msgs.keypoints,
        "/matches": msgs.matches,
        "/relative_pose": msgs.relative_pose,
        "/frontend_status": msgs.status,
        "/matches_image": image,
        "/odometry": conv.odometry_msg(types, np.eye(4), result.stamp_ns, "odom", "cam"),
    }
    path = tmp_path / "results"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic, msg in outputs.items():
            conn = writer.add_connection(topic, msg.__msgtype__, typestore=typestore)
            writer.write(conn, result.stamp_ns, typestore.serialize_cdr(msg, msg.__msgtype__))
    assert list(path.glob("*.mcap"))
    read = {}
    with AnyReader([path], default_typestore=get_spsg_typestore("humble")) as reader:
        for conn, stamp, raw in reader.messages():
            read[conn.topic] = (conn.msgtype, stamp, reader.deserialize(raw, conn.msgtype))
    assert set(read) == set(outputs)
    for topic, msg in outputs.items():
        msgtype, stamp, back = read[topic]
        assert msgtype == msg.__msgtype__ and stamp == result.stamp_ns
        assert conv.header_stamp_ns(back) == result.stamp_ns
    rebuilt = conv.features_from_msg(read["/keypoints"][2])
    np.testing.assert_array_equal(rebuilt.descriptors, result.features.descriptors)
    np.testing.assert_array_equal(
        conv.image_msg_to_array(read["/matches_image"][2])[0], conv.image_msg_to_array(image)[0]
    )


def test_matches_picture_draws_both_images():
    result = mono_result(num_cur=50, num_ref=40)
    ref_kp = make_features(40, seed=9).keypoints
    current = image_for("mono8", 480, 640)
    reference = image_for("rgb8", 480, 640, seed=1)
    picture = conv.matches_picture(result, current, "mono8", reference, "rgb8", ref_kp)
    assert picture.dtype == np.uint8 and picture.shape == (480, 640 + 10 + 640, 3)
    # mono16 input is scaled to 8 bit for display
    deep = image_for("mono8", 480, 640).astype(np.uint16) * 200
    picture16 = conv.matches_picture(result, deep, "mono16", deep, "mono16", ref_kp)
    assert picture16.shape == picture.shape and picture16.max() > 0
