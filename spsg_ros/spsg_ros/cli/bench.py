"""``spsg-ros bench``: per-stage latency of the backends against the torch reference.

For each image size and keypoint budget K, a frame pair goes through
pre-processing, the SuperPoint network, post-processing (per image) and
SuperGlue (per pair); median / p90 / max over ``--runs`` timed runs after
``--warmup``, peak memory, agreement with the baseline, and each backend's
speed-up over the reference-semantics PyTorch CPU path, which runs in the same
invocation (runs interleaved). See :mod:`spsg_ros.evaluation.benchmark`.

Backends are given as ``NAME[:key=value,...]`` with backend options, e.g.
``onnxruntime``, ``onnxruntime:num_slots=512`` (static padded SuperGlue),
``onnxruntime:fp16=true``, ``openvino``, ``torch``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from .export import parse_size

log = logging.getLogger(__name__)


def parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "+" in text:
        return [t for t in text.split("+") if t]
    return text


def parse_backend_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``onnxruntime:num_slots=512,threads=2`` -> (label, backend name, options).
    Lists use ``+``: ``providers=cuda+cpu``."""
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"backend spec '{spec}': '{item}' is not key=value")
        value = parse_value(value)
        if key == "providers" and isinstance(value, str):
            value = [value]
        if key == "threads":
            key = "intra_op_threads"
        options[key.replace("-", "_")] = value
    if not name:
        raise argparse.ArgumentTypeError(f"backend spec '{spec}': no backend name")
    return spec, name, options


def add_parser(sub) -> None:
    from ..evaluation.benchmark import KS, SIZES
    from ..features.superpoint_post import SUPERPOINT_DEFAULTS
    from ..matching.superglue_post import SUPERGLUE_DEFAULTS
    from .common import add_accelerator_args
    p = sub.add_parser("bench", help="per-stage latency of the backends against the torch reference",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", nargs="+", default=["onnxruntime"], metavar="SPEC",
                   help="backends to time, NAME[:key=value,...] (default: onnxruntime)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the reference torch path (then no speed-ups are computed)")
    p.add_argument("--sizes", type=parse_size, nargs="+", default=list(SIZES), metavar="HxW",
                   help="image sizes (default: %s)" % " ".join(f"{h}x{w}" for h, w in SIZES))
    p.add_argument("--ks", type=int, nargs="+", default=list(KS), metavar="K",
                   help="keypoint budgets: max_keypoints and SuperGlue size (default: %s)"
                        % " ".join(map(str, KS)))
    p.add_argument("--runs", type=int, default=10, help="timed runs (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default: %(default)s)")
    p.add_argument("--images", nargs=2, default=None, metavar="IMAGE",
                   help="the frame pair (resized to each size); default: synthetic textured images")
    p.add_argument("--no-fill-k", action="store_true",
                   help="run SuperGlue on the detected keypoints only, not topped up to exactly K")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write all results as JSON")
    p.add_argument("--gap-ms", type=float, default=100.0,
                   help="idle time before each timed call, so that the previous runner's spinning "
                        "worker threads settle (default: %(default)s)")
    g = p.add_argument_group("networks")
    g.add_argument("--superpoint-weights", default="superpoint", metavar="PATH")
    g.add_argument("--superglue-weights", default="indoor", metavar="PATH|indoor|outdoor")
    g.add_argument("--weights-dir", default=None, metavar="DIR")
    g.add_argument("--keypoint-threshold", type=float, default=SUPERPOINT_DEFAULTS["keypoint_threshold"])
    g.add_argument("--nms-radius", type=int, default=SUPERPOINT_DEFAULTS["nms_radius"])
    g.add_argument("--sinkhorn-iterations", type=int, default=SUPERGLUE_DEFAULTS["sinkhorn_iterations"])
    g.add_argument("--match-threshold", type=float, default=SUPERGLUE_DEFAULTS["match_threshold"])
    g.add_argument("--device", default="cpu", help="device for the backends (default: cpu)")
    g.add_argument("--torch-threads", type=int, default=None, help="threads of the torch baseline")
    add_accelerator_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import benchmark as bm
    from .common import accelerator_options
    specs = [parse_backend_spec(s) for s in args.backends]
    sp_config = {"keypoint_threshold": args.keypoint_threshold, "nms_radius": args.nms_radius}
    sg_config = {"sinkhorn_iterations": args.sinkhorn_iterations, "match_threshold": args.match_threshold}
    common = {"superpoint_weights": args.superpoint_weights, "superglue_weights": args.superglue_weights,
              "weights_dir": args.weights_dir, "device": args.device,
              "superpoint_config": {k: v for k, v in sp_config.items()},
              "superglue_config": {"sinkhorn_iterations": args.sinkhorn_iterations,
                                   "match_threshold": args.match_threshold},
              **accelerator_options(args)}
    runners = []
    try:
        if not args.no_baseline:
            runners.append(bm.ReferenceTorchRunner(args.superpoint_weights, args.superglue_weights,
                                                   args.weights_dir, args.torch_threads))
        for label, name, options in specs:
            runner = bm.BackendRunner(label, name, {**common, **options})
            log.info("bench: %s runs %s", label, runner.description)
            runners.append(runner)
        results = bm.run_benchmark(
            runners, args.sizes, args.ks, args.runs, args.warmup, sp_config, sg_config, args.images,
            fill_k=not args.no_fill_k, baseline=None if args.no_baseline else "torch-ref",
            gap=args.gap_ms / 1000.0,
            progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    finally:
        for r in runners:
            r.close()
    print(bm.format_table(results, None if args.no_baseline else "torch-ref"))
    for r in runners:
        print(f"{r.name}: {r.description}")
    if args.json:
        settings = {"backends": args.backends, "sizes": args.sizes, "ks": args.ks, "runs": args.runs,
                    "warmup": args.warmup, "images": args.images, "fill_k": not args.no_fill_k,
                    "gap_ms": args.gap_ms,
                    "superpoint_config": sp_config, "superglue_config": sg_config,
                    "runners": {r.name: r.description for r in runners}}
        print(f"wrote {bm.write_json(args.json, results, settings)}")
    return 0
