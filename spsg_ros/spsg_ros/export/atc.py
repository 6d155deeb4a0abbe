"""``atc`` command lines that turn exported ONNX models into Ascend ``.om`` files.

:func:`atc_commands` returns, for each SoC, the exact command consistent with
the model's JSON sidecar (input names and shapes written by ``spsg-ros export``):

* ``--framework=5`` (ONNX), ``--soc_version``, ``--output`` (ATC appends ``.om``),
  ``--precision_mode``, ``--log``;
* static models: ``--input_shape`` with the sidecar's shapes, ``--input_format=NCHW``
  for SuperPoint's image and ``ND`` for SuperGlue's (1, K, 2) / (1, K) / (1, D, K)
  inputs and for the LightGlue stage models (static K only: one OM per stage, run
  one by one by the host, see :mod:`spsg_ros.networks.lightglue_contract`);
* dynamic models: shape **gears** ``--input_shape`` with ``-1`` +
  ``--dynamic_dims`` (``--input_format=ND``, 2 to 100 gears): image sizes for a
  dynamic SuperPoint, K slot counts for a dynamic-K SuperGlue (every ``-1`` of a
  gear is that gear's K). A single size/K gives a static command instead.
  Shape **ranges** (``--input_shape=name:1,1~2048,2``, run as ``dymshape``) are
  only emitted with ``shape_ranges=True`` and only for chips that have them
  (Ascend 310P); Ascend 310 (Atlas 200/300/500 inference) and Ascend 310B
  (Atlas 200I/500 A2) support no shape ranges, so they get gears.

Notes worth knowing (also returned in :class:`AtcPlan.notes`):

* CANN releases before 8.0 allow at most 4 dynamic dimensions per gear; a
  dynamic-K SuperGlue has 8 (K in keypoints/scores/descriptors/mask of both
  images), so on such a toolkit use static-K models (one ``.om`` per K).
* ``precision_mode`` defaults to ``allow_fp32_to_fp16``: matrix ops (convolutions,
  MatMul) in fp16, vector ops (softmax, Sinkhorn's log-sum-exp) in fp32 where
  the chip has them. ATC's own inference default ``force_fp16`` is faster but
  runs SuperGlue's optimal transport in fp16.

:func:`om_sidecar` / :func:`write_om_sidecars` write ``<om stem>.json`` (the
ONNX sidecar plus an ``om`` section: SoC, mode, gears) next to where the OM
will be, which the ``ascend`` backend reads to pick gears and check the model.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..networks import contract

SOC_VERSIONS = ("Ascend310", "Ascend310P3", "Ascend310B1")
#: chips whose ATC accepts shape ranges in --input_shape (dynamic shape, "dymshape")
SHAPE_RANGE_SOCS = frozenset({"Ascend310P1", "Ascend310P3"})
PRECISION_MODES = (
    "force_fp16",
    "allow_fp32_to_fp16",
    "allow_mix_precision",
    "must_keep_origin_dtype",
    "force_fp32",
    "cube_fp16in_fp32out",
    "allow_mix_precision_fp16",
)
DEFAULT_PRECISION_MODE = "allow_fp32_to_fp16"
LOG_LEVELS = ("debug", "info", "warning", "error", "null")
DEFAULT_K_GEARS = (256, 512, 1024, 2048)
MAX_GEARS = 100
ONNX_FRAMEWORK = 5


class AtcError(ValueError):
    """The requested ATC conversion does not fit the model or the chip."""


@dataclass
class AtcPlan:
    """One ATC conversion: the argv, where the OM lands, and how it must be run."""

    soc_version: str
    network: str
    argv: list[str]
    om_path: Path
    mode: str  # "static", "dymdims" or "dymshape"
    input_shape: dict[str, list[Any]]  # per input: ints, -1 or "a~b" ranges
    gears: list[dict[str, list[int]]] = field(default_factory=list)
    precision_mode: str = DEFAULT_PRECISION_MODE
    notes: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return format_command(self.argv)


_SAFE = re.compile(r"^[A-Za-z0-9_./:=,+@%-]*$")
_ALWAYS_QUOTED = ("--input_shape", "--dynamic_dims")


def _quote(value: str) -> str:
    if _SAFE.match(value):
        return value
    escaped = re.sub(r'(["\\$`])', r"\\\1", value)
    return f'"{escaped}"'


def format_command(argv: Sequence[str]) -> str:
    """``atc --flag="value" ...`` with shell-safe double quotes where needed."""
    parts = [_quote(argv[0])]
    for arg in argv[1:]:
        if arg.startswith("--") and "=" in arg:
            flag, value = arg.split("=", 1)
            if flag in _ALWAYS_QUOTED:  # as ATC's documentation writes them
                parts.append(
                    f'{flag}="{value}"' if _SAFE.match(value) else f"{flag}={_quote(value)}"
                )
            else:
                parts.append(f"{flag}={_quote(value)}")
        else:
            parts.append(_quote(arg))
    return " ".join(parts)


def _is_static(dim: Any) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool) and dim > 0


def _load_sidecar(onnx_path: Path, sidecar: Any) -> dict[str, Any]:
    if sidecar is None:
        return contract.read_sidecar(onnx_path)
    if isinstance(sidecar, (str, os.PathLike)):
        return json.loads(Path(sidecar).read_text())
    return dict(sidecar)


def _shape_text(shape: Sequence[Any]) -> str:
    return ",".join(str(d) for d in shape)


def _input_shape_arg(shapes: Mapping[str, Sequence[Any]]) -> str:
    return ";".join(f"{name}:{_shape_text(shape)}" for name, shape in shapes.items())


def _image_gears(sizes: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    gears = []
    for size in sizes:
        h, w = (int(v) for v in size)
        if h <= 0 or w <= 0 or h % 8 or w % 8:
            raise AtcError(f"image size {h}x{w} (HxW): SuperPoint needs positive multiples of 8")
        if (h, w) not in gears:
            gears.append((h, w))
    return gears


def _plan_superpoint(
    meta: Mapping[str, Any], soc: str, image_sizes, shape_ranges: bool, notes: list[str]
):
    inputs = meta["inputs"]
    if len(inputs) != 1:
        raise AtcError(f"a SuperPoint sidecar lists one input, this one {len(inputs)}")
    name, shape = inputs[0]["name"], list(inputs[0]["shape"])
    if len(shape) != 4:
        raise AtcError(f"SuperPoint input {name} has shape {shape}, expected (1, 1, H, W)")
    if all(_is_static(d) for d in shape):
        if image_sizes:
            wanted = _image_gears(image_sizes)
            if (shape[2], shape[3]) not in wanted:
                raise AtcError(
                    f"the ONNX model is static for {shape[2]}x{shape[3]} (HxW); it cannot be "
                    f"converted for {', '.join(f'{h}x{w}' for h, w in wanted)}: export a dynamic "
                    "SuperPoint or one per size"
                )
        return "NCHW", {name: shape}, "static", []
    fixed = [1, 1]
    if shape_ranges and soc in SHAPE_RANGE_SOCS:
        if image_sizes:
            gears = _image_gears(image_sizes)
            hs, ws = [g[0] for g in gears], [g[1] for g in gears]
            dims = [
                f"{min(hs)}~{max(hs)}" if min(hs) != max(hs) else min(hs),
                f"{min(ws)}~{max(ws)}" if min(ws) != max(ws) else min(ws),
            ]
        else:
            dims = [-1, -1]
        return "NCHW", {name: fixed + dims}, "dymshape", []
    if not image_sizes:
        ranges = "" if soc in SHAPE_RANGE_SOCS else f"; {soc} supports no shape ranges"
        raise AtcError(
            f"the SuperPoint model has dynamic H, W; Ascend needs the image sizes it will "
            f"see: give one (static OM) or several (--dynamic_dims gears){ranges}"
        )
    gears = _image_gears(image_sizes)
    if shape_ranges and soc not in SHAPE_RANGE_SOCS:
        notes.append(f"{soc} supports no shape ranges: image-size gears instead")
    if len(gears) == 1:
        return "NCHW", {name: fixed + list(gears[0])}, "static", []
    if len(gears) > MAX_GEARS:
        raise AtcError(f"{len(gears)} image sizes: ATC allows at most {MAX_GEARS} gears")
    return "ND", {name: fixed + [-1, -1]}, "dymdims", [{name: fixed + [h, w]} for h, w in gears]


def _plan_superglue(
    meta: Mapping[str, Any], soc: str, k_gears, shape_ranges: bool, notes: list[str]
):
    shapes = {e["name"]: list(e["shape"]) for e in meta["inputs"]}
    missing = [n for n in contract.SUPERGLUE_INPUTS if n not in shapes]
    if missing:
        raise AtcError(
            f"the SuperGlue sidecar lacks inputs {missing}; not an spsg_ros SuperGlue export"
        )
    if all(_is_static(d) for shape in shapes.values() for d in shape):
        if k_gears and any(int(k) != shapes["keypoints0"][1] for k in k_gears):
            notes.append(
                f"the ONNX model is static with K = {shapes['keypoints0'][1]}; K gears ignored "
                "(export a dynamic-K SuperGlue for gears)"
            )
        return "ND", shapes, "static", []
    dynamic_dims = sum(1 for shape in shapes.values() for d in shape if not _is_static(d))
    gears = sorted({int(k) for k in (k_gears or DEFAULT_K_GEARS)})
    if any(k <= 0 for k in gears):
        raise AtcError(f"K gears must be positive, got {gears}")
    if shape_ranges and soc in SHAPE_RANGE_SOCS:
        top = max(gears)
        ranged = {n: [d if _is_static(d) else f"1~{top}" for d in s] for n, s in shapes.items()}
        return "ND", ranged, "dymshape", []
    if shape_ranges:
        notes.append(f"{soc} supports no shape ranges: K gears {gears} instead")
    if len(gears) == 1:
        k = gears[0]
        return (
            "ND",
            {n: [d if _is_static(d) else k for d in s] for n, s in shapes.items()},
            "static",
            [],
        )
    if len(gears) > MAX_GEARS:
        raise AtcError(f"{len(gears)} K gears: ATC allows at most {MAX_GEARS}")
    if dynamic_dims > 4:
        notes.append(
            f"each gear sets {dynamic_dims} dimensions; CANN releases before 8.0 allow 4 per "
            "gear, so with an older toolkit convert static-K models instead"
        )
    with_minus = {n: [d if _is_static(d) else -1 for d in s] for n, s in shapes.items()}
    gear_shapes = [
        {n: [d if _is_static(d) else k for d in s] for n, s in shapes.items()} for k in gears
    ]
    return "ND", with_minus, "dymdims", gear_shapes


def _plan_lightglue(meta: Mapping[str, Any], notes: list[str]):
    """A LightGlue stage (or the single model): static K only, every input ND."""
    shapes = {e["name"]: list(e["shape"]) for e in meta["inputs"]}
    if not all(_is_static(d) for shape in shapes.values() for d in shape):
        raise AtcError(
            f"the LightGlue {meta.get('stage', 'model')} has dynamic K; Ascend takes static "
            "shapes: export the stages for the K you will run (`spsg-ros export --only "
            "lightglue --ks K`)"
        )
    if meta.get("stage") == "layer0":
        notes.append(
            "the host runs the layer OMs one by one (early exit) and prunes by setting masks"
        )
    return "ND", shapes, "static", []


def _dynamic_dims_arg(
    input_shape: Mapping[str, Sequence[Any]], gears: Sequence[Mapping[str, Sequence[int]]]
) -> str:
    rows = []
    for gear in gears:
        values = [
            str(gear[name][i])
            for name, shape in input_shape.items()
            for i, d in enumerate(shape)
            if d == -1
        ]
        rows.append(",".join(values))
    return ";".join(rows)


def atc_plans(
    onnx_path: str | os.PathLike,
    sidecar: Any = None,
    soc_versions: Sequence[str] = SOC_VERSIONS,
    *,
    output_dir: str | os.PathLike | None = None,
    image_sizes: Sequence[Sequence[int]] | None = None,
    k_gears: Sequence[int] | None = None,
    shape_ranges: bool = False,
    precision_mode: str = DEFAULT_PRECISION_MODE,
    log_level: str = "error",
    atc: str = "atc",
    extra_args: Sequence[str] = (),
) -> list[AtcPlan]:
    """One :class:`AtcPlan` per SoC for ``onnx_path`` (see :func:`atc_commands`)."""
    onnx_path = Path(onnx_path)
    meta = _load_sidecar(onnx_path, sidecar)
    network = meta.get("network")
    if network not in ("superpoint", "superglue", "lightglue"):
        raise AtcError(
            f"{onnx_path}: sidecar network {network!r}, expected superpoint, superglue or "
            "lightglue"
        )
    if precision_mode not in PRECISION_MODES:
        raise AtcError(
            f"precision_mode '{precision_mode}': expected one of {', '.join(PRECISION_MODES)}"
        )
    if log_level not in LOG_LEVELS:
        raise AtcError(f"log level '{log_level}': expected one of {', '.join(LOG_LEVELS)}")
    folder = Path(output_dir) if output_dir is not None else onnx_path.parent
    plans = []
    for soc in soc_versions:
        if not re.fullmatch(r"Ascend[0-9A-Za-z]+", soc):
            raise AtcError(
                f"soc_version '{soc}' is not an Ascend SoC name (e.g. {', '.join(SOC_VERSIONS)})"
            )
        notes: list[str] = []
        if network == "superpoint":
            fmt, shapes, mode, gears = _plan_superpoint(
                meta, soc, image_sizes, shape_ranges, notes
            )
        elif network == "lightglue":
            fmt, shapes, mode, gears = _plan_lightglue(meta, notes)
        else:
            fmt, shapes, mode, gears = _plan_superglue(meta, soc, k_gears, shape_ranges, notes)
        output = folder / f"{onnx_path.stem}_{soc}"
        argv = [
            atc,
            f"--model={onnx_path}",
            f"--framework={ONNX_FRAMEWORK}",
            f"--output={output}",
            f"--soc_version={soc}",
            f"--input_format={fmt}",
            f"--input_shape={_input_shape_arg(shapes)}",
        ]
        if mode == "dymdims":
            argv.append(f"--dynamic_dims={_dynamic_dims_arg(shapes, gears)}")
        argv += [f"--precision_mode={precision_mode}", f"--log={log_level}", *extra_args]
        if precision_mode in ("must_keep_origin_dtype", "force_fp32") and soc in (
            "Ascend310",
            "Ascend310B1",
        ):
            notes.append(
                f"{precision_mode} on {soc}: convolutions have no fp32 implementation there; ATC "
                "may refuse the model or fall back to slow AI CPU operators"
            )
        plans.append(
            AtcPlan(
                soc,
                network,
                argv,
                output.with_name(output.name + ".om"),
                mode,
                {n: list(s) for n, s in shapes.items()},
                gears,
                precision_mode,
                notes,
            )
        )
    return plans


def atc_commands(
    onnx_path: str | os.PathLike,
    sidecar: Any = None,
    soc_versions: Sequence[str] = SOC_VERSIONS,
    *,
    output_dir: str | os.PathLike | None = None,
    image_sizes: Sequence[Sequence[int]] | None = None,
    k_gears: Sequence[int] | None = None,
    shape_ranges: bool = False,
    precision_mode: str = DEFAULT_PRECISION_MODE,
    log_level: str = "error",
    atc: str = "atc",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The ``atc`` command line for each SoC, consistent with the model's sidecar.

    ``onnx_path``: the exported model; ``sidecar``: its metadata (dict or JSON
    path; default: read ``<model>.json``); ``soc_versions``: e.g.
    :data:`SOC_VERSIONS`; ``output_dir``: where the OMs go (default: beside the
    ONNX), named ``<stem>_<soc>.om``; ``image_sizes``: (H, W) sizes for a
    dynamic SuperPoint (one: static, several: gears); ``k_gears``: K values for
    a dynamic-K SuperGlue (default :data:`DEFAULT_K_GEARS`); ``shape_ranges``:
    emit shape ranges on the chips that support them; ``precision_mode``,
    ``log_level``: ATC's ``--precision_mode`` and ``--log``; ``extra_args``:
    appended verbatim.
    """
    return [
        plan.command
        for plan in atc_plans(
            onnx_path,
            sidecar,
            soc_versions,
            output_dir=output_dir,
            image_sizes=image_sizes,
            k_gears=k_gears,
            shape_ranges=shape_ranges,
            precision_mode=precision_mode,
            log_level=log_level,
            atc=atc,
            extra_args=extra_args,
        )
    ]


