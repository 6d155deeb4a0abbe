"""Dataset readers on small trees written in their real layouts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from spsg_ros.datasets import DatasetError, detect_kind, open_source
from spsg_ros.datasets.base import DEFAULT_BASE_TIME_NS
from spsg_ros.datasets.intrinsics import read_intrinsics_yaml
from spsg_ros.datasets.poses import matrix_to_quat_xyzw, pose_matrix, quat_xyzw_to_matrix
from spsg_ros.datasets.tartanair import (
    R_NED_FROM_OPTICAL,
    ned_to_optical,
    optical_to_ned,
    write_tartanair_poses,
)


def _image(seed: int, width: int = 160, height: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((height, width)) * 255).astype(np.uint8)


def _rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


# ----------------------------------------------------------------------------- TartanAir


def write_tartanair(root: Path, n: int = 4, stereo: bool = True) -> list[np.ndarray]:
    """NED poses: forward 0.5 m per frame while yawing right 10 degrees per frame."""
    (root / "image_left").mkdir(parents=True)
    if stereo:
        (root / "image_right").mkdir()
    poses = []
    for i in range(n):
        cv2.imwrite(str(root / "image_left" / f"{i:06d}_left.png"), _image(i))
        if stereo:
            cv2.imwrite(str(root / "image_right" / f"{i:06d}_right.png"), _image(100 + i))
        poses.append(pose_matrix(_rot_z(10.0 * i), [0.5 * i, 0.0, 0.0]))
    with open(root / "pose_left.txt", "w") as f:
        for T in poses:
            q = matrix_to_quat_xyzw(T[:3, :3])
            f.write(" ".join(f"{v:.9f}" for v in list(T[:3, 3]) + list(q)) + "\n")
    return poses


def test_ned_to_optical_known_motion(tmp_path):
    write_tartanair(tmp_path / "P000", n=3)
    seq = open_source(tmp_path / "P000")
    assert seq.kind == "tartanair" and detect_kind(tmp_path / "P000") == "tartanair"
    frames = list(seq)
    # 10 Hz synthesised from the default base time (not 0: unset time in ROS 2)
    assert [f.stamp_ns for f in frames] == [
        DEFAULT_BASE_TIME_NS + i * 100_000_000 for i in range(3)
    ]
    T0, T1 = frames[0].gt_pose, frames[1].gt_pose
    # first camera: identity orientation, at the origin
    np.testing.assert_allclose(T0, np.eye(4), atol=1e-9)
    # NED forward (x) is optical forward (z): the camera moved 0.5 m along +z
    np.testing.assert_allclose(T1[:3, 3], [0.0, 0.0, 0.5], atol=1e-9)
    # a yaw to the right (about NED z = down) is a rotation about the optical y axis (down):
    # the camera's optical axis now points forward-right, i.e. towards +x
    z_axis = T1[:3, 2]
    np.testing.assert_allclose(
        z_axis, [np.sin(np.radians(10)), 0, np.cos(np.radians(10))], atol=1e-9
    )
    np.testing.assert_allclose(T1[:3, 1], [0, 1, 0], atol=1e-9)
    # relative motion in the camera frame: X_1 = R X_0 + t with t pointing back
    # (-z, camera moved +z)
    T_1_0 = np.linalg.inv(T1) @ T0
    assert T_1_0[2, 3] < 0
    # the conversion is invertible and the mapping matrix is SPEC section 5's
    np.testing.assert_allclose(optical_to_ned(ned_to_optical(T1)), T1, atol=1e-12)
    np.testing.assert_array_equal(R_NED_FROM_OPTICAL, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])


def test_tartanair_stereo_and_intrinsics(tmp_path):
    write_tartanair(tmp_path / "P001", n=4)
    seq = open_source(tmp_path / "P001", stereo=True, rate_hz=5.0, start=0.2)
    assert seq.stereo and len(seq) == 3
    frame = next(iter(seq))
    assert frame.stamp_ns == DEFAULT_BASE_TIME_NS + 200_000_000 and frame.index == 0
    assert frame.image.shape == (120, 160) and frame.encoding == "mono8"
    assert frame.right_image is not None and not np.array_equal(frame.image, frame.right_image)
    # TartanAir's 640x480 intrinsics scaled to the 160x120 images, baseline 0.25 m
    np.testing.assert_allclose(frame.camera_info.K, [[80, 0, 80], [0, 80, 60], [0, 0, 1]])
    assert frame.right_camera_info.baseline == pytest.approx(0.25)
    assert frame.right_camera_info.P[0, 3] == pytest.approx(-80 * 0.25)
    assert frame.frame().encoding == "mono8" and frame.right_frame().frame_id == "camera_right"


def test_tartanair_roundtrip_writer(tmp_path):
    rng = np.random.default_rng(1)
    poses = []
    for i in range(3):
        q = rng.normal(size=4)
        poses.append(pose_matrix(quat_xyzw_to_matrix(q), rng.normal(size=3)))
    root = tmp_path / "P002"
    (root / "image_left").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(root / "image_left" / f"{i:06d}_left.png"), _image(i))
    write_tartanair_poses(root / "pose_left.txt", poses)
    got = [f.gt_pose for f in open_source(root)]
    for a, b in zip(got, poses):
        np.testing.assert_allclose(a, b, atol=1e-7)


def test_tartanair_errors(tmp_path):
    root = tmp_path / "P003"
    write_tartanair(root, n=3)
    (root / "pose_left.txt").write_text("1 2 3\n")
    with pytest.raises(DatasetError, match="pose_left.txt:1: expected 7 values"):
        open_source(root)
    (root / "pose_left.txt").write_text("0 0 0 0 0 0 1\n")
    with pytest.raises(DatasetError, match="1 poses for 3 images"):
        open_source(root)
    (root / "pose_left.txt").unlink()
    # corrupt image: the frame is flagged and the others are read
    (root / "image_left" / "000001_left.png").write_bytes(b"not a png")
    frames = list(open_source(root))
    assert [f.ok for f in frames] == [True, False, True]
    assert "000001_left.png" in frames[1].error and "corrupt" in frames[1].error
    with pytest.raises(DatasetError, match="does not exist"):
        open_source(tmp_path / "missing")
    with pytest.raises(DatasetError, match="stereo needs"):
        (tmp_path / "mono" / "image_left").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "mono" / "image_left" / "000000_left.png"), _image(0))
        open_source(tmp_path / "mono", stereo=True)


# ----------------------------------------------------------------------------- ASL / EuRoC / OIVIO

CAM_YAML = """# General sensor definitions.
sensor_type: camera
comment: VI-Sensor cam{idx}
T_BS:
  cols: 4
  rows: 4
  data: [1.0, 0.0, 0.0, {tx}, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
rate_hz: 20
resolution: [160, 120]
camera_model: pinhole
intrinsics: [100.0, 101.0, 80.0, 60.0]
distortion_model: radial-tangential
distortion_coefficients: [-0.28, 0.07, 0.0002, 0.00002]
"""


def write_asl(root: Path, n: int = 5, leica: bool = False) -> list[int]:
    mav0 = root / "mav0"
    stamps = [1_403_636_579_763_555_584 + i * 50_000_000 for i in range(n)]
    for idx, cam in enumerate(("cam0", "cam1")):
        (mav0 / cam / "data").mkdir(parents=True)
        (mav0 / cam / "sensor.yaml").write_text(CAM_YAML.format(idx=idx, tx=0.11 * idx))
        with open(mav0 / cam / "data.csv", "w") as f:
            f.write("#timestamp [ns],filename\n")
            for i, s in enumerate(stamps):
                f.write(f"{s},{s}.png\n")
                cv2.imwrite(str(mav0 / cam / "data" / f"{s}.png"), _image(10 * idx + i))
    if leica:
        (mav0 / "leica0").mkdir()
        with open(mav0 / "leica0" / "data.csv", "w") as f:
            f.write("#timestamp [ns], p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m]\n")
            for k in range(2 * n + 2):  # 40 Hz from before the first image
                t = stamps[0] - 25_000_000 + k * 25_000_000
                f.write(f"{t},{0.1 * k:.6f},2.0,0.5\n")
    else:
        (mav0 / "state_groundtruth_estimate0").mkdir()
        with open(mav0 / "state_groundtruth_estimate0" / "data.csv", "w") as f:
            f.write(
                "#timestamp, p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m], q_RS_w [], q_RS_x [], "
                "q_RS_y [], q_RS_z [], v_RS_R_x [m s^-1], v_RS_R_y [m s^-1], v_RS_R_z [m s^-1], "
                "b_w_RS_S_x, b_w_RS_S_y, b_w_RS_S_z, b_a_RS_S_x, b_a_RS_S_y, b_a_RS_S_z\n"
            )
            for k in range(4 * n):  # 200 Hz would be finer; 80 Hz is enough here
                t = stamps[0] - 12_500_000 + k * 12_500_000
                yaw = np.radians(2.0 * k)
                # quaternion about z, written w x y z (ASL order)
                f.write(
                    f"{t},{0.01 * k:.6f},0.0,1.0,"
                    f"{np.cos(yaw / 2):.9f},0.0,0.0,{np.sin(yaw / 2):.9f},"
                    + ",".join(["0.0"] * 9)
                    + "\n"
                )
    return stamps


def test_asl_stereo_with_groundtruth(tmp_path):
    stamps = write_asl(tmp_path / "MH_01_easy", n=5)
    assert detect_kind(tmp_path / "MH_01_easy") == "asl"
    seq = open_source(tmp_path / "MH_01_easy", kind="euroc", stereo=True)
    assert seq.name == "MH_01_easy" and seq.ground_truth_kind == "pose"
    frames = list(seq)
    assert [f.stamp_ns for f in frames] == stamps
    f = frames[2]
    np.testing.assert_allclose(f.camera_info.K, [[100, 0, 80], [0, 101, 60], [0, 0, 1]])
    assert f.camera_info.D.tolist() == pytest.approx([-0.28, 0.07, 0.0002, 0.00002, 0.0])
    assert f.right_image is not None and f.right_frame_id == "cam1"
    # cam1 is 0.11 m along the body x from cam0: X_right = X_left - (0.11, 0, 0)
    np.testing.assert_allclose(f.camera_info.T_right_left[:3, 3], [-0.11, 0, 0], atol=1e-12)
    assert f.camera_info.baseline == pytest.approx(0.11)
    # ground truth at the image stamp (interpolated between samples 12.5 ms apart):
    # frame 2 is 100 ms after frame 0, i.e. sample k = 9 -> x = 0.09, yaw 18 deg;
    # the camera sits at T_BS = (0, 0, 0) offset for cam0
    np.testing.assert_allclose(f.gt_pose[:3, 3], [0.09, 0.0, 1.0], atol=1e-6)
    yaw = np.degrees(np.arctan2(f.gt_pose[1, 0], f.gt_pose[0, 0]))
    assert yaw == pytest.approx(18.0, abs=1e-4)


def test_oivio_leica_position_only(tmp_path):
    root = tmp_path / "OD_015_HH_03"
    stamps = write_asl(root, n=4, leica=True)
    seq = open_source(root, max_frames=3)
    assert seq.kind == "asl" and seq.ground_truth_kind == "position" and len(seq) == 3
    frames = list(seq)
    assert len(frames) == 3 and all(f.gt_pose is None for f in frames)
    # leica sample k at stamps[0] - 25 ms + k * 25 ms;
    # image i at stamps[0] + i * 50 ms -> k = 2i + 1
    for i, f in enumerate(frames):
        np.testing.assert_allclose(f.gt_position, [0.1 * (2 * i + 1), 2.0, 0.5], atol=1e-9)
    assert frames[0].stamp_ns == stamps[0]


def test_asl_errors(tmp_path):
    root = tmp_path / "V1"
    write_asl(root, n=3)
    csv_path = root / "mav0" / "cam0" / "data.csv"
    csv_path.write_text("#timestamp [ns],filename\nabc,x.png\n")
    with pytest.raises(DatasetError, match=r"data.csv: row 1: timestamp 'abc'"):
        open_source(root)
    write_asl(tmp_path / "V2", n=3)
    (tmp_path / "V2" / "mav0" / "cam0" / "sensor.yaml").write_text(
        "intrinsics: [1, 2]\nresolution: [160, 120]\n"
    )
    with pytest.raises(DatasetError, match="intrinsics needs 4 values"):
        open_source(tmp_path / "V2")
    write_asl(tmp_path / "V3", n=3)
    (tmp_path / "V3" / "mav0" / "cam1" / "data.csv").unlink()
    with pytest.raises(DatasetError, match="stereo needs .*cam1/data.csv"):
        open_source(tmp_path / "V3", stereo=True)


# ----------------------------------------------------------------------------- TUM RGB-D


def test_tum_nearest_association(tmp_path):
    root = tmp_path / "rgbd_dataset_freiburg1_xyz"
    (root / "rgb").mkdir(parents=True)
    with open(root / "rgb.txt", "w") as f:
        f.write("# color images\n# file: 'rgbd_dataset_freiburg1_xyz.bag'\n# timestamp filename\n")
        for i in range(4):
            name = f"rgb/1305031102.{175304 + 33000 * i}.png"
            cv2.imwrite(str(root / name), _image(i, 640, 480))
            f.write(f"1305031102.{175304 + 33000 * i} {name}\n")
    with open(root / "groundtruth.txt", "w") as f:
        f.write("# ground truth trajectory\n# timestamp tx ty tz qx qy qz qw\n")
        for k in range(12):  # 100 Hz, offset 3 ms from the images
            t = 1305031102.178304 + 0.01 * k
            f.write(f"{t:.6f} {k * 0.1:.4f} 0.0 0.0 0.0 0.0 0.0 1.0\n")
    seq = open_source(root)
    assert seq.kind == "tum" and seq.ground_truth_kind == "pose"
    frames = list(seq)
    assert frames[0].stamp_ns == 1_305_031_102_175_304_000
    np.testing.assert_allclose(
        frames[0].camera_info.K[0], [517.3, 0, 318.6]
    )  # freiburg1 calibration
    assert frames[0].camera_info.D.size == 5 and frames[0].encoding == "mono8"
    # image 0 at .175304: nearest GT sample is k = 0 (.178304, 3 ms away)
    assert frames[0].gt_pose[0, 3] == pytest.approx(0.0)
    # image 2 at .241304: nearest is k = 6 (.238304, 3 ms) rather than k = 7 (7 ms)
    assert frames[2].gt_pose[0, 3] == pytest.approx(0.6)
    # image 3 at .274304: k = 10 (.278304, 4 ms) rather than k = 9 (6 ms)
    assert frames[3].gt_pose[0, 3] == pytest.approx(1.0)
    # with a 2 ms window only image 1 (.208304, sample k = 3 exactly) gets ground truth
    tight = [f.gt_pose is not None for f in open_source(root, max_difference=0.002)]
    assert tight == [False, True, False, False]
    (root / "groundtruth.txt").write_text("1305031102.0 1 2 3 0 0 0\n")
    with pytest.raises(
        DatasetError, match="groundtruth.txt:1: expected 'timestamp tx ty tz qx qy qz qw'"
    ):
        open_source(root)


# ----------------------------------------------------------------------------- folders


def test_folder_rate_and_intrinsics_yaml(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in (3, 1, 2):
        colour = cv2.cvtColor(_image(i), cv2.COLOR_GRAY2BGR)
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), colour)
    (folder / "notes.txt").write_text("not an image")
    calib = tmp_path / "cam.yaml"
    calib.write_text(
        "image_width: 160\nimage_height: 120\ncamera_name: test\n"
        "camera_matrix:\n  rows: 3\n  cols: 3\n  data: [150, 0, 79.5, 0, 151, 59.5, 0, 0, 1]\n"
        "distortion_model: plumb_bob\ndistortion_coefficients:\n  rows: 1\n  cols: 5\n"
        "  data: [0.1, -0.2, 0, 0, 0]\n"
    )
    seq = open_source(folder, rate_hz=4.0, intrinsics=calib)
    frames = list(seq)
    assert seq.kind == "folder" and len(frames) == 3
    assert [Path(f.source).name for f in frames] == [
        "frame_001.png",
        "frame_002.png",
        "frame_003.png",
    ]
    assert [f.stamp_ns for f in frames] == [
        DEFAULT_BASE_TIME_NS + i * 250_000_000 for i in range(3)
    ]
    assert frames[0].encoding == "bgr8" and frames[0].image.shape == (120, 160, 3)
    np.testing.assert_allclose(frames[0].camera_info.K[:2], [[150, 0, 79.5], [0, 151, 59.5]])
    assert frames[0].gt_pose is None
    # without calibration: an assumed, centred pinhole
    seq2 = open_source(folder)
    assert seq2.intrinsics_source == "assumed" and seq2.camera_info.K[0, 0] == 160
    # calibration for another size: frames are flagged, not silently used
    calib.write_text("fx: 100\nfy: 100\ncx: 50\ncy: 50\nwidth: 100\nheight: 100\n")
    frames = list(open_source(folder, intrinsics=calib))
    assert not frames[0].ok and "calibration is for 100x100" in frames[0].error


def test_intrinsics_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera_matrix: [1, 2\n")
    with pytest.raises(DatasetError, match="bad.yaml is not valid YAML"):
        read_intrinsics_yaml(bad)
    bad.write_text("foo: 1\n")
    with pytest.raises(DatasetError, match="no intrinsics found"):
        read_intrinsics_yaml(bad, (10, 10))
    with pytest.raises(DatasetError, match="does not exist"):
        read_intrinsics_yaml(tmp_path / "none.yaml")
    opencv = tmp_path / "opencv.yaml"
    opencv.write_text("%YAML:1.0\n---\nfx: 10\nfy: 11\ncx: 5\ncy: 6\n")
    info = read_intrinsics_yaml(opencv, (20, 12))
    assert (info.width, info.height) == (20, 12) and info.K[1, 1] == 11


def test_detect_and_option_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="cannot tell what"):
        detect_kind(tmp_path / "empty")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a bag"):
        open_source(tmp_path / "file.txt")
    write_tartanair(tmp_path / "P", n=2, stereo=False)
    with pytest.raises(DatasetError, match="topic.* do not apply to a tartanair source"):
        open_source(tmp_path / "P", topic="/cam")
    with pytest.raises(DatasetError, match="unknown source kind"):
        open_source(tmp_path / "P", kind="kitti")
