# Copyright 2026 spsg_ros developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Helpers of the launch tests: the launch file, real images, a probe node that records topics.

Imported only by ROS test modules, after they checked that ROS 2 is there.
"""

import os
from pathlib import Path
import tempfile
import time
import unittest

from ament_index_python.packages import get_package_share_directory
import cv2
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
import numpy as np
from rcl_interfaces.msg import Parameter
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.msg import ParameterValue
from rcl_interfaces.srv import SetParameters
import rclpy
import rclpy.node
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
# TUM freiburg1 intrinsics of the shared sequence
FREIBURG_K = (517.3, 516.5, 318.6, 255.3)
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def shared_dir():
    """Return the shared data folder (weights, data) as conftest finds it, or None."""
    env = os.environ.get('SPSG_SHARED_DIR')
    for candidate in ([Path(env)] if env else []) + [REPO_ROOT.parent / 'shared']:
        if (candidate / 'weights').is_dir() and (candidate / 'data').is_dir():
            return candidate
    return None


def freiburg_images(count, size=None):
    """Return the first ``count`` frames of the shared sequence as BGR arrays."""
    frames = sorted((shared_dir() / 'data' / 'freiburg_sequence').glob('*.png'))[:count]
    images = [cv2.imread(str(path), cv2.IMREAD_COLOR) for path in frames]
    if size is not None:
        images = [cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in images]
    return images


def params_file(values):
    """Write ``values`` as a frontend_node parameter file; return its path."""
    import yaml

    handle, path = tempfile.mkstemp(prefix='spsg_ros_test_', suffix='.yaml')
    with os.fdopen(handle, 'w') as stream:
        yaml.safe_dump({'/**/frontend_node': {'ros__parameters': values}}, stream)
    return path


def include_frontend_launch(**arguments):
    """Include the package's frontend.launch.py with launch ``arguments`` (strings)."""
    path = os.path.join(get_package_share_directory('spsg_ros'), 'launch', 'frontend.launch.py')
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(path), launch_arguments=sorted(arguments.items())
    )


def stamp_ns(msg):
    """Return the header stamp of ``msg`` in nanoseconds."""
    return time_ns(msg.header.stamp)


