"""ONNX export of SuperPoint (dense part) and the masked static SuperGlue.

Needs torch and onnx (``pip install -e 'spsg_ros[torch,export]'``). Each model
gets a JSON sidecar (see :mod:`.contract`) written next to it. The exporter is
the TorchScript-based ``torch.onnx.export(dynamo=False)``: it traces the
networks, which have no data-dependent control flow, and keeps the graph close
to the torch code (one ONNX node per op, BatchNorm folded into the preceding
convolution by the runtimes' optimisers).

- SuperPoint: input ``image`` (1, 1, H, W), fixed H x W or dynamic; outputs
  ``semi`` and ``desc``.
- SuperGlue: K keypoint slots per image with validity masks (static), or
  dynamic K0/K1 (fed exact keypoints with masks of ones). More than K keypoints:
  the host keeps the K best by score (:mod:`.static_superglue`).
- ``fp16``: the network runs in half precision with float32 inputs and outputs
  (casts at the boundary), so every backend feeds the same arrays; SuperGlue's
  optimal transport stays float32 (log-sum-exps over hundreds of entries lose
  too much in half precision).
- ``simplify``: onnxslim (preferred) or onnxsim, when installed.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import contract

log = logging.getLogger(__name__)

# ORT <= 1.2x reads IR version <= 10; torch/onnx may write newer IR versions
MAX_IR_VERSION = 8


@dataclass
class ExportedModel:
    path: Path
    sidecar: Path
    meta: dict[str, Any]


class ExportError(RuntimeError):
    """Export is not possible here (missing package) or failed."""


def _require_export_deps():
    try:
        import onnx  # noqa: F401
        import torch
    except ImportError as exc:
        raise ExportError(
            f"ONNX export needs torch and onnx ({exc.name} missing): "
            "pip install -e 'spsg_ros[torch,export]'"
        ) from exc
    return torch


def _weights_info(spec: Any, network: str, weights_dir: Any) -> dict[str, Any]:
    from ..networks.weights import resolve_weights, sha256

    path = resolve_weights(spec, network, weights_dir)
    return {"path": str(path), "sha256": sha256(path)}


def _versions() -> dict[str, str]:
    import onnx
    import torch

    try:
        from importlib.metadata import version

        spsg_version = version("spsg_ros")
    except Exception:  # not installed (source tree on the path)
        spsg_version = "unknown"
    return {
        "spsg_ros": spsg_version,
        "export_revision": contract.EXPORT_REVISION,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }


def simplify_model(path: Path) -> str:
    """Simplify ``path`` in place with onnxslim or onnxsim; returns the tool used."""
    import onnx

    try:
        import onnxslim
    except ImportError:
        onnxslim = None
    if onnxslim is not None:
        model = onnxslim.slim(str(path))
        onnx.save(model, str(path))
        return "onnxslim"
    try:
        import onnxsim
    except ImportError as exc:
        raise ExportError("--simplify needs onnxslim or onnxsim: pip install onnxslim") from exc
    model, ok = onnxsim.simplify(onnx.load(str(path)))
    if not ok:
        raise ExportError(f"onnxsim could not validate the simplified {path}")
    onnx.save(model, str(path))
    return "onnxsim"


def _finish(path: Path, opset: int, simplify: bool) -> str | None:
    """Pin the IR version for older runtimes, check, optionally simplify."""
    import onnx

    model = onnx.load(str(path))
    if model.ir_version > MAX_IR_VERSION:
        model.ir_version = MAX_IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    tool = simplify_model(path) if simplify else None
    if tool is not None:
        model = onnx.load(str(path))
        if model.ir_version > MAX_IR_VERSION:
            model.ir_version = MAX_IR_VERSION
            onnx.save(model, str(path))
    return tool


def _export(
    module,
    args: tuple,
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None,
) -> None:
    torch = _require_export_deps()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer / legacy-exporter deprecation chatter
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            opset_version=opset,
            dynamic_axes=dict(dynamic_axes) if dynamic_axes else None,
            do_constant_folding=True,
            dynamo=False,
        )


def _superpoint_module(model, fp16: bool):
    torch = _require_export_deps()

    class DenseSuperPoint(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net.half() if fp16 else net

        def forward(self, image):
            semi, desc = self.net.forward_dense(image.half() if fp16 else image)
            return semi.float(), desc.float()

    return DenseSuperPoint(model).eval()


def export_superpoint(
    out_path: str | Path,
    weights: Any = "superpoint",
    config: Mapping[str, Any] | None = None,
    weights_dir: Any = None,
    height: int | None = None,
    width: int | None = None,
    opset: int = contract.DEFAULT_OPSET,
    fp16: bool = False,
    simplify: bool = False,
) -> ExportedModel:
    """SuperPoint's dense part to ``out_path``: fixed ``height`` x ``width``, or
    dynamic H, W when either is None."""
    torch = _require_export_deps()
    from ..networks.weights import load_superpoint

    out_path = Path(out_path)
    static = height is not None and width is not None
    if static and (height < 8 or width < 8):
        raise ValueError(f"image size {height}x{width}: SuperPoint needs at least 8x8 pixels")
    net = load_superpoint(weights, config, weights_dir)
    dim = net.config["descriptor_dim"]
    module = _superpoint_module(net, fp16)
    h, w = (height, width) if static else (240, 320)
    example = (torch.rand(1, 1, h, w),)
    dyn = (
        None
        if static
        else {"image": {2: "H", 3: "W"}, "semi": {2: "H8", 3: "W8"}, "desc": {2: "H8", 3: "W8"}}
    )
    _export(
        module,
        example,
        out_path,
        contract.SUPERPOINT_INPUTS,
        contract.SUPERPOINT_OUTPUTS,
        opset,
        dyn,
    )
    tool = _finish(out_path, opset, simplify)
    meta = {
        "network": "superpoint",
        "config": {"descriptor_dim": dim},
        **contract.superpoint_io(height if static else None, width if static else None, dim),
        "static": static,
        "image_size": [width, height] if static else None,
        "opset": opset,
        "fp16": fp16,
        "io_dtype": "float32",
        "simplified": tool,
        "source_weights": _weights_info(weights, "superpoint", weights_dir),
        "exporter": _versions(),
        "notes": "dense part only: softmax, NMS, threshold, borders, top-k and descriptor "
        "sampling run on the host (spsg_ros.features.superpoint_post)",
    }
    sidecar = contract.write_sidecar(out_path, meta)
    log.info("exported %s", out_path)
    return ExportedModel(out_path, sidecar, meta)


def _superglue_module(model, fp16: bool):
    torch = _require_export_deps()
    from ..networks.superglue import MaskedSuperGlue

    if not fp16:
        return MaskedSuperGlue(model).eval()

    class HalfMaskedSuperGlue(torch.nn.Module):
        """float32 in/out; network in half; keypoint normalisation and optimal
        transport in float32 (superglue_masked_scores casts where needed)."""

        def __init__(self, net):
            super().__init__()
            self.inner = MaskedSuperGlue(net.half())

        def forward(
            self,
            keypoints0,
            scores0,
            descriptors0,
            mask0,
            image_size0,
            keypoints1,
            scores1,
            descriptors1,
            mask1,
            image_size1,
        ):
            return self.inner(
                keypoints0,
                scores0,
                descriptors0.half(),
                mask0,
                image_size0,
                keypoints1,
                scores1,
                descriptors1.half(),
                mask1,
                image_size1,
            )

    return HalfMaskedSuperGlue(model).eval()


def superglue_example_inputs(num_slots: int, descriptor_dim: int, size=(640, 480), valid=None):
    """Random contract inputs (torch tensors) for tracing and tests."""
    torch = _require_export_deps()
    g = torch.Generator().manual_seed(0)
    out = []
    for i in (0, 1):
        k = num_slots
        n = k if valid is None else valid[i]
        kpts = torch.rand(1, k, 2, generator=g) * torch.tensor([size[0] - 1, size[1] - 1]).float()
        desc = torch.nn.functional.normalize(torch.randn(1, descriptor_dim, k, generator=g), dim=1)
        mask = torch.zeros(1, k)
        mask[:, :n] = 1
        out += [
            kpts.round(),
            torch.rand(1, k, generator=g),
            desc,
            mask,
            torch.tensor([[float(size[0]), float(size[1])]]),
        ]
    return tuple(out)


def export_superglue(
    out_path: str | Path,
    weights: Any = "indoor",
    config: Mapping[str, Any] | None = None,
    weights_dir: Any = None,
    num_slots: int | None = contract.DEFAULT_NUM_SLOTS,
    opset: int = contract.DEFAULT_OPSET,
    fp16: bool = False,
    simplify: bool = False,
) -> ExportedModel:
    """The masked SuperGlue to ``out_path`` for ``num_slots`` keypoint slots per
    image (static), or dynamic K0/K1 when ``num_slots`` is None."""
    _require_export_deps()
    from .config import superglue_config
    from .superglue import SINKHORN_ABSORB_EVERY
    from ..networks.weights import load_superglue

    out_path = Path(out_path)
    if num_slots is not None and num_slots < 1:
        raise ValueError(f"num_slots = {num_slots}: at least 1 keypoint slot")
    cfg = superglue_config(config)
    net = load_superglue(weights, cfg, weights_dir)
    dim = cfg["descriptor_dim"]
    module = _superglue_module(net, fp16)
    trace_k = num_slots if num_slots is not None else 64
    example = superglue_example_inputs(trace_k, dim, valid=None)
    dyn = None
    if num_slots is None:
        dyn = {}
        for i in (0, 1):
            dyn.update(
                {
                    f"keypoints{i}": {1: f"K{i}"},
                    f"scores{i}": {1: f"K{i}"},
                    f"descriptors{i}": {2: f"K{i}"},
                    f"mask{i}": {1: f"K{i}"},
                }
            )
        dyn[contract.SUPERGLUE_OUTPUT] = {1: "K0+1", 2: "K1+1"}
    _export(
        module,
        example,
        out_path,
        contract.SUPERGLUE_INPUTS,
        contract.SUPERGLUE_OUTPUTS,
        opset,
        dyn,
    )
    tool = _finish(out_path, opset, simplify)
    meta = {
        "network": "superglue",
        "config": {
            "descriptor_dim": dim,
            "keypoint_encoder": list(cfg["keypoint_encoder"]),
            "GNN_layers": list(cfg["GNN_layers"]),
            "sinkhorn_iterations": cfg["sinkhorn_iterations"],
        },
        **contract.superglue_io(num_slots, dim),
        "static": num_slots is not None,
        "num_slots": num_slots,
        "slot_policy": contract.SLOT_POLICY,
        "masking": "mask 0 slots: excluded from attention (additive -finfo.max/2 bias) and from "
        "optimal transport (log marginal -inf; m, n count valid slots); their "
        "log_assignment rows/columns are -inf",
        "opset": opset,
        "fp16": fp16,
        "io_dtype": "float32",
        "optimal_transport_dtype": "float32",
        "optimal_transport": "Sinkhorn in the scaling domain, scalings absorbed into the log "
        f"potentials every {SINKHORN_ABSORB_EVERY} iterations",
        "simplified": tool,
        "source_weights": _weights_info(weights, "superglue", weights_dir),
        "exporter": _versions(),
    }
    sidecar = contract.write_sidecar(out_path, meta)
    log.info("exported %s", out_path)
    return ExportedModel(out_path, sidecar, meta)
