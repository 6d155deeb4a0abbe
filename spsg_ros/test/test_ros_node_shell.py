"""frontend_node driven end to end without ROS 2.

rclpy and the other ROS Python packages cannot be installed here, so this test
puts minimal stand-ins for the APIs the node uses (rclpy Node, QoS,
rcl_interfaces, message_filters, diagnostic_updater, cv_bridge) into
``sys.modules`` and hands the node real message classes built by rosbags from
the ROS 2 type store and our .msg files. The node's own code then runs for real:
parameter declaration and validation, callbacks, the worker thread, the
frontend with generated weights, conversions and publishing.
The launch_testing test (test_ros_launch_integration.py) covers a real ROS 2.
"""
from __future__ import annotations

import importlib
import sys
import types as pytypes

import numpy as np
import pytest

pytest.importorskip("rosbags")
pytest.importorskip("torch")

from conftest import textured_image  # noqa: E402
from spsg_ros.bagio.typestore import get_spsg_typestore  # noqa: E402
from spsg_ros.ros import conversions as conv  # noqa: E402


class FakeParameter:
    def __init__(self, name, value):
        self.name, self.value = name, value


class FakeLogger:
    def __init__(self):
        self.records = []

    def _log(self, level, text, **kwargs):
        self.records.append((level, str(text)))

    def info(self, text, **kwargs):
        self._log("info", text)

    def warning(self, text, **kwargs):
        self._log("warning", text)

    def error(self, text, **kwargs):
        self._log("error", text)

    def fatal(self, text, **kwargs):
        self._log("fatal", text)


class FakePublisher:
    def __init__(self, msg_type, topic, qos):
        self.msg_type, self.topic, self.qos = msg_type, topic, qos
        self.messages = []
        self.subscribers = 0

    def publish(self, msg):
        assert isinstance(msg, self.msg_type), f"{self.topic}: published {type(msg).__name__}"
        self.messages.append(msg)

    def get_subscription_count(self):
        return self.subscribers


class FakeSubscription:
    def __init__(self, msg_type, topic, callback, qos):
        self.msg_type, self.topic, self.callback, self.qos = msg_type, topic, callback, qos


class FakeNode:
    overrides: dict = {}

    def __init__(self, name, **kwargs):
        self.name = name
        self.params, self.descriptors = {}, {}
        self.publishers, self.subscriptions = {}, {}
        self.param_callbacks = []
        self.logger = FakeLogger()
        self.destroyed = False

    def declare_parameter(self, name, value, descriptor=None):
        assert name not in self.params, f"{name} declared twice"
        self.params[name] = self.overrides.get(name, value)
        self.descriptors[name] = descriptor
        return FakeParameter(name, self.params[name])

    def get_parameter(self, name):
        return FakeParameter(name, self.params[name])

    def set_parameters(self, parameters):
        for callback in self.param_callbacks:
            result = callback(parameters)
            if not result.successful:
                return result
        for p in parameters:
            self.params[p.name] = p.value
        return result

    def add_on_set_parameters_callback(self, callback):
        self.param_callbacks.append(callback)

    def create_publisher(self, msg_type, topic, qos):
        assert topic not in self.publishers
        self.publishers[topic] = FakePublisher(msg_type, topic, qos)
        return self.publishers[topic]

    def create_subscription(self, msg_type, topic, callback, qos):
        self.subscriptions[topic] = FakeSubscription(msg_type, topic, callback, qos)
        return self.subscriptions[topic]

    def get_logger(self):
        return self.logger

    def destroy_node(self):
        self.destroyed = True


class Record:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class FakeStat:
    def __init__(self):
        self.level, self.message, self.values = None, "", {}

    def summary(self, level, message):
        self.level, self.message = level, message

    def add(self, key, value):
        self.values[key] = value