def format_plans(plans: Sequence[AtcPlan]) -> str:
    """The commands as a shell script fragment, each preceded by comments on its
    mode, gears and notes."""
    lines = []
    for plan in plans:
        lines.append(
            f"# {plan.network} -> {plan.om_path} ({plan.soc_version}, {plan.mode}"
            + (f", {len(plan.gears)} gears" if plan.gears else "")
            + ")"
        )
        lines += [f"# note: {note}" for note in plan.notes]
        lines.append(plan.command)
    return "\n".join(lines)


def om_sidecar(plan: AtcPlan, sidecar: Mapping[str, Any]) -> dict[str, Any]:
    """The OM's sidecar: the ONNX sidecar with an ``om`` section describing the
    conversion (what the ascend backend needs to run it)."""
    meta = {
        "format": contract.SIDECAR_FORMAT,
        "version": contract.SIDECAR_VERSION,
        **dict(sidecar),
    }
    meta["om"] = {
        "soc_version": plan.soc_version,
        "mode": plan.mode,
        "input_shape": plan.input_shape,
        "gears": plan.gears,
        "precision_mode": plan.precision_mode,
        "command": plan.command,
    }
    return meta


def write_om_sidecars(plans: Sequence[AtcPlan], sidecar: Mapping[str, Any]) -> list[Path]:
    """Write ``<om stem>.json`` beside each planned OM; returns the paths."""
    paths = []
    for plan in plans:
        path = contract.sidecar_path(plan.om_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(om_sidecar(plan, sidecar), indent=2) + "\n")
        paths.append(path)
    return paths
