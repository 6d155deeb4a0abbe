"""``spsg-ros evaluate-pairs PAIRS --images DIR``: the upstream pairs protocol (SPEC section 3).

Prints AUC@5/10/20 of the pose error, precision, matching score and mean
matches (percentages as upstream prints them); ``--json`` writes them with the
per-pair figures.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from .common import (
    REFERENCE_DEFAULTS,
    REFERENCE_NOTES,
    add_network_args,
    add_resize_arg,
    add_schema_option,
    backend_options,
    bounded,
    check_network_image,
    check_output_file,
    superglue_options,
    superpoint_options,
    write_error,
)

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate-pairs",
        help="pose AUC, precision and matching score on a pairs file",
        description="Evaluate matching on image pairs with known relative pose, as the "
        "upstream pairs evaluation does (SPEC section 3).",
    )
    p.add_argument(
        "pairs",
        type=Path,
        help="pairs file: name0 name1 rot0 rot1 K0(9) K1(9) T_0to1(16) per line",
    )
    p.add_argument(
        "--images", type=Path, required=True, help="folder the image names are relative to"
    )
    add_resize_arg(p)
    p.add_argument(
        "--matcher",
        choices=("superglue", "nn"),
        default="superglue",
        help="SuperGlue or mutual nearest neighbour with ratio test (default: superglue)",
    )
    add_schema_option(p, "nn_ratio", given_only=True, note="--matcher nn")
    p.add_argument(
        "--max-pairs",
        type=bounded(int, 1),
        default=None,
        metavar="N",
        help="evaluate the first N pairs only (N >= 1)",
    )
    p.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="write the results as JSON"
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PNG",
        help="write the recall curve (.png, .pdf, .svg ...)",
    )
    p.add_argument("--no-progress", action="store_true")
    add_network_args(p, defaults=REFERENCE_DEFAULTS, notes=REFERENCE_NOTES)
    p.set_defaults(func=run)


def make_match_function(backend, args: argparse.Namespace):
    """``match(image0, image1) -> (kpts0, kpts1, matches0)`` with SuperPoint and the matcher."""
    from ..features.extractor import SuperPointExtractor

    extractor = SuperPointExtractor(backend, superpoint_options(args))
    if args.matcher == "superglue":
        from ..matching.superglue_matcher import SuperGlueMatcher

        matcher = SuperGlueMatcher(backend, superglue_options(args))
    else:
        from ..matching.nearest_neighbor import NearestNeighborMatcher

        matcher = NearestNeighborMatcher({} if args.nn_ratio is None else {"ratio": args.nn_ratio})

    def match(image0, image1):
        check_network_image(image0, "image", args.resize)
        check_network_image(image1, "image", args.resize)
        if image0.shape == image1.shape:
            f0, f1 = extractor.extract_batch([image0, image1])
        else:
            f0, f1 = extractor(image0), extractor(image1)
        m = matcher(f0, f1)
        return f0.keypoints, f1.keypoints, m.matches0

    return match


def format_results(summary: dict) -> str:
    return (
        f"Evaluation results (mean over {summary['pairs']} pairs):\n"
        f"AUC@5\t AUC@10\t AUC@20\t Prec\t MScore\t Matches\n"
        f"{summary['auc@5']:.2f}\t {summary['auc@10']:.2f}\t {summary['auc@20']:.2f}\t "
        f"{summary['precision']:.2f}\t {summary['matching_score']:.2f}\t "
        f"{summary['mean_matches']:.1f}\n"
        f"pairs without a pose: {summary['pairs_without_pose']}, mean keypoints "
        f"{summary['mean_keypoints']:.1f}"
    )


def run(args: argparse.Namespace) -> int:
    from ..backends import create_backend
    from ..evaluation.pairs import evaluate_pairs, parse_pairs_file, results_as_dicts

    # the outputs are checked before the evaluation (no traceback after a long run)
    if args.json:
        check_output_file(args.json, "--json")
    if args.plot:
        check_plot_file(args.plot)
    entries = parse_pairs_file(args.pairs)
    if args.max_pairs is not None:
        entries = entries[: args.max_pairs]
    options = backend_options(args)
    if args.matcher == "nn":  # every backend takes it (auto hands it on)
        options["load_superglue"] = False
    with create_backend(args.backend, **options) as backend:
        describe = backend.describe()
        log.info("backend: %s", describe)
        results, summary = evaluate_pairs(
            entries,
            args.images,
            make_match_function(backend, args),
            args.resize,
            progress=not args.no_progress,
        )
    print(format_results(summary))
    if args.json:
        payload = {
            "summary": summary,
            "pairs_file": str(args.pairs),
            "images": str(args.images),
            "resize": args.resize,
            "matcher": args.matcher,
            "backend": describe,
            "superpoint": superpoint_options(args),
            "superglue": superglue_options(args),
            "per_pair": results_as_dicts(results),
        }
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(payload, indent=2, default=str))
        except OSError as exc:
            raise write_error(args.json, "--json", exc) from None
        print(f"wrote {args.json}")
    if args.plot:
        from ..evaluation.plots import plot_pairs_recall

        try:
            args.plot.parent.mkdir(parents=True, exist_ok=True)
            plot_pairs_recall([r.pose_err_deg for r in results], args.plot)
        except OSError as exc:
            raise write_error(args.plot, "--plot", exc) from None
        print(f"wrote {args.plot}")
    return 0


def check_plot_file(path: Path) -> None:
    """ValueError unless ``path`` can be written and matplotlib knows its extension."""
    from matplotlib.backend_bases import FigureCanvasBase

    check_output_file(path, "--plot")
    types = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in types:
        raise ValueError(
            f"--plot {path}: unknown plot type {path.suffix or '(no extension)'!r}; use one of "
            + ", ".join("." + t for t in sorted(types))
        )
