"""``spsg-ros bench``: per-stage latency of the backends against the torch baseline.

For each image size and keypoint budget K, a frame pair goes through
pre-processing, the SuperPoint network, post-processing (per image) and
SuperGlue (per pair), each stage timed on its own, and the whole pair as the
frontend runs it; median / p90 / max over ``--runs`` timed runs after
``--warmup``, peak memory, agreement with the baseline, and each backend's
speed-up over the baseline: the torch backend in upstream mode (upstream torch
post-processing) on the CPU, which runs in the same invocation (runs
interleaved). See :mod:`spsg_ros.evaluation.benchmark`.

LightGlue (``--matchers lightglue``, alone or with superglue): the same pair
of feature sets (SuperPoint topped up to K) through every backend's
``lightglue`` and two PyTorch references on the CPU: ``lightglue-ref``
(networks.lightglue, pruning_rule cpu, adaptive depth and width as set by
--depth-confidence / --width-confidence: upstream on a CPU; the speed-up
baseline) and ``lightglue-ref-full`` (depth and width confidence -1: all
layers, no pruning). Each row reports the layers run and the points pruned.

Against the machine's limit: an fp32 GEMM probe (``--probe-size`` N, default
2048; 0: none) runs first, in the same invocation; for every runner and stage
the FLOPs are counted from the network it executes (convolutions, matrix
products, exponentials, the Sinkhorn's apart), and a second table gives the
GFLOP, the achieved GFLOP/s and the share of the probe's rate for the
SuperPoint network, SuperGlue and the pair. ``--json`` carries them per result
(``flops``, ``gflop_per_s``, ``probe_share``) and the probe (``gemm_probe``).

Backends are given as ``NAME[:key=value,...]`` with backend options, e.g.
``onnxruntime``, ``onnxruntime:num_slots=512`` (static padded SuperGlue),
``onnxruntime:fp16=true``, ``openvino``, ``torch``. Keys named like the
accelerator options (``threads``, ``providers``, ``model_cache`` ...) mean what
those options mean; others are passed to the backend as they are.
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


def spec_keywords(key: str, value: Any) -> dict[str, Any]:
    """One ``key=value`` of a backend spec as create_backend keywords: keys of the
    accelerator options go through :func:`.common.accelerator_options`."""
    from .common import accelerator_options

    as_option = ",".join(map(str, value)) if isinstance(value, list) else value
    return accelerator_options(argparse.Namespace(**{key: as_option})) or {key: value}


def parse_backend_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``onnxruntime:num_slots=512,threads=2`` -> (label, backend name, options).
    Lists use ``+``: ``providers=cuda+cpu``."""
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"backend spec '{spec}': '{item}' is not key=value")
        options.update(spec_keywords(key.replace("-", "_"), parse_value(value)))
    if not name:
        raise argparse.ArgumentTypeError(f"backend spec '{spec}': no backend name")
    return spec, name, options


def options_taken(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options backend ``name`` takes (the shared ones go to every --backends spec)."""
    from ..backends import backend_option_names

    takes = backend_option_names(name)
    kept = {k: v for k, v in options.items() if takes is None or k in takes}
    if len(kept) < len(options):
        log.info("bench: %s does not take %s", name, ", ".join(sorted(set(options) - set(kept))))
    return kept


def probe_size(text: str) -> int:
    """``--probe-size``: an integer >= 0 (0: no probe)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n}: use N > 0, or 0 for no probe")
    return n


def add_parser(sub) -> None:
    from ..evaluation.benchmark import KS, SIZES
    from ..evaluation.flops import DEFAULT_PROBE_SIZE
    from ..features.superpoint_post import SUPERPOINT_DEFAULTS
    from ..matching.superglue_post import SUPERGLUE_DEFAULTS
    from .common import add_accelerator_args, add_lightglue_args, add_schema_option

    p = sub.add_parser(
        "bench",
        description=__doc__,
        help="per-stage latency of the backends against the torch baseline",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--backends",
        nargs="+",
        default=["onnxruntime"],
        metavar="SPEC",
        help="backends to time, NAME[:key=value,...] (default: onnxruntime)",
    )
    p.add_argument(
        "--matchers",
        nargs="+",
        choices=("superglue", "lightglue"),
        default=["superglue"],
        help="matchers to time: superglue (the stages above against torch-ref), lightglue "
        "(runners lightglue-ref, lightglue-ref-full and each backend's lightglue) "
        "(default: superglue)",
    )
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the torch baseline (then no speed-ups are computed)",
    )
    p.add_argument(
        "--sizes",
        type=parse_size,
        nargs="+",
        default=list(SIZES),
        metavar="HxW",
        help="image sizes (default: %s)" % " ".join(f"{h}x{w}" for h, w in SIZES),
    )
    p.add_argument(
        "--ks",
        type=int,
        nargs="+",
        default=list(KS),
        metavar="K",
        help="keypoint budgets: max_keypoints and SuperGlue size (default: %s)"
        % " ".join(map(str, KS)),
    )
    p.add_argument("--runs", type=int, default=10, help="timed runs (default: %(default)s)")
    p.add_argument(
        "--warmup", type=int, default=2, help="untimed runs first (default: %(default)s)"
    )
    p.add_argument(
        "--images",
        nargs=2,
        default=None,
        metavar="IMAGE",
        help="the frame pair (resized to each size); default: synthetic textured images",
    )
    p.add_argument(
        "--no-fill-k",
        action="store_true",
        help="run SuperGlue on the detected keypoints only, not topped up to exactly K",
    )
    p.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="write all results as JSON"
    )
    p.add_argument(
        "--probe-size",
        type=probe_size,
        default=DEFAULT_PROBE_SIZE,
        metavar="N",
        help="fp32 N x N GEMM probe run first, the machine's achieved GFLOP/s that each "
        "stage's rate is compared with; 0: no probe, shares n/a (default: %(default)s)",
    )
    p.add_argument(
        "--gap-ms",
        type=float,
        default=100.0,
        help="idle time before each timed call, so that the previous runner's spinning "
        "worker threads settle (default: %(default)s)",
    )
    g = p.add_argument_group("networks")
    g.add_argument("--superpoint-weights", default="superpoint", metavar="PATH")
    g.add_argument("--superglue-weights", default="indoor", metavar="PATH|indoor|outdoor")
    g.add_argument("--weights-dir", default=None, metavar="DIR")
    # the schema's options (type, range, help) at the networks' upstream defaults
    for name, defaults in (
        ("keypoint_threshold", SUPERPOINT_DEFAULTS),
        ("nms_radius", SUPERPOINT_DEFAULTS),
        ("sinkhorn_iterations", SUPERGLUE_DEFAULTS),
        ("match_threshold", SUPERGLUE_DEFAULTS),
    ):
        add_schema_option(g, name, default=defaults[name])
    g.add_argument("--device", default="cpu", help="device for the backends (default: cpu)")
    g.add_argument("--torch-threads", type=int, default=None, help="threads of the torch baseline")
    add_lightglue_args(p, title="lightglue (--matchers lightglue)", pruning_rule=False)
    add_accelerator_args(p)
    # no options: --ks sets max_keypoints per run; the borders stay upstream's
    p.set_defaults(
        func=run,
        max_keypoints=SUPERPOINT_DEFAULTS["max_keypoints"],
        remove_borders=SUPERPOINT_DEFAULTS["remove_borders"],
    )