def time_ns(stamp):
    """Return a builtin_interfaces/Time in nanoseconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def set_stamp(header, nanoseconds, frame_id):
    header.stamp.sec, header.stamp.nanosec = divmod(int(nanoseconds), 1_000_000_000)
    header.frame_id = frame_id


def image_msg(image, nanoseconds, frame_id, encoding):
    """Build a sensor_msgs/Image of a BGR ``image`` in ``encoding`` (mono8 or bgr8)."""
    if encoding == 'mono8':
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    msg = Image()
    set_stamp(msg.header, nanoseconds, frame_id)
    msg.height, msg.width = image.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = image.shape[1] * (1 if image.ndim == 2 else image.shape[2])
    msg.data = np.ascontiguousarray(image).tobytes()
    return msg


def camera_info_msg(width, height, nanoseconds, frame_id, baseline=None, size=None):
    """Build a pinhole camera_info of the freiburg intrinsics (scaled to ``size``)."""
    fx, fy, cx, cy = FREIBURG_K
    if size is not None:
        sx, sy = size[0] / 640.0, size[1] / 480.0
        fx, fy, cx, cy = fx * sx, fy * sy, cx * sx, cy * sy
    msg = CameraInfo()
    set_stamp(msg.header, nanoseconds, frame_id)
    msg.width, msg.height = width, height
    msg.distortion_model = 'plumb_bob'
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    tx = 0.0 if baseline is None else -fx * baseline
    msg.p = [fx, 0.0, cx, tx, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


class Probe:
    """A test-side node: records every message of the subscribed topics, waits with reasons."""

    def __init__(self, name):
        self.node = rclpy.create_node(name)
        self.received = {}
        self._subscriptions = {}

    def subscribe(self, topic, msg_type, qos=RELIABLE):
        self.received.setdefault(topic, [])
        self._subscriptions[topic] = self.node.create_subscription(
            msg_type, topic, lambda msg: self.received[topic].append(msg), qos
        )

    def wait_for_publisher(self, topic, timeout_s=10.0):
        subscription = self._subscriptions[topic]
        assert self.spin_until(lambda: subscription.get_publisher_count() > 0, timeout_s), (
            f'no publisher matched {topic} within {timeout_s} s'
        )
        self.spin_for(0.5)  # the publisher side sees the match a moment later

    def unsubscribe(self, topic):
        self.node.destroy_subscription(self._subscriptions.pop(topic))

    def spin_for(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def spin_until(self, condition, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return condition()

    def wait_for(self, counts, timeout_s):
        """Spin until each topic has at least its count; AssertionError naming the short ones."""

        def short():
            return {
                topic: (len(self.received.get(topic, [])), count)
                for topic, count in counts.items()
                if len(self.received.get(topic, [])) < count
            }

        if not self.spin_until(lambda: not short(), timeout_s):
            detail = ', '.join(
                f'{topic}: {have} of {want}' for topic, (have, want) in short().items()
            )
            raise AssertionError(f'after {timeout_s} s these topics fell short: {detail}')

    def wait_for_subscriber(self, publisher, timeout_s=120.0):
        assert self.spin_until(lambda: publisher.get_subscription_count() > 0, timeout_s), (
            f'nobody subscribed to {publisher.topic_name} within {timeout_s} s'
        )

    def set_parameters(self, node_name, values, timeout_s=10.0):
        """Call node_name/set_parameters; return the SetParametersResult list."""
        client = self.node.create_client(SetParameters, f'{node_name}/set_parameters')
        try:
            assert client.wait_for_service(timeout_sec=timeout_s), (
                f'{node_name}/set_parameters not available'
            )
            request = SetParameters.Request(
                parameters=[
                    Parameter(name=name, value=parameter_value(value))
                    for name, value in values.items()
                ]
            )
            future = client.call_async(request)
            assert self.spin_until(future.done, timeout_s), 'set_parameters timed out'
            return future.result().results
        finally:
            self.node.destroy_client(client)

    def subscribe_outputs(self, namespace, mode, skip=()):
        """Subscribe to the frontend's outputs of ``mode`` (topic table) under ``namespace``."""
        import importlib

        from spsg_ros.messages.topics import output_topics
        for topic in output_topics(mode):
            if topic.name not in skip:
                package, _, name = topic.type_name.split('/')
                msg_type = getattr(importlib.import_module(f'{package}.msg'), name)
                self.subscribe(f'{namespace}/{topic.name}', msg_type)

    def output_topics(self, namespace, timeout_s=10.0):
        """
        Return topic -> type names the frontend node publishes under ``namespace``.

        Waits until the graph shows the node's publishers there (discovery lags).
        """
        from spsg_ros.parameters import NODE_NAME

        def found():
            try:
                names = self.node.get_publisher_names_and_types_by_node(NODE_NAME, namespace)
            except rclpy.node.NodeNameNonExistentError:
                return {}
            return {
                topic: sorted(types)
                for topic, types in names
                if topic.startswith(f'{namespace}/')
            }

        self.spin_until(lambda: bool(found()), timeout_s)
        return found()

    def latest_diagnostics(self, topic='/diagnostics'):
        """Key -> value of the frontend's newest diagnostic status, with its level."""
        for array in reversed(self.received.get(topic, [])):
            for status in array.status:
                if 'frontend' in status.name:
                    values = {item.key: item.value for item in status.values}
                    return status.level, status.message, values
        return None

    def destroy(self):
        self.node.destroy_node()


def parameter_value(value):
    """Build the rcl_interfaces ParameterValue of a Python value."""
    if isinstance(value, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    if isinstance(value, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    if isinstance(value, str):
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    if isinstance(value, list):
        return ParameterValue(
            type=ParameterType.PARAMETER_INTEGER_ARRAY, integer_array_value=value
        )
    raise TypeError(f'no parameter type for {value!r}')


class ProbeTestCase(unittest.TestCase):
    """A launch test case with rclpy initialised and a :class:`Probe` for its lifetime."""

    probe_name = 'spsg_test_probe'

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = Probe(cls.probe_name)

    @classmethod
    def tearDownClass(cls):
        cls.probe.destroy()
        rclpy.shutdown()