def build_fake_ros(typestore):
    """Module name -> stand-in module."""
    def module(name, **attrs):
        mod = pytypes.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    class ReliabilityPolicy:
        RELIABLE, BEST_EFFORT = "reliable", "best_effort"

    class QoSProfile(Record):
        pass

    class Updater:
        instances = []

        def __init__(self, node, period=1.0):
            self.tasks, self.hardware_id = [], None
            Updater.instances.append(self)

        def setHardwareID(self, hardware_id):  # noqa: N802 - diagnostic_updater API
            self.hardware_id = hardware_id

        def add(self, name, fn):
            self.tasks.append((name, fn))

    class MfSubscriber:
        def __init__(self, node, msg_type, topic, qos_profile=10):
            self.topic, self.qos = topic, qos_profile

    class ApproximateTimeSynchronizer:
        instances = []

        def __init__(self, subscribers, queue_size, slop):
            self.subscribers, self.queue_size, self.slop = subscribers, queue_size, slop
            self.callbacks = []
            ApproximateTimeSynchronizer.instances.append(self)

        def registerCallback(self, callback):  # noqa: N802 - message_filters API
            self.callbacks.append(callback)

    class BrokenCvBridge:
        """Humble's cv_bridge under NumPy 2 fails at conversion time."""

        def imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
            raise AttributeError("_ARRAY_API not found")

    def msg_module(package):
        prefix = f"{package}/msg/"
        return module(f"{package}.msg", **{name[len(prefix):]: cls
                                          for name, cls in typestore.types.items()
                                          if name.startswith(prefix)})

    modules = {
        "rclpy": module("rclpy", init=lambda args=None: None, spin=lambda node: None,
                        try_shutdown=lambda: None,
                        logging=pytypes.SimpleNamespace(get_logger=lambda name: FakeLogger())),
        "rclpy.node": module("rclpy.node", Node=FakeNode),
        "rclpy.executors": module("rclpy.executors",
                                  ExternalShutdownException=type("ESE", (Exception,), {})),
        "rclpy.qos": module("rclpy.qos", qos_profile_sensor_data=QoSProfile(
            depth=5, reliability=ReliabilityPolicy.BEST_EFFORT), QoSProfile=QoSProfile,
            ReliabilityPolicy=ReliabilityPolicy),
        "rcl_interfaces": module("rcl_interfaces"),
        "rcl_interfaces.msg": module("rcl_interfaces.msg", ParameterDescriptor=Record,
                                     IntegerRange=Record, FloatingPointRange=Record,
                                     SetParametersResult=Record),
        "diagnostic_msgs": module("diagnostic_msgs"),
        "diagnostic_msgs.msg": module("diagnostic_msgs.msg", DiagnosticStatus=Record(
            OK=0, WARN=1, ERROR=2)),
        "diagnostic_updater": module("diagnostic_updater", Updater=Updater),
        "message_filters": module("message_filters", Subscriber=MfSubscriber,
                                  ApproximateTimeSynchronizer=ApproximateTimeSynchronizer),
        "cv_bridge": module("cv_bridge", CvBridge=BrokenCvBridge),
    }
    for package in ("builtin_interfaces", "std_msgs", "sensor_msgs", "geometry_msgs", "nav_msgs",
                    "spsg_ros_msgs"):
        modules[package] = module(package)
        modules[f"{package}.msg"] = msg_module(package)
    return modules


@pytest.fixture
def node_module(monkeypatch):
    typestore = get_spsg_typestore("humble")
    for name, mod in build_fake_ros(typestore).items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, "spsg_ros.ros.frontend_node", raising=False)
    module = importlib.import_module("spsg_ros.ros.frontend_node")
    yield module, typestore
    sys.modules.pop("spsg_ros.ros.frontend_node", None)


@pytest.fixture
def make_node(node_module, generated_weights, monkeypatch):
    module, typestore = node_module
    created = []

    def make(**overrides):
        base = {"superpoint_weights": str(generated_weights["superpoint"]),
                "superglue_weights": str(generated_weights["superglue"]),
                "max_keypoints": 200, "sinkhorn_iterations": 20}
        base.update(overrides)
        monkeypatch.setattr(FakeNode, "overrides", base)
        node = module.FrontendNode()
        created.append(node)
        return node

    yield make, typestore
    for node in created:
        if not node.destroyed:
            node.destroy_node()


