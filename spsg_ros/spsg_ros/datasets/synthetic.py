"""A procedural textured 3D scene rendered with a pinhole camera (ground truth for tests).

The scene is a box room whose walls, floor and ceiling carry random textures
(shapes of many sizes and grey levels over smooth noise, so SuperPoint finds
plenty of corners), plus a few free-standing textured panels for depth
variation. Rendering is exact ray-plane intersection per pixel, each plane
sampled from its texture with ``cv2.remap`` and composited by depth (z-buffer).

Frames: the world is an optical frame (x right, y down, z forward); poses are
4x4 ``T_world_camera`` (world-from-camera) of optical camera frames. The
default camera is TartanAir's (640x480, fx = fy = 320, cx = 320, cy = 240) and
stereo pairs have a 0.25 m baseline, the right camera along the left's +x.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

TARTANAIR_SIZE = (640, 480)
TARTANAIR_K = np.array([[320.0, 0.0, 320.0], [0.0, 320.0, 240.0], [0.0, 0.0, 1.0]])
STEREO_BASELINE = 0.25


@dataclass
class TexturedPlane:
    """A textured rectangle ``origin + u * axis_u + v * axis_v`` (u, v in metres)."""

    origin: np.ndarray
    axis_u: np.ndarray  # unit vector along the texture's columns
    axis_v: np.ndarray  # unit vector along the texture's rows
    size: tuple[float, float]  # extent along axis_u and axis_v in metres
    texture: np.ndarray  # uint8 (rows, cols)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.axis_u, self.axis_v)


def random_texture(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 texture with corners and blobs at several scales on smooth noise."""
    noise = rng.random((max(rows // 32, 2), max(cols // 32, 2))).astype(np.float32)
    image = cv2.resize(noise, (cols, rows), interpolation=cv2.INTER_CUBIC)
    image = np.clip(60 + 120 * image, 0, 255).astype(np.uint8)
    count = rows * cols // 250
    for _ in range(count):
        x, y = int(rng.integers(0, cols)), int(rng.integers(0, rows))
        size = int(rng.choice([4, 6, 9, 14, 22, 34]))
        color = int(rng.integers(0, 256))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(
                image, (x, y), (x + size, y + int(size * rng.uniform(0.5, 1.5))), color, -1
            )
        elif kind == 1:
            cv2.circle(image, (x, y), max(size // 2, 2), color, -1)
        else:
            pts = np.array(
                [[x, y], [x + size, y + size // 3], [x + size // 3, y + size]], np.int32
            )
            cv2.fillPoly(image, [pts], color)
    return image


class SyntheticScene:
    """Box room ``x in [-3, 3]``, ``y in [-2, 1.5]`` (y down: floor at +1.5), ``z in [-3, 6]``
    with panels; ``texel`` is the size of one texture pixel in metres."""

    def __init__(
        self,
        seed: int = 0,
        texel: float = 0.015,
        panels: bool = True,
        bounds: Sequence[Sequence[float]] = ((-3.0, 3.0), (-2.0, 1.5), (-3.0, 6.0)),
    ):
        self.seed = seed
        self.texel = float(texel)
        self.bounds = np.asarray(bounds, np.float64)
        rng = np.random.default_rng(seed)
        (x0, x1), (y0, y1), (z0, z1) = self.bounds
        ex, ey, ez = np.eye(3)
        faces = [  # origin, axis_u, axis_v, size
            ((x0, y0, z1), ex, ey, (x1 - x0, y1 - y0)),  # far wall (z = z1)
            ((x1, y0, z0), -ez, ey, (z1 - z0, y1 - y0)),  # near wall (z = z0), seen mirrored
            ((x0, y0, z0), ez, ey, (z1 - z0, y1 - y0)),  # left wall (x = x0)
            ((x1, y0, z0), ez, ey, (z1 - z0, y1 - y0)),  # right wall (x = x1)
            ((x0, y1, z0), ex, ez, (x1 - x0, z1 - z0)),  # floor (y = y1)
            ((x0, y0, z0), ex, ez, (x1 - x0, z1 - z0)),  # ceiling (y = y0)
        ]
        if panels:
            faces += [
                ((-1.8, -0.8, 3.2), ex, ey, (1.2, 1.6)),
                ((0.9, -0.2, 2.4), _unit((1, 0, -0.4)), ey, (1.0, 1.2)),
                ((-0.4, 0.3, 4.3), ex, ey, (1.4, 0.9)),
            ]
        self.planes = []
        for origin, u, v, size in faces:
            rows = max(int(round(size[1] / self.texel)), 2)
            cols = max(int(round(size[0] / self.texel)), 2)
            self.planes.append(
                TexturedPlane(
                    np.asarray(origin, np.float64),
                    np.asarray(u, np.float64),
                    np.asarray(v, np.float64),
                    size,
                    random_texture(rows, cols, rng),
                )
            )

    def render_with_depth(
        self,
        pose_world_from_camera: np.ndarray,
        K: Optional[np.ndarray] = None,
        width: int = TARTANAIR_SIZE[0],
        height: int = TARTANAIR_SIZE[1],
        background: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """uint8 image (height, width) and float32 z-depth (inf where nothing is hit)."""
        K = TARTANAIR_K if K is None else np.asarray(K, np.float64)
        T = np.asarray(pose_world_from_camera, np.float64)
        if T.shape != (4, 4) or width < 1 or height < 1:
            raise ValueError(
                f"render needs a 4x4 pose and a positive size, got {T.shape}, {width}x{height}"
            )
        R, C = T[:3, :3], T[:3, 3]
        xs, ys = np.meshgrid(
            np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
        )
        rays_cam = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ np.linalg.inv(K).T
        rays = rays_cam @ R.T  # world directions with camera z-component 1: t is the z-depth
        image = np.full((height, width), background, np.uint8)
        depth = np.full((height, width), np.inf, np.float32)
        for plane in self.planes:
            n = plane.normal
            denom = rays @ n
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                t = (n @ (plane.origin - C)) / denom
                hit = C + t[..., None] * rays - plane.origin
                u = hit @ plane.axis_u
                v = hit @ plane.axis_v
            visible = (
                np.isfinite(t)
                & (t > 1e-3)
                & (u >= 0)
                & (u <= plane.size[0])
                & (v >= 0)
                & (v <= plane.size[1])
                & (t < depth)
            )
            if not np.any(visible):
                continue
            rows, cols = plane.texture.shape
            map_x = (u * (cols / plane.size[0]) - 0.5).astype(np.float32)
            map_y = (v * (rows / plane.size[1]) - 0.5).astype(np.float32)
            sampled = cv2.remap(
                plane.texture,
                np.nan_to_num(map_x),
                np.nan_to_num(map_y),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            image[visible] = sampled[visible]
            depth[visible] = t[visible]
        return image, depth

    def render(
        self,
        pose_world_from_camera: np.ndarray,
        K: Optional[np.ndarray] = None,
        width: int = TARTANAIR_SIZE[0],
        height: int = TARTANAIR_SIZE[1],
    ) -> np.ndarray:
        return self.render_with_depth(pose_world_from_camera, K, width, height)[0]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


_DEFAULT_SCENE: Optional[SyntheticScene] = None


def default_scene() -> SyntheticScene:
    global _DEFAULT_SCENE
    if _DEFAULT_SCENE is None:
        _DEFAULT_SCENE = SyntheticScene()
    return _DEFAULT_SCENE


def render(
    pose_world_from_camera: np.ndarray,
    K: Optional[np.ndarray] = None,
    width: int = TARTANAIR_SIZE[0],
    height: int = TARTANAIR_SIZE[1],
    scene: Optional[SyntheticScene] = None,
) -> np.ndarray:
    """uint8 grayscale image of ``scene`` (default: the seed-0 room) seen from the pose."""
    return (scene or default_scene()).render(pose_world_from_camera, K, width, height)


def right_camera_pose(pose_left: np.ndarray, baseline: float = STEREO_BASELINE) -> np.ndarray:
    """World pose of the right camera of a rectified pair (``baseline`` m along left +x)."""
    offset = np.eye(4)
    offset[0, 3] = baseline
    return np.asarray(pose_left, np.float64) @ offset


def render_stereo(
    pose_world_from_left: np.ndarray,
    K: Optional[np.ndarray] = None,
    width: int = TARTANAIR_SIZE[0],
    height: int = TARTANAIR_SIZE[1],
    baseline: float = STEREO_BASELINE,
    scene: Optional[SyntheticScene] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) images of a rectified stereo pair with the same K."""
    scene = scene or default_scene()
    return (
        scene.render(pose_world_from_left, K, width, height),
        scene.render(right_camera_pose(pose_world_from_left, baseline), K, width, height),
    )


def rotation_xyz(rx: float, ry: float, rz: float) -> np.ndarray:
    """R = Rz @ Ry @ Rx from angles in radians."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def make_trajectory(
    n: int, step: float = 0.1, rotation_deg: float = 1.5, start: Sequence[float] = (0.0, 0.0, -1.0)
) -> list[np.ndarray]:
    """``n`` camera poses (4x4 T_world_camera) along a smooth curve inside the room.

    The camera moves about ``step`` metres per frame, mostly forward (+z) with a
    sideways and vertical sway, while yaw, pitch and roll oscillate so that
    consecutive frames rotate by about ``rotation_deg`` degrees. The path stays
    within about 1.5 m of ``start`` (forward excursion capped by the room).
    """
    if n < 1:
        raise ValueError(f"make_trajectory needs n >= 1, got {n}")
    if step < 0 or rotation_deg < 0:
        raise ValueError("step and rotation_deg must be >= 0")
    poses = []
    start = np.asarray(start, np.float64)
    amp = np.radians(rotation_deg) * 6.0  # amplitude so per-frame change ~ rotation_deg
    for i in range(n):
        phase = i * step / 1.2
        position = start + np.array(
            [
                1.2 * np.sin(phase),
                0.25 * np.sin(2 * phase),
                1.5 * (1 - np.cos(phase)) + 0.6 * np.sin(phase),
            ]
        )
        w = i / 6.0
        R = rotation_xyz(
            0.5 * amp * np.sin(0.8 * w + 0.3), amp * np.sin(w), 0.3 * amp * np.sin(1.3 * w)
        )
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = position
        poses.append(T)
    return poses
