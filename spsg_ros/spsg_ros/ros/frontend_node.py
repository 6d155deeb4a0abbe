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
frontend_node: the ROS 2 shell around :class:`spsg_ros.frontend.pipeline.Frontend`.

Subscriptions only store the newest input and wake the worker thread
(:class:`~spsg_ros.ros.worker.LatestFrameWorker`); the worker converts the
image, runs the frontend and publishes every output stamped with the input
image's stamp and frame id. Parameters are described in
:mod:`spsg_ros.ros.parameters`, message conversions in
:mod:`spsg_ros.messages.conversions`.
"""

import os
import signal
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus
import diagnostic_updater
import message_filters
import numpy as np
from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo as CameraInfoMsg
from sensor_msgs.msg import Image as ImageMsg

from .worker import FrameClock
from .worker import LatencyStats
from .worker import LatestFrameWorker
from .worker import OVERHEAD_PARTS
from .worker import OverheadStats
from .worker import RateMeter
from .worker import StereoPairing
from .. import parameters
from ..frontend.config import check_parameters
from ..geometry.trajectory import TrajectoryAccumulator
from ..messages import conversions
from ..messages.references import ReferenceViews
from ..messages.topics import output_topics

# Diagnostics stay WARN this long after a stereo image found no partner.
UNPAIRED_WARN_S = 30.0

# On shutdown, wait this long for a frame in progress (launch escalates to SIGTERM at 5 s).
WORKER_STOP_S = 3.0

# Parameters the worker reads on every frame (changeable at runtime).
_OUTPUT_SETTINGS = (
    'odom_frame_id',
    'odom_child_frame_id',
    'publish_tf',
    'path_max_length',
    'matches_image_max_width',
)


def _descriptor(spec):
    """Build the ParameterDescriptor (description, constraints, range) of ``spec``."""
    descriptor = ParameterDescriptor(
        description=spec.description,
        additional_constraints=spec.constraints(),
        read_only=spec.read_only,
    )
    has_range = spec.min_value is not None and spec.max_value is not None
    if has_range and spec.kind == 'integer':
        descriptor.integer_range = [
            IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value), step=1)
        ]
    elif has_range and spec.kind == 'double':
        descriptor.floating_point_range = [
            FloatingPointRange(
                from_value=float(spec.min_value), to_value=float(spec.max_value), step=0.0
            )
        ]
    return descriptor


def _load_cv_bridge(logger):
    """CvBridge, or None when it is missing or broken (e.g. built for NumPy 1)."""
    try:
        from cv_bridge import CvBridge

        return CvBridge()
    except Exception as error:  # noqa: B902 - ImportError, AttributeError or a NumPy ABI error
        logger.warning(f'cv_bridge unavailable ({error}); using the built-in image conversion')
        return None


class FrontendNode(Node):
    """SuperPoint + SuperGlue (LightGlue, nn) frontend on mono or stereo image topics."""

    def __init__(self):
        super().__init__(parameters.NODE_NAME)
        mode_spec = parameters.PARAMETERS_BY_NAME['mode']
        mode = self.declare_parameter(
            mode_spec.name, mode_spec.default, _descriptor(mode_spec)
        ).value
        if mode not in parameters.MODES:
            raise ValueError(f'invalid parameter: {parameters.validate_value(mode_spec, mode)}')
        self._specs = parameters.for_mode(mode)  # the parameters of this mode only
        for spec in self._specs:
            if spec.name != 'mode':
                self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        values = {
            spec.name: parameters.plain_value(self.get_parameter(spec.name).value)
            for spec in self._specs
        }
        problem = check_parameters(values)
        if problem:
            raise ValueError(f'invalid parameter: {problem}')
        self._values = values
        self._settings = {name: values[name] for name in _OUTPUT_SETTINGS}
        self._settings_lock = threading.Lock()
        self._pending_config = None
        self._mode = values['mode']

        self._types = conversions.MessageTypes.from_python_packages()
        self._bridge = _load_cv_bridge(self.get_logger())
        self._frontend = self._build_frontend(values)
        # the first frontend creates and owns the backend; rebuilt ones share it
        self._backend_owner = self._frontend
        description = self._frontend.backend.describe()
        self.backend_description = dict(description)
        self._backend_label = ', '.join(f'{k}={v}' for k, v in description.items())
        self._log_backend_choice(values['backend'])
        self.get_logger().info(f'{self._mode} frontend ready: {self._backend_label}')

        self._latency = LatencyStats(values['latency_window'])
        # the node's own time per frame (diagnostics; public for in-process measurements)
        self.overhead = OverheadStats(values['latency_window'])
        self._input_rate = RateMeter()
        self._output_rate = RateMeter()
        self._bad_inputs = 0
        self._pictures_drawn = 0  # matches_image is drawn only while someone subscribes
        self._frames_without_pose = 0  # no odometry, path or TF for them (never a copy)
        self._time_resets = 0
        self._last_unpaired = None
        self._shutting_down = False
        self.worker_abandoned = False
        self._pairing = (
            StereoPairing(values['sync_slop'], values['sync_queue_size'])
            if self._mode == 'stereo'
            else None
        )
        self._last_status = 'waiting for images'
        self._last_matcher = ''  # lightglue: layers run and points pruned of the last frame
        self._camera_infos = {}
        self._camera_info_cache = {}
        self._warned = set()
        self._trajectory = TrajectoryAccumulator()
        self._path_poses = []
        self._references = ReferenceViews()  # images of the frames matched against later
        self._tf_broadcaster = None

        self._create_publishers(values)
        self._worker = LatestFrameWorker(self._process, self._on_worker_error)
        self._worker.start()
        self._create_subscriptions(values)

        self._diagnostics = diagnostic_updater.Updater(self)
        self._diagnostics.setHardwareID(description.get('device', description.get('backend')))
        self._diagnostics.add('frontend', self._diagnose)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # --- construction --------------------------------------------------------

    def _build_frontend(self, values, backend=None):
        from ..frontend.pipeline import Frontend

        return Frontend(parameters.frontend_config(values), backend=backend)

    def _create_publishers(self, values):
        reliability = (
            ReliabilityPolicy.RELIABLE
            if values['output_qos'] == 'reliable'
            else ReliabilityPolicy.BEST_EFFORT
        )
        qos = QoSProfile(depth=values['output_depth'], reliability=reliability)
        # one publisher per output of the topic table (spsg_ros.messages.topics)
        self._output_publishers = {
            topic.name: self.create_publisher(
                getattr(self._types, topic.short_type), topic.name, qos
            )
            for topic in output_topics(self._mode)
        }

    def _log_backend_choice(self, requested):
        attempts = getattr(self._frontend.backend, 'auto_attempts', None)
        if requested == 'auto' and attempts:
            tried = '; '.join(f'{name}: {reason}' for name, reason in attempts)
            self.get_logger().info(f'backend auto picked {self._frontend.backend.name} ({tried})')

    def _input_qos(self, values):
        choice = values['input_qos']
        if choice == 'sensor_data':
            return qos_profile_sensor_data
        reliability = (
            ReliabilityPolicy.RELIABLE if choice == 'reliable' else ReliabilityPolicy.BEST_EFFORT
        )
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=values['input_depth'], reliability=reliability
        )

    def _qos_events(self, topic):
        """Warn when a publisher's QoS cannot reach the subscription (no data would flow)."""

        def incompatible(event):
            self._last_status = (
                f'{topic}: a publisher offers an incompatible QoS '
                f'({event.last_policy_kind.name}); with a best-effort '
                'camera driver set input_qos:=sensor_data'
            )
            self._warn_once(f'qos_{topic}', self._last_status)

        return SubscriptionEventCallbacks(incompatible_qos=incompatible)

    def _create_subscriptions(self, values):
        qos = self._input_qos(values)
        if self._mode == 'mono':
            self._info_subscription(values['camera_info_topic'], 'mono', qos)
            self._image_sub = self.create_subscription(
                ImageMsg,
                values['image_topic'],
                self._on_image,
                qos,
                event_callbacks=self._qos_events(values['image_topic']),
            )
            topics = values['image_topic']
        else:
            self._info_subscription(values['left_camera_info_topic'], 'left', qos)
            self._info_subscription(values['right_camera_info_topic'], 'right', qos)
            # message_filters defaults to a reliable QoS: pass the input QoS explicitly
            self._left_sub = message_filters.Subscriber(
                self,
                ImageMsg,
                values['left_image_topic'],
                qos_profile=qos,
                event_callbacks=self._qos_events(values['left_image_topic']),
            )
            self._right_sub = message_filters.Subscriber(
                self,
                ImageMsg,
                values['right_image_topic'],
                qos_profile=qos,
                event_callbacks=self._qos_events(values['right_image_topic']),
            )
            self._sync = message_filters.ApproximateTimeSynchronizer(
                [self._left_sub, self._right_sub], values['sync_queue_size'], values['sync_slop']
            )
            self._sync.registerCallback(self._on_stereo)
            # registered after the synchroniser's own callbacks: they see each image last
            self._left_sub.registerCallback(self._on_stereo_image, 0)
            self._right_sub.registerCallback(self._on_stereo_image, 1)
            topics = f'{values["left_image_topic"]} + {values["right_image_topic"]}'
        self.get_logger().info(f'listening on {topics} ({values["input_qos"]} QoS)')

    def _info_subscription(self, topic, side, qos):
        def store(msg):
            self._camera_infos[side] = msg

        setattr(
            self, f'_info_sub_{side}', self.create_subscription(CameraInfoMsg, topic, store, qos)
        )

    # --- callbacks (executor thread: keep short) ----------------------------

    def _on_image(self, msg):
        clock = FrameClock(time.monotonic())  # first: the arrival the overhead counts from
        self._input_rate.tick()
        self._worker.submit((clock, msg, None))

    def _on_stereo(self, left, right):
        clock = FrameClock(time.monotonic())
        self._input_rate.tick()
        self._pairing.paired(conversions.header_stamp_ns(left), conversions.header_stamp_ns(right))
        self._worker.submit((clock, left, right))

    def _on_stereo_image(self, msg, side):
        if self._pairing.arrived(side, conversions.header_stamp_ns(msg)):
            self._last_unpaired = time.monotonic()
            gap = self._pairing.last_gap_ns / 1e6
            left, right = self._pairing.unpaired
            self._last_status = (
                f'stereo images without a partner within sync_slop '
                f'({self._values["sync_slop"] * 1e3:.1f} ms): {left} left, {right} right; '
                f'last offset {gap:.1f} ms'
            )
            self.get_logger().warning(self._last_status, throttle_duration_sec=5.0)

    def _on_set_parameters(self, changes):
        proposed = dict(self._values)
        for change in changes:
            spec = parameters.PARAMETERS_BY_NAME.get(change.name)
            if spec is None:
                continue  # parameters of rclpy or diagnostic_updater
            if spec.read_only:  # rclpy checks this too; keep the reason explicit
                return SetParametersResult(
                    successful=False, reason=f'{spec.name} is read-only: restart the node'
                )
            reason = parameters.validate_value(spec, change.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            proposed[change.name] = parameters.plain_value(change.value)
        reason = check_parameters(proposed)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        frontend_changed = any(
            parameters.PARAMETERS_BY_NAME[name].config_path is not None
            and proposed[name] != self._values[name]
            for name in proposed
        )
        with self._settings_lock:
            self._values = proposed
            self._settings = {name: proposed[name] for name in _OUTPUT_SETTINGS}
            if frontend_changed:
                self._pending_config = dict(proposed)
        return SetParametersResult(successful=True)

    # --- worker thread ----------------------------------------------------------

    def _warn_once(self, key, text):
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    def _on_worker_error(self, error, item):
        if self._shutting_down:
            return
        self._last_status = f'processing failed: {type(error).__name__}: {error}'
        self.get_logger().error(self._last_status, throttle_duration_sec=5.0)

    def _to_array(self, msg):
        encoding = conversions.canonical_encoding(msg.encoding)
        if msg.height == 0 or msg.width == 0:
            raise conversions.ImageConversionError(
                f'empty image ({msg.width} x {msg.height} pixels)'
            )
        if self._bridge is not None:
            try:
                image = self._bridge.imgmsg_to_cv2(msg, desired_encoding='passthrough')
                return np.ascontiguousarray(image), encoding
            except Exception as error:  # noqa: B902 - any cv_bridge failure: use ours
                self._warn_once(
                    'cv_bridge',
                    f'cv_bridge failed ({error}); using the built-in image conversion from now on',
                )
                self._bridge = None
        return conversions.image_msg_to_array(msg, copy=False)  # a view: no image copy

    def _camera_info(self, side):
        msg = self._camera_infos.get(side)
        if msg is None:
            self._warn_once(
                f'no_info_{side}', f'no {side} camera_info received yet: poses need intrinsics'
            )
            return None
        # the left intrinsics also depend on the right projection (baseline)
        key = (msg, self._camera_infos.get('right') if side == 'left' else None)
        cached = self._camera_info_cache.get(side)
        if cached is not None and cached[0][0] is key[0] and cached[0][1] is key[1]:
            return cached[1]
        try:
            info = conversions.camera_info_from_msg(msg)
        except ValueError as error:
            self._warn_once(f'bad_info_{side}', f'{side} camera_info unusable: {error}')
            info = None
        if info is not None and side == 'left' and 'right' in self._camera_infos:
            try:  # a rectified right projection gives the baseline of the pair
                info.baseline = conversions.stereo_camera_infos(msg, self._camera_infos['right'])[
                    0
                ].baseline
            except ValueError as error:
                self._warn_once('no_baseline', f'stereo baseline unknown: {error}')
        self._camera_info_cache[side] = (key, info)
        return info

    def _frame(self, msg, side):
        from ..frontend.types import Frame

        image, encoding = self._to_array(msg)
        return Frame(
            image=image,
            stamp_ns=conversions.header_stamp_ns(msg),
            frame_id=msg.header.frame_id,
            encoding=encoding,
            camera_info=self._camera_info(side),
        )

    def _process(self, item):
        clock, left_msg, right_msg = item
        with self._settings_lock:
            settings = dict(self._settings)
            pending, self._pending_config = self._pending_config, None
        if pending is not None:
            self._rebuild_frontend(pending)
        right = None
        clock.converting = clock.now()  # a rebuild above counts as queueing
        try:
            if right_msg is None:
                current = self._frame(left_msg, 'mono')
                clock.frontend_start = clock.now()
                result = self._frontend.process(current)
            else:
                current = self._frame(left_msg, 'left')
                right = self._frame(right_msg, 'right')
                clock.frontend_start = clock.now()
                result = self._frontend.process_stereo(current, right)
            clock.frontend_end = clock.now()
        except conversions.ImageConversionError as error:
            self._bad_inputs += 1
            self._last_status = f'bad input image: {error}'
            self.get_logger().warning(self._last_status, throttle_duration_sec=5.0)
            return
        self._last_matcher = result.matcher_summary()
        if result.pairing_reset:
            self._reset_trajectory(result.status)
        if not result.ok:
            self._last_status = f'frame flagged: {result.status}'
            self.get_logger().warning(self._last_status, throttle_duration_sec=5.0)
        elif not self._unpaired_recently():
            self._last_status = 'ok'
        if self._shutting_down:
            return
        self._publish(result, current, right, clock, settings)

    def _unpaired_recently(self):
        """Stereo images went unpaired in the last UNPAIRED_WARN_S seconds."""
        return (
            self._last_unpaired is not None
            and time.monotonic() - self._last_unpaired < UNPAIRED_WARN_S
        )

    def _reset_trajectory(self, reason):
        """Start the odometry, path and match-image views again (the frontend already reset)."""
        self._time_resets += 1
        self._trajectory.reset()
        self._path_poses = []
        self._references.clear()
        self.get_logger().warning(f'{reason} (reset #{self._time_resets})')

    def _rebuild_frontend(self, values):
        try:
            self._frontend = self._build_frontend(values, backend=self._frontend.backend)
            self.get_logger().info('frontend parameters applied (pairing restarts)')
        except Exception as error:  # noqa: B902 - keep the running frontend on failure
            self.get_logger().error(f'frontend parameters not applied: {error}')

    def _publish(self, result, current, right, clock, settings):
        types = self._types
        latency_ms = (clock.now() - clock.arrival) * 1000.0
        messages = conversions.frame_result_to_messages(
            types,
            result,
            backend=self._frontend.backend.name,
            latency_ms=latency_ms,
            frames_dropped=self._worker.dropped,
            right_stamp_ns=None if right is None else right.stamp_ns,
            right_frame_id=None if right is None else right.frame_id,
        )
        publishers = self._output_publishers
        clock.publish(publishers['keypoints'].publish, messages.keypoints)
        if messages.matches is not None:
            clock.publish(publishers['matches'].publish, messages.matches)
        clock.publish(publishers['relative_pose'].publish, messages.relative_pose)
        if self._mode == 'stereo':
            if messages.right_keypoints is not None:
                clock.publish(publishers['right/keypoints'].publish, messages.right_keypoints)
            if messages.stereo_matches is not None:
                clock.publish(publishers['stereo_matches'].publish, messages.stereo_matches)
        self._publish_trajectory(result, settings, clock)
        if publishers['matches_image'].get_subscription_count() > 0:
            self._publish_matches_image(result, current, right, settings, clock)
            self._pictures_drawn += 1
        self._references.remember(result, current.image, current.encoding)
        clock.publish(publishers['frontend_status'].publish, messages.status)
        clock.published = clock.now()
        self.overhead.add(clock)
        self._latency.add((clock.published - clock.arrival) * 1000.0)
        self._output_rate.tick()

    def _publish_trajectory(self, result, settings, clock):
        types = self._types
        world = settings['odom_frame_id']
        child = settings['odom_child_frame_id'] or result.frame_id
        if not child:
            self._warn_once(
                'no_frame_id',
                'input images carry no frame_id: odometry child '
                "frame 'camera' (set odom_child_frame_id)",
            )
            child = 'camera'
        T_world_cur = self._trajectory.update(
            result.stamp_ns, result.ref_stamp_ns, result.pose, result.is_keyframe
        )
        if T_world_cur is None:  # no valid pose: publish nothing rather than a stale pose
            self._frames_without_pose += 1
            return
        clock.publish(
            self._output_publishers['odometry'].publish,
            conversions.odometry_msg(types, T_world_cur, result.stamp_ns, world, child),
        )
        limit = settings['path_max_length']
        if limit > 0:
            self._path_poses.append(
                conversions.pose_stamped_msg(types, T_world_cur, result.stamp_ns, world)
            )
            del self._path_poses[:-limit]
            clock.publish(
                self._output_publishers['trajectory'].publish,
                conversions.path_msg(types, self._path_poses, result.stamp_ns, world),
            )
        if settings['publish_tf'] and self._tf_broadcaster is None:
            try:
                from tf2_ros import TransformBroadcaster
            except ImportError as error:
                self._warn_once('no_tf2', f'publish_tf needs tf2_ros ({error}): no TF published')
            else:
                self._tf_broadcaster = TransformBroadcaster(self)
        if settings['publish_tf'] and self._tf_broadcaster is not None:
            clock.publish(
                self._tf_broadcaster.sendTransform,
                conversions.transform_stamped_msg(
                    types, T_world_cur, result.stamp_ns, world, child
                ),
            )

    def _publish_matches_image(self, result, current, right, settings, clock):
        import cv2

        if right is not None:
            # a flagged stereo result may come without right keypoints
            right_keypoints = (
                result.right_features.keypoints
                if result.right_features is not None
                else np.zeros((0, 2), np.float32)
            )
            picture = conversions.matches_picture(
                result,
                current.image,
                current.encoding,
                right.image,
                right.encoding,
                right_keypoints,
                stereo=True,
            )
        else:
            view = self._references.get(result.ref_stamp_ns)
            if view is None:  # first frame: show it against itself without matches
                picture = conversions.matches_picture(
                    result,
                    current.image,
                    current.encoding,
                    current.image,
                    current.encoding,
                    np.zeros((0, 2), np.float32),
                )
            else:
                picture = conversions.matches_picture(
                    result,
                    current.image,
                    current.encoding,
                    view.image,
                    view.encoding,
                    view.keypoints,
                )
        max_width = settings['matches_image_max_width']
        if 0 < max_width < picture.shape[1]:
            scale = max_width / picture.shape[1]
            picture = cv2.resize(
                picture,
                (max_width, max(1, int(picture.shape[0] * scale))),
                interpolation=cv2.INTER_AREA,
            )
        clock.publish(
            self._output_publishers['matches_image'].publish,
            conversions.array_to_image_msg(
                self._types, picture, 'bgr8', result.stamp_ns, result.frame_id
            ),
        )

    # --- diagnostics and shutdown -------------------------------------------------

    def _diagnose(self, stat):
        worker = self._worker
        p50, p90 = self._latency.percentile(50), self._latency.percentile(90)
        if worker.errors and worker.errors == worker.submitted - worker.dropped:
            stat.summary(DiagnosticStatus.ERROR, self._last_status)
        elif self._last_status not in ('ok', 'waiting for images') or self._unpaired_recently():
            stat.summary(DiagnosticStatus.WARN, self._last_status)
        else:
            stat.summary(DiagnosticStatus.OK, self._last_status)
        stat.add('backend', self._backend_label)
        stat.add('mode', self._mode)
        stat.add('matcher', self._last_matcher or self._values['matcher'])
        stat.add('latency p50 (ms)', f'{p50:.1f}')
        stat.add('latency p90 (ms)', f'{p90:.1f}')
        self._diagnose_overhead(stat)
        stat.add('input rate (Hz)', f'{self._input_rate.rate():.2f}')
        stat.add('output rate (Hz)', f'{self._output_rate.rate():.2f}')
        stat.add('frames received', str(worker.submitted))
        stat.add('frames processed', str(worker.processed))
        stat.add('frames dropped', str(worker.dropped))
        stat.add('processing errors', str(worker.errors))
        stat.add('bad input images', str(self._bad_inputs))
        stat.add('match images drawn', str(self._pictures_drawn))
        stat.add('pairing resets', str(self._time_resets))
        stat.add('frames without pose', str(self._frames_without_pose))
        if self._mode == 'stereo':
            stat.add('stereo pairs', str(self._pairing.pairs))
            stat.add('unpaired left images', str(self._pairing.unpaired[0]))
            stat.add('unpaired right images', str(self._pairing.unpaired[1]))
        stat.add('cv_bridge', 'yes' if self._bridge is not None else 'no (built-in conversion)')
        return stat

    def _diagnose_overhead(self, stat):
        """Add the node's own time per frame (arrival to last publish, minus the frontend)."""
        summary = self.overhead.summary()
        stat.add('frontend time p50 (ms)', f'{summary["frontend"][50.0]:.2f}')
        stat.add('node overhead p50 (ms)', f'{summary["overhead"][50.0]:.3f}')
        stat.add('node overhead p90 (ms)', f'{summary["overhead"][90.0]:.3f}')
        stat.add('node overhead share p50 (%)', f'{summary["share"][50.0]:.2f}')
        stat.add('node overhead share p90 (%)', f'{summary["share"][90.0]:.2f}')
        for part in OVERHEAD_PARTS:
            stat.add(
                f'node overhead {part} p50/p90 (ms)',
                f'{summary[part][50.0]:.3f} / {summary[part][90.0]:.3f}',
            )
        last = self.overhead.last()
        if last is not None:  # one frame's parts add up to its overhead (medians need not)
            parts = ', '.join(f'{part} {last[part]:.3f}' for part in OVERHEAD_PARTS)
            stat.add(
                'node overhead last frame (ms)',
                f'{last["overhead"]:.3f} = {parts}; frontend {last["frontend"]:.3f}',
            )

    def destroy_node(self):
        """
        Stop the worker and release the backend before the node goes.

        A frame in progress is not interrupted: the worker thread is a daemon, so
        waiting is bounded and the process still exits well within launch's
        SIGINT -> SIGTERM escalation (5 s).
        """
        self._shutting_down = True
        worker = getattr(self, '_worker', None)
        if worker is not None and not worker.stop(timeout=WORKER_STOP_S):
            self.get_logger().warning('worker still busy with a frame: exiting without it')
            self._backend_owner = None  # the worker may still be using the backend
            self.worker_abandoned = True
        owner = getattr(self, '_backend_owner', None)
        if owner is not None:
            owner.close()
        super().destroy_node()


def main(args=None):
    """Run frontend_node until shutdown (Ctrl-C or the launch system)."""
    rclpy.init(args=args)
    node = None
    exit_code = 0
    try:
        node = FrontendNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as error:  # noqa: B902 - report start-up errors clearly, exit non-zero
        rclpy.logging.get_logger(parameters.NODE_NAME).fatal(f'{type(error).__name__}: {error}')
        exit_code = 1
    finally:
        # Ctrl-C in a terminal reaches the node twice (from the terminal and from
        # ros2 launch): a second interrupt must not break the clean-up
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        abandoned = False
        if node is not None:
            node.destroy_node()
            abandoned = node.worker_abandoned
        rclpy.try_shutdown()
    if abandoned:
        # the inference runtime's threads are still busy: running the interpreter's
        # finalisers under them aborts the process ('terminate called ...', exit 250)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)
    return exit_code


if __name__ == '__main__':
    raise SystemExit(main())
