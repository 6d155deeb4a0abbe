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
launch_testing: stereo frontend_node started by frontend.launch.py mode:=stereo.

Left and right images reach the node 5 ms apart (within the default 20 ms
sync_slop) and must come out as one stereo frame: left keypoints, right
keypoints with the right stamp, stereo matches, temporal matches from the second
pair on. A pair 50 ms apart (beyond the slop) publishes nothing, is counted as
unpaired on both sides and turns the diagnostics to WARN; pairs within the slop
then flow again.
"""

import unittest

from conftest import ros_available
from conftest import ROS_REASON
import pytest

HAVE_ROS = ros_available()
if HAVE_ROS:
    from diagnostic_msgs.msg import DiagnosticArray
    import launch
    import launch_testing.actions
    import launch_testing.asserts
    import numpy as np
    from ros_testing import camera_info_msg
    from ros_testing import freiburg_images
    from ros_testing import image_msg
    from ros_testing import include_frontend_launch
    from ros_testing import params_file
    from ros_testing import ProbeTestCase
    from ros_testing import RELIABLE
    from ros_testing import shared_dir
    from ros_testing import stamp_ns
    from ros_testing import time_ns
    from sensor_msgs.msg import CameraInfo
    from sensor_msgs.msg import Image
    from spsg_ros_msgs.msg import Matches
    from spsg_ros.messages.topics import output_topics

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_ROS, reason=ROS_REASON)]

NS = '/stereo_test'
BASE_NS = 1_700_000_100_000_000_000
PERIOD_NS = 100_000_000
OFFSET_NS = 5_000_000  # right image 5 ms after the left one
FAR_OFFSET_NS = 50_000_000  # beyond the default sync_slop of 20 ms
DISPARITY_PX = 12
BASELINE_M = 0.1
SIZE = (640, 480)
OUTPUTS = (
    'keypoints',
    'right/keypoints',
    'stereo_matches',
    'relative_pose',
    'frontend_status',
    'odometry',
)
TIMEOUT_S = 60.0


@pytest.mark.ros
@pytest.mark.launch_test
def generate_test_description():
    weights = shared_dir() / 'weights'
    frontend = include_frontend_launch(
        mode='stereo',
        namespace=NS.strip('/'),
        params_file=params_file({'weights_dir': str(weights), 'max_keypoints': 512}),
    )
    return launch.LaunchDescription([frontend, launch_testing.actions.ReadyToTest()])


def stereo_views(image):
    """Left and right views of one image: the right one sees it DISPARITY_PX to the left."""
    right = np.roll(image, -DISPARITY_PX, axis=1)
    right[:, -DISPARITY_PX:] = 0
    return image, np.ascontiguousarray(right)


class TestStereoFrontend(ProbeTestCase if HAVE_ROS else unittest.TestCase):
    probe_name = 'spsg_stereo_test_probe'

    def _send_pair(self, image, index, offset_ns):
        left_ns = BASE_NS + index * PERIOD_NS
        right_ns = left_ns + offset_ns
        left, right = stereo_views(image)
        for side, nanoseconds in (('left', left_ns), ('right', right_ns)):
            self.publishers[f'{side}/camera_info'].publish(
                camera_info_msg(
                    SIZE[0],
                    SIZE[1],
                    nanoseconds,
                    f'{side}_optical',
                    baseline=BASELINE_M if side == 'right' else None,
                )
            )
        self.publishers['left/image_raw'].publish(image_msg(left, left_ns, 'left_optical', 'bgr8'))
        self.publishers['right/image_raw'].publish(
            image_msg(right, right_ns, 'right_optical', 'bgr8')
        )
        return left_ns, right_ns

    def _counts(self):
        return {f'{NS}/{topic}': len(self.probe.received[f'{NS}/{topic}']) for topic in OUTPUTS}

    def test_pairs_within_and_beyond_the_slop(self):
        probe = self.probe
        probe.subscribe_outputs(NS, 'stereo')
        probe.subscribe('/diagnostics', DiagnosticArray)
        self.publishers = {
            topic: probe.node.create_publisher(msg_type, f'{NS}/{topic}', RELIABLE)
            for topic, msg_type in (
                ('left/image_raw', Image),
                ('right/image_raw', Image),
                ('left/camera_info', CameraInfo),
                ('right/camera_info', CameraInfo),
            )
        }
        for topic in ('left/image_raw', 'right/image_raw'):
            probe.wait_for_subscriber(self.publishers[topic])
        images = freiburg_images(5)

        # 1. pairs 5 ms apart: one stereo frame each, all outputs, the input stamps
        sent = []
        for index in range(3):
            expected = {topic: count + 1 for topic, count in self._counts().items()}
            sent.append(self._send_pair(images[index], index, OFFSET_NS))
            probe.wait_for(expected, TIMEOUT_S)
        left_stamps = [left for left, _ in sent]
        self.assertEqual([stamp_ns(m) for m in probe.received[f'{NS}/keypoints']], left_stamps)
        right_keypoints = probe.received[f'{NS}/right/keypoints']
        self.assertEqual([stamp_ns(m) for m in right_keypoints], [r for _, r in sent])
        self.assertTrue(all(m.header.frame_id == 'right_optical' for m in right_keypoints))
        for msg, (left, right) in zip(probe.received[f'{NS}/stereo_matches'], sent):
            self.assertEqual(msg.kind, Matches.KIND_STEREO)
            self.assertEqual((stamp_ns(msg), time_ns(msg.reference_header.stamp)), (left, right))
            self.assertGreater(len(msg.current_indices), 50)
        temporal = probe.received[f'{NS}/matches']
        self.assertEqual([stamp_ns(m) for m in temporal], left_stamps[1:])
        statuses = probe.received[f'{NS}/frontend_status']
        self.assertTrue(all(s.ok for s in statuses), [s.status for s in statuses])
        # the node publishes exactly the stereo outputs of the topic table (the results bag's too)
        self.assertEqual(
            probe.output_topics(NS),
            {f'{NS}/{topic.name}': [topic.type_name] for topic in output_topics('stereo')},
        )

        # 2. a pair 50 ms apart: no stereo frame, counted on both sides, diagnostics WARN
        before = self._counts()
        self._send_pair(images[3], 3, FAR_OFFSET_NS)
        # the next good pair moves both sides past the far one: it cannot pair any more
        expected = {topic: count + 1 for topic, count in before.items()}
        good = self._send_pair(images[4], 4, OFFSET_NS)
        probe.wait_for(expected, TIMEOUT_S)
        probe.spin_for(1.0)
        self.assertEqual(self._counts(), expected, 'the far pair produced outputs')
        self.assertEqual(stamp_ns(probe.received[f'{NS}/keypoints'][-1]), good[0])
        self.assertTrue(
            probe.spin_until(
                lambda: (
                    (probe.latest_diagnostics() or (0, '', {}))[2].get('unpaired left images')
                    == '1'
                ),
                5.0,
            ),
            probe.latest_diagnostics(),
        )
        level, message, values = probe.latest_diagnostics()
        self.assertEqual(level, b'\x01', message)
        self.assertIn('without a partner', message)
        self.assertEqual(
            (values['unpaired left images'], values['unpaired right images']), ('1', '1')
        )
        self.assertEqual(values['stereo pairs'], '4')
        self.assertEqual(values['frames received'], '4')


# launch_testing marks the tests to run after shutdown (a no-op without ROS 2)
post_shutdown_test = launch_testing.post_shutdown_test() if HAVE_ROS else (lambda cls: cls)


@post_shutdown_test
class TestStereoShutdown(unittest.TestCase):

    def test_sigint_exits_cleanly(self, proc_info, proc_output):
        launch_testing.asserts.assertExitCodes(proc_info)
        for output in proc_output:
            self.assertNotIn('Traceback', output.text.decode(errors='replace'))
