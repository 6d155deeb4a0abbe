"""``spsg-ros match-pair IMAGE0 IMAGE1``: keypoints and matches of two images."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from .common import (
    REFERENCE_DEFAULTS,
    REFERENCE_NOTES,
    add_network_args,
    backend_options,
    superglue_options,
    superpoint_options,
)

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "match-pair",
        help="match two images with SuperPoint + SuperGlue",
        description="Detect and match two images as upstream match_pairs.py does.",
    )
    p.add_argument("image0")
    p.add_argument("image1")
    p.add_argument(
        "--resize",
        type=int,
        nargs="+",
        default=[640, 480],
        metavar="N",
        help="W H, or the longest side, or -1 to keep the size (default: 640 480)",
    )
    add_network_args(p, defaults=REFERENCE_DEFAULTS, notes=REFERENCE_NOTES)
    p.add_argument(
        "--out", type=Path, help="write keypoints, descriptors and matches to this .npz"
    )
    p.add_argument("--viz", type=Path, help="write a picture of the matches (PNG)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..backends import create_backend
    from ..features.extractor import SuperPointExtractor
    from ..features.image_io import read_gray
    from ..matching.superglue_matcher import SuperGlueMatcher
    from ..visualization import draw_matches

    image0, _ = read_gray(args.image0, args.resize)
    image1, _ = read_gray(args.image1, args.resize)
    with create_backend(args.backend, **backend_options(args)) as backend:
        log.info("backend: %s", backend.describe())
        extractor = SuperPointExtractor(backend, superpoint_options(args))
        matcher = SuperGlueMatcher(backend, superglue_options(args))
        if image0.shape == image1.shape:
            f0, f1 = extractor.extract_batch([image0, image1])
        else:
            f0, f1 = extractor(image0), extractor(image1)
        matches = matcher(f0, f1)
    idx0, idx1, conf = matches.pairs()
    print(f"keypoints: {len(f0)} / {len(f1)}, matches: {len(idx0)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            args.out,
            keypoints0=f0.keypoints,
            keypoints1=f1.keypoints,
            scores0=f0.scores,
            scores1=f1.scores,
            descriptors0=f0.descriptors,
            descriptors1=f1.descriptors,
            matches0=matches.matches0,
            matches1=matches.matches1,
            matching_scores0=matches.scores0,
            matching_scores1=matches.scores1,
        )
        print(f"wrote {args.out}")
    if args.viz:
        args.viz.parent.mkdir(parents=True, exist_ok=True)
        picture = draw_matches(
            image0,
            image1,
            f0.keypoints,
            f1.keypoints,
            f0.keypoints[idx0],
            f1.keypoints[idx1],
            conf,
            [
                f"SuperGlue ({args.backend})",
                f"Keypoints: {len(f0)}:{len(f1)}",
                f"Matches: {len(idx0)}",
            ],
        )
        if not cv2.imwrite(str(args.viz), picture):
            raise ValueError(f"could not write {args.viz}")
        print(f"wrote {args.viz}")
    return 0
