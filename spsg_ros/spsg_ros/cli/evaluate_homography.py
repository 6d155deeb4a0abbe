"""``spsg-ros evaluate-homography ROOT``: the HPatches protocol on an HPatches-layout set.

Prints repeatability, MLE, NN mAP, matching score and homography correctness at
1 / 3 / 5 px for every model (SuperPoint weights x backend x precision) and
matcher (mutual nearest neighbour; SuperGlue too with --superglue-weights),
split into illumination (i_*) and viewpoint (v_*) sequences; --out writes
results.json and homography_accuracy.png.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .common import (
    NETWORK_PARAMETERS,
    add_accelerator_args,
    add_resize_arg,
    add_schema_option,
    backend_option_taken,
    backend_options,
    check_output_folder,
    superglue_options,
    superpoint_options,
    write_error,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_KEYPOINTS = 1000
PRECISIONS = ("fp32", "fp16")
PROTOCOL = (
    "SuperPoint paper / rpautrat SuperPoint evaluation (pytorch-superpoint port): pairs "
    "(1, k) of each sequence; images read grey and resized; keypoints of the shared view "
    "only; correct = within 3 px under the ground-truth homography; homography by "
    "cv2.findHomography RANSAC (3 px), correct when the mean corner error <= e"
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate-homography",
        help="HPatches protocol: repeatability, MLE, NN mAP, matching score, homography",
        description="Evaluate SuperPoint (and SuperGlue) on an HPatches-layout set "
        "(hpatches-sequences-release/{i,v}_*/1.ppm..6.ppm with H_1_2..H_1_6, or a set from "
        "spsg-ros make-homography-set) with the protocol of the SuperPoint paper's "
        "evaluation (rpautrat/SuperPoint, pytorch-superpoint): images resized to 320x240 "
        "(W H), at most 1000 keypoints, NMS radius 4, detection threshold 0.005; keypoints "
        "kept in the shared view; "
        "repeatability and MLE with a 3 px correspondence distance; NN mAP and matching "
        "score with mutual nearest-neighbour matches correct within 3 px; homography by "
        "OpenCV RANSAC (3 px reprojection threshold) from the matches, correct at e = 1 / 3 "
        "/ 5 px when the mean error of the four warped image corners is <= e. Every "
        "combination of --superpoint-weights, --backend and --precision is one model row.",
    )
    p.add_argument(
        "root",
        type=Path,
        help="HPatches-layout folder: i_* / v_* sequence folders (or their parent "
        "hpatches-sequences-release)",
    )
    add_resize_arg(p, default=(320, 240))
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="write results.json (settings, per-split and per-pair figures, skipped files) "
        "and homography_accuracy.png (accuracy for 1..10 px per model and matcher)",
    )
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("models (one row per weights x backend x precision)")
    g.add_argument(
        "--superpoint-weights",
        nargs="+",
        default=["superpoint"],
        metavar="W",
        help="SuperPoint weights, one model each: paths or the upstream name superpoint "
        "(default: superpoint)",
    )
    g.add_argument(
        "--backend",
        nargs="+",
        default=["torch"],
        metavar="NAME",
        help="backends, one model each: torch (the bit-exact reference), onnxruntime, "
        "openvino, ascend, auto (default: torch)",
    )
    g.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=None,
        help="precisions, one model each (default: fp32, or fp16 with --fp16)",
    )
    g.add_argument(
        "--superglue-weights",
        default=None,
        metavar="W",
        help="also match with SuperGlue (a second matcher row): a path, indoor or outdoor "
        "(default: mutual nearest neighbour only)",
    )
    n = p.add_argument_group("networks")
    defaults = {"max_keypoints": DEFAULT_MAX_KEYPOINTS}
    notes = {"max_keypoints": "the protocol's 1000 here"}
    for name in NETWORK_PARAMETERS:
        if name in ("superpoint_weights", "superglue_weights", "backend"):
            continue
        add_schema_option(n, name, default=defaults.get(name), note=notes.get(name, ""))
    add_accelerator_args(p)
    p.set_defaults(func=run)


def model_specs(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(weights, backend, precision) of every model, in command-line order."""
    if args.precision and args.fp16:
        raise ValueError("give --precision or --fp16, not both")
    precisions = args.precision or (["fp16"] if args.fp16 else ["fp32"])
    specs = list(itertools.product(args.superpoint_weights, args.backend, precisions))
    if len(set(specs)) != len(specs):
        raise ValueError("the same model (weights, backend, precision) is given twice")
    return specs


def model_name(weights: str, backend: str, precision: str, all_weights: list[str]) -> str:
    label = (
        Path(weights).stem
        if len(set(Path(w).stem for w in all_weights)) == len(all_weights)
        else str(weights)
    )
    return f"{label} {backend} {precision}"


