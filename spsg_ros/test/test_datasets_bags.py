"""Bag readers: a ROS 1 bag and ROS 2 bags (MCAP and sqlite3) written with rosbags in the test."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags")

from rosbags.rosbag1 import Writer as Writer1  # noqa: E402
from rosbags.rosbag2 import StoragePlugin  # noqa: E402
from rosbags.rosbag2 import Writer as Writer2  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from spsg_ros.datasets import DatasetError, detect_kind, open_source  # noqa: E402

W, H = 160, 120
T0 = 1_700_000_000_000_000_000
DT = 100_000_000


def _image(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((H, W)) * 255).astype(np.uint8)


def _header(ts, stamp: int, frame_id: str, ros1: bool):
    Time = ts.types["builtin_interfaces/msg/Time"]
    Header = ts.types["std_msgs/msg/Header"]
    time = Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
    return (
        Header(seq=0, stamp=time, frame_id=frame_id)
        if ros1
        else Header(stamp=time, frame_id=frame_id)
    )


def _image_msg(ts, stamp, frame_id, image, ros1, encoding="mono8"):
    data = image if encoding == "mono8" else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = 1 if encoding == "mono8" else 3
    # rows padded to a step larger than the width, as some drivers do
    step = W * channels + 8
    padded = np.zeros((H, step), np.uint8)
    padded[:, : W * channels] = data.reshape(H, W * channels)
    Image = ts.types["sensor_msgs/msg/Image"]
    return Image(
        header=_header(ts, stamp, frame_id, ros1),
        height=H,
        width=W,
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=padded.ravel(),
    )


def _compressed_msg(ts, stamp, frame_id, image, ros1):
    ok, buf = cv2.imencode(".png", image)
    assert ok
    Compressed = ts.types["sensor_msgs/msg/CompressedImage"]
    return Compressed(
        header=_header(ts, stamp, frame_id, ros1),
        format="png",
        data=np.frombuffer(buf.tobytes(), np.uint8),
    )


def _camera_info_msg(ts, stamp, frame_id, ros1, baseline=None):
    K = [100.0, 0, 80, 0, 100.0, 60, 0, 0, 1]
    P = [100.0, 0, 80, 0 if baseline is None else -100.0 * baseline, 0, 100.0, 60, 0, 0, 0, 1, 0]
    ROI = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    fields = dict(
        header=_header(ts, stamp, frame_id, ros1),
        height=H,
        width=W,
        distortion_model="plumb_bob",
        binning_x=0,
        binning_y=0,
        roi=ROI,
    )
    arrays = {"d": np.zeros(5), "k": np.array(K), "r": np.eye(3).ravel(), "p": np.array(P)}
    for key, value in arrays.items():
        fields[key.upper() if ros1 else key] = value
    return ts.types["sensor_msgs/msg/CameraInfo"](**fields)


def _pose_msg(ts, stamp, x, ros1):
    Point, Quat = ts.types["geometry_msgs/msg/Point"], ts.types["geometry_msgs/msg/Quaternion"]
    pose = ts.types["geometry_msgs/msg/Pose"](
        position=Point(x=x, y=0.0, z=0.0), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0)
    )
    return ts.types["geometry_msgs/msg/PoseStamped"](
        header=_header(ts, stamp, "world", ros1), pose=pose
    )


def write_ros1_bag(path: Path, n: int = 5) -> None:
    ts = get_typestore(Stores.ROS1_NOETIC)
    with Writer1(path) as writer:
        conns = {
            "/cam/image_raw/compressed": writer.add_connection(
                "/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", typestore=ts
            ),
            "/cam/camera_info": writer.add_connection(
                "/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts
            ),
            "/ground_truth/pose": writer.add_connection(
                "/ground_truth/pose", "geometry_msgs/msg/PoseStamped", typestore=ts
            ),
            "/other/image_raw": writer.add_connection(
                "/other/image_raw", "sensor_msgs/msg/Image", typestore=ts
            ),
        }
        for i in range(n):
            t = T0 + i * DT
            msgs = [
                ("/cam/camera_info", _camera_info_msg(ts, t, "cam", True)),
                ("/cam/image_raw/compressed", _compressed_msg(ts, t, "cam", _image(i), True)),
                ("/ground_truth/pose", _pose_msg(ts, t, 0.5 * i, True)),
                ("/other/image_raw", _image_msg(ts, t, "other", _image(50 + i), True, "rgb8")),
            ]
            for topic, msg in msgs:
                conn = conns[topic]
                writer.write(conn, t, ts.serialize_ros1(msg, conn.msgtype))


def write_ros2_stereo_bag(
    path: Path, n: int = 6, storage=StoragePlugin.MCAP, corrupt_index=None
) -> None:
    ts = get_typestore(Stores.ROS2_HUMBLE)
    with Writer2(path, version=9, storage_plugin=storage) as writer:
        conns = {}
        for side in ("left", "right"):
            conns[f"/stereo/{side}/image_raw"] = writer.add_connection(
                f"/stereo/{side}/image_raw", "sensor_msgs/msg/Image", typestore=ts
            )
            conns[f"/stereo/{side}/camera_info"] = writer.add_connection(
                f"/stereo/{side}/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts
            )
        for i in range(n):
            t = T0 + i * DT
            for side, offset in (("left", 0), ("right", 1_000_000)):  # right 1 ms later
                stamp = t + offset
                image = _image(i if side == "left" else 100 + i)
                msg = _image_msg(ts, stamp, f"cam_{side}", image, False)
                if corrupt_index == i and side == "left":
                    msg.height = H * 4  # data far too short for the claimed size
                conn = conns[f"/stereo/{side}/image_raw"]
                writer.write(conn, stamp, ts.serialize_cdr(msg, conn.msgtype))
                info = _camera_info_msg(
                    ts, stamp, f"cam_{side}", False, 0.12 if side == "right" else None
                )
                conn = conns[f"/stereo/{side}/camera_info"]
                writer.write(conn, stamp, ts.serialize_cdr(info, conn.msgtype))


def test_ros1_bag_compressed_images_and_ground_truth(tmp_path):
    bag = tmp_path / "run.bag"
    write_ros1_bag(bag)
    assert detect_kind(bag) == "bag"
    seq = open_source(bag, topic="/cam/image_raw/compressed")
    assert (
        seq.topic == "/cam/image_raw/compressed"
        and seq.ground_truth_kind == "pose"
        and len(seq) == 5
    )
    frames = list(seq)
    assert [f.stamp_ns for f in frames] == [T0 + i * DT for i in range(5)]
    np.testing.assert_array_equal(frames[2].image, _image(2))  # PNG is lossless
    assert frames[0].encoding == "mono8" and frames[0].frame_id == "cam"
    np.testing.assert_allclose(
        frames[0].camera_info.K, [[100, 0, 80], [0, 100, 60], [0, 0, 1]]
    )  # ROS 1 'K'
    np.testing.assert_allclose(frames[3].gt_pose[:3, 3], [1.5, 0, 0])
    # the rgb8 topic, selected explicitly, with padded rows
    other = list(open_source(bag, topic="/other/image_raw", intrinsics=None, max_frames=2))
    assert len(other) == 2 and other[1].encoding == "rgb8"
    np.testing.assert_array_equal(other[1].image[:, :, 0], _image(51))
    # start offset and duration (seconds from the bag start)
    sliced = list(open_source(bag, topic="/cam/image_raw/compressed", start=0.15, duration=0.2))
    assert [f.stamp_ns for f in sliced] == [T0 + 2 * DT, T0 + 3 * DT]
    with pytest.raises(DatasetError, match="'/nope' is not an image topic"):
        open_source(bag, topic="/nope")


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_ros2_stereo_bag(tmp_path, storage):
    bag = tmp_path / "stereo"
    write_ros2_stereo_bag(bag, storage=storage)
    seq = open_source(bag, stereo=True)
    assert (seq.topic, seq.right_topic) == ("/stereo/left/image_raw", "/stereo/right/image_raw")
    frames = list(seq)
    assert len(frames) == 6 and all(f.ok and f.is_stereo for f in frames)
    np.testing.assert_array_equal(frames[4].image, _image(4))
    np.testing.assert_array_equal(frames[4].right_image, _image(104))
    assert frames[0].camera_info.baseline == pytest.approx(0.12)  # from the right P
    assert frames[0].right_camera_info.P[0, 3] == pytest.approx(-12.0)
    assert frames[0].right_frame_id == "cam_right" and frames[0].gt_pose is None
    # a 0.5 ms tolerance pairs nothing (the right images are 1 ms late)
    assert list(open_source(bag, stereo=True, stereo_tolerance=0.0005)) == []
    assert [f.stamp_ns for f in open_source(bag, stereo=True, step=2)] == [
        T0,
        T0 + 2 * DT,
        T0 + 4 * DT,
    ]
    assert len(list(open_source(bag, stereo=True, max_frames=3))) == 3


def test_bag_corrupt_message_is_flagged_and_reading_goes_on(tmp_path):
    bag = tmp_path / "bad"
    write_ros2_stereo_bag(bag, corrupt_index=2)
    frames = list(open_source(bag, topic="/stereo/left/image_raw"))
    assert [f.ok for f in frames] == [True, True, False, True, True, True]
    assert "image data holds" in frames[2].error and "/stereo/left/image_raw" in frames[2].error


def test_corrupt_and_missing_bags(tmp_path):
    broken = tmp_path / "broken.bag"
    broken.write_bytes(b"#ROSBAG V2.0\n" + b"\x00" * 64)
    with pytest.raises(DatasetError, match=r"cannot read bag .*broken.bag"):
        open_source(broken)
    folder = tmp_path / "bag2"
    write_ros2_stereo_bag(folder)
    mcap = next(folder.glob("*.mcap"))
    data = mcap.read_bytes()
    # a bare .mcap file is a bag too
    (tmp_path / "bare.mcap").write_bytes(data)
    assert len(list(open_source(tmp_path / "bare.mcap", stereo=True))) == 6
    mcap.write_bytes(data[:200])  # truncated inside its only chunk: nothing to read
    with pytest.raises(DatasetError, match=r"cannot read bag .*bag2.*truncated"):
        list(open_source(folder))
    with pytest.raises(DatasetError, match="does not exist"):
        open_source(tmp_path / "none.bag", kind="bag")
    # a bag without image topics says which topics it has
    ts = get_typestore(Stores.ROS2_HUMBLE)
    empty = tmp_path / "noimg"
    with Writer2(empty, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
        writer.write(
            conn, 1, ts.serialize_cdr(ts.types["std_msgs/msg/String"](data="x"), conn.msgtype)
        )
    with pytest.raises(DatasetError, match=r"no sensor_msgs/Image .*\(topics: /chatter"):
        open_source(empty)


def test_camera_encodings_decoded():
    from types import SimpleNamespace

    from spsg_ros.datasets.rosbag import image_from_msg

    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[:, :, 2] = 200  # red scene
    # an RGGB Bayer mosaic of the red scene: only the R sites (even rows, even columns) are lit
    mosaic = np.zeros((4, 6), np.uint8)
    mosaic[0::2, 0::2] = 200
    msg = SimpleNamespace(
        encoding="bayer_rggb8", height=4, width=6, step=6, is_bigendian=0, data=mosaic.ravel()
    )
    image, encoding = image_from_msg(msg)
    assert encoding == "bgr8" and image.shape == (4, 6, 3)
    assert image[1, 1, 2] > 150 and image[1, 1, 0] < 50  # red, not blue
    # YUV 4:2:2 (UYVY) of mid grey: U = V = 128, Y = 128
    uyvy = np.full((2, 8), 128, np.uint8)
    msg = SimpleNamespace(
        encoding="yuv422", height=2, width=4, step=8, is_bigendian=0, data=uyvy.ravel()
    )
    image, encoding = image_from_msg(msg)
    assert encoding == "bgr8" and image.shape == (2, 4, 3) and abs(int(image[0, 0, 1]) - 128) <= 2
    msg = SimpleNamespace(
        encoding="32FC1", height=2, width=2, step=8, is_bigendian=0, data=np.zeros(16, np.uint8)
    )
    with pytest.raises(DatasetError, match="unsupported image encoding '32FC1'"):
        image_from_msg(msg)
