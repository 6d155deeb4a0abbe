"""``spsg-ros replay SOURCE --out DIR``: a recorded sequence through the frontend.

Writes ``DIR/results/`` (ROS 2 bag folder), ``DIR/metrics.csv``, ``DIR/summary.json``
and ``DIR/plots/*.png``; see :mod:`spsg_ros.evaluation.replay`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .. import parameters as schema
from ..stop_signals import exit_code_for
from .common import (
    accelerator_options,
    add_lightglue_args,
    add_network_args,
    add_schema_option,
    bounded,
    LIGHTGLUE_PARAMETERS,
    NETWORK_PARAMETERS,
)
from .source_args import add_source_args, open_from_args

log = logging.getLogger(__name__)

#: image preparation settings a replay may override (schema parameters)
PREPROCESS_PARAMETERS = ("resize", "max_image_side", "bit_depth")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "replay",
        help="run a recorded sequence through the frontend (bag, CSV, summary, plots)",
        description="Run a TartanAir / ASL (EuRoC, OIVIO) / TUM / image-folder / bag sequence "
        "through the "
        "frontend. Network options not given keep the frontend config's values "
        "(--config, else the defaults shown).",
    )
    add_source_args(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="frontend YAML config, or a node parameter file (spsg_ros/config/<mode>.yaml)",
    )
    p.add_argument(
        "--matcher",
        choices=schema.MATCHERS,
        default=None,
        help="SuperGlue, LightGlue or mutual nearest neighbour (default: the config's, superglue)",
    )
    p.add_argument(
        "--pair-with",
        choices=("previous", "keyframe"),
        default=None,
        help="pair each frame with the previous frame or the current keyframe",
    )
    p.add_argument("--overwrite", action="store_true", help="replace earlier outputs in --out")
    p.add_argument("--no-bag", action="store_true", help="do not write the results bag")
    p.add_argument(
        "--viz-every",
        type=bounded(int, 0),
        default=1,
        metavar="N",
        help="match picture in the bag every N frames, 0 for none (default: 1)",
    )
    p.add_argument(
        "--viz-scale",
        type=bounded(float, 0, 4, low_open=True),
        default=0.5,
        metavar="S",
        help="scale of the match pictures, in (0, 4] (default: 0.5)",
    )
    p.add_argument(
        "--path-every",
        type=bounded(int, 1),
        default=10,
        metavar="N",
        help="write the accumulated nav_msgs/Path every N frames (default: 10)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_network_args(p, given_only=True)
    images = p.add_argument_group("image preparation (default: the config's)")
    for name in PREPROCESS_PARAMETERS:
        add_schema_option(images, name, given_only=True)
    add_lightglue_args(
        p,
        given_only=True,
        title="lightglue (--matcher lightglue; default: the config's)",
        pruning_rule=False,
    )
    p.set_defaults(func=run)


def frontend_config(args: argparse.Namespace) -> dict:
    from ..frontend.config import load_config

    cfg = load_config(args.config) if args.config is not None else load_config(None)
    # given: override the config
    for name in NETWORK_PARAMETERS + PREPROCESS_PARAMETERS + LIGHTGLUE_PARAMETERS:
        value = getattr(args, name, None)
        if value is not None:
            section, key = schema.PARAMETERS_BY_NAME[name].config_path
            cfg[section][key] = str(value) if name == "weights_dir" else value
    # options of the exported-model runtimes that were given go to the backend as they are
    cfg["backend"]["options"] = dict(
        cfg["backend"].get("options") or {}, **accelerator_options(args)
    )
    if args.matcher is not None:
        cfg["matcher"] = args.matcher
    if args.pair_with is not None:
        cfg["pair_with"] = args.pair_with
    return load_config(cfg)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.replay import Replay
    from ..frontend.pipeline import Frontend

    sequence = open_from_args(args)
    if len(sequence) == 0:
        raise ValueError(f"{args.source}: no frames in the selection")
    cfg = frontend_config(args)
    log.info(
        "source: %s (%s, %d frames, ground truth: %s)",
        sequence.name,
        sequence.kind,
        len(sequence),
        sequence.ground_truth_kind,
    )
    with Frontend(cfg) as frontend:
        info = {
            "matcher": cfg["matcher"],
            "pair_with": cfg["pair_with"],
            "superpoint": cfg["superpoint"],
            **(
                {
                    "lightglue": {
                        k: str(v) if k == "weights" else v for k, v in cfg["lightglue"].items()
                    }
                }
                if cfg["matcher"] == "lightglue"
                else {}
            ),
            "backend_config": {
                k: (str(v) if v is not None else None)
                for k, v in cfg["backend"].items()
                if k != "options"
            },
        }
        try:
            info["backend"] = frontend.backend.describe()
        except Exception as exc:  # informative only
            info["backend"] = {"error": str(exc)}
        replay = Replay(
            sequence,
            frontend,
            args.out,
            stereo=args.stereo,
            overwrite=args.overwrite,
            write_bag=not args.no_bag,
            viz_every=args.viz_every,
            viz_scale=args.viz_scale,
            path_every=args.path_every,
            progress=not args.no_progress,
            run_info=info,
            stop=getattr(args, "stop", None),
        )
        summary = replay.run()
    print(format_summary(summary))
    if summary.get("interrupted"):
        return exit_code_for(summary.get("signal"))
    return 2 if summary.get("error") else 0


def format_summary(summary: dict) -> str:
    m = summary["metrics"]
    lines = [
        f"frames: {summary['frames']} ({summary['frames_flagged']} flagged), "
        f"valid poses: {summary['poses_valid']}, {summary['fps']:.2f} frames/s",
        f"keypoints {m['num_kp_mean']:.1f}, matches {m['num_matches_mean']:.1f}, "
        f"inliers {m['inliers_mean']:.1f}, match_prec {m['match_prec_mean']:.3f}, "
        "outlier_prec "
        f"{m['outlier_prec_mean'] if m['outlier_prec_mean'] is not None else float('nan'):.3f}",
    ]
    total = summary["latency_ms"].get("total", {})
    if total:
        lines.append(
            f"latency per frame: median {total['median']:.1f} ms, p95 {total['p95']:.1f} ms"
        )
    lightglue = summary.get("lightglue")
    if lightglue and lightglue.get("pairs"):
        lines.append(
            f"lightglue over {lightglue['pairs']} pairs: {lightglue['stop_layer_mean']:.2f}"
            f"/{lightglue['n_layers']} layers, {100 * lightglue['pruned_share_mean']:.1f}% "
            "of the points pruned (means)"
        )
    acc = summary.get("accuracy")
    if acc and acc.get("pairs_evaluated"):
        line = (
            f"accuracy over {acc['pairs_evaluated']} pairs: AUC@5/10/20 {acc['auc@5']:.1f} / "
            f"{acc['auc@10']:.1f} / {acc['auc@20']:.1f}, rotation error median "
            f"{acc.get('rot_err_deg_median', float('nan')):.3f} deg, translation direction median "
            f"{acc.get('t_dir_err_deg_median', float('nan')):.2f} deg"
        )
        if "t_err_m_median" in acc:
            line += f", translation error median {acc['t_err_m_median']:.4f} m"
        lines.append(line)
        if "rpe_trans_rmse_m" in acc:
            lines.append(
                f"RPE ({acc.get('rpe_alignment', 'none')} aligned): "
                f"{acc['rpe_trans_rmse_m']:.4f} m RMSE, {acc['rpe_rot_mean_deg']:.3f} deg mean; "
                f"ATE ({acc.get('ate_alignment', 'none')} aligned) "
                f"{acc.get('ate_rmse_m', float('nan')):.4f} m RMSE over "
                f"{acc.get('poses_evaluated', 0)} published poses"
            )
    if summary.get("frames_without_pose"):
        lines.append(
            f"{summary['frames_without_pose']} frames without a valid pose: no pose published "
            "for them, left out of ATE/RPE"
        )
    if summary.get("interrupted"):
        lines.append(
            f"interrupted ({summary.get('signal', 'SIGINT')}): outputs cover the frames "
            "processed so far"
        )
    if summary.get("error"):
        lines.append(f"stopped early: {summary['error']}")
    lines.append("outputs: " + ", ".join(summary["outputs"].values()))
    if summary.get("plots"):
        lines.append("plots: " + ", ".join(Path(p).name for p in summary["plots"]))
    return "\n".join(lines)