def model_options(args: argparse.Namespace, weights: str, backend: str, precision: str):
    """``create_backend`` keywords of one model."""
    options = backend_options(args)
    options["superpoint_weights"] = weights
    options.pop("fp16", None)
    if precision == "fp16":
        options["fp16"] = True
    # accelerator_options drops it for a list of backends: only auto takes it
    options.pop("backend_preference", None)
    if backend == "auto" and args.backend_preference is not None:
        options["backend_preference"] = args.backend_preference
    if args.superglue_weights is None:
        options.pop("superglue_weights", None)
        options["load_superglue"] = False
    # the exported-model options go to the backends that take them (several backends
    # share one command line); a precision the backend lacks stays, for its error
    dropped = sorted(k for k in options if k != "fp16" and not backend_option_taken(backend, k))
    if dropped:
        log.info("%s does not take %s", backend, ", ".join(dropped))
    return {k: v for k, v in options.items() if k not in dropped}


def settings(args: argparse.Namespace) -> dict[str, Any]:
    from ..evaluation import homography as hp

    return {
        "protocol": PROTOCOL,
        "resize": list(args.resize),
        "superpoint": superpoint_options(args),
        "superglue": superglue_options(args) if args.superglue_weights else None,
        "correct_distance_px": hp.CORRECT_DISTANCE_PX,
        "ransac_reprojection_threshold_px": hp.RANSAC_THRESHOLD_PX,
        "homography_thresholds_px": list(hp.HOMOGRAPHY_THRESHOLDS),
        "curve_thresholds_px": list(hp.CURVE_THRESHOLDS),
        "nn_matcher": "mutual nearest neighbour of L2 descriptor distance, no ratio test",
        "shared_view": "image-1 keypoints warped by H inside image k, image-k keypoints "
        "warped by H^-1 inside image 1 (0 <= x < W, 0 <= y < H)",
        "resize_homography": "H' = A_k H A_1^-1, A: original to resized pixel centres",
        "matching_score": "2 * correct matches / (shared keypoints 1 + shared keypoints k)",
        "nn_map": "AP of -descriptor distance of each shared image-1 keypoint's nearest "
        "neighbour as a score of correctness (3 px), mean over pairs (0 without a positive)",
        "mle": "mean distance of the repeated keypoints, mean over pairs with any",
    }


def run(args: argparse.Namespace) -> int:
    from ..backends import create_backend
    from ..evaluation import homography as hp
    from ..features.extractor import SuperPointExtractor
    from ..frontend.preprocess import MIN_SIDE

    if args.out is not None:
        check_output_folder(args.out, "--out")
    specs = model_specs(args)
    hp.find_sequences(args.root)  # a wrong ROOT fails before the backends load
    runners, backends, described = [], [], []
    try:
        for weights, backend_name, precision in specs:
            name = model_name(weights, backend_name, precision, args.superpoint_weights)
            log.info("loading model %s", name)
            backend = create_backend(
                backend_name, **model_options(args, weights, backend_name, precision)
            )
            backends.append(backend)
            described.append(backend.describe())
            extractor = SuperPointExtractor(backend, superpoint_options(args))
            matchers = {
                "nn": lambda f1, fk: hp.mutual_nearest_neighbours(f1.descriptors, fk.descriptors)
            }
            if args.superglue_weights is not None:
                from ..matching.superglue_matcher import SuperGlueMatcher

                matcher = SuperGlueMatcher(backend, superglue_options(args))
                matchers["superglue"] = lambda f1, fk, m=matcher: m(f1, fk).matches0
            runners.append(hp.ModelRunner(name, extractor.extract_batch, matchers))
        sequences, skipped = hp.evaluate_homography_set(
            args.root,
            runners,
            args.resize,
            min_side=MIN_SIDE,
            progress=not args.no_progress,
        )
    finally:
        for backend in backends:
            backend.close()
    models = [
        {
            "name": r.name,
            "weights": str(spec[0]),
            "backend": spec[1],
            "precision": spec[2],
            "backend_description": desc,
            "matchers": list(r.matchers),
            "summary": hp.summarise(r.pairs, list(r.matchers)),
            "pairs": [p.as_dict() for p in r.pairs],
        }
        for r, spec, desc in zip(runners, specs, described)
    ]
    evaluated = len(runners[0].pairs) if runners else 0
    for s in skipped:
        log.info("skipped %s %s: %s", s.sequence, s.pair or "(sequence)", s.reason)
    print(hp.format_table(models))
    print(
        f"{sequences} sequences, {evaluated} pairs evaluated per model, "
        f"{sum(1 for s in skipped if s.pair)} pairs and "
        f"{sum(1 for s in skipped if not s.pair)} sequences skipped"
    )
    if args.out is not None:
        write_outputs(args, models, sequences, skipped)
    if evaluated == 0:
        print(
            f"spsg-ros {args.command}: error: no pair of {args.root} could be evaluated",
            file=sys.stderr,
        )
        return 2
    return 0


def write_outputs(args, models: list[dict], sequences: int, skipped: list) -> None:
    from ..evaluation.homography import plot_homography_accuracy

    payload = {
        "root": str(args.root),
        "settings": settings(args),
        "sequences": sequences,
        "skipped": [s.as_dict() for s in skipped],
        "models": models,
    }
    json_path = args.out / "results.json"
    png_path = args.out / "homography_accuracy.png"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2, default=str))
        print(f"wrote {json_path}")
        if any(m["pairs"] for m in models):
            plot_homography_accuracy(models, png_path)
            print(f"wrote {png_path}")
    except OSError as exc:
        raise write_error(args.out, "--out", exc) from None
