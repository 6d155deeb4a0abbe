"""``spsg-ros make-homography-set IMAGES OUT``: an HPatches-layout set from any images.

One sequence per image: ``i_<name>`` (illumination: photometric changes only,
identity homographies) or ``v_<name>`` (viewpoint: random homographies with
scale, rotation and perspective keeping at least half of each image covered,
plus mild photometric changes); ``1.ppm`` is the image itself, ``2.ppm`` ..
``6.ppm`` the warps (growing from 2 to 6) and ``H_1_k`` the 3x3 homography
from image-1 to image-k pixel coordinates, as HPatches. Evaluate it with
``spsg-ros evaluate-homography OUT``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .common import bounded, check_output_folder, write_error

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    from ..evaluation.homography_set import SPLITS

    p = sub.add_parser(
        "make-homography-set",
        help="write an HPatches-layout set of random warps of images",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("images", type=Path, nargs="+", help="a folder of images, or image files")
    p.add_argument("out", type=Path, help="output folder (sequence folders are created in it)")
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="both",
        help="sequence kinds: both (alternating i_ and v_), i or v (default: %(default)s)",
    )
    p.add_argument(
        "--max-sequences",
        type=bounded(int, 1),
        default=None,
        metavar="N",
        help="use the first N images only (N >= 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--identity",
        action="store_true",
        help="exact copies with identity homographies (a check: repeatability 1, no error)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace sequence folders that exist")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.homography_set import make_homography_set, source_images

    check_output_folder(args.out, "OUT")
    paths = source_images(args.images)
    try:
        written, skipped = make_homography_set(
            paths,
            args.out,
            split=args.split,
            seed=args.seed,
            max_sequences=args.max_sequences,
            identity=args.identity,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, FileExistsError, PermissionError)):
            raise
        raise write_error(args.out, "OUT", exc) from None
    for path, reason in skipped:
        print(f"skipped {path}: {reason}")
    print(f"wrote {len(written)} sequences to {args.out}")
    if not written:
        print(f"spsg-ros {args.command}: error: no image could be read", file=sys.stderr)
        return 2
    return 0
