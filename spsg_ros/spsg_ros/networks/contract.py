"""The ONNX I/O contract shared by every backend that runs exported models.

The exporter (:mod:`.onnx_export`) writes these names and shapes; the
onnxruntime, OpenVINO and Ascend backends feed and read exactly them. Each
model file ``<model>.onnx`` has a JSON sidecar ``<model>.json`` describing the
network, its architecture configuration, its inputs and outputs, the number of
keypoint slots, the opset, the precision and the sha256 of the source weights;
:func:`read_sidecar` with :func:`check_superpoint_model` /
:func:`check_superglue_model` refuse a model that does not fit the runtime
configuration, with a message saying what differs and how to re-export.

SuperPoint (dense part only; the numpy host post-processing does the rest):

- input ``image`` float32 (1, 1, H, W), grayscale in [0, 1]; H, W fixed or dynamic
- output ``semi`` float32 (1, 65, H/8, W/8): detector logits (before softmax)
- output ``desc`` float32 (1, D, H/8, W/8): raw descriptor map (before L2 normalisation)

SuperGlue with K keypoint slots per image and validity masks:

- inputs, for i in {0, 1}: ``keypoints{i}`` float32 (1, K, 2) as (x, y);
  ``scores{i}`` float32 (1, K); ``descriptors{i}`` float32 (1, D, K);
  ``mask{i}`` float32 (1, K), 1 for a real keypoint and 0 for a padded slot
  (valid slots first); ``image_size{i}`` float32 (1, 2) as (W, H)
- output ``log_assignment`` float32 (1, K0 + 1, K1 + 1): for the valid slots and
  the last (dustbin) row/column it equals the reference log assignment of the
  unpadded keypoints; rows/columns of padded slots are -inf (zero mass). Padded
  slots are excluded from attention and from optimal transport, and m, n of the
  Sinkhorn marginals count valid slots only.
- with more than K keypoints, the host keeps the K best by score (ties: lower
  index first) in their original order, and the others get no match (see
  :mod:`.static_superglue`). A "dynamic" SuperGlue has symbolic K0, K1 and is fed
  the exact keypoints with masks of ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

# ---- names -----------------------------------------------------------------
SUPERPOINT_INPUT = "image"
SUPERPOINT_OUTPUT_SEMI = "semi"
SUPERPOINT_OUTPUT_DESC = "desc"
SUPERPOINT_INPUTS = (SUPERPOINT_INPUT,)
SUPERPOINT_OUTPUTS = (SUPERPOINT_OUTPUT_SEMI, SUPERPOINT_OUTPUT_DESC)

SUPERGLUE_INPUTS = (
    "keypoints0",
    "scores0",
    "descriptors0",
    "mask0",
    "image_size0",
    "keypoints1",
    "scores1",
    "descriptors1",
    "mask1",
    "image_size1",
)
SUPERGLUE_OUTPUT = "log_assignment"
SUPERGLUE_OUTPUTS = (SUPERGLUE_OUTPUT,)

DEFAULT_OPSET = 17
#: bumped whenever the exported graphs change; part of the backends' model-cache keys
EXPORT_REVISION = 3
DEFAULT_NUM_SLOTS = 1024
SIDECAR_FORMAT = "spsg_ros.onnx"
SIDECAR_VERSION = 1

# default file stems in an export folder: superpoint_<H>x<W>.onnx / superpoint_dynamic.onnx,
# superglue_k<K>.onnx / superglue_dynamic.onnx, with _fp16 before the suffix for fp16
SLOT_POLICY = (
    "more than K keypoints: the host keeps the K best by detection score (ties: lower "
    "index first) in their original order; the others are reported unmatched"
)

# architecture keys that must agree between a model and the runtime configuration
SUPERPOINT_ARCH_KEYS = ("descriptor_dim",)
SUPERGLUE_ARCH_KEYS = ("descriptor_dim", "keypoint_encoder", "GNN_layers", "sinkhorn_iterations")


class ModelContractError(ValueError):
    """An exported model (or its sidecar) does not fit the runtime configuration."""


def superpoint_stem(height: int | None, width: int | None, fp16: bool = False) -> str:
    base = (
        "superpoint_dynamic" if height is None or width is None else f"superpoint_{height}x{width}"
    )
    return base + ("_fp16" if fp16 else "")


def superglue_stem(num_slots: int | None, fp16: bool = False) -> str:
    base = "superglue_dynamic" if num_slots is None else f"superglue_k{num_slots}"
    return base + ("_fp16" if fp16 else "")


def superglue_stems(
    folder: str | Path | None, num_slots: int | None, fp16: bool = False
) -> list[str]:
    """Model names to look for: the requested one; without a requested K, the
    dynamic model first, then the static models present in ``folder`` (largest K
    first), so that a folder from ``spsg-ros export --ks N`` works without naming N."""
    stems = [superglue_stem(num_slots, fp16)]
    if num_slots is None and folder is not None and Path(folder).is_dir():
        suffix = "_fp16" if fp16 else ""
        found = []
        for path in Path(folder).glob(f"superglue_k*{suffix}.*"):
            k = path.stem[len("superglue_k") : len(path.stem) - len(suffix)]
            if k.isdigit():
                found.append(int(k))
        stems += [superglue_stem(k, fp16) for k in sorted(set(found), reverse=True)]
    return stems


def sidecar_path(model_path: str | Path) -> Path:
    """``model.onnx`` (or ``model.om``, ``model.xml``) -> ``model.json``."""
    return Path(model_path).with_suffix(".json")


def superpoint_io(height: int | None, width: int | None, descriptor_dim: int) -> dict[str, list]:
    """Input/output descriptions (name, shape with None or a name for dynamic axes, dtype)."""
    h = height if height is not None else "H"
    w = width if width is not None else "W"
    h8 = height // 8 if height is not None else "H/8"
    w8 = width // 8 if width is not None else "W/8"
    return {
        "inputs": [{"name": SUPERPOINT_INPUT, "shape": [1, 1, h, w], "dtype": "float32"}],
        "outputs": [
            {"name": SUPERPOINT_OUTPUT_SEMI, "shape": [1, 65, h8, w8], "dtype": "float32"},
            {
                "name": SUPERPOINT_OUTPUT_DESC,
                "shape": [1, descriptor_dim, h8, w8],
                "dtype": "float32",
            },
        ],
    }


def superglue_io(num_slots: int | None, descriptor_dim: int) -> dict[str, list]:
    inputs = []
    for i in (0, 1):
        k = num_slots if num_slots is not None else f"K{i}"
        inputs += [
            {"name": f"keypoints{i}", "shape": [1, k, 2], "dtype": "float32"},
            {"name": f"scores{i}", "shape": [1, k], "dtype": "float32"},
            {"name": f"descriptors{i}", "shape": [1, descriptor_dim, k], "dtype": "float32"},
            {"name": f"mask{i}", "shape": [1, k], "dtype": "float32"},
            {"name": f"image_size{i}", "shape": [1, 2], "dtype": "float32"},
        ]
    k0 = num_slots + 1 if num_slots is not None else "K0+1"
    k1 = num_slots + 1 if num_slots is not None else "K1+1"
    return {
        "inputs": inputs,
        "outputs": [{"name": SUPERGLUE_OUTPUT, "shape": [1, k0, k1], "dtype": "float32"}],
    }


def write_sidecar(model_path: str | Path, meta: Mapping[str, Any]) -> Path:
    path = sidecar_path(model_path)
    body = {"format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, **meta}
    path.write_text(json.dumps(body, indent=2, sort_keys=False) + "\n")
    return path


def read_sidecar(model_path: str | Path, network: str | None = None) -> dict[str, Any]:
    """The sidecar of ``model_path``; raises ModelContractError when it is missing,
    unreadable, of another format, or describes another network."""
    model_path = Path(model_path)
    path = sidecar_path(model_path)
    if not path.is_file():
        raise ModelContractError(
            f"{model_path}: sidecar {path.name} not found next to the model. Models must come "
            "from "
            "`spsg-ros export`, which writes it (it records the architecture and shapes the "
            "runtime checks)."
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelContractError(f"{path}: not a readable JSON sidecar ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        raise ModelContractError(
            f"{path}: not an spsg_ros model sidecar (format "
            f"{meta.get('format') if isinstance(meta, dict) else None!r})"
        )
    if int(meta.get("version", 0)) > SIDECAR_VERSION:
        raise ModelContractError(
            f"{path}: sidecar version {meta.get('version')} is newer than "
            f"this spsg_ros understands ({SIDECAR_VERSION}); upgrade spsg_ros"
        )
    if network is not None and meta.get("network") != network:
        raise ModelContractError(
            f"{model_path} is a {meta.get('network')} model, not a {network} "
            "model; check which file was passed for which network"
        )
    return meta


def _mismatch(
    model_path: Any, what: str, model_value: Any, runtime_value: Any, fix: str
) -> ModelContractError:
    return ModelContractError(
        f"{model_path} was exported with {what} = {model_value!r} but the "
        f"runtime configuration has {runtime_value!r}; {fix}"
    )


def check_superpoint_model(
    meta: Mapping[str, Any],
    config: Mapping[str, Any],
    image_size: tuple[int, int] | None = None,
    model_path: Any = "model",
) -> None:
    """Refuse a SuperPoint model whose architecture or static input size does not fit.

    ``config`` a superpoint configuration; ``image_size`` (W, H) of the images the
    runtime will feed (None: do not check the size).
    """
    if meta.get("network") != "superpoint":
        raise ModelContractError(f"{model_path} is a {meta.get('network')} model, not superpoint")
    arch = meta.get("config", {})
    for key in SUPERPOINT_ARCH_KEYS:
        if key in config and arch.get(key) != config[key]:
            raise _mismatch(
                model_path,
                f"superpoint.{key}",
                arch.get(key),
                config[key],
                "re-export it with matching weights/configuration",
            )
    if image_size is not None:
        static = meta.get("image_size")  # (W, H) or None when dynamic
        if static is not None and tuple(static) != tuple(image_size):
            raise ModelContractError(
                f"{model_path} is a static SuperPoint for {static[0]}x{static[1]} (WxH) images "
                "but "
                f"the runtime feeds {image_size[0]}x{image_size[1]}; export one for this size "
                f"(`spsg-ros export --sizes {image_size[1]}x{image_size[0]}`), a dynamic one "
                "(`--dynamic`), or resize the input"
            )


def check_superglue_model(
    meta: Mapping[str, Any], config: Mapping[str, Any], model_path: Any = "model"
) -> None:
    """Refuse a SuperGlue model whose architecture or Sinkhorn iterations do not fit."""
    if meta.get("network") != "superglue":
        raise ModelContractError(f"{model_path} is a {meta.get('network')} model, not superglue")
    arch = meta.get("config", {})
    for key in SUPERGLUE_ARCH_KEYS:
        if key not in config:
            continue
        want = list(config[key]) if isinstance(config[key], (list, tuple)) else config[key]
        have = arch.get(key)
        if have != want:
            shown = have if key != "GNN_layers" else f"{len(have or [])} layers"
            wanted = want if key != "GNN_layers" else f"{len(want)} layers"
            if key == "GNN_layers" and have and len(have) == len(want):
                shown, wanted = have, want
            raise _mismatch(
                model_path,
                f"superglue.{key}",
                shown,
                wanted,
                "re-export it (`spsg-ros export --sinkhorn-iterations N ...`) or change "
                "the configuration",
            )


def num_slots(meta: Mapping[str, Any]) -> int | None:
    """K of a static SuperGlue, None for a dynamic one."""
    value = meta.get("num_slots")
    return None if value is None else int(value)


def describe_io(entries: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{e['name']}{list(e['shape'])}" for e in entries)
