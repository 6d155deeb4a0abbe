"""ROS-free frontend: pre-processing, SuperPoint, matching, relative pose, metrics."""

from .config import DEFAULT_CONFIG, load_config
from .pipeline import Frontend
from .types import CameraInfo, Frame, FrameMetrics, FrameResult, MatcherInfo, RelativePose

__all__ = [
    "DEFAULT_CONFIG",
    "load_config",
    "Frontend",
    "CameraInfo",
    "Frame",
    "FrameMetrics",
    "FrameResult",
    "MatcherInfo",
    "RelativePose",
]
