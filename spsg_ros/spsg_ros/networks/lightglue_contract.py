"""The I/O contract of the staged LightGlue export (no torch needed).

``spsg-ros export --lightglue`` writes one folder per keypoint-slot count K
(``lightglue_k<K>[_fp16]/``, or ``lightglue_dynamic[_fp16]/`` for symbolic K0, K1)
holding a ``manifest.json`` and these models, each with its JSON sidecar
(:mod:`.contract`); all tensors float32 (an fp16 export casts inside):

- ``input.onnx``: ``keypoints{i}`` (1, K, 2) pixels (x, y), ``descriptors{i}``
  (1, K, input_dim) one row per keypoint, ``image_size{i}`` (1, 2) as (W, H) ->
  ``desc{i}`` (1, K, D) (the input projection; identity for SuperPoint) and
  ``encoding{i}`` (1, 2, K, head_dim), [cos; sin] of the rotary encoding.
- ``layer<j>.onnx`` for j = 0 .. n_layers-1: ``desc{i}``, ``encoding{i}``,
  ``mask{i}`` (1, K) -> ``out_desc{i}`` (self- then cross-attention); every layer
  but the last also gives ``token{i}`` (sigmoid of its token-confidence head) and
  ``matchability{i}`` (sigmoid of its assignment head's matchability), the two
  numbers the host's exit and pruning rules read.
- ``assign<j>.onnx``: ``desc{i}``, ``mask{i}`` -> ``log_assignment`` (1, K0+1, K1+1)
  of the layer-j head (double softmax over the slots of mask 1 plus matchability;
  rows/columns of mask-0 slots are -inf, the last row/column the dustbins).
- ``single.onnx`` (optional, the non-adaptive model for engines that want one
  graph): ``keypoints{i}``, ``descriptors{i}``, ``mask{i}``, ``image_size{i}`` ->
  ``log_assignment`` after all layers.

A mask is 1 for a point that takes part and 0 for a padded slot or a pruned
point: mask-0 slots are no key in any attention and get no row/column mass in
the assignment, so the valid rows equal the unpadded network's. The graphs have
fixed shapes (static K) and no data-dependent operator (NonZero, Unique, ...):
the adaptive depth and width are decided by the host between stages
(:mod:`spsg_ros.backends.lightglue_staged`). With more than K keypoints the host
keeps the K best by score, as for SuperGlue (:data:`.contract.SLOT_POLICY`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from . import contract

MANIFEST = "manifest.json"
NETWORK = "lightglue"
#: bumped whenever the LightGlue graphs change; part of the model-cache keys
EXPORT_REVISION = 1
ARCH_KEYS = ("input_dim", "descriptor_dim", "n_layers", "num_heads")

INPUT_STAGE = "input"
SINGLE_STAGE = "single"
INPUT_INPUTS = (
    "keypoints0",
    "descriptors0",
    "image_size0",
    "keypoints1",
    "descriptors1",
    "image_size1",
)
INPUT_OUTPUTS = ("desc0", "encoding0", "desc1", "encoding1")
LAYER_INPUTS = ("desc0", "encoding0", "mask0", "desc1", "encoding1", "mask1")
LAYER_OUTPUTS = ("out_desc0", "out_desc1", "token0", "token1", "matchability0", "matchability1")
LAST_LAYER_OUTPUTS = LAYER_OUTPUTS[:2]
ASSIGN_INPUTS = ("desc0", "mask0", "desc1", "mask1")
SINGLE_INPUTS = (
    "keypoints0",
    "descriptors0",
    "mask0",
    "image_size0",
    "keypoints1",
    "descriptors1",
    "mask1",
    "image_size1",
)
LOG_ASSIGNMENT = "log_assignment"
ASSIGN_OUTPUTS = (LOG_ASSIGNMENT,)

MASKING = (
    "mask 0 slots (padding, or points the host pruned) are excluded from attention as keys "
    "(additive finfo.min/2 bias) and from both softmaxes of the assignment; their "
    "log_assignment rows/columns are -inf"
)


class LightGlueModelError(contract.ModelContractError):
    """A LightGlue export folder that is missing, incomplete or does not fit."""


def folder_name(num_slots: int | None, fp16: bool = False) -> str:
    base = "lightglue_dynamic" if num_slots is None else f"lightglue_k{num_slots}"
    return base + ("_fp16" if fp16 else "")


def layer_stage(j: int) -> str:
    return f"layer{j}"


def assign_stage(j: int) -> str:
    return f"assign{j}"


def stage_names(n_layers: int) -> list[str]:
    return [
        INPUT_STAGE,
        *(layer_stage(j) for j in range(n_layers)),
        *(assign_stage(j) for j in range(n_layers)),
    ]


def stage_io(
    stage: str,
    num_slots: int | None,
    input_dim: int,
    descriptor_dim: int,
    head_dim: int,
    last_layer: bool = False,
) -> dict[str, list]:
    """Inputs/outputs (name, shape, dtype) of one stage for the sidecars; ``K0``/``K1``
    for dynamic slot counts."""

    def k(i: int) -> Any:
        return num_slots if num_slots is not None else f"K{i}"

    def entry(name: str, shape: list) -> dict[str, Any]:
        return {"name": name, "shape": shape, "dtype": "float32"}

    def per_image(names: dict[str, Any]) -> list[dict[str, Any]]:
        return [entry(f"{n}{i}", [1, *shape(i)]) for i in (0, 1) for n, shape in names.items()]

    desc = {"desc": lambda i: [k(i), descriptor_dim]}
    enc = {"encoding": lambda i: [2, k(i), head_dim]}
    mask = {"mask": lambda i: [k(i)]}
    raw = {
        "keypoints": lambda i: [k(i), 2],
        "descriptors": lambda i: [k(i), input_dim],
    }
    size = {"image_size": lambda i: [2]}
    la = [entry(LOG_ASSIGNMENT, [1, _plus1(k(0)), _plus1(k(1))])]
    if stage == INPUT_STAGE:
        return {"inputs": per_image({**raw, **size}), "outputs": per_image({**desc, **enc})}
    if stage == SINGLE_STAGE:
        return {"inputs": per_image({**raw, **mask, **size}), "outputs": la}
    if stage.startswith("layer"):
        outs = [entry(f"out_desc{i}", [1, k(i), descriptor_dim]) for i in (0, 1)]
        if not last_layer:
            outs += [
                entry(f"{n}{i}", [1, k(i)]) for n in ("token", "matchability") for i in (0, 1)
            ]
        return {"inputs": per_image({**desc, **enc, **mask}), "outputs": outs}
    if stage.startswith("assign"):
        return {"inputs": per_image({**desc, **mask}), "outputs": la}
    raise ValueError(f"unknown LightGlue stage '{stage}'")


def _plus1(k: Any) -> Any:
    return k + 1 if isinstance(k, int) else f"{k}+1"


def read_manifest(folder: str | Path, check_files: bool = True) -> dict[str, Any]:
    """The manifest of an export folder, with every model it names present (unless
    not ``check_files``: a folder of converted models, such as Ascend OMs)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise LightGlueModelError(
            f"{folder}: no {MANIFEST}; LightGlue models come from `spsg-ros export --lightglue`"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LightGlueModelError(f"{path}: not a readable JSON manifest ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != contract.SIDECAR_FORMAT:
        raise LightGlueModelError(f"{path}: not an spsg_ros manifest")
    if meta.get("network") != NETWORK or meta.get("kind") != "manifest":
        raise LightGlueModelError(f"{path}: not a LightGlue export manifest")
    if int(meta.get("version", 0)) > contract.SIDECAR_VERSION:
        raise LightGlueModelError(
            f"{path}: manifest version {meta.get('version')} is newer than this spsg_ros reads"
        )
    missing = [name for name in meta.get("stages", {}).values() if not (folder / name).is_file()]
    if meta.get("single") and not (folder / meta["single"]).is_file():
        missing.append(meta["single"])
    if missing and check_files:
        raise LightGlueModelError(f"{folder}: models named in {MANIFEST} are missing: {missing}")
    return meta


def check_manifest(meta: Mapping[str, Any], config: Mapping[str, Any], folder: Any) -> None:
    """Refuse an export whose architecture differs from ``config`` (keys present there)."""
    arch = meta.get("config", {})
    for key in ARCH_KEYS:
        if key in config and arch.get(key) != config[key]:
            raise LightGlueModelError(
                f"{folder} was exported with lightglue.{key} = {arch.get(key)!r} but the "
                f"weights have {config[key]!r}; re-export it (`spsg-ros export --lightglue`)"
            )


def write_manifest(folder: str | Path, meta: Mapping[str, Any]) -> Path:
    path = Path(folder) / MANIFEST
    body = {
        "format": contract.SIDECAR_FORMAT,
        "version": contract.SIDECAR_VERSION,
        "network": NETWORK,
        "kind": "manifest",
        **meta,
    }
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path
