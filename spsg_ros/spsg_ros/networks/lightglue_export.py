"""ONNX export of LightGlue for static engines: K keypoint slots with validity
masks, as stages (adaptive) or as one graph (non-adaptive).

The contract (names, shapes, manifest) is :mod:`.lightglue_contract`. The
modules here rebuild :class:`~.lightglue.LightGlue`'s computation from its
weights with fixed shapes:

- padded slots and pruned points carry mask 0: they are no key in any attention
  (an additive ``finfo.min / 2`` bias, so their softmax weight is exactly 0) and
  take no part in either softmax of the assignment, so every valid row equals the
  unpadded network's (to float rounding);
- no data-dependent operator: early exit and pruning are decided by the host
  between stages (:mod:`spsg_ros.backends.lightglue_staged`), pruning by setting a
  point's mask to 0 instead of removing it;
- the self-attention's interleaved q/k/v projection is reordered into three
  contiguous blocks and q is pre-scaled by head_dim^-1/2 (a power of two for the
  released 64-channel heads, so exact); cross-attention's two projections are
  one matrix product. Everything else is the reference's op sequence.

``fp16`` (an explicit option, never the default): the layers and heads run in half
precision (float32 inputs and outputs, casts at the stage boundaries, so every
engine feeds the same arrays); the rotary angles and the assignment's double
softmax stay float32.

Measured (DISK-LightGlue weights, the shared upstream fixtures: 4 pairs x the
default / non-adaptive / depth-only configs = 11 runs):

- parity: onnxruntime CPU (static K = 1024 or 1040 with padding, and dynamic K)
  and OpenVINO CPU give upstream's matches, stop layer, pruned counts, alive
  points per layer and exit fractions in 11/11 runs; matching scores within
  5.0e-5; the single graph's log assignment within 1.9e-3 of upstream's.
- fp16 vs fp32 stages (onnxruntime CPU, which runs the half-precision graph
  through float32 kernels with inserted casts: fp16 weights and fp16-rounded
  activations; static K = 1100 and dynamic K): the same stop layer in 11/11 runs,
  >= 99.8% of the fp32 matches kept (mean 99.97%), at most 0.27% new matches,
  pruned counts within 2 points. On the CPU fp16 is no speed-up (the casts); it is
  for engines with half-precision units.
- time, onnxruntime CPU 2 threads vs torch 2 threads, freiburg DISK pairs (K = 512:
  the 512 best points of each image), median ms per pair [stop layer]:

  ================================  ==========  ===========  ==========  ===========
  pair, K                           f01-02 512  f01-02 1024  f01-05 512  f01-05 1024
  ================================  ==========  ===========  ==========  ===========
  torch adaptive (depth + width)     130 [3]     467 [5]      209 [7]     591 [8]
  torch non-adaptive                 383 [9]    1026 [9]      300 [9]     910 [9]
  ORT staged static, depth + mask     93 [3]     398 [5]      206 [7]     596 [8]
  ORT staged static, depth only       95 [3]     407 [5]      222 [8]     578 [8]
  ORT single static, non-adaptive    261 [9]     714 [9]      232 [9]     648 [9]
  ORT staged dynamic, depth + remove  86 [3]     357 [5]      161 [7]     414 [8]
  ORT staged dynamic, depth only      92 [3]     420 [5]      241 [8]     601 [8]
  ================================  ==========  ===========  ==========  ===========

  Depth adaptivity pays (staging costs < 10% against the single graph, an early exit
  saves whole layers: -44% and -64% on the consecutive pair). Width by masking pays
  nothing (a masked point still costs its attention rows and columns): use it where
  shapes must be static, for parity. Width pays only when pruned points are really
  removed, which needs dynamic shapes (-15% and -31% on onnxruntime CPU): the
  onnxruntime and OpenVINO CPU backends therefore default to the dynamic-K export
  with removal; static engines (TensorRT fixed profiles, Ascend) mask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from . import contract
from . import lightglue_contract as lc
from .onnx_export import ExportedModel, _export, _finish, _versions, _weights_info
from .superglue import mask_bias

log = logging.getLogger(__name__)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None, dtype) -> nn.Linear:
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            out.bias.copy_(bias)
    return out.to(dtype)


def _rotate(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int, hd: int
) -> torch.Tensor:
    """:func:`.lightglue.rotate` of (1, h, K, hd) with the encoding split into cos and sin
    (reshapes with constant shapes, -1 for K only: no Shape operators in the graph)."""
    pairs = x.reshape(1, heads, -1, hd // 2, 2)
    turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1)
    return x * cos + turned.reshape(1, heads, -1, hd) * sin


class InputStage(nn.Module):
    """Keypoints, descriptors, image size -> projected descriptors, rotary encoding."""

    def __init__(self, net, half: bool = False):
        super().__init__()
        self.dtype = torch.float16 if half else torch.float32
        proj = net.input_proj
        self.input_proj = (
            _linear(proj.weight.detach(), proj.bias.detach(), self.dtype)
            if isinstance(proj, nn.Linear)
            else None
        )
        self.wr = _linear(net.posenc.Wr.weight.detach(), None, torch.float32)
        self.head_dim = 2 * int(net.posenc.Wr.weight.shape[0])

    def encode(self, kpts: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        size = size[:, None, :]
        positions = (kpts - size / 2) / (size.max(-1, keepdim=True).values / 2)
        angles = self.wr(positions)  # (1, K, hd / 2)
        enc = torch.stack([angles.cos(), angles.sin()], 1)  # (1, 2, K, hd / 2)
        return torch.stack([enc, enc], -1).reshape(1, 2, -1, self.head_dim)  # each angle twice

    def project(self, desc: torch.Tensor) -> torch.Tensor:
        if self.input_proj is None:
            return desc
        return self.input_proj(desc.to(self.dtype)).float()

    def forward(
        self, keypoints0, descriptors0, image_size0, keypoints1, descriptors1, image_size1
    ):
        return (
            self.project(descriptors0),
            self.encode(keypoints0, image_size0),
            self.project(descriptors1),
            self.encode(keypoints1, image_size1),
        )


def _ffn(block, dtype) -> nn.Sequential:
    ffn = block.ffn
    norm = nn.LayerNorm(ffn[1].normalized_shape, eps=ffn[1].eps)
    with torch.no_grad():
        norm.weight.copy_(ffn[1].weight)
        norm.bias.copy_(ffn[1].bias)
    return nn.Sequential(
        _linear(ffn[0].weight.detach(), ffn[0].bias.detach(), dtype),
        norm.to(dtype),
        nn.GELU(),
        _linear(ffn[3].weight.detach(), ffn[3].bias.detach(), dtype),
    )


class MaskedLayer(nn.Module):
    """One LightGlue layer (self-attention in each image, then cross-attention) over
    K slots with masks; with ``heads`` also the layer's token confidence and
    matchability (sigmoids), which the host's exit and pruning rules read."""

    def __init__(self, net, layer: int, heads: bool, half: bool = False):
        super().__init__()
        self.dtype = torch.float16 if half else torch.float32
        cfg = net.config
        dim, num_heads = cfg["descriptor_dim"], cfg["num_heads"]
        head_dim = dim // num_heads
        self.num_heads, self.head_dim, self.dim = num_heads, head_dim, dim
        sa, ca = net.self_attn[layer], net.cross_attn[layer]
        # Wqkv output o = head * 3 hd + channel * 3 + role -> [q; k; v], each head-major
        order = torch.arange(3 * dim).view(num_heads, head_dim, 3).permute(2, 0, 1).reshape(-1)
        weight = sa.Wqkv.weight.detach()[order].clone()
        bias = sa.Wqkv.bias.detach()[order].clone()
        scale = head_dim**-0.5  # softmax(q k^T / sqrt(hd)); exact for hd = 4^n
        weight[:dim] *= scale
        bias[:dim] *= scale
        self.qkv = _linear(weight, bias, self.dtype)
        self.self_out = _linear(sa.out_proj.weight.detach(), sa.out_proj.bias.detach(), self.dtype)
        self.self_ffn = _ffn(sa, self.dtype)
        self.cross_qkv = _linear(
            torch.cat([ca.to_qk.weight.detach(), ca.to_v.weight.detach()]),
            torch.cat([ca.to_qk.bias.detach(), ca.to_v.bias.detach()]),
            self.dtype,
        )
        self.cross_out = _linear(ca.to_out.weight.detach(), ca.to_out.bias.detach(), self.dtype)
        self.cross_ffn = _ffn(ca, self.dtype)
        self.heads = heads
        if heads:
            token = net.token_confidence[layer].token[0]
            match = net.log_assignment[layer].matchability
            self.token = _linear(token.weight.detach(), token.bias.detach(), self.dtype)
            self.matchability = _linear(match.weight.detach(), match.bias.detach(), self.dtype)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(1, -1, self.num_heads, self.head_dim).transpose(1, 2)  # 1, h, K, hd

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(1, -1, self.dim)

    def self_block(self, x, cos, sin, bias):
        q, k, v = self.qkv(x).split(self.dim, -1)
        q = _rotate(self.split_heads(q), cos, sin, self.num_heads, self.head_dim)
        k = _rotate(self.split_heads(k), cos, sin, self.num_heads, self.head_dim)
        prob = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) + bias, -1)
        message = self.self_out(self.merge_heads(torch.matmul(prob, self.split_heads(v))))
        return x + self.self_ffn(torch.cat([x, message], -1))

    def cross_block(self, x0, x1, bias0, bias1):
        qk0, v0 = self.cross_qkv(x0).split(self.dim, -1)
        qk1, v1 = self.cross_qkv(x1).split(self.dim, -1)
        scale = self.head_dim**-0.25
        sim = torch.matmul(
            self.split_heads(qk0) * scale, self.split_heads(qk1).transpose(-1, -2) * scale
        )
        attn01 = torch.softmax(sim + bias1, -1)
        attn10 = torch.softmax(sim.transpose(-1, -2) + bias0, -1)
        m0 = self.cross_out(self.merge_heads(torch.matmul(attn01, self.split_heads(v1))))
        m1 = self.cross_out(self.merge_heads(torch.matmul(attn10, self.split_heads(v0))))
        return x0 + self.cross_ffn(torch.cat([x0, m0], -1)), x1 + self.cross_ffn(
            torch.cat([x1, m1], -1)
        )

    def forward(self, desc0, encoding0, mask0, desc1, encoding1, mask1):
        dt = self.dtype
        x0, x1 = desc0.to(dt), desc1.to(dt)
        bias0, bias1 = mask_bias(mask0, dt), mask_bias(mask1, dt)
        e0, e1 = encoding0.to(dt).unsqueeze(2), encoding1.to(dt).unsqueeze(2)  # 1, 2, 1, K, hd
        x0 = self.self_block(x0, e0[:, 0], e0[:, 1], bias0)
        x1 = self.self_block(x1, e1[:, 0], e1[:, 1], bias1)
        x0, x1 = self.cross_block(x0, x1, bias0, bias1)
        if not self.heads:
            return x0.float(), x1.float()
        return (
            x0.float(),
            x1.float(),
            torch.sigmoid(self.token(x0)).squeeze(-1).float(),
            torch.sigmoid(self.token(x1)).squeeze(-1).float(),
            torch.sigmoid(self.matchability(x0)).squeeze(-1).float(),
            torch.sigmoid(self.matchability(x1)).squeeze(-1).float(),
        )


