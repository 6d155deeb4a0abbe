"""The frontend's output topics, defined once for the ROS 2 node and the results bag.

Names are relative to the node namespace (the node publishes ``odometry`` as
``/<namespace>/odometry``); the results bag of ``spsg-ros replay`` writes the same
names under :data:`RESULTS_NAMESPACE`, i.e. as the node run in namespace ``frontend``.

Frame conventions (every output carries the input image's stamp):

- per-frame messages (keypoints, matches, relative_pose, frontend_status, matches_image,
  right/keypoints, stereo_matches): ``header.frame_id`` is the (left) image's frame id;
  the right keypoints carry the right image's;
- ``odometry``: ``header.frame_id`` is the world frame (``odom_frame_id``, the first
  camera pose, optical axes), ``child_frame_id`` the camera (``odom_child_frame_id``,
  else the image frame id); pose of the camera in the world, twist and covariances zero;
- ``trajectory``: the accumulated camera poses, in the world frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

#: namespace of the results bag: its topics are the node's, run in namespace ``frontend``
RESULTS_NAMESPACE = '/frontend'

#: ground truth in the results bag (not a node output): world frame ``world``
GROUND_TRUTH_TOPICS: Dict[str, str] = {
    'pose': '/ground_truth/pose',  # geometry_msgs/msg/PoseStamped
    'path': '/ground_truth/path',  # nav_msgs/msg/Path
}
# static world -> odom transform (tf2_msgs/msg/TFMessage) that puts the estimate in the
# ground truth's frame: odom is the optical frame of the first camera pose
TF_STATIC_TOPIC = '/tf_static'
WORLD_FRAME_ID = 'world'
ODOM_FRAME_ID = 'odom'

MODES = ('mono', 'stereo')


@dataclass(frozen=True)
class OutputTopic:
    """One output: name relative to the node namespace, message type, modes, what it carries."""

    name: str
    type_name: str  # full ROS 2 name, e.g. 'nav_msgs/msg/Odometry'
    modes: Tuple[str, ...]
    carries: str

    @property
    def short_type(self) -> str:
        """Class name of the message type ('Odometry'), as :class:`MessageTypes` names it."""
        return self.type_name.rsplit('/', 1)[-1]

    @property
    def bag_topic(self) -> str:
        """Absolute topic name in the results bag ('/frontend/odometry')."""
        return f'{RESULTS_NAMESPACE}/{self.name}'


OUTPUT_TOPICS: Tuple[OutputTopic, ...] = (
    OutputTopic(
        'keypoints',
        'spsg_ros_msgs/msg/Keypoints',
        MODES,
        'SuperPoint keypoints, scores and descriptors of the (left) image',
    ),
    OutputTopic(
        'matches',
        'spsg_ros_msgs/msg/Matches',
        MODES,
        'SuperGlue matches current -> reference frame (only when there is a reference)',
    ),
    OutputTopic(
        'relative_pose',
        'spsg_ros_msgs/msg/RelativePose',
        MODES,
        'pose of the current camera relative to the reference frame, validity and inliers',
    ),
    OutputTopic(
        'frontend_status',
        'spsg_ros_msgs/msg/FrontendStatus',
        MODES,
        'per-frame status: ok or why flagged, counts, stage times, latency',
    ),
    OutputTopic(
        'odometry',
        'nav_msgs/msg/Odometry',
        MODES,
        'accumulated camera pose in the world frame (twist and covariances zero)',
    ),
    OutputTopic(
        'trajectory',
        'nav_msgs/msg/Path',
        MODES,
        'the accumulated camera poses so far, in the world frame',
    ),
    OutputTopic(
        'matches_image',
        'sensor_msgs/msg/Image',
        MODES,
        'bgr8 picture of the matches (temporal in mono, left-right in stereo)',
    ),
    OutputTopic(
        'right/keypoints',
        'spsg_ros_msgs/msg/Keypoints',
        ('stereo',),
        'SuperPoint keypoints of the right image',
    ),
    OutputTopic(
        'stereo_matches',
        'spsg_ros_msgs/msg/Matches',
        ('stereo',),
        'SuperGlue matches left -> right image',
    ),
)

OUTPUTS_BY_NAME: Dict[str, OutputTopic] = {topic.name: topic for topic in OUTPUT_TOPICS}


def output_topics(mode: str) -> Tuple[OutputTopic, ...]:
    """The outputs of ``mode`` ('mono' or 'stereo'), in table order."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'mono' or 'stereo', got {mode!r}")
    return tuple(topic for topic in OUTPUT_TOPICS if mode in topic.modes)


def bag_topic(name: str) -> str:
    """Results bag topic of the output ``name`` ('odometry' -> '/frontend/odometry')."""
    return OUTPUTS_BY_NAME[name].bag_topic