def camera_info_msg(typestore, stamp, frame, fx=160.0, baseline=None, size=(160, 120)):
    types = conv.MessageTypes.from_typestore(typestore)
    p = np.array([fx, 0, size[0] / 2, 0, 0, fx, size[1] / 2, 0, 0, 0, 1, 0.0])
    if baseline:
        p[3] = -fx * baseline
    roi = typestore.types["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False)
    return types.CameraInfo(header=conv.make_header(types, stamp, frame), height=size[1],
                            width=size[0], distortion_model="plumb_bob", d=np.zeros(5),
                            k=np.array([fx, 0, size[0] / 2, 0, fx, size[1] / 2, 0, 0, 1.0]),
                            r=np.eye(3).ravel(), p=p, binning_x=0, binning_y=0, roi=roi)


def image_msg(typestore, image, stamp, frame, encoding="mono8"):
    types = conv.MessageTypes.from_typestore(typestore)
    return conv.array_to_image_msg(types, image, encoding, stamp, frame)


def frames(count, shift=2, size=(160, 120)):
    base = textured_image(size[1] + 20, size[0] + 40, seed=4)
    return [np.ascontiguousarray(base[10:10 + size[1], 4 + i * shift: 4 + i * shift + size[0]])
            for i in range(count)]


def stamps_of(publisher):
    return [conv.header_stamp_ns(m) for m in publisher.messages]


def test_mono_node_end_to_end(make_node):
    make, typestore = make_node
    node = make(matcher="nn")  # random SuperGlue weights match little; NN on random SuperPoint does
    # every parameter has a descriptor with a description, and numbers a range
    for name, descriptor in node.descriptors.items():
        assert descriptor.description, name
    assert node.descriptors["max_keypoints"].integer_range[0].to_value == 100000
    assert node.descriptors["match_threshold"].floating_point_range[0].from_value == 0.0
    assert node.descriptors["mode"].read_only
    # inputs on sensor-data QoS, outputs reliable
    assert node.subscriptions["image_raw"].qos.reliability == "best_effort"
    assert node.publishers["keypoints"].qos.reliability == "reliable"

    node.subscriptions["camera_info"].callback(camera_info_msg(typestore, 1, "cam"))
    matches_image = node.publishers["matches_image"]
    stamps = [1_000_000_000 + i * 33_000_000 for i in range(3)]
    for i, (image, stamp) in enumerate(zip(frames(3), stamps)):
        if i == 2:
            matches_image.subscribers = 1   # drawn only while someone subscribes
        node.subscriptions["image_raw"].callback(image_msg(typestore, image, stamp, "cam"))
        assert node._worker.wait_idle(60)
    pubs = node.publishers
    assert node._worker.errors == 0, node._worker.last_error
    assert stamps_of(pubs["keypoints"]) == stamps
    assert stamps_of(pubs["relative_pose"]) == stamps
    assert stamps_of(pubs["frontend_status"]) == stamps
    assert stamps_of(pubs["odometry"]) == stamps
    assert stamps_of(pubs["matches"]) == stamps[1:]       # no reference for the first frame
    assert stamps_of(matches_image) == [stamps[2]]
    assert all(m.header.frame_id == "cam" for m in pubs["keypoints"].messages)
    match_msg = pubs["matches"].messages[-1]
    assert conv.time_to_ns(match_msg.reference_header.stamp) == stamps[1]
    assert len(match_msg.current_indices) > 10
    poses = pubs["relative_pose"].messages
    assert not poses[0].valid and "no reference" in poses[0].status
    # a sideways image shift is no valid mono motion; the pose message reports it either way
    assert poses[2].status and poses[2].num_matches == len(match_msg.current_indices)
    assert pubs["odometry"].messages[0].header.frame_id == "odom"
    assert pubs["odometry"].messages[0].child_frame_id == "cam"
    assert len(pubs["trajectory"].messages[-1].poses) == 3
    picture, encoding = conv.image_msg_to_array(matches_image.messages[0])
    assert encoding == "bgr8" and picture.shape == (120, 330, 3)
    status = pubs["frontend_status"].messages[-1]
    assert status.backend == "torch" and status.num_keypoints > 0 and status.latency_ms > 0
    # the broken cv_bridge was dropped for the built-in conversion, with a warning
    assert node._bridge is None
    assert any("cv_bridge failed" in text for level, text in node.logger.records)

    # bad input: logged and counted, the node keeps going
    bad = image_msg(typestore, frames(1)[0], stamps[-1] + 1, "cam")
    bad.encoding = "yuv422"
    node.subscriptions["image_raw"].callback(bad)
    assert node._worker.wait_idle(30)
    assert node._bad_inputs == 1 and node._worker.errors == 0
    assert any("unsupported image encoding 'yuv422'" in text for _, text in node.logger.records)
    stat = FakeStat()
    name, task = sys.modules["diagnostic_updater"].Updater.instances[-1].tasks[0]
    task(stat)
    assert stat.level == 1 and "bad input image" in stat.message
    for key in ("backend", "latency p50 (ms)", "latency p90 (ms)", "input rate (Hz)",
                "output rate (Hz)", "frames dropped"):
        assert key in stat.values
    assert stat.values["frames processed"] == "4"

    # runtime parameter changes: validated, applied from the next frame
    Param = FakeParameter
    rejected = node.set_parameters([Param("max_keypoints", -7)])
    assert not rejected.successful and "below the minimum" in rejected.reason
    rejected = node.set_parameters([Param("matcher", "superglue")])
    assert not rejected.successful and "read-only" in rejected.reason
    rejected = node.set_parameters([Param("resize", [0])])
    assert not rejected.successful and "resize" in rejected.reason
    accepted = node.set_parameters([Param("max_keypoints", 50), Param("publish_tf", False)])
    assert accepted.successful
    node.subscriptions["image_raw"].callback(image_msg(typestore, frames(1)[0], stamps[-1] + 2, "cam"))
    assert node._worker.wait_idle(60)
    assert len(pubs["keypoints"].messages[-1].scores) <= 50
    assert node._frontend.config["superpoint"]["max_keypoints"] == 50

    # an image without frame id: outputs keep the empty id, odometry names a child frame
    node.subscriptions["image_raw"].callback(image_msg(typestore, frames(1)[0], stamps[-1] + 3, ""))
    assert node._worker.wait_idle(60)
    assert pubs["keypoints"].messages[-1].header.frame_id == ""
    assert pubs["odometry"].messages[-1].child_frame_id == "camera"

    node.destroy_node()
    assert not node._worker.running and node.destroyed


def test_stereo_node_publishes_right_keypoints_and_stereo_matches(make_node):
    make, typestore = make_node
    node = make(mode="stereo", input_qos="reliable", output_qos="best_effort",
                match_threshold=0.0)
    sync = sys.modules["message_filters"].ApproximateTimeSynchronizer.instances[-1]
    assert (sync.queue_size, sync.slop) == (10, 0.02)
    assert [s.topic for s in sync.subscribers] == ["left/image_raw", "right/image_raw"]
    assert sync.subscribers[0].qos.reliability == "reliable"
    assert node.publishers["keypoints"].qos.reliability == "best_effort"
    node.subscriptions["left/camera_info"].callback(camera_info_msg(typestore, 1, "left"))
    node.subscriptions["right/camera_info"].callback(
        camera_info_msg(typestore, 1, "right", baseline=0.1))
    images = frames(4, shift=3)
    node.publishers["matches_image"].subscribers = 1
    stamps = [2_000_000_000, 2_050_000_000]
    for i, stamp in enumerate(stamps):
        # the right image sees the scene shifted by the disparity
        left = image_msg(typestore, images[i + 1], stamp, "left")
        right = image_msg(typestore, images[i], stamp + 1000, "right")
        sync.callbacks[0](left, right)
        assert node._worker.wait_idle(60)
    pubs = node.publishers
    assert node._worker.errors == 0, node._worker.last_error
    assert stamps_of(pubs["keypoints"]) == stamps
    right_kp = pubs["right/keypoints"].messages
    assert [conv.header_stamp_ns(m) for m in right_kp] == [s + 1000 for s in stamps]
    assert all(m.header.frame_id == "right" for m in right_kp)
    stereo = pubs["stereo_matches"].messages[-1]
    assert stereo.kind == 1 and stereo.reference_header.frame_id == "right"
    assert len(stereo.current_indices) > 0   # random SuperGlue weights: few, but some
    assert stamps_of(pubs["matches"]) == stamps[1:]
    picture, _ = conv.image_msg_to_array(pubs["matches_image"].messages[-1])
    assert picture.shape == (120, 330, 3)    # left beside right
    # a pair the frontend flags (sizes differ): flagged status, matches image still drawn
    left = image_msg(typestore, images[0], 2_100_000_000, "left")
    right = image_msg(typestore, np.ascontiguousarray(images[0][:90, :120]), 2_100_000_000, "right")
    sync.callbacks[0](left, right)
    assert node._worker.wait_idle(60)
    assert node._worker.errors == 0, node._worker.last_error
    status = pubs["frontend_status"].messages[-1]
    assert not status.ok and "differ in size" in status.status
    assert conv.header_stamp_ns(pubs["matches_image"].messages[-1]) == 2_100_000_000
    # the left intrinsics carry the baseline of the right projection
    assert node._camera_info("left").baseline == pytest.approx(0.1)
    node.subscriptions["right/camera_info"].callback(camera_info_msg(typestore, 2, "right"))
    left_info = node._camera_info("left")     # no baseline now, intrinsics still used
    assert left_info is not None and left_info.baseline is None
    assert any("stereo baseline unknown" in text for _, text in node.logger.records)


def test_invalid_startup_parameters_fail_clearly(make_node):
    make, _ = make_node
    with pytest.raises(ValueError, match="invalid parameter: mode = 'trinocular'"):
        make(mode="trinocular")


def test_main_reports_startup_errors(node_module, monkeypatch):
    module, _ = node_module
    logged = []

    def failing_node():
        raise RuntimeError("weights not found")

    monkeypatch.setattr(module, "FrontendNode", failing_node)
    monkeypatch.setattr(module.rclpy.logging, "get_logger",
                        lambda name: pytypes.SimpleNamespace(fatal=logged.append))
    assert module.main([]) == 1
    assert logged == ["RuntimeError: weights not found"]