def _logsigmoid(x: torch.Tensor) -> torch.Tensor:
    """log sigmoid(x) as -softplus(-x): one ONNX Softplus, stable (the exporter writes
    F.logsigmoid as Log(Sigmoid(x)), which is -inf below x ~ -88 in float32, where
    torch gives x)."""
    return -F.softplus(-x)


class MaskedAssignment(nn.Module):
    """One layer's assignment head over K slots: the log assignment (1, K0+1, K1+1)
    of :func:`.lightglue.log_double_softmax`, each softmax over mask-1 slots only;
    rows/columns of mask-0 slots are -inf (the similarity in the network's dtype,
    the double softmax in float32)."""

    def __init__(self, net, layer: int, half: bool = False):
        super().__init__()
        self.dtype = torch.float16 if half else torch.float32
        head = net.log_assignment[layer]
        self.final_proj = _linear(
            head.final_proj.weight.detach(), head.final_proj.bias.detach(), self.dtype
        )
        self.matchability = _linear(
            head.matchability.weight.detach(), head.matchability.bias.detach(), self.dtype
        )
        self.scale = net.config["descriptor_dim"] ** -0.25

    def forward(self, desc0, mask0, desc1, mask1):
        x0, x1 = desc0.to(self.dtype), desc1.to(self.dtype)
        p0, p1 = self.final_proj(x0) * self.scale, self.final_proj(x1) * self.scale
        sim = torch.matmul(p0, p1.transpose(-1, -2)).float()  # 1, K0, K1
        z0, z1 = self.matchability(x0).float(), self.matchability(x1).float()  # 1, K, 1
        valid0, valid1 = mask0 > 0.5, mask1 > 0.5
        rows = F.log_softmax(sim + mask_bias(mask1, torch.float32)[:, 0], 2)
        cols = F.log_softmax(sim + mask_bias(mask0, torch.float32)[:, 0].transpose(1, 2), 1)
        certainty = _logsigmoid(z0) + _logsigmoid(z1).transpose(1, 2)
        neg_inf = torch.full((), float("-inf"))
        inner = torch.where(
            valid0[:, :, None] & valid1[:, None, :], rows + cols + certainty, neg_inf
        )
        last_col = torch.where(valid0[:, :, None], _logsigmoid(-z0), neg_inf)
        last_row = torch.where(valid1[:, None, :], _logsigmoid(-z1).transpose(1, 2), neg_inf)
        corner = torch.zeros_like(last_row[:, :, :1])
        return torch.cat([torch.cat([inner, last_col], 2), torch.cat([last_row, corner], 2)], 1)