def run(args: argparse.Namespace) -> int:
    from ..evaluation import benchmark as bm
    from ..evaluation.flops import gemm_probe
    from .common import (
        accelerator_options,
        backend_options,
        lightglue_options,
        superglue_options,
        superpoint_options,
    )

    with_superglue = "superglue" in args.matchers
    options = backend_options(args)
    if not with_superglue:
        options["load_superglue"] = False  # to the backends that take it
    accelerator = accelerator_options(args)
    network = {k: v for k, v in options.items() if k not in accelerator}
    sp_config = {k: v for k, v in superpoint_options(args).items() if k != "max_keypoints"}
    sg_config = superglue_options(args)
    baseline = None if args.no_baseline else bm.BASELINE
    runners = []
    results: list = []
    lg_results = None
    lg_config = lightglue_options(args)
    probe = None
    try:
        if baseline:
            runners.append(bm.torch_baseline({**network, "device": "cpu"}, args.torch_threads))
        for label, name, spec_options in map(parse_backend_spec, args.backends):
            # the shared options go to the backends that take them; a spec's own are checked
            shared = options_taken(name, options)
            runner = bm.BackendRunner(label, name, {**shared, **spec_options})
            log.info("bench: %s runs %s", label, runner.description)
            runners.append(runner)

        def progress(msg: str) -> None:
            print(f"  {msg}", file=sys.stderr, flush=True)

        if args.probe_size > 0:  # after the runners: torch has its bench thread count
            progress(f"GEMM probe: fp32 {args.probe_size}^3 matrix product")
            probe = gemm_probe(args.probe_size)
            progress(f"GEMM probe: {probe.gflop_per_s:.1f} GFLOP/s ({probe.library})")
        if with_superglue:
            results = bm.run_benchmark(
                runners,
                args.sizes,
                args.ks,
                args.runs,
                args.warmup,
                sp_config,
                sg_config,
                args.images,
                fill_k=not args.no_fill_k,
                baseline=baseline,
                gap=args.gap_ms / 1000.0,
                progress=progress,
                probe=probe,
            )
        if "lightglue" in args.matchers:
            # the baseline's torch backend would run exactly lightglue-ref: left out
            lg_runners = bm.lightglue_runners(runners, lg_config, skip=(bm.BASELINE,))
            lg_results = bm.run_lightglue_benchmark(
                lg_runners,
                runners[0],
                args.sizes,
                args.ks,
                args.runs,
                args.warmup,
                sp_config,
                args.images,
                fill_k=not args.no_fill_k,
                gap=args.gap_ms / 1000.0,
                progress=progress,
                probe=probe,
            )
    finally:
        for r in runners:
            r.close()
    if with_superglue:
        print(bm.format_table(results, baseline))
        print()
        print(bm.format_limit_table(results, probe))
    if lg_results is not None:
        print(bm.format_lightglue_table(lg_results))
    for r in runners:
        print(f"{r.name}: {r.description}")
    for r in lg_runners if lg_results is not None else []:
        if r.name in (bm.LIGHTGLUE_REFERENCE, bm.LIGHTGLUE_FULL):
            print(f"{r.name}: {r.description}")
    if args.json:
        settings = {
            "backends": args.backends,
            "sizes": args.sizes,
            "ks": args.ks,
            "runs": args.runs,
            "warmup": args.warmup,
            "images": args.images,
            "fill_k": not args.no_fill_k,
            "gap_ms": args.gap_ms,
            "superpoint_config": sp_config,
            "superglue_config": sg_config,
            "runners": {r.name: r.description for r in runners},
            "matchers": args.matchers,
            "probe_size": args.probe_size,
        }
        if lg_results is not None:
            settings["lightglue_config"] = lg_config
            settings["lightglue_runners"] = {r.name: r.description for r in lg_runners}
        print(f"wrote {bm.write_json(args.json, results, settings, lg_results, probe)}")
    return 0
