"""``spsg-ros match-pair IMAGE0 IMAGE1``: keypoints and matches of two images.

SuperGlue (default, as upstream ``match_pairs.py``) or, with ``--matcher lightglue``,
LightGlue through the backend's ``lightglue``; its ``--out`` archive then also holds
``stop_layer`` (layers run) and ``num_pruned0/1`` (points pruned per image).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from .common import (
    write_npz,
    REFERENCE_DEFAULTS,
    REFERENCE_NOTES,
    add_lightglue_args,
    add_network_args,
    add_resize_arg,
    backend_options,
    backend_option_taken,
    check_image_file,
    check_network_image,
    check_output_file,
    lightglue_options,
    superglue_options,
    superpoint_options,
    write_error,
)

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "match-pair",
        help="match two images with SuperPoint + SuperGlue (or LightGlue)",
        description="Detect and match two images as upstream match_pairs.py does "
        "(--matcher lightglue: with LightGlue).",
    )
    p.add_argument("image0")
    p.add_argument("image1")
    p.add_argument(
        "--matcher",
        choices=("superglue", "lightglue"),
        default="superglue",
        help="(default: %(default)s)",
    )
    add_resize_arg(p)
    add_network_args(p, defaults=REFERENCE_DEFAULTS, notes=REFERENCE_NOTES)
    add_lightglue_args(p)
    p.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write keypoints, descriptors and matches to FILE, exactly that name (an .npz "
        "archive; no .npz is added)",
    )
    p.add_argument(
        "--viz", type=Path, metavar="IMAGE", help="write a picture of the matches (.png, .jpg)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..backends import create_backend
    from ..features.extractor import SuperPointExtractor
    from ..features.image_io import read_gray
    from ..matching.lightglue_matcher import BackendLightGlueMatcher
    from ..matching.superglue_matcher import SuperGlueMatcher
    from ..visualization import draw_matches

    # every output is checked before the networks run (no traceback, nothing half-written)
    if args.out:
        check_output_file(args.out, "--out")
    if args.viz:
        check_image_file(args.viz, "--viz")
    image0, _ = read_gray(args.image0, args.resize)
    image1, _ = read_gray(args.image1, args.resize)
    check_network_image(image0, args.image0, args.resize)
    check_network_image(image1, args.image1, args.resize)
    lightglue = args.matcher == "lightglue"
    options = backend_options(args)
    if lightglue and backend_option_taken(args.backend, "load_superglue"):
        options["load_superglue"] = False  # LightGlue needs no SuperGlue model
    with create_backend(args.backend, **options) as backend:
        log.info("backend: %s", backend.describe())
        extractor = SuperPointExtractor(backend, superpoint_options(args))
        if lightglue:
            lg_matcher = BackendLightGlueMatcher(backend, lightglue_options(args))
        else:
            sg_matcher = SuperGlueMatcher(backend, superglue_options(args))
        if image0.shape == image1.shape:
            f0, f1 = extractor.extract_batch([image0, image1])
        else:
            f0, f1 = extractor(image0), extractor(image1)
        if lightglue:
            result = lg_matcher.match(f0, f1)
            matches = result.matches
        else:
            matches = sg_matcher(f0, f1)
    idx0, idx1, conf = matches.pairs()
    line = f"keypoints: {len(f0)} / {len(f1)}, matches: {len(idx0)}"
    if lightglue:
        line += (
            f", layers: {result.stop_layer}/{result.n_layers}, "
            f"pruned: {result.num_pruned[0]} / {result.num_pruned[1]}"
        )
    print(line)
    if args.out:
        arrays = {
            "keypoints0": f0.keypoints,
            "keypoints1": f1.keypoints,
            "scores0": f0.scores,
            "scores1": f1.scores,
            "descriptors0": f0.descriptors,
            "descriptors1": f1.descriptors,
            "matches0": matches.matches0,
            "matches1": matches.matches1,
            "matching_scores0": matches.scores0,
            "matching_scores1": matches.scores1,
        }
        if lightglue:
            arrays.update(
                stop_layer=np.int64(result.stop_layer),
                num_pruned0=np.int64(result.num_pruned[0]),
                num_pruned1=np.int64(result.num_pruned[1]),
            )
        write_npz(args.out, arrays)
    if args.viz:
        picture = draw_matches(
            image0,
            image1,
            f0.keypoints,
            f1.keypoints,
            f0.keypoints[idx0],
            f1.keypoints[idx1],
            conf,
            [
                f"{'LightGlue' if lightglue else 'SuperGlue'} ({args.backend})",
                f"Keypoints: {len(f0)}:{len(f1)}",
                f"Matches: {len(idx0)}",
            ]
            + (
                [
                    f"Layers: {result.stop_layer}/{result.n_layers}, pruned "
                    f"{result.num_pruned[0]}:{result.num_pruned[1]}"
                ]
                if lightglue
                else []
            ),
        )
        try:
            args.viz.parent.mkdir(parents=True, exist_ok=True)
            written = cv2.imwrite(str(args.viz), picture)
        except OSError as exc:
            raise write_error(args.viz, "--viz", exc) from None
        except cv2.error as exc:
            raise ValueError(f"--viz {args.viz}: cannot write: {exc}") from None
        if not written:
            raise ValueError(f"--viz {args.viz}: cannot write the picture")
        print(f"wrote {args.viz}")
    return 0