class SingleLightGlue(nn.Module):
    """All layers and the last assignment head in one graph (no early exit, no pruning)."""

    def __init__(self, net, half: bool = False):
        super().__init__()
        n = net.config["n_layers"]
        self.input = InputStage(net, half)
        self.layers = nn.ModuleList([MaskedLayer(net, j, False, half) for j in range(n)])
        self.assign = MaskedAssignment(net, n - 1, half)

    def forward(
        self,
        keypoints0,
        descriptors0,
        mask0,
        image_size0,
        keypoints1,
        descriptors1,
        mask1,
        image_size1,
    ):
        x0, e0, x1, e1 = self.input(
            keypoints0, descriptors0, image_size0, keypoints1, descriptors1, image_size1
        )
        for layer in self.layers:
            x0, x1 = layer(x0, e0, mask0, x1, e1, mask1)
        return self.assign(x0, mask0, x1, mask1)


def stage_modules(net, half: bool = False) -> dict[str, nn.Module]:
    """Every stage of :data:`.lightglue_contract` as a module, in eval mode."""
    n = net.config["n_layers"]
    modules: dict[str, nn.Module] = {lc.INPUT_STAGE: InputStage(net, half)}
    for j in range(n):
        modules[lc.layer_stage(j)] = MaskedLayer(net, j, j < n - 1, half)
    for j in range(n):
        modules[lc.assign_stage(j)] = MaskedAssignment(net, j, half)
    return {name: m.eval() for name, m in modules.items()}


