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
launch_testing: mono frontend_node started by frontend.launch.py, on real images.

The node runs with the package's default parameters (backend auto, reliable
input) and the shared weights. One test walks through what a user does, in order:
mono8 and bgr8 images, the match image while subscribed, runtime parameter
changes through the real parameter service, a stamp going backwards, TF, and
the diagnostics. Each frame is sent after the previous one's outputs arrived, so
the node's keep-latest worker drops nothing. The test ends while the node works on
a large frame; the post-shutdown test checks that SIGINT (sent by launch on
shutdown) still ends the node with exit code 0 within launch's 5 s, no traceback.
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

NS = '/mono_test'
FRAME_ID = 'camera_optical'
BASE_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
OUTPUTS = ('keypoints', 'relative_pose', 'frontend_status', 'odometry', 'trajectory')
POSE_OUTPUTS = ('odometry', 'trajectory')  # only for frames with a pose
TIMEOUT_S = 60.0


@pytest.mark.ros
@pytest.mark.launch_test
def generate_test_description():
    weights = shared_dir() / 'weights'
    frontend = include_frontend_launch(
        namespace=NS.strip('/'),
        params_file=params_file({'weights_dir': str(weights), 'max_keypoints': 512}),
    )
    return launch.LaunchDescription([frontend, launch_testing.actions.ReadyToTest()])


