"""``spsg-ros make-synthetic OUT``: a rendered stereo sequence in the TartanAir layout.

A procedurally textured room (:mod:`spsg_ros.datasets.synthetic`) seen along a
known trajectory with rotation and translation; 640x480, TartanAir intrinsics
(fx = fy = 320, cx = 320, cy = 240), 0.25 m stereo baseline. Written as
``OUT/image_left/000000_left.png``, ``OUT/image_right/000000_right.png``,
``OUT/pose_left.txt`` and ``OUT/pose_right.txt`` (NED ``tx ty tz qx qy qz qw``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "make-synthetic",
        help="render a synthetic stereo sequence (TartanAir layout)",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("out", type=Path, help="output trajectory folder (created)")
    p.add_argument(
        "--frames", type=int, default=60, help="number of frames (default: %(default)s)"
    )
    p.add_argument(
        "--step", type=float, default=0.1, help="metres moved per frame (default: %(default)s)"
    )
    p.add_argument(
        "--rotation",
        type=float,
        default=1.5,
        help="degrees rotated per frame, about (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="scene texture seed (default: %(default)s)")
    p.add_argument("--mono", action="store_true", help="left images only")
    p.add_argument(
        "--overwrite", action="store_true", help="write into an existing non-empty folder"
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def make_synthetic(
    out: Path,
    frames: int = 60,
    step: float = 0.1,
    rotation_deg: float = 1.5,
    seed: int = 0,
    stereo: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    width: int = 640,
    height: int = 480,
) -> list:
    """Render and write the sequence; returns the left poses (optical world-from-camera)."""
    import cv2
    from tqdm import tqdm

    from ..datasets.synthetic import (
        STEREO_BASELINE,
        TARTANAIR_K,
        SyntheticScene,
        default_scene,
        make_trajectory,
        right_camera_pose,
    )
    from ..datasets.tartanair import write_tartanair_poses

    if frames < 2:
        raise ValueError(f"--frames must be at least 2, got {frames}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(
            f"{out} exists and is not empty: choose another folder or pass --overwrite"
        )
    K = TARTANAIR_K.copy()
    if (width, height) != (640, 480):
        K[0] *= width / 640.0
        K[1] *= height / 480.0
    scene = default_scene() if seed == 0 else SyntheticScene(seed=seed)
    poses = make_trajectory(frames, step=step, rotation_deg=rotation_deg)
    left_dir, right_dir = out / "image_left", out / "image_right"
    left_dir.mkdir(parents=True, exist_ok=True)
    if stereo:
        right_dir.mkdir(exist_ok=True)
    for i, pose in enumerate(tqdm(poses, desc="rendering", unit="frame", disable=not progress)):
        left = scene.render(pose, K, width, height)
        if not cv2.imwrite(str(left_dir / f"{i:06d}_left.png"), left):
            raise OSError(f"cannot write {left_dir / f'{i:06d}_left.png'}")
        if stereo:
            right = scene.render(right_camera_pose(pose, STEREO_BASELINE), K, width, height)
            if not cv2.imwrite(str(right_dir / f"{i:06d}_right.png"), right):
                raise OSError(f"cannot write {right_dir / f'{i:06d}_right.png'}")
    write_tartanair_poses(out / "pose_left.txt", poses)
    if stereo:
        write_tartanair_poses(
            out / "pose_right.txt", [right_camera_pose(p, STEREO_BASELINE) for p in poses]
        )
    return poses


def run(args: argparse.Namespace) -> int:
    make_synthetic(
        args.out,
        args.frames,
        args.step,
        args.rotation,
        args.seed,
        stereo=not args.mono,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(
        f"wrote {args.frames} {'mono' if args.mono else 'stereo'} frames to {args.out} "
        f"(TartanAir layout: image_left/, {'' if args.mono else 'image_right/, '}pose_left.txt)"
    )
    return 0
