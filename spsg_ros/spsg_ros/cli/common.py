"""Options shared by the subcommands that run the networks."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

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
    "num_threads",
)
# Further option names of schema parameters (--threads: the runtime options' former name)
OPTION_ALIASES = {"num_threads": ("--threads",)}
# Schema parameters of the LightGlue matcher (matcher lightglue), in --help order.
LIGHTGLUE_PARAMETERS = (
    "lightglue_weights",
    "depth_confidence",
    "width_confidence",
    "filter_threshold",
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
    if spec.kind in _NUMERIC_KINDS:
        kwargs.update(action=SchemaValueAction, schema_name=name)
    group.add_argument("--" + name.replace("_", "-"), *OPTION_ALIASES.get(name, ()), **kwargs)


_NUMERIC_KINDS = ("integer", "double", "integer_array")


def schema_range_text(spec: schema.ParameterSpec) -> str:
    """``[min, max]`` of a numeric schema parameter (``>= min`` / ``<= max`` when open)."""
    if spec.min_value is not None and spec.max_value is not None:
        return f"[{spec.min_value}, {spec.max_value}]"
    if spec.min_value is not None:
        return f">= {spec.min_value}"
    return f"<= {spec.max_value}"


def schema_value_problem(name: str, value: Any) -> str | None:
    """Why a command-line ``value`` does not suit schema parameter ``name``, or None.

    The schema's range first (``-3 is outside the range [-1, 100000] of parameter
    max_keypoints``), then the frontend configuration's own rules, the ones a range
    cannot say (``max_keypoints`` 0, ``resize`` 0 or three values), so that the
    command line, config files and the node reject the same values.
    """
    spec = schema.PARAMETERS_BY_NAME[name]
    numbers = list(value) if isinstance(value, (list, tuple)) else [value]
    shown = " ".join(str(v) for v in numbers)
    if spec.kind not in _NUMERIC_KINDS:
        return None
    for number in numbers:
        if (
            not math.isfinite(number)
            or (spec.min_value is not None and number < spec.min_value)
            or (spec.max_value is not None and number > spec.max_value)
        ):
            return f"{shown} is outside the range {schema_range_text(spec)} of parameter {name}"
    if spec.config_path is None:
        return None
    from ..frontend.config import check_parameters

    reason = check_parameters({name: list(numbers) if spec.kind == "integer_array" else value})
    if reason:
        # "frontend.superpoint.max_keypoints = 0: expected ..." -> "expected ..."
        return f"{shown} is not a valid value of parameter {name}: {reason.split(': ', 1)[-1]}"
    return None


class SchemaValueAction(argparse.Action):
    """Store the option's value after :func:`schema_value_problem` (argparse error, exit 2)."""

    def __init__(self, *args: Any, schema_name: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.schema_name = schema_name

    def __call__(self, parser, namespace, values, option_string=None):
        problem = schema_value_problem(self.schema_name, values)
        if problem:
            raise argparse.ArgumentError(self, problem)
        setattr(namespace, self.dest, values)


def add_resize_arg(parser, default: Sequence[int] = (640, 480)) -> None:
    """``--resize`` of the commands that read image files (schema parameter ``resize``)."""
    parser.add_argument(
        "--resize",
        type=int,
        nargs="+",
        default=list(default),
        metavar="N",
        action=SchemaValueAction,
        schema_name="resize",
        help="W H, or the longest side N, or -1 to keep the size (W, H, N > 0; default: "
        f"{' '.join(str(v) for v in default)})",
    )


def bounded(
    kind: Callable[[str], Any],
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    also: Iterable[Any] = (),
    meaning: str = "",
) -> Callable[[str], Any]:
    """An argparse ``type``: ``kind`` (int or float) within the given bounds.

    ``low_open``: the lower bound itself is excluded; ``also``: values allowed
    outside the bounds (``-1`` for "all"), described by ``meaning``. Out of range:
    ``argument --step: 0 is outside the range >= 1`` (argparse error, exit 2).
    """
    also = tuple(also)
    if low is not None and high is not None:
        text = f"{'(' if low_open else '['}{low}, {high}]"
    elif low is not None:
        text = f"{'>' if low_open else '>='} {low}"
    else:
        text = f"<= {high}"
    if also:
        text = " or ".join([*(str(v) for v in also), text])
    if meaning:
        text += f" ({meaning})"

    def convert(text_value: str):
        value = kind(text_value)  # ValueError: argparse's "invalid int value"
        if value in also:
            return value
        if (
            (isinstance(value, float) and not math.isfinite(value))
            or (low is not None and (value <= low if low_open else value < low))
            or (high is not None and value > high)
        ):
            raise argparse.ArgumentTypeError(f"{text_value} is outside the range {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


def check_output_file(path: Path, option: str) -> None:
    """Raise ValueError when file ``path`` (of ``option``) cannot be written, before any work.

    A folder, a parent that is a file, or a parent folder without write permission
    (the nearest existing one: missing folders are created on writing).
    """
    try:
        is_dir = path.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise write_error(path, option, exc) from None
    if is_dir:
        raise ValueError(f"{option} {path}: is a folder, expected a file name")
    check_output_folder(path.parent, option, str(path))


def check_output_folder(folder: Path, option: str, what: str | None = None) -> None:
    """Raise ValueError when ``folder`` cannot be created or written into."""
    what = what or str(folder)
    existing = Path(os.path.abspath(folder))
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:
        raise write_error(Path(what), option, exc) from None
    if not is_dir:
        raise ValueError(f"{option} {what}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {what}: folder {existing} is not writable")


def check_image_file(path: Path, option: str) -> None:
    """:func:`check_output_file` and an image type OpenCV can write (by the extension)."""
    import cv2

    check_output_file(path, option)
    if not path.suffix or not cv2.haveImageWriter(str(path)):
        raise ValueError(
            f"{option} {path}: unknown image type {path.suffix or '(no extension)'!r}; "
            "use .png or .jpg"
        )


def check_network_image(image, name: Any, resize: Sequence[int]) -> None:
    """ValueError when a (resized) image is too small for SuperPoint (not a torch error)."""
    from ..frontend.preprocess import MIN_SIDE

    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ValueError(
            f"{name}: {width}x{height} after --resize {' '.join(str(v) for v in resize)}; "
            f"SuperPoint needs at least {MIN_SIDE} px a side"
        )


def write_npz(path: Path, arrays: dict[str, Any], option: str = "--out") -> None:
    """``arrays`` into exactly ``path`` (np.savez given a name would add ``.npz``)."""
    import numpy as np

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as exc:
        raise write_error(path, option, exc) from None
    print(f"wrote {path}")


def write_error(path: Path, option: str, exc: OSError) -> ValueError:
    """The error to raise when writing ``path`` failed half-way (no traceback)."""
    return ValueError(f"{option} {path}: cannot write: {exc.strerror or exc}")


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


def add_lightglue_args(
    parser: argparse.ArgumentParser,
    *,
    given_only: bool = False,
    title: str = "lightglue (--matcher lightglue)",
    pruning_rule: bool = True,
) -> None:
    """The LightGlue options (from the parameter schema), and ``--pruning-rule``."""
    g = parser.add_argument_group(title)
    for name in LIGHTGLUE_PARAMETERS:
        add_schema_option(g, name, given_only=given_only)
    if pruning_rule:
        from ..matching.lightglue_matcher import LIGHTGLUE_MATCH_DEFAULTS
        from ..networks.config import PRUNING_RULES

        g.add_argument(
            "--pruning-rule",
            choices=PRUNING_RULES,
            default=LIGHTGLUE_MATCH_DEFAULTS["pruning_rule"],
            help="when LightGlue prunes an image: cpu always (upstream on the CPU), cuda / "
            "flash only above 1024 / 1536 points (upstream on CUDA), auto by the device "
            "(default: %(default)s)",
        )


def lightglue_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Backend.lightglue``'s config from the LightGlue and network options (options
    left None keep their defaults)."""
    out: dict[str, Any] = {}
    for name in LIGHTGLUE_PARAMETERS:
        value = getattr(args, name, None)
        if value is not None:
            out[schema.PARAMETERS_BY_NAME[name].config_path[-1]] = value
    if getattr(args, "weights_dir", None):
        out["weights_dir"] = args.weights_dir
    if getattr(args, "pruning_rule", None) is not None:
        out["pruning_rule"] = args.pruning_rule
    return out


def add_accelerator_args(parser: argparse.ArgumentParser) -> None:
    """Options of the exported-model backends (onnxruntime, auto; others may read them),
    and ``--num-threads`` when the parser does not have it yet."""
    g = parser.add_argument_group("exported models and runtimes")
    try:
        add_schema_option(g, "num_threads")
    except argparse.ArgumentError:  # the network options (NETWORK_PARAMETERS) added it
        pass
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
        type=bounded(int, 1),
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


def backend_option_taken(name: str, option: str) -> bool:
    """Whether backend ``name`` takes keyword ``option`` (a backend taking any does)."""
    from ..backends import backend_option_names

    takes = backend_option_names(name)
    return takes is None or option in takes


def accelerator_options(args: argparse.Namespace) -> dict[str, Any]:
    """The exported-model options that were given (absent ones are left out so that
    each backend keeps its own defaults)."""
    out: dict[str, Any] = {}
    for attr, key in (
        ("onnx_dir", "onnx_dir"),
        ("superpoint_model", "superpoint_model"),
        ("superglue_model", "superglue_model"),
        ("num_slots", "num_slots"),
        # 0 (auto) is every backend's default: left out, for backends without the option
        ("num_threads", "num_threads"),
        ("threads", "num_threads"),  # a bench spec's threads=N
        ("model_cache", "cache_dir"),
        ("backend_preference", "backend_preference"),
    ):
        value = getattr(args, attr, None)
        if value is not None and not (key == "num_threads" and value == 0):
            out[key] = value
    providers = getattr(args, "providers", None)
    if providers:
        out["providers"] = [p.strip() for p in providers.split(",") if p.strip()]
    if getattr(args, "fp16", False):
        out["fp16"] = True
    if getattr(args, "backend", None) not in (None, "auto"):
        out.pop("backend_preference", None)  # only the auto backend takes it
    return out