class TestMonoFrontend(ProbeTestCase if HAVE_ROS else unittest.TestCase):
    probe_name = 'spsg_mono_test_probe'

    def _send(self, image, index, encoding):
        nanoseconds = BASE_NS + index * PERIOD_NS
        height, width = image.shape[:2]
        self.info_pub.publish(camera_info_msg(width, height, nanoseconds, FRAME_ID))
        self.image_pub.publish(image_msg(image, nanoseconds, FRAME_ID, encoding))
        return nanoseconds

    def _send_and_wait(self, image, index, encoding, extra=(), origin=False):
        """
        Send a frame and wait for its outputs.

        Odometry and trajectory come only with a valid pose, or for the frame that
        starts the trajectory (``origin``): a frame without a pose publishes none.
        """
        always = tuple(t for t in OUTPUTS if t not in POSE_OUTPUTS) + tuple(extra)
        expected = {
            f'{NS}/{topic}': len(self.probe.received[f'{NS}/{topic}']) + 1 for topic in always
        }
        before = {t: len(self.probe.received[f'{NS}/{t}']) for t in POSE_OUTPUTS}
        nanoseconds = self._send(image, index, encoding)
        self.probe.wait_for(expected, TIMEOUT_S)
        published = origin or self._latest('relative_pose').valid
        self.published.append(published)
        if published:
            self.probe.wait_for(
                {f'{NS}/{t}': count + 1 for t, count in before.items()}, TIMEOUT_S
            )
        else:
            self.probe.spin_for(0.5)  # anything published by mistake arrives meanwhile
            for t, count in before.items():
                self.assertEqual(len(self.probe.received[f'{NS}/{t}']), count, t)
        return nanoseconds

    def _latest(self, topic):
        return self.probe.received[f'{NS}/{topic}'][-1]

    def test_frontend_in_use(self):
        probe = self.probe
        # matches_image only from step 2 on: it is drawn only while someone subscribes
        probe.subscribe_outputs(NS, 'mono', skip=('matches_image',))
        probe.subscribe('/diagnostics', DiagnosticArray)
        self.image_pub = probe.node.create_publisher(Image, f'{NS}/image_raw', RELIABLE)
        self.info_pub = probe.node.create_publisher(CameraInfo, f'{NS}/camera_info', RELIABLE)
        probe.wait_for_subscriber(self.image_pub)
        images = freiburg_images(8)

        # 1. mono8 then bgr8 input: every output of every frame, with the input stamps; the
        #    pose outputs for the first frame (the origin) and every frame with a valid pose
        self.published = []
        sent = [self._send_and_wait(images[0], 0, 'mono8', origin=True)]
        sent += [self._send_and_wait(images[i], i, 'mono8') for i in range(1, 3)]
        sent += [self._send_and_wait(images[i], i, 'bgr8') for i in range(3, 5)]
        with_pose = [stamp for stamp, shown in zip(sent, self.published) if shown]
        for topic in OUTPUTS:
            stamps = [stamp_ns(m) for m in probe.received[f'{NS}/{topic}']]
            self.assertEqual(stamps, with_pose if topic in POSE_OUTPUTS else sent, topic)
        # the node publishes exactly the mono outputs of the topic table (the results bag's too)
        self.assertEqual(
            probe.output_topics(NS),
            {f'{NS}/{topic.name}': [topic.type_name] for topic in output_topics('mono')},
        )
        matches = probe.received[f'{NS}/matches']
        self.assertEqual([stamp_ns(m) for m in matches], sent[1:])
        for msg, reference in zip(matches, sent):
            self.assertEqual(time_ns(msg.reference_header.stamp), reference)
            self.assertEqual(msg.kind, Matches.KIND_TEMPORAL)
            self.assertGreater(len(msg.current_indices), 50)
        for msg in probe.received[f'{NS}/keypoints']:
            self.assertEqual(msg.header.frame_id, FRAME_ID)
            self.assertEqual((msg.image_width, msg.image_height), (640, 480))
            self.assertGreater(len(msg.scores), 100)
            self.assertEqual(len(msg.descriptors), len(msg.scores) * msg.descriptor_dim)
        poses = probe.received[f'{NS}/relative_pose']
        self.assertFalse(poses[0].valid)
        self.assertGreaterEqual(sum(p.valid for p in poses[1:]), 3, [p.status for p in poses])
        status = self._latest('frontend_status')
        self.assertTrue(status.ok, status.status)
        self.assertEqual(status.backend, 'onnxruntime')  # auto picks it when installed
        odometry = self._latest('odometry')
        self.assertEqual((odometry.header.frame_id, odometry.child_frame_id), ('odom', FRAME_ID))
        self.assertEqual(len(self._latest('trajectory').poses), len(with_pose))

        # 2. matches_image: published while someone subscribes, one per frame
        probe.subscribe(f'{NS}/matches_image', Image)
        probe.wait_for_publisher(f'{NS}/matches_image')
        shown = self._send_and_wait(images[5], 5, 'bgr8', extra=('matches_image',))
        picture = self._latest('matches_image')
        self.assertEqual(stamp_ns(picture), shown)
        self.assertEqual((picture.encoding, picture.height), ('bgr8', 480))
        self.assertGreaterEqual(picture.width, 2 * 640)  # current beside reference
        probe.unsubscribe(f'{NS}/matches_image')
        probe.spin_until(lambda: probe.node.count_subscribers(f'{NS}/matches_image') == 0, 10.0)
        probe.spin_for(0.5)  # the node's side of the graph catches up

        # 3. runtime parameters through the real parameter service
        node = f'{NS}/frontend_node'
        results = probe.set_parameters(node, {'max_keypoints': -7})
        self.assertFalse(results[0].successful)
        # rclpy checks the declared range before the node's own validation
        self.assertRegex(results[0].reason, 'max_keypoints.*(out of range|below the minimum)')
        results = probe.set_parameters(node, {'resize': [0]})
        self.assertFalse(results[0].successful)
        self.assertIn('resize', results[0].reason)
        results = probe.set_parameters(node, {'matcher': 'nn'})
        self.assertFalse(results[0].successful)
        self.assertIn('read-only', results[0].reason.lower())
        results = probe.set_parameters(node, {'depth_confidence': 1.5})
        self.assertFalse(results[0].successful)
        self.assertRegex(results[0].reason, 'depth_confidence.*(out of range|above the maximum)')
        # LightGlue's runtime parameters are accepted (and rebuild the frontend) with any matcher
        results = probe.set_parameters(
            node, {'max_keypoints': 100, 'publish_tf': True, 'depth_confidence': 0.5}
        )
        self.assertTrue(all(r.successful for r in results), [r.reason for r in results])
        self._subscribe_tf()
        for i in (6, 7):  # a frame with a pose, so that TF has something to carry
            self._send_and_wait(images[i], i, 'mono8')
            if self.published[-1]:
                break
        self.assertTrue(self.published[-1], 'no valid pose after enabling publish_tf')
        self.assertLessEqual(len(self._latest('keypoints').scores), 100)
        tf_odometry = self._latest('odometry')

        # 4. a stamp going backwards (a looped bag): pairing, keyframe and trajectory reset
        self._send_and_wait(images[0], -20, 'mono8', origin=True)
        pose, status = self._latest('relative_pose'), self._latest('frontend_status')
        self.assertFalse(pose.valid)
        self.assertFalse(status.ok)
        self.assertIn('stamp went back', status.status)
        self.assertEqual(len(self._latest('trajectory').poses), 1)
        position = self._latest('odometry').pose.pose.position
        self.assertEqual((position.x, position.y, position.z), (0.0, 0.0, 0.0))
        self._send_and_wait(images[1], -19, 'mono8')
        self.assertEqual(
            time_ns(self._latest('matches').reference_header.stamp), BASE_NS - 20 * PERIOD_NS
        )
        self.assertEqual(len(self._latest('trajectory').poses), 1 + self.published[-1])

        # 5. diagnostics: counts, a real input rate at ~1 frame/s, the reset reported
        probe.spin_for(2.5)
        level, message, values = probe.latest_diagnostics()
        self.assertEqual(values['frames received'], str(len(self.published)))
        self.assertEqual(values['frames without pose'], str(self.published.count(False)))
        self.assertEqual(values['frames dropped'], '0')
        self.assertEqual(values['pairing resets'], '1')
        # drawn for the one frame sent while subscribed, for none of the others
        self.assertEqual(values['match images drawn'], '1')
        self.assertGreater(float(values['input rate (Hz)']), 0.05)
        self.assertGreater(float(values['output rate (Hz)']), 0.05)
        self.assertIn(level, (b'\x00', 0))  # OK again after the reset frame

        # 6. shutdown while busy: a large frame is still in the worker when the test ends
        #    and launch sends SIGINT (checked by the post-shutdown test)
        large = np.tile(images[7], (4, 4, 1))  # 2560 x 1920, several seconds of work
        self._send(large, 30, 'mono8')
        self.assertTrue(
            probe.spin_until(
                lambda: (
                    (probe.latest_diagnostics() or (0, '', {}))[2].get('frames received')
                    == str(len(self.published) + 1)
                ),
                10.0,
            ),
            'the large frame never reached the node',
        )

        # 7. publish_tf (last: skipped where tf2_ros is not built)
        self._check_tf(tf_odometry)

    def _subscribe_tf(self):
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            self._tf = None
            return
        self._tf = []
        self.probe.node.create_subscription(TFMessage, '/tf', self._tf.append, RELIABLE)

    def _check_tf(self, odometry):
        try:
            import tf2_ros  # noqa: F401  the node's TransformBroadcaster needs it
        except ImportError:
            self.skipTest('tf2_ros not built: publish_tf needs setup_jazzy.sh --with-extras')
        self.assertIsNotNone(self._tf)
        self.assertTrue(
            self.probe.spin_until(lambda: len(self._tf) > 0, 10.0),
            'no /tf message after publish_tf:=true',
        )
        transform = self._tf[-1].transforms[0]
        self.assertEqual((transform.header.frame_id, transform.child_frame_id), ('odom', FRAME_ID))
        stamps = [stamp_ns(message.transforms[0]) for message in self._tf]
        self.assertIn(stamp_ns(odometry), stamps)
        transform = self._tf[stamps.index(stamp_ns(odometry))].transforms[0]
        position = odometry.pose.pose.position
        translation = transform.transform.translation
        np.testing.assert_allclose(
            [translation.x, translation.y, translation.z], [position.x, position.y, position.z]
        )


# launch_testing marks the tests to run after shutdown (a no-op without ROS 2)
post_shutdown_test = launch_testing.post_shutdown_test() if HAVE_ROS else (lambda cls: cls)


@post_shutdown_test
class TestMonoShutdown(unittest.TestCase):

    def test_sigint_exits_cleanly(self, proc_info, proc_output):
        # exit code 0: no SIGTERM escalation (launch sends it 5 s after SIGINT), no abort
        launch_testing.asserts.assertExitCodes(proc_info)
        for output in proc_output:
            text = output.text.decode(errors='replace')
            self.assertNotIn('Traceback', text)
            self.assertNotIn('terminate called', text)
