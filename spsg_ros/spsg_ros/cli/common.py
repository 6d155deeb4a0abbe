"""Options shared by the subcommands that run the networks."""

from __future__ import annotations

import argparse
from typing import Any, Mapping

from .. import parameters as schema


# Schema parameters every network-running subcommand takes, in --help order.
NETWORK_PARAMETERS = (
    "superpoint_weights",
    "superglue_weights",
    "weights_dir",
    "max_keypoints",
    "nms_radius",
    "keypoint_threshold",
    "remove_borders",
    "sinkhorn_iterations",
    "match_threshold",
    "backend",
    "device",
)
_TYPES = {"integer": int, "double": float, "string": str}
# match-pair and evaluate-pairs reproduce upstream results: the torch reference by default
REFERENCE_DEFAULTS = {"backend": "torch"}
REFERENCE_NOTES = {"backend": "the bit-exact reference here; the node and replay default to auto"}


def add_schema_option(
    group, name: str, *, given_only: bool = False, default: Any = None, note: str = ""
) -> None:
    """``--NAME`` for schema parameter ``name``: type, default, range and help from the schema.

    ``given_only``: the option's value is None unless given (it then overrides a
    configuration file), while ``--help`` still shows the schema default.
    ``default`` replaces the schema default for this command (say why in ``note``).
    """
    spec = schema.PARAMETERS_BY_NAME[name]
    shown = spec.default if default is None else default
    if spec.empty_is_none and shown == "":
        shown = None
    extra = "; ".join(
        part
        for part in (
            spec.constraints()
            .replace("; read-only after start-up", "")
            .replace("read-only after start-up", ""),
            note,
        )
        if part
    )
    help_text = spec.description + (f" ({extra})" if extra else "")
    if shown is not None:
        help_text += f" (default: {shown})"
    kwargs: dict[str, Any] = {
        "default": None if given_only else shown,
        "help": help_text.replace("%", "%%"),
    }
    if spec.kind == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
    elif spec.kind == "integer_array":
        kwargs.update(type=int, nargs="+", metavar="N")
    else:
        kwargs["type"] = _TYPES[spec.kind]
        if spec.choices:
            kwargs["choices"] = spec.choices
    group.add_argument("--" + name.replace("_", "-"), **kwargs)


def add_network_args(
    parser: argparse.ArgumentParser,
    *,
    given_only: bool = False,
    defaults: Mapping[str, Any] | None = None,
    notes: Mapping[str, str] | None = None,
) -> None:
    """The network options (from the parameter schema) and the exported-model options."""
    g = parser.add_argument_group("networks")
    for name in NETWORK_PARAMETERS:
        add_schema_option(
            g,
            name,
            given_only=given_only,
            default=(defaults or {}).get(name),
            note=(notes or {}).get(name, ""),
        )
    add_accelerator_args(parser)


def add_accelerator_args(parser: argparse.ArgumentParser) -> None:
    """Options of the exported-model backends (onnxruntime, auto; others may read them)."""
    g = parser.add_argument_group("exported models and runtimes")
    g.add_argument(
        "--onnx-dir",
        default=None,
        metavar="DIR",
        help="folder of models from `spsg-ros export` (default: export once into a cache)",
    )
    g.add_argument(
        "--superpoint-model",
        default=None,
        metavar="PATH",
        help="exported SuperPoint model (.onnx with its .json sidecar)",
    )
    g.add_argument(
        "--superglue-model",
        default=None,
        metavar="PATH",
        help="exported SuperGlue model (.onnx with its .json sidecar)",
    )
    g.add_argument(
        "--num-slots",
        type=int,
        default=None,
        metavar="K",
        help="static SuperGlue with K keypoint slots (more keypoints: the K best by score); "
        "default: dynamic K",
    )
    g.add_argument(
        "--providers",
        default=None,
        metavar="LIST",
        help="onnxruntime execution providers in order, comma-separated: tensorrt, cuda, "
        "openvino, cpu (default: from --device)",
    )
    g.add_argument(
        "--fp16", action="store_true", help="half precision (fp16 models, TensorRT fp16)"
    )
    g.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="intra-op threads of the runtime (default: the runtime's choice)",
    )
    g.add_argument(
        "--model-cache",
        default=None,
        metavar="DIR",
        help="cache of exported models and TensorRT engines (default: ~/.cache/spsg_ros/onnx)",
    )
    g.add_argument(
        "--backend-preference",
        default=None,
        metavar="LIST",
        help="order tried by --backend auto, comma-separated (default: ascend,onnxruntime,"
        "openvino,torch; cuda devices: onnxruntime,torch)",
    )


def section_options(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """Frontend-config keys of ``section`` (superpoint, superglue) from the network options."""
    return {
        spec.config_path[-1]: getattr(args, spec.name)
        for spec in map(schema.PARAMETERS_BY_NAME.get, NETWORK_PARAMETERS)
        if spec.config_path and spec.config_path[0] == section
    }


def superpoint_options(args: argparse.Namespace) -> dict[str, Any]:
    return section_options(args, "superpoint")


def superglue_options(args: argparse.Namespace) -> dict[str, Any]:
    return section_options(args, "superglue")


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for :func:`spsg_ros.backends.create_backend`."""
    return {
        "superpoint_weights": args.superpoint_weights,
        "superglue_weights": args.superglue_weights,
        "superpoint_config": superpoint_options(args),
        "superglue_config": superglue_options(args),
        "weights_dir": args.weights_dir,
        "device": args.device,
        **accelerator_options(args),
    }


def accelerator_options(args: argparse.Namespace) -> dict[str, Any]:
    """The exported-model options that were given (absent ones are left out so that
    each backend keeps its own defaults)."""
    out: dict[str, Any] = {}
    for attr, key in (
        ("onnx_dir", "onnx_dir"),
        ("superpoint_model", "superpoint_model"),
        ("superglue_model", "superglue_model"),
        ("num_slots", "num_slots"),
        ("threads", "intra_op_threads"),
        ("model_cache", "cache_dir"),
        ("backend_preference", "backend_preference"),
    ):
        value = getattr(args, attr, None)
        if value is not None:
            out[key] = value
    providers = getattr(args, "providers", None)
    if providers:
        out["providers"] = [p.strip() for p in providers.split(",") if p.strip()]
    if getattr(args, "fp16", False):
        out["fp16"] = True
    if getattr(args, "backend", None) not in (None, "auto"):
        out.pop("backend_preference", None)  # only the auto backend takes it
    return out
