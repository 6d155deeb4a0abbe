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

"""launch_testing: frontend_node on a synthetic image stream (needs ROS 2).

The node starts with randomly initialised (generated) SuperPoint and SuperGlue
weights; the test publishes camera_info and a short stream of textured images
whose content shifts from frame to frame, and checks that typed outputs arrive
stamped with the stamps and frame id of the input images. Frames are sent one
at a time, each after the previous one's keypoints arrived, so none is dropped.
"""

import array
import tempfile
import time
import unittest

import numpy as np
import pytest

rclpy = pytest.importorskip(
    'rclpy', reason='rclpy not found: source a ROS 2 installation and the workspace')
launch = pytest.importorskip('launch', reason='launch not found (ROS 2)')
launch_ros_actions = pytest.importorskip('launch_ros.actions', reason='launch_ros not found')
launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing not found (ros-<distro>-launch-testing)')
launch_testing_actions = pytest.importorskip('launch_testing.actions')
launch_testing_asserts = pytest.importorskip('launch_testing.asserts')
torch = pytest.importorskip(
    'torch', reason='torch is needed to generate the random network weights the node loads')
spsg_msgs = pytest.importorskip(
    'spsg_ros_msgs.msg', reason='spsg_ros_msgs not built: colcon build the workspace first')
sensor_msgs = pytest.importorskip('sensor_msgs.msg')
nav_msgs = pytest.importorskip('nav_msgs.msg')
builtin_interfaces = pytest.importorskip('builtin_interfaces.msg')

WIDTH, HEIGHT = 160, 120
FRAME_ID = 'test_camera_optical'
STAMPS_NS = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(4)]


def generate_weights(folder):
    """Save seeded random SuperPoint and SuperGlue state dicts; return their paths."""
    from spsg_ros.networks.superglue import SuperGlue
    from spsg_ros.networks.superpoint import SuperPoint
    torch.manual_seed(0)
    paths = {'superpoint': f'{folder}/superpoint_random.pth',
             'superglue': f'{folder}/superglue_random.pth'}
    torch.save(SuperPoint().state_dict(), paths['superpoint'])
    torch.save(SuperGlue().state_dict(), paths['superglue'])
    return paths


def textured_frames(count, shift=2):
    """Shifted crops of one image with blobs and edges (many keypoints)."""
    import cv2
    rng = np.random.default_rng(0)
    base = np.full((HEIGHT + 20, WIDTH + 40), 90, np.uint8)
    for _ in range(120):
        x, y = int(rng.integers(0, WIDTH + 40)), int(rng.integers(0, HEIGHT + 20))
        size, color = int(rng.integers(3, 16)), int(rng.integers(0, 256))
        cv2.rectangle(base, (x, y), (x + size, y + size), color, -1)
    return [np.ascontiguousarray(base[10:10 + HEIGHT, 4 + i * shift:4 + i * shift + WIDTH])
            for i in range(count)]


