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
launch_testing: the live frontend_node gives exactly what the offline replay gives.

The node and ``spsg-ros replay`` share one core (the frontend pipeline). The test
description renders a short synthetic mono sequence (``spsg-ros make-synthetic``),
writes it as a ROS 2 bag (``spsg-ros to-bag``) and runs ``spsg-ros replay`` on that
bag with the onnxruntime backend and the shared weights; then it starts frontend_node
through the package's frontend.launch.py (namespace camera, sim time, the same
backend, weights and max_keypoints, every other parameter at its default). The test
plays the bag into the node one frame at a time (/clock, camera_info, image; the next
frame only after all outputs of the previous one arrived, so the node's keep-latest
worker drops nothing) and compares every field of the live keypoints, matches,
relative poses, frontend status (less timings) and odometry poses with the replay's
messages. Equality is exact: same models, same runtime, same CPU, same inputs.
The post-shutdown test checks that the node exited with code 0.
"""

from pathlib import Path
import subprocess
import sys
import tempfile
import unittest

import pytest

try:
    import launch
    import launch_testing
    import launch_testing.actions
    import launch_testing.asserts
    from nav_msgs.msg import Odometry
    import numpy as np
    from rosbags.rosbag2 import Reader
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo
    from sensor_msgs.msg import Image
    from spsg_ros.bagio.typestore import get_spsg_typestore
    from spsg_ros_msgs.msg import FrontendStatus
    from spsg_ros_msgs.msg import Keypoints
    from spsg_ros_msgs.msg import Matches
    from spsg_ros_msgs.msg import RelativePose
    from ros_testing import include_frontend_launch
    from ros_testing import params_file
    from ros_testing import ProbeTestCase
    from ros_testing import RELIABLE
    from ros_testing import shared_dir
    from ros_testing import stamp_ns

    HAVE_ROS = True
except ImportError:
    HAVE_ROS = False

ROS_REASON = (
    'needs a sourced ROS 2 environment with launch_testing, rosbags and this '
    'workspace built (source its install/setup.bash)'
)
SHARED = shared_dir() if HAVE_ROS else None
WEIGHTS_DIR = None if SHARED is None else SHARED / 'weights'
HAVE_WEIGHTS = WEIGHTS_DIR is not None and all(
    (WEIGHTS_DIR / name).is_file()
    for name in ('superpoint_seed_ir.pth', 'superglue_random_seed0.pth')
)
WEIGHTS_REASON = (
    'shared weights not found: set SPSG_SHARED_DIR to the folder holding '
    'weights/superpoint_seed_ir.pth and weights/superglue_random_seed0.pth'
)

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_ROS, reason=ROS_REASON)]

FRAMES = 5
MAX_KEYPOINTS = 256
BACKEND = 'onnxruntime'
START_TIME_S = '1700000000'  # realistic stamps (the synthetic sequence starts at 0)
NAMESPACE = 'camera'
SOURCE_TOPICS = {'image': '/camera/image_raw', 'camera_info': '/camera/camera_info'}
# live topic (relative to the node namespace) -> replay bag topic
REPLAY_TOPICS = {
    'keypoints': '/frontend/keypoints',
    'matches': '/frontend/matches',
    'relative_pose': '/frontend/relative_pose',
    'frontend_status': '/frontend/frontend_status',
    'odometry': '/frontend/odometry',
}
# per-run values of FrontendStatus that are not results of the frontend
STATUS_SKIPPED = ('stage_times_ms', 'latency_ms', 'frames_dropped')
CLI_TIMEOUT_S = 300
STARTUP_TIMEOUT_S = 120.0
FRAME_TIMEOUT_S = 60.0
MAX_REPORTED = 40  # differing fields listed in a failure message


def run_cli(*arguments):
    """Run ``spsg-ros ARGUMENTS`` (this interpreter); raise with its output on failure."""
    command = [sys.executable, '-m', 'spsg_ros.cli.main', *[str(a) for a in arguments]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(
            f'{" ".join(command)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}'
        )


def read_bag(path, topics):
    """Return topic -> messages (rosbags objects, bag order) of ``topics`` in the bag."""
    typestore = get_spsg_typestore()
    messages = {topic: [] for topic in topics}
    with Reader(path) as reader:
        connections = [c for c in reader.connections if c.topic in messages]
        for connection, _, raw in reader.messages(connections=connections):
            messages[connection.topic].append(typestore.deserialize_cdr(raw, connection.msgtype))
    return messages


def prepare_source_and_replay():
    """Render the sequence, write the bag, replay it; return the source and replay messages."""
    with tempfile.TemporaryDirectory(prefix='spsg_ros_live_replay_') as folder:
        folder = Path(folder)
        run_cli(
            'make-synthetic', folder / 'sequence', '--frames', FRAMES, '--mono', '--no-progress'
        )
        run_cli(
            'to-bag',
            folder / 'sequence',
            folder / 'source',
            '--start-time',
            START_TIME_S,
            '--no-progress',
        )
        run_cli(
            'replay',
            folder / 'source',
            '--out',
            folder / 'replay',
            '--max-keypoints',
            MAX_KEYPOINTS,
            '--backend',
            BACKEND,
            '--weights-dir',
            WEIGHTS_DIR,
            '--no-progress',
        )
        source = read_bag(folder / 'source', SOURCE_TOPICS.values())
        replay = read_bag(folder / 'replay' / 'results', REPLAY_TOPICS.values())
    return source, {topic: replay[bag_topic] for topic, bag_topic in REPLAY_TOPICS.items()}


@pytest.mark.ros
@pytest.mark.skipif(not HAVE_ROS, reason=ROS_REASON)
@pytest.mark.skipif(not HAVE_WEIGHTS, reason=WEIGHTS_REASON)
@pytest.mark.launch_test
def generate_test_description():
    source, replay = prepare_source_and_replay()
    # the shared weights and MAX_KEYPOINTS; every other parameter at its default
    frontend = include_frontend_launch(
        use_sim_time='true',
        namespace=NAMESPACE,
        backend=BACKEND,
        params_file=params_file({'weights_dir': str(WEIGHTS_DIR), 'max_keypoints': MAX_KEYPOINTS}),
    )
    return launch.LaunchDescription([frontend, launch_testing.actions.ReadyToTest()]), {
        'source': source,
        'replay': replay,
    }


def to_rclpy(source, msg_type):
    """Copy a rosbags message into a new rclpy ``msg_type`` message, field by field."""
    msg = msg_type()
    for name in msg_type.get_fields_and_field_types():
        value = getattr(source, name)
        current = getattr(msg, name)
        if hasattr(current, 'get_fields_and_field_types'):
            value = to_rclpy(value, type(current))
        elif isinstance(current, np.ndarray):  # fixed-size array
            value = np.asarray(value, current.dtype)
        elif hasattr(current, 'typecode'):  # array.array sequence
            value = type(current)(
                current.typecode, np.ascontiguousarray(value, np.dtype(current.typecode)).tobytes()
            )
        setattr(msg, name, value)
    return msg


def _is_array(value):
    return (
        isinstance(value, np.ndarray)
        or hasattr(value, 'typecode')
        or (isinstance(value, (list, tuple)) and not any(isinstance(v, str) for v in value))
    )


def differences(live, replay, path, skipped=()):
    """
    Describe every field where ``live`` (rclpy) and ``replay`` (rosbags) differ.

    Recurses into nested messages; arrays and scalars must be exactly equal
    (NaN equals NaN), strings and string lists identical.
    """
    found = []
    for name in type(live).get_fields_and_field_types():
        if name in skipped:
            continue
        where = f'{path}.{name}'
        a, b = getattr(live, name), getattr(replay, name)
        if hasattr(a, 'get_fields_and_field_types'):
            found += differences(a, b, where)
        elif _is_array(a):
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape:
                found.append(f'{where}: {a.shape[0]} live values, {b.shape[0]} replayed')
            elif not np.array_equal(a, b, equal_nan=a.dtype.kind == 'f'):
                unequal = a != b
                if a.dtype.kind == 'f':
                    unequal &= ~(np.isnan(a) & np.isnan(b))
                detail = ''
                if a.dtype.kind in 'fiu':
                    gap = np.abs(a.astype(np.float64) - b.astype(np.float64))[unequal]
                    detail = f', largest difference {gap.max():.3g}'
                found.append(
                    f'{where}: {int(unequal.sum())} of {a.size} values differ '
                    f'(first at index {int(np.flatnonzero(unequal)[0])}{detail})'
                )
        elif a != b and not (isinstance(a, float) and a != a and b != b):
            found.append(f'{where}: live {a!r}, replay {b!r}')
    return found


class TestLiveEqualsReplay(ProbeTestCase if HAVE_ROS else unittest.TestCase):
    probe_name = 'spsg_live_equals_replay_probe'

    def _spin_until(self, condition, timeout_s):
        return self.probe.spin_until(condition, timeout_s)

    def _spin_for(self, seconds):
        self.probe.spin_for(seconds)

    def test_live_equals_replay(self, source, replay):
        node = self.probe.node
        qos = RELIABLE
        types = {
            'keypoints': Keypoints,
            'matches': Matches,
            'relative_pose': RelativePose,
            'frontend_status': FrontendStatus,
            'odometry': Odometry,
        }
        received = {topic: [] for topic in types}
        subscriptions = [
            node.create_subscription(
                msg_type,
                f'/{NAMESPACE}/{topic}',
                lambda msg, t=topic: received[t].append(msg),
                qos,
            )
            for topic, msg_type in types.items()
        ]
        clock_pub = node.create_publisher(Clock, '/clock', qos)
        info_pub = node.create_publisher(CameraInfo, SOURCE_TOPICS['camera_info'], qos)
        image_pub = node.create_publisher(Image, SOURCE_TOPICS['image'], qos)

        # the node loads the models before it subscribes; outputs sent before our
        # subscriptions matched would be lost (volatile QoS)
        self.assertTrue(
            self._spin_until(
                lambda: (
                    image_pub.get_subscription_count() > 0
                    and info_pub.get_subscription_count() > 0
                    and all(s.get_publisher_count() > 0 for s in subscriptions)
                ),
                STARTUP_TIMEOUT_S,
            ),
            f'frontend_node did not subscribe to {SOURCE_TOPICS["image"]} and '
            f'{SOURCE_TOPICS["camera_info"]} and publish /{NAMESPACE}/{{{", ".join(types)}}} '
            f'within {STARTUP_TIMEOUT_S} s',
        )
        self._spin_for(0.5)  # let the other side of each match settle

        images = source[SOURCE_TOPICS['image']]
        infos = {stamp_ns(msg): msg for msg in source[SOURCE_TOPICS['camera_info']]}
        replay_stamps = {topic: [stamp_ns(msg) for msg in msgs] for topic, msgs in replay.items()}
        self.assertEqual(len(images), FRAMES, 'the source bag holds a wrong number of images')
        self.assertEqual(
            replay_stamps['keypoints'],
            [stamp_ns(msg) for msg in images],
            'the replay did not process every image of the source bag once',
        )
        for index, image in enumerate(images):
            stamp = stamp_ns(image)
            self.assertIn(stamp, infos, f'frame {index}: no camera_info with its stamp')
            clock = Clock()
            clock.clock.sec, clock.clock.nanosec = divmod(stamp, 1_000_000_000)
            clock_pub.publish(clock)
            info_pub.publish(to_rclpy(infos[stamp], CameraInfo))
            # the node keeps only the latest camera_info: let it arrive before the image
            self._spin_for(0.2)
            image_pub.publish(to_rclpy(image, Image))
            expected = [topic for topic, stamps in replay_stamps.items() if stamp in stamps]

            def missing(stamp=stamp, expected=expected):
                return [
                    topic
                    for topic in expected
                    if stamp not in [stamp_ns(msg) for msg in received[topic]]
                ]

            self._spin_until(lambda: not missing(), FRAME_TIMEOUT_S)
            self.assertFalse(
                missing(),
                f'frame {index} (stamp {stamp} ns): no message on '
                + ', '.join(f'/{NAMESPACE}/{t}' for t in missing())
                + f' within {FRAME_TIMEOUT_S} s',
            )
        self._spin_for(0.5)  # anything published late or twice

        for topic in types:
            self.assertEqual(
                [stamp_ns(msg) for msg in received[topic]],
                replay_stamps[topic],
                f'/{NAMESPACE}/{topic}: the node published other frames than '
                f'the replay (stamps in ns)',
            )
        self.assertEqual(len(replay['matches']), FRAMES - 1)
        self.assertGreater(
            sum(msg.valid for msg in replay['relative_pose']),
            0,
            'no valid pose in the replay: the comparison would be too weak',
        )

        found = []
        for topic in types:
            skipped = STATUS_SKIPPED if topic == 'frontend_status' else ()
            for live, offline in zip(received[topic], replay[topic]):
                found += differences(live, offline, f'{topic}[{stamp_ns(live)}]', skipped)
        if found:
            shown = found[:MAX_REPORTED] + (
                [f'... and {len(found) - MAX_REPORTED} more'] if len(found) > MAX_REPORTED else []
            )
            self.fail(
                f'live frontend_node and replay differ in {len(found)} fields:\n'
                + '\n'.join(shown)
            )
        for subscription in subscriptions:
            node.destroy_subscription(subscription)


# launch_testing marks the tests to run after shutdown (a no-op without ROS 2)
post_shutdown_test = launch_testing.post_shutdown_test() if HAVE_ROS else (lambda cls: cls)


@post_shutdown_test
class TestLiveEqualsReplayShutdown(unittest.TestCase):

    def test_node_exit_code(self, proc_info):
        names = list(proc_info.process_names())
        self.assertTrue(
            any(name.startswith('frontend_node') for name in names),
            f'no frontend_node process among {names}',
        )
        launch_testing.asserts.assertExitCodes(proc_info)