def example_inputs(stage: str, k: int, cfg: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Random inputs of a stage (for tracing), ``k`` slots, the first 3/4 valid."""
    g = torch.Generator().manual_seed(0)
    dim, in_dim = cfg["descriptor_dim"], cfg["input_dim"]
    hd = dim // cfg["num_heads"]
    mask = torch.zeros(1, k)
    mask[:, : max(1, 3 * k // 4)] = 1
    size = torch.tensor([[640.0, 480.0]])
    out: dict[str, torch.Tensor] = {}
    for i in (0, 1):
        kpts = (torch.rand(1, k, 2, generator=g) * torch.tensor([639.0, 479.0])).round()
        desc = F.normalize(torch.randn(1, k, in_dim, generator=g), dim=-1)
        out.update(
            {
                f"keypoints{i}": kpts,
                f"descriptors{i}": desc,
                f"image_size{i}": size,
                f"mask{i}": mask,
                f"desc{i}": torch.randn(1, k, dim, generator=g),
                f"encoding{i}": torch.rand(1, 2, k, hd, generator=g) * 2 - 1,
            }
        )
    names = _stage_inputs(stage)
    return {name: out[name] for name in names}


def _stage_inputs(stage: str) -> tuple[str, ...]:
    if stage == lc.INPUT_STAGE:
        return lc.INPUT_INPUTS
    if stage == lc.SINGLE_STAGE:
        return lc.SINGLE_INPUTS
    if stage.startswith("layer"):
        return lc.LAYER_INPUTS
    return lc.ASSIGN_INPUTS


def _stage_outputs(stage: str, n_layers: int) -> tuple[str, ...]:
    if stage == lc.INPUT_STAGE:
        return lc.INPUT_OUTPUTS
    if stage.startswith("layer"):
        last = stage == lc.layer_stage(n_layers - 1)
        return lc.LAST_LAYER_OUTPUTS if last else lc.LAYER_OUTPUTS
    return lc.ASSIGN_OUTPUTS


def _dynamic_axes(stage: str, n_layers: int) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for name in (*_stage_inputs(stage), *_stage_outputs(stage, n_layers)):
        if name == lc.LOG_ASSIGNMENT:
            axes[name] = {1: "K0+1", 2: "K1+1"}
        elif name.startswith("image_size"):
            continue
        else:
            axes[name] = {2 if name.startswith("encoding") else 1: f"K{name[-1]}"}
    return axes


@dataclass
class LightGlueExport:
    folder: Path
    manifest: Path
    meta: dict[str, Any]
    models: list[ExportedModel] = field(default_factory=list)


def export_lightglue(
    out_dir: str | Path,
    weights: Any = "lightglue",
    weights_dir: Any = None,
    num_slots: int | None = contract.DEFAULT_NUM_SLOTS,
    opset: int = contract.DEFAULT_OPSET,
    fp16: bool = False,
    simplify: bool = False,
    stages: bool = True,
    single: bool = True,
) -> LightGlueExport:
    """The LightGlue stage models (``stages``) and/or the single non-adaptive model
    (``single``) for ``num_slots`` K per image (None: dynamic K0, K1) into
    ``out_dir`` (usually ``<export folder>/<lightglue_contract.folder_name(...)>``),
    each with its sidecar, plus ``manifest.json``."""
    from .weights import load_lightglue

    if num_slots is not None and num_slots < 1:
        raise ValueError(f"num_slots = {num_slots}: at least 1 keypoint slot")
    if not (stages or single):
        raise ValueError("export_lightglue: nothing to export (stages and single both off)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net = load_lightglue(weights, {"depth_confidence": -1, "width_confidence": -1}, weights_dir)
    cfg = net.config
    if cfg["add_scale_ori"]:
        raise ValueError("the LightGlue export does not cover add_scale_ori (SIFT-like) weights")
    n_layers, dim = cfg["n_layers"], cfg["descriptor_dim"]
    head_dim = dim // cfg["num_heads"]
    arch = {key: cfg[key] for key in lc.ARCH_KEYS}
    source = _weights_info(weights, "lightglue", weights_dir)
    exporter = {**_versions(), "lightglue_export_revision": lc.EXPORT_REVISION}
    trace_k = num_slots if num_slots is not None else 64
    modules: dict[str, nn.Module] = {}
    if stages:
        modules.update(stage_modules(net, fp16))
    if single:
        modules[lc.SINGLE_STAGE] = SingleLightGlue(net, fp16).eval()
    exported = []
    for stage, module in modules.items():
        path = out_dir / f"{stage}.onnx"
        example = example_inputs(stage, trace_k, cfg)
        outputs = _stage_outputs(stage, n_layers)
        _export(
            module,
            tuple(example.values()),
            path,
            list(example),
            outputs,
            opset,
            None if num_slots is not None else _dynamic_axes(stage, n_layers),
        )
        tool = _finish(path, opset, simplify)
        last = stage == lc.layer_stage(n_layers - 1)
        meta = {
            "network": lc.NETWORK,
            "stage": stage,
            "config": arch,
            **lc.stage_io(stage, num_slots, cfg["input_dim"], dim, head_dim, last),
            "static": num_slots is not None,
            "num_slots": num_slots,
            "opset": opset,
            "fp16": fp16,
            "io_dtype": "float32",
            "simplified": tool,
            "source_weights": source,
            "exporter": exporter,
        }
        sidecar = contract.write_sidecar(path, meta)
        exported.append(ExportedModel(path, sidecar, meta))
    manifest_meta = {
        "config": arch,
        "num_slots": num_slots,
        "static": num_slots is not None,
        "fp16": fp16,
        "io_dtype": "float32",
        "opset": opset,
        "confidence_thresholds": [float(v) for v in net.confidence_thresholds],
        "stages": {s: f"{s}.onnx" for s in lc.stage_names(n_layers)} if stages else {},
        "single": f"{lc.SINGLE_STAGE}.onnx" if single else None,
        "masking": lc.MASKING,
        "slot_policy": contract.SLOT_POLICY,
        "adaptivity": "host-side: early exit after layer j reads token{i}; pruning sets mask{i} "
        "to 0 (upstream's rules, spsg_ros.backends.lightglue_staged)",
        "source_weights": source,
        "exporter": exporter,
    }
    manifest = lc.write_manifest(out_dir, manifest_meta)
    log.info("exported LightGlue to %s", out_dir)
    return LightGlueExport(out_dir, manifest, lc.read_manifest(out_dir), exported)