def stamp_msg(stamp_ns):
    return builtin_interfaces.Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def stamp_ns(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.mark.launch_test
def generate_test_description():
    weights = generate_weights(tempfile.mkdtemp(prefix='spsg_ros_launch_test_'))
    frontend = launch_ros_actions.Node(
        package='spsg_ros', executable='frontend_node', name='frontend_node',
        output='screen',
        parameters=[{
            'superpoint_weights': weights['superpoint'],
            'superglue_weights': weights['superglue'],
            'max_keypoints': 200,
            'sinkhorn_iterations': 20,
            'image_topic': '/spsg_test/image_raw',
            'camera_info_topic': '/spsg_test/camera_info',
        }])
    return launch.LaunchDescription([frontend, launch_testing_actions.ReadyToTest()]), {
        'frontend': frontend}


class TestFrontendOutputs(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = rclpy.create_node('spsg_ros_launch_test_probe')

    @classmethod
    def tearDownClass(cls):
        cls.probe.destroy_node()
        rclpy.shutdown()

    def _spin_until(self, condition, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rclpy.spin_once(self.probe, timeout_sec=0.1)
            if condition():
                return True
        return False

    def test_outputs_carry_input_stamps(self, proc_output):
        received = {'keypoints': [], 'matches': [], 'relative_pose': [],
                    'frontend_status': [], 'odometry': []}
        types = {'keypoints': spsg_msgs.Keypoints, 'matches': spsg_msgs.Matches,
                 'relative_pose': spsg_msgs.RelativePose,
                 'frontend_status': spsg_msgs.FrontendStatus, 'odometry': nav_msgs.Odometry}
        subscriptions = [
            self.probe.create_subscription(types[topic], f'/{topic}',
                                           lambda msg, t=topic: received[t].append(msg), 10)
            for topic in received]
        image_pub = self.probe.create_publisher(sensor_msgs.Image, '/spsg_test/image_raw', 10)
        info_pub = self.probe.create_publisher(
            sensor_msgs.CameraInfo, '/spsg_test/camera_info', 10)
        # the node loads torch and the weights before it subscribes
        self.assertTrue(self._spin_until(lambda: image_pub.get_subscription_count() > 0, 120),
                        'frontend_node never subscribed to the image topic')

        for index, (image, stamp) in enumerate(zip(textured_frames(len(STAMPS_NS)), STAMPS_NS)):
            info = sensor_msgs.CameraInfo()
            info.header.stamp, info.header.frame_id = stamp_msg(stamp), FRAME_ID
            info.width, info.height = WIDTH, HEIGHT
            info.distortion_model = 'plumb_bob'
            info.d = [0.0] * 5
            info.k = np.array([100.0, 0, WIDTH / 2, 0, 100.0, HEIGHT / 2, 0, 0, 1])
            info.p = np.array([100.0, 0, WIDTH / 2, 0, 0, 100.0, HEIGHT / 2, 0, 0, 0, 1, 0])
            info_pub.publish(info)
            msg = sensor_msgs.Image()
            msg.header.stamp, msg.header.frame_id = stamp_msg(stamp), FRAME_ID
            msg.height, msg.width, msg.encoding = HEIGHT, WIDTH, 'mono8'
            msg.is_bigendian, msg.step = 0, WIDTH
            msg.data = array.array('B', image.tobytes())
            image_pub.publish(msg)
            self.assertTrue(
                self._spin_until(lambda: len(received['keypoints']) > index, 60),
                f'no keypoints for frame {index}')
        self._spin_until(lambda: len(received['frontend_status']) >= len(STAMPS_NS), 10)

        keypoints = received['keypoints']
        self.assertEqual([stamp_ns(m) for m in keypoints], STAMPS_NS)
        for msg in keypoints:
            self.assertEqual(msg.header.frame_id, FRAME_ID)
            self.assertEqual((msg.image_width, msg.image_height), (WIDTH, HEIGHT))
            self.assertEqual(len(msg.descriptors), len(msg.scores) * msg.descriptor_dim)
        for topic in ('relative_pose', 'frontend_status', 'odometry'):
            self.assertEqual([stamp_ns(m) for m in received[topic]], STAMPS_NS, topic)
        # matches exist from the second frame on, each against the frame before
        self.assertEqual([stamp_ns(m) for m in received['matches']], STAMPS_NS[1:])
        for msg, reference in zip(received['matches'], STAMPS_NS):
            self.assertEqual(msg.reference_header.stamp, stamp_msg(reference))
            self.assertEqual(msg.kind, spsg_msgs.Matches.KIND_TEMPORAL)
        self.assertFalse(received['relative_pose'][0].valid)
        self.assertTrue(all(m.header.frame_id == FRAME_ID for m in received['frontend_status']))
        for subscription in subscriptions:
            self.probe.destroy_subscription(subscription)


@launch_testing.post_shutdown_test()
class TestFrontendShutdown(unittest.TestCase):

    def test_clean_exit(self, proc_info):
        launch_testing_asserts.assertExitCodes(proc_info)
