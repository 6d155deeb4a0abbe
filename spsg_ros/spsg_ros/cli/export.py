"""``spsg-ros export``: ONNX models (+ JSON sidecars) for the accelerator backends.

SuperPoint as its dense part, for fixed image sizes (``--sizes 480x640 ...``)
or dynamic H, W (``--dynamic``); SuperGlue with K keypoint slots and validity
masks (``--ks 512 1024``) and/or dynamic K (``--dynamic-k``). LightGlue
(``--lightglue``, or ``--only lightglue``): per K a folder ``lightglue_k<K>/``
with the stage models (input, one per layer, one assignment head per layer; the
host decides the early exit and prunes by masks) and the single non-adaptive
model, plus ``manifest.json``. ``--atc`` then prints the Ascend ``atc`` command
lines for the files just written (LightGlue: static K only).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
from pathlib import Path

from .common import bounded, check_output_folder

log = logging.getLogger(__name__)

# SuperGlue's masking needs ONNX Where (opset 9); the newest opset is the exporter's
MIN_OPSET = 9


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
    for name in ("superpoint_weights", "superglue_weights", "lightglue_weights", "weights_dir"):
        add_schema_option(p, name)
    p.add_argument(
        "--only", choices=("superpoint", "superglue", "lightglue"), help="export one network only"
    )
    p.add_argument(
        "--lightglue",
        action="store_true",
        help="export LightGlue as well (its weights fix the descriptor size; K from --ks / "
        "--dynamic-k)",
    )
    p.add_argument(
        "--lightglue-parts",
        choices=("both", "stages", "single"),
        default="both",
        help="LightGlue models: the stages (adaptive depth and width, run by the host), the "
        "single non-adaptive graph, or both (default: %(default)s)",
    )
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
        type=bounded(int, 1),
        nargs="+",
        default=None,
        metavar="K",
        help=f"SuperGlue/LightGlue keypoint slots per image (default: {DEFAULT_NUM_SLOTS} unless "
        "--dynamic-k)",
    )
    p.add_argument(
        "--dynamic-k", action="store_true", help="SuperGlue/LightGlue with dynamic K0, K1 as well"
    )
    add_schema_option(p, "sinkhorn_iterations")
    p.add_argument(
        "--descriptor-dim",
        type=bounded(int, 1),
        default=256,
        help="descriptor size of the weights (default: %(default)s)",
    )
    p.add_argument(
        "--opset",
        type=bounded(int, MIN_OPSET),
        default=DEFAULT_OPSET,
        help=f"ONNX opset, at least {MIN_OPSET} (default: %(default)s)",
    )
    p.add_argument(
        "--fp16",
        action="store_true",
        help="half-precision networks (float32 inputs/outputs; SuperGlue's optimal transport "
        "and LightGlue's double softmax stay float32)",
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
        type=bounded(int, 1),
        nargs="+",
        default=None,
        metavar="K",
        help="K gears (--dynamic_dims) for a dynamic-K SuperGlue",
    )
    g.add_argument("--om-dir", type=Path, default=None, help="where the OMs go (default: --out)")
    g.add_argument(
        "--precision-mode",
        default=None,
        metavar="MODE",
        help="atc --precision_mode (default: allow_fp32_to_fp16)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..networks.onnx_export import ExportError
    from ..networks import contract

    sizes: list = list(args.sizes or ([] if args.dynamic else [(480, 640)]))
    if args.dynamic:
        sizes.append(None)
    ks: list = list(args.ks or ([] if args.dynamic_k else [contract.DEFAULT_NUM_SLOTS]))
    if args.dynamic_k:
        ks.append(None)
    try:
        check_arguments(args, sizes, ks)  # everything before the first file is written
        exported = export_models(args, sizes, ks)
    except ExportError as exc:  # a missing package or a failed export: a message, no traceback
        raise ValueError(str(exc)) from None
    folders: set = set()
    for model in exported:
        m = model.meta
        if m["network"] == "lightglue":
            print_lightglue(model, model.path.parent not in folders)
            folders.add(model.path.parent)
            continue
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


def check_arguments(args: argparse.Namespace, sizes: list, ks: list) -> None:
    """Raise ValueError (or ExportError) for any argument that would fail half-way.

    The output folders, the weights, the exporter and simplifier packages, the opset,
    and with ``--atc`` the ATC plans of the models about to be written (from their
    contract, without exporting them).
    """
    from ..networks import contract
    from ..networks.onnx_export import _require_export_deps
    from ..networks.weights import WeightError, load_lightglue, load_superglue, load_superpoint

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out}: is a file, expected a folder")
    check_output_folder(args.out, "--out")
    if args.atc and args.om_dir is not None:
        check_output_folder(args.om_dir, "--om-dir")
    _require_export_deps()
    networks = export_networks(args)
    loaded = {}
    for network, load in (
        ("superpoint", load_superpoint),
        ("superglue", load_superglue),
        ("lightglue", load_lightglue),
    ):
        if network not in networks:
            continue
        try:  # loaded once here too: a wrong file fails before the other model is written
            loaded[network] = load(
                getattr(args, f"{network}_weights"),
                network_config(args, network),
                args.weights_dir,
            )
        except WeightError as exc:
            raise ValueError(f"--{network}-weights: {exc}") from None
    if "lightglue" in loaded and loaded["lightglue"].config["add_scale_ori"]:
        raise ValueError("--lightglue-weights: the export does not cover SIFT-like LightGlue")
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET as max_opset
    except ImportError:  # a private module: without it the exporter itself says no
        max_opset = None
    if max_opset is not None and args.opset > max_opset:
        raise ValueError(
            f"--opset {args.opset} is outside the range [{MIN_OPSET}, {max_opset}] of this "
            "torch's ONNX exporter"
        )
    if args.simplify and not any(
        importlib.util.find_spec(name) for name in ("onnxslim", "onnxsim")
    ):
        raise ValueError("--simplify needs onnxslim or onnxsim: pip install onnxslim")
    if args.atc:
        from ..export import atc

        dim = args.descriptor_dim
        planned = []
        if "superpoint" in networks:
            for size in sizes:
                h, w = size if size is not None else (None, None)
                meta = {"network": "superpoint", **contract.superpoint_io(h, w, dim)}
                planned.append((f"{contract.superpoint_stem(h, w, args.fp16)}.onnx", meta))
        if "superglue" in networks:
            for k in ks:
                meta = {"network": "superglue", **contract.superglue_io(k, dim)}
                planned.append((f"{contract.superglue_stem(k, args.fp16)}.onnx", meta))
        if "lightglue" in networks:
            planned += planned_lightglue(args, loaded["lightglue"].config, ks)
        try:
            for name, meta in planned:
                atc.atc_plans(args.out / name, meta, **atc_options(args, sizes))
        except atc.AtcError as exc:
            raise ValueError(f"--atc: {exc}") from None


def export_networks(args: argparse.Namespace) -> list[str]:
    """The networks to export: ``--only`` one, else SuperPoint and SuperGlue (and
    LightGlue with ``--lightglue``)."""
    if args.only is not None:
        return [args.only]
    return ["superpoint", "superglue"] + (["lightglue"] if args.lightglue else [])


def lightglue_parts(args: argparse.Namespace) -> tuple[bool, bool]:
    """(stages, single) from ``--lightglue-parts``."""
    return args.lightglue_parts in ("both", "stages"), args.lightglue_parts in ("both", "single")


def planned_lightglue(args: argparse.Namespace, cfg, ks: list) -> list:
    """(ONNX path relative to --out, sidecar) of each static LightGlue model to be written
    (for checking the ATC plans before exporting)."""
    from ..networks import lightglue_contract as lc

    stages, single = lightglue_parts(args)
    n, dim = cfg["n_layers"], cfg["descriptor_dim"]
    names = (lc.stage_names(n) if stages else []) + ([lc.SINGLE_STAGE] if single else [])
    planned = []
    for k in ks:
        if k is None:
            continue  # dynamic K: no ATC plan (Ascend takes static LightGlue stages)
        for name in names:
            io = lc.stage_io(
                name, k, cfg["input_dim"], dim, dim // cfg["num_heads"], name == f"layer{n - 1}"
            )
            meta = {"network": "lightglue", "stage": name, **io}
            planned.append((f"{lc.folder_name(k, args.fp16)}/{name}.onnx", meta))
    return planned


def network_config(args: argparse.Namespace, network: str) -> dict:
    """The configuration the exporter builds ``network`` (superpoint, superglue,
    lightglue) with."""
    if network == "lightglue":
        return {}  # the architecture is the weights file's
    if network == "superpoint":
        return {"descriptor_dim": args.descriptor_dim}
    return {
        "descriptor_dim": args.descriptor_dim,
        "sinkhorn_iterations": args.sinkhorn_iterations,
    }


def atc_options(args: argparse.Namespace, sizes: list) -> dict:
    """Keyword arguments of :func:`spsg_ros.export.atc.atc_plans` from the options."""
    from ..export import atc

    options = {
        "soc_versions": args.soc_versions or list(atc.SOC_VERSIONS),
        "image_sizes": [s for s in sizes if s is not None] or None,
        "k_gears": args.atc_k_gears,
    }
    if args.precision_mode:
        options["precision_mode"] = args.precision_mode
    return options


def export_models(args: argparse.Namespace, sizes: list, ks: list) -> list:
    from ..networks.onnx_export import export_superglue, export_superpoint
    from ..networks import contract

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sp_cfg = network_config(args, "superpoint")
    sg_cfg = network_config(args, "superglue")
    networks = export_networks(args)
    exported = []
    if "superpoint" in networks:
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
    if "superglue" in networks:
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
    if "lightglue" in networks:
        from ..networks import lightglue_contract as lc
        from ..networks.lightglue_export import export_lightglue

        stages, single = lightglue_parts(args)
        for k in ks:
            done = export_lightglue(
                out / lc.folder_name(k, args.fp16),
                args.lightglue_weights,
                args.weights_dir,
                k,
                args.opset,
                args.fp16,
                args.simplify,
                stages,
                single,
            )
            exported += done.models
    return exported


def print_lightglue(model, first: bool) -> None:
    """One line per LightGlue model, after a line naming the folder and its manifest."""
    from ..networks import contract
    from ..networks import lightglue_contract as lc

    m = model.meta
    if first:
        print(
            f"wrote {model.path.parent}/ (lightglue, K = {m['num_slots'] or 'dynamic'}, "
            f"{'fp16' if m['fp16'] else 'fp32'}, opset {m['opset']}"
            f"{', simplified by ' + m['simplified'] if m.get('simplified') else ''}): "
            f"{lc.MANIFEST}"
        )
    shape = contract.describe_io(m["inputs"]) + " -> " + contract.describe_io(m["outputs"])
    print(f"      {model.path.name}: {shape}")


def print_atc(args: argparse.Namespace, exported, static_sizes) -> None:
    from ..export import atc

    options = atc_options(args, static_sizes)
    print(
        "\n# Ascend: convert the ONNX models with CANN's atc (source the toolkit's set_env.sh "
        "first)"
    )
    skipped = set()
    for model in exported:
        output_dir = args.om_dir or model.path.parent
        if model.meta["network"] == "lightglue":
            if model.meta["num_slots"] is None:
                skipped.add(model.path.parent)
                continue
            if args.om_dir is not None:  # the OM folder gets the manifest the backend reads
                output_dir = args.om_dir / model.path.parent.name
                output_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(model.path.parent / "manifest.json", output_dir / "manifest.json")
        plans = atc.atc_plans(model.path, model.meta, output_dir=output_dir, **options)
        atc.write_om_sidecars(plans, model.meta)
        print(atc.format_plans(plans))
    for folder in sorted(skipped):
        print(f"# {folder}: dynamic-K LightGlue has no ATC plan (Ascend takes static K: --ks K)")
