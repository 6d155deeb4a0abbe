"""``spsg-ros export``: ONNX models (+ JSON sidecars) for the accelerator backends.

SuperPoint as its dense part, for fixed image sizes (``--sizes 480x640 ...``)
or dynamic H, W (``--dynamic``); SuperGlue with K keypoint slots and validity
masks (``--ks 512 1024``) and/or dynamic K (``--dynamic-k``). ``--atc`` then
prints the Ascend ``atc`` command lines for the files just written.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def parse_size(text: str) -> tuple[int, int]:
    """``480x640`` (H x W) -> (480, 640)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size '{text}': expected HxW, e.g. 480x640") from exc
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"size '{text}': at least 8x8")
    return h, w


def add_parser(sub) -> None:
    from ..networks.contract import DEFAULT_NUM_SLOTS, DEFAULT_OPSET
    from .common import add_schema_option

    p = sub.add_parser(
        "export",
        help="export SuperPoint/SuperGlue to ONNX (+ sidecars, ATC commands)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("exported"),
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    for name in ("superpoint_weights", "superglue_weights", "weights_dir"):
        add_schema_option(p, name)
    p.add_argument("--only", choices=("superpoint", "superglue"), help="export one network only")
    p.add_argument(
        "--sizes",
        type=parse_size,
        nargs="+",
        default=None,
        metavar="HxW",
        help="static SuperPoint input sizes (default: 480x640 unless --dynamic)",
    )
    p.add_argument("--dynamic", action="store_true", help="SuperPoint with dynamic H, W")
    p.add_argument(
        "--ks",
        type=int,
        nargs="+",
        default=None,
        metavar="K",
        help=f"SuperGlue keypoint slots per image (default: {DEFAULT_NUM_SLOTS} unless "
        "--dynamic-k)",
    )
    p.add_argument(
        "--dynamic-k", action="store_true", help="SuperGlue with dynamic K0, K1 as well"
    )
    add_schema_option(p, "sinkhorn_iterations")
    p.add_argument("--descriptor-dim", type=int, default=256)
    p.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default: %(default)s)"
    )
    p.add_argument(
        "--fp16",
        action="store_true",
        help="half-precision networks (float32 inputs/outputs; SuperGlue's optimal transport "
        "stays float32)",
    )
    p.add_argument("--simplify", action="store_true", help="simplify with onnxslim (or onnxsim)")
    g = p.add_argument_group("Ascend")
    g.add_argument(
        "--atc", action="store_true", help="print the atc command lines for the exported models"
    )
    g.add_argument(
        "--soc-versions",
        nargs="+",
        default=None,
        metavar="SOC",
        help="Ascend SoCs for --atc (default: Ascend310 Ascend310P3 Ascend310B1)",
    )
    g.add_argument(
        "--atc-k-gears",
        type=int,
        nargs="+",
        default=None,
        metavar="K",
        help="K gears (--dynamic_dims) for a dynamic-K SuperGlue",
    )
    g.add_argument("--om-dir", type=Path, default=None, help="where the OMs go (default: --out)")
    g.add_argument("--precision-mode", default=None, help="atc --precision_mode")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..networks.onnx_export import export_superglue, export_superpoint
    from ..networks import contract

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sizes: list = list(args.sizes or ([] if args.dynamic else [(480, 640)]))
    if args.dynamic:
        sizes.append(None)
    ks: list = list(args.ks or ([] if args.dynamic_k else [contract.DEFAULT_NUM_SLOTS]))
    if args.dynamic_k:
        ks.append(None)
    sp_cfg = {"descriptor_dim": args.descriptor_dim}
    sg_cfg = {
        "descriptor_dim": args.descriptor_dim,
        "sinkhorn_iterations": args.sinkhorn_iterations,
    }
    exported = []
    if args.only != "superglue":
        for size in sizes:
            h, w = size if size is not None else (None, None)
            path = out / f"{contract.superpoint_stem(h, w, args.fp16)}.onnx"
            exported.append(
                export_superpoint(
                    path,
                    args.superpoint_weights,
                    sp_cfg,
                    args.weights_dir,
                    h,
                    w,
                    args.opset,
                    args.fp16,
                    args.simplify,
                )
            )
    if args.only != "superpoint":
        for k in ks:
            path = out / f"{contract.superglue_stem(k, args.fp16)}.onnx"
            exported.append(
                export_superglue(
                    path,
                    args.superglue_weights,
                    sg_cfg,
                    args.weights_dir,
                    k,
                    args.opset,
                    args.fp16,
                    args.simplify,
                )
            )
    for model in exported:
        m = model.meta
        shape = contract.describe_io(m["inputs"]) + " -> " + contract.describe_io(m["outputs"])
        print(
            f"wrote {model.path} ({m['network']}, {'fp16' if m['fp16'] else 'fp32'}, opset "
            f"{m['opset']}"
            f"{', simplified by ' + m['simplified'] if m.get('simplified') else ''}): {shape}"
        )
        print(f"      {model.sidecar}")
    if args.atc:
        print_atc(args, exported, [s for s in sizes if s is not None])
    return 0


def print_atc(args: argparse.Namespace, exported, static_sizes) -> None:
    from ..export import atc

    socs = args.soc_versions or list(atc.SOC_VERSIONS)
    kwargs = {}
    if args.precision_mode:
        kwargs["precision_mode"] = args.precision_mode
    print(
        "\n# Ascend: convert the ONNX models with CANN's atc (source the toolkit's set_env.sh "
        "first)"
    )
    for model in exported:
        plans = atc.atc_plans(
            model.path,
            model.meta,
            socs,
            output_dir=args.om_dir or model.path.parent,
            image_sizes=static_sizes or None,
            k_gears=args.atc_k_gears,
            **kwargs,
        )
        atc.write_om_sidecars(plans, model.meta)
        print(atc.format_plans(plans))
