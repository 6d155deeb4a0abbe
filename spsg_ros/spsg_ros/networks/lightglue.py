"""LightGlue (Lindenberger, Sarlin, Pollefeys, ICCV 2023) in PyTorch, loading the
upstream checkpoints (cvg/LightGlue release files such as ``superpoint_lightglue.pth``,
``disk_lightglue.pth``).

A stack of transformer layers (self-attention with a rotary encoding of the
keypoint positions, then cross-attention between the two images) refines the
descriptors of both images. After each layer but the last, a token-confidence
head may end the stack early (adaptive depth) and points that are confidently
unmatchable are dropped (adaptive width). The assignment head of the last layer
run turns the descriptors into a log-assignment matrix (double softmax of the
similarity plus learned matchability), from which mutual best matches are read.

Feature types differ only in the descriptor dimension (``input_dim``): when it
differs from the model width (DISK, ALIKED, SIFT: 128) a learned affine
``input_proj`` maps the descriptors to ``descriptor_dim``; SuperPoint's 256-D
descriptors enter as they are. SIFT-like variants (``add_scale_ori``) also
encode the keypoint scale and orientation.

Pruning and the device: upstream prunes an image only while it holds more points
than a per-device minimum (CPU -1, i.e. always; CUDA 1024; CUDA with flash
attention 1536). ``pruning_rule`` chooses: ``"cpu"`` (the default here, on any
device: always prune, reproducing upstream's CPU results), ``"cuda"`` / ``"flash"``
(upstream's CUDA rules, also on the CPU), ``"auto"`` (upstream's choice by the
device the inputs are on).
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from .config import LIGHTGLUE_DEFAULTS, lightglue_config, PRUNING_MIN_POINTS

# the plain configuration lives with the other networks' (no torch needed to check it)
DEFAULT_CONFIG = LIGHTGLUE_DEFAULTS


def confidence_threshold(layer: int, n_layers: int) -> float:
    """lambda_i = 0.8 + 0.1 exp(-4 i / L), clipped to [0, 1]: the token confidence a
    point needs after layer i to count as done."""
    return min(max(0.8 + 0.1 * math.exp(-4.0 * layer / n_layers), 0.0), 1.0)


def normalize_keypoints(kpts: torch.Tensor, size: torch.Tensor | None) -> torch.Tensor:
    """Pixels (N, 2) -> centred on the image, divided by half its longest side.
    ``size`` (width, height); None: the keypoints' own extent per axis."""
    if size is None:
        size = 1 + kpts.max(0).values - kpts.min(0).values
    size = size.to(kpts)
    return (kpts - size / 2) / (size.max() / 2)


def feed_forward(dim: int) -> nn.Sequential:
    """[x, message] (2 dim) -> update (dim): Linear, LayerNorm, GELU, Linear
    (state-dict indices 0, 1, 3)."""
    return nn.Sequential(
        nn.Linear(2 * dim, 2 * dim),
        nn.LayerNorm(2 * dim, elementwise_affine=True),
        nn.GELU(),
        nn.Linear(2 * dim, dim),
    )


class RotaryEncoding(nn.Module):
    """Learned Fourier features of the positions, as (cos, sin) of 2 x head_dim/2
    angles, each repeated for the pair of channels it rotates."""

    def __init__(self, in_dim: int, head_dim: int):
        super().__init__()
        self.Wr = nn.Linear(in_dim, head_dim // 2, bias=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """(B, N, in_dim) -> (2, B, 1, N, head_dim): [cos; sin], shared by all heads."""
        angles = self.Wr(positions)
        return torch.stack([angles.cos(), angles.sin()], 0).unsqueeze(-3).repeat_interleave(2, -1)


def rotate(x: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
    """Rotate each channel pair (2j, 2j+1) of ``x`` by angle theta_j."""
    pairs = x.unflatten(-1, (-1, 2))
    turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(start_dim=-2)
    return x * encoding[0] + turned * encoding[1]


class SelfBlock(nn.Module):
    """Self-attention within one image, positions by the rotary encoding of q and k."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.Wqkv = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.ffn = feed_forward(dim)

    def forward(self, x: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
        # 1. q, k, v interleaved per channel: output o -> head o // (3 hd), role o % 3
        qkv = self.Wqkv(x).unflatten(-1, (self.num_heads, -1, 3)).transpose(1, 2)
        q, k, v = qkv[..., 0], qkv[..., 1], qkv[..., 2]
        # 2. positions enter through q and k only
        q, k = rotate(q, encoding), rotate(k, encoding)
        # 3. softmax(q k^T / sqrt(hd)) v per head, heads concatenated head-major
        context = F.scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous())
        message = self.out_proj(context.transpose(1, 2).flatten(start_dim=-2))
        # 4. residual update from [x, message]
        return x + self.ffn(torch.cat([x, message], -1))


class CrossBlock(nn.Module):
    """Bidirectional cross-attention: one similarity serves both directions."""

    def __init__(self, dim: int, num_heads: int, flash: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.flash = flash
        self.to_qk = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.ffn = feed_forward(dim)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # B, h, N, hd

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # 1. one projection is both query and key; head-major channels
        qk0, qk1 = self.heads(self.to_qk(x0)), self.heads(self.to_qk(x1))
        v0, v1 = self.heads(self.to_v(x0)), self.heads(self.to_v(x1))
        if self.flash and x0.device.type == "cuda":
            m0 = F.scaled_dot_product_attention(qk0, qk1, v1)
            m1 = F.scaled_dot_product_attention(qk1, qk0, v0)
        else:
            # 2. sim_ij = qk0_i . qk1_j / sqrt(hd), each side scaled by hd^-1/4
            scale = qk0.shape[-1] ** -0.25
            sim = torch.einsum("bhid,bhjd->bhij", qk0 * scale, qk1 * scale)
            # 3. image 0 attends over j (rows), image 1 over i (columns)
            attn01 = F.softmax(sim, dim=-1)
            attn10 = F.softmax(sim.transpose(-2, -1).contiguous(), dim=-1)
            m0 = torch.einsum("bhij,bhjd->bhid", attn01, v1)
            m1 = torch.einsum("bhji,bhjd->bhid", attn10.transpose(-2, -1), v0)
        m0 = self.to_out(m0.transpose(1, 2).flatten(start_dim=-2))
        m1 = self.to_out(m1.transpose(1, 2).flatten(start_dim=-2))
        # 4. both updates from the states before the block, one shared FFN
        return x0 + self.ffn(torch.cat([x0, m0], -1)), x1 + self.ffn(torch.cat([x1, m1], -1))


class MatchAssignment(nn.Module):
    """Per-layer assignment head: similarity of projected descriptors and matchability."""

    def __init__(self, dim: int):
        super().__init__()
        self.final_proj = nn.Linear(dim, dim)
        self.matchability = nn.Linear(dim, 1)

    def similarity(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        scale = x0.shape[-1] ** -0.25
        p0, p1 = self.final_proj(x0) * scale, self.final_proj(x1) * scale
        return torch.einsum("bmd,bnd->bmn", p0, p1)

    def matchable(self, x: torch.Tensor) -> torch.Tensor:
        """sigmoid(matchability): (B, N)."""
        return torch.sigmoid(self.matchability(x)).squeeze(-1)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log assignment (B, M+1, N+1) and the similarity (B, M, N)."""
        sim = self.similarity(x0, x1)
        return log_double_softmax(sim, self.matchability(x0), self.matchability(x1)), sim


def log_double_softmax(sim: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """(B, M, N) similarity and (B, M, 1), (B, N, 1) matchability logits ->
    (B, M+1, N+1): log_softmax over rows + over columns + log sigma(z0) + log sigma(z1);
    last column log sigma(-z0), last row log sigma(-z1), corner 0."""
    b, m, n = sim.shape
    certainty = F.logsigmoid(z0) + F.logsigmoid(z1).transpose(1, 2)
    rows = F.log_softmax(sim, 2)
    cols = F.log_softmax(sim.transpose(-1, -2).contiguous(), 2).transpose(-1, -2)
    scores = sim.new_zeros((b, m + 1, n + 1))
    scores[:, :m, :n] = rows + cols + certainty
    scores[:, :-1, -1] = F.logsigmoid(-z0.squeeze(-1))
    scores[:, -1, :-1] = F.logsigmoid(-z1.squeeze(-1))
    return scores


class TokenConfidence(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.token = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Confidence in [0, 1] that a point's state is final: (B, N)."""
        return self.token(x.detach()).squeeze(-1)


def filter_matches(scores: torch.Tensor, threshold: float) -> tuple[torch.Tensor, ...]:
    """Mutual arg-max matches of the inner (B, M, N) part of the log assignment.

    Returns matches0, matches1 (-1: none), matching_scores0, matching_scores1
    (exp of the log score for mutual pairs, also those below the threshold).
    """
    inner = scores[:, :-1, :-1]
    max0, max1 = inner.max(2), inner.max(1)
    best0, best1 = max0.indices, max1.indices
    mutual0 = torch.arange(best0.shape[1], device=scores.device)[None] == best1.gather(1, best0)
    mutual1 = torch.arange(best1.shape[1], device=scores.device)[None] == best0.gather(1, best1)
    zero = scores.new_tensor(0)
    mscores0 = torch.where(mutual0, max0.values.exp(), zero)
    mscores1 = torch.where(mutual1, mscores0.gather(1, best1), zero)
    valid0 = mutual0 & (mscores0 > threshold)
    valid1 = mutual1 & valid0.gather(1, best1)
    none = best0.new_tensor(-1)
    return torch.where(valid0, best0, none), torch.where(valid1, best1, none), mscores0, mscores1


class LightGlue(nn.Module):
    """LightGlue with the parameter names of the upstream release files (``self_attn.{i}``,
    ``cross_attn.{i}``, ``log_assignment.{i}``, ``token_confidence.{i}``, ``posenc``,
    ``input_proj``); :func:`release_state_dict` maps the module naming of upstream's
    own ``state_dict()`` (``transformers.{i}.self_attn``) onto it."""

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__()
        self.config = cfg = lightglue_config(config)
        dim, heads, n = cfg["descriptor_dim"], cfg["num_heads"], cfg["n_layers"]
        if cfg["input_dim"] != dim:
            self.input_proj: nn.Module = nn.Linear(cfg["input_dim"], dim, bias=True)
        else:
            self.input_proj = nn.Identity()
        self.posenc = RotaryEncoding(2 + 2 * cfg["add_scale_ori"], dim // heads)
        self.self_attn = nn.ModuleList([SelfBlock(dim, heads) for _ in range(n)])
        self.cross_attn = nn.ModuleList([CrossBlock(dim, heads, cfg["flash"]) for _ in range(n)])
        self.log_assignment = nn.ModuleList([MatchAssignment(dim) for _ in range(n)])
        self.token_confidence = nn.ModuleList([TokenConfidence(dim) for _ in range(n - 1)])
        # lambda_i held as float32, as upstream (a buffer its module state dicts carry)
        self.register_buffer(
            "confidence_thresholds",
            torch.tensor([confidence_threshold(i, n) for i in range(n)], dtype=torch.float32),
            persistent=False,
        )

    def pruning_min_points(self, device: torch.device) -> int:
        rule = self.config["pruning_rule"]
        if rule == "auto":
            if device.type != "cuda":
                return PRUNING_MIN_POINTS["cpu"]
            rule = "flash" if self.config["flash"] else "cuda"
        return PRUNING_MIN_POINTS[rule]

    def forward(
        self,
        keypoints0: torch.Tensor,
        descriptors0: torch.Tensor,
        image_size0: Any,
        keypoints1: torch.Tensor,
        descriptors1: torch.Tensor,
        image_size1: Any,
        scales0: torch.Tensor | None = None,
        oris0: torch.Tensor | None = None,
        scales1: torch.Tensor | None = None,
        oris1: torch.Tensor | None = None,
        record: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Match one pair.

        ``keypoints{i}`` (N, 2) pixels as (x, y); ``descriptors{i}`` (N, input_dim), one
        row per keypoint; ``image_size{i}`` (width, height) of the image the keypoints
        are in (None: the keypoints' extent); ``scales``/``oris`` (N,) only with
        ``add_scale_ori``. ``record``: a dict to fill with intermediate tensors.

        Returns ``matches0`` (N0,) int64 (index in image 1 or -1), ``matches1``,
        ``matching_scores0``/``1`` (float, non-zero for every mutual best pair),
        ``stop`` (number of layers run, 0 when an image has no point), ``prune0``/``1``
        (per point: 1 + the pruning rounds it survived, ``n_layers`` when pruning is
        off) and ``num_pruned0``/``1`` (points removed before the assignment).
        """
        cfg = self.config
        n_layers = cfg["n_layers"]
        kpts = [keypoints0, keypoints1]
        descs = [descriptors0, descriptors1]
        counts = [int(k.shape[0]) for k in kpts]
        for i in (0, 1):
            if kpts[i].ndim != 2 or kpts[i].shape[-1] != 2:
                raise ValueError(f"keypoints{i}: expected (N, 2), got {tuple(kpts[i].shape)}")
            if descs[i].shape != (counts[i], cfg["input_dim"]):
                raise ValueError(
                    f"descriptors{i}: expected ({counts[i]}, {cfg['input_dim']}) (one row per "
                    f"keypoint), got {tuple(descs[i].shape)}"
                )
        device = descriptors0.device
        if 0 in counts:
            return _no_matches(counts, n_layers, device, stop=0)

        # 1. positions: normalised by the image size, then the rotary encoding (once)
        sizes = [image_size0, image_size1]
        extras = [(scales0, oris0), (scales1, oris1)]
        positions = []
        for i in (0, 1):
            size = None if sizes[i] is None else torch.as_tensor(sizes[i], dtype=torch.float32)
            p = normalize_keypoints(kpts[i].float(), size)
            if cfg["add_scale_ori"]:
                if any(e is None for e in extras[i]):
                    raise ValueError(f"add_scale_ori needs scales{i} and oris{i}")
                p = torch.cat([p, *(e.to(p).reshape(-1, 1) for e in extras[i])], -1)
            positions.append(p[None])
        enc = [self.posenc(p) for p in positions]
        # 2. descriptors to the model width (identity for SuperPoint)
        x = [self.input_proj(d.float().contiguous()[None]) for d in descs]
        if record is not None:
            for i in (0, 1):
                record[f"input_proj{i}"] = x[i][0]
                record[f"posenc{i}"] = enc[i][:, 0, 0]

        early_exit = cfg["depth_confidence"] > 0
        pruning = cfg["width_confidence"] > 0
        min_points = self.pruning_min_points(device)
        alive = [torch.arange(n, device=device) for n in counts]  # original indices
        survived = [torch.ones(n, dtype=torch.int64, device=device) for n in counts]
        record_layers = record is not None
        if record_layers:
            record.update(alive0_per_layer=[], alive1_per_layer=[], confident_fraction=[])
        use_mp = cfg["mp"] and device.type == "cuda"
        layer = 0
        for layer in range(n_layers):
            if x[0].shape[1] == 0 or x[1].shape[1] == 0:
                layer -= 1  # nothing left to attend: the previous layer's state is final
                break
            if record_layers:
                record["alive0_per_layer"].append(x[0].shape[1])
                record["alive1_per_layer"].append(x[1].shape[1])
            # 3. one layer: self-attention in each image, then cross-attention
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_mp):
                x = [self.self_attn[layer](x[i], enc[i]) for i in (0, 1)]
                if record_layers and layer == 0:
                    record["layer0_self0"], record["layer0_self1"] = x[0][0], x[1][0]
                x = list(self.cross_attn[layer](x[0], x[1]))
            x = [t.float() for t in x] if use_mp else x
            if record_layers:
                self._record_heads(record, layer, x)
            if layer == n_layers - 1:
                break
            # 4. adaptive depth: stop when enough points (pruned ones included) are sure
            token = None
            if early_exit:
                token = [self.token_confidence[layer](t)[0] for t in x]
                threshold = self.confidence_thresholds[layer]
                unsure = (torch.cat(token) < threshold).float().sum()
                confident = 1.0 - unsure / (counts[0] + counts[1])
                if record_layers:
                    record["confident_fraction"].append(float(confident))
                if confident > cfg["depth_confidence"]:
                    break
            # 5. adaptive width: drop points that are sure and unmatchable
            if pruning:
                for i in (0, 1):
                    if x[i].shape[1] <= min_points:
                        continue
                    p = self.log_assignment[layer].matchable(x[i])[0]
                    keep = p > 1 - cfg["width_confidence"]
                    if token is not None:
                        keep |= token[i] <= self.confidence_thresholds[layer]
                    kept = torch.where(keep)[0]
                    alive[i] = alive[i].index_select(0, kept)
                    x[i] = x[i].index_select(1, kept)
                    enc[i] = enc[i].index_select(-2, kept)
                    survived[i][alive[i]] += 1
        stop = layer + 1
        if x[0].shape[1] == 0 or x[1].shape[1] == 0:
            out = _no_matches(counts, n_layers, device, stop)
            out.update(_prune_outputs(survived, alive, counts, pruning, n_layers))
            return out

        # 6. assignment head of the last layer run, on the points still alive
        scores, sim = self.log_assignment[stop - 1](x[0], x[1])
        m0, m1, ms0, ms1 = filter_matches(scores, cfg["filter_threshold"])
        if record is not None:
            record["sim"], record["log_assignment"] = sim[0], scores[0]
        # 7. back to the full index sets: pruned points are unmatched, score 0
        matches0 = torch.full((counts[0],), -1, dtype=torch.int64, device=device)
        matches1 = torch.full((counts[1],), -1, dtype=torch.int64, device=device)
        mscores0 = torch.zeros(counts[0], device=device)
        mscores1 = torch.zeros(counts[1], device=device)
        matches0[alive[0]] = torch.where(m0[0] < 0, -1, alive[1][m0[0].clamp(min=0)])
        matches1[alive[1]] = torch.where(m1[0] < 0, -1, alive[0][m1[0].clamp(min=0)])
        mscores0[alive[0]] = ms0[0]
        mscores1[alive[1]] = ms1[0]
        return {
            "matches0": matches0,
            "matches1": matches1,
            "matching_scores0": mscores0,
            "matching_scores1": mscores1,
            "stop": stop,
            **_prune_outputs(survived, alive, counts, pruning, n_layers),
        }

    def _record_heads(self, record: dict[str, Any], layer: int, x: list[torch.Tensor]) -> None:
        for i in (0, 1):
            record[f"layer{layer}_desc{i}"] = x[i][0]
            record[f"layer{layer}_matchability{i}"] = self.log_assignment[layer].matchable(x[i])[0]
            if layer < len(self.token_confidence):
                record[f"layer{layer}_token{i}"] = self.token_confidence[layer](x[i])[0]


def _no_matches(counts: list[int], n_layers: int, device, stop: int) -> dict[str, Any]:
    return {
        "matches0": torch.full((counts[0],), -1, dtype=torch.int64, device=device),
        "matches1": torch.full((counts[1],), -1, dtype=torch.int64, device=device),
        "matching_scores0": torch.zeros(counts[0], device=device),
        "matching_scores1": torch.zeros(counts[1], device=device),
        "stop": stop,
        "prune0": torch.full((counts[0],), n_layers, dtype=torch.int64, device=device),
        "prune1": torch.full((counts[1],), n_layers, dtype=torch.int64, device=device),
        "num_pruned0": 0,
        "num_pruned1": 0,
    }


def _prune_outputs(survived, alive, counts, pruning: bool, n_layers: int) -> dict[str, Any]:
    if not pruning:
        device = alive[0].device
        return {
            "prune0": torch.full((counts[0],), n_layers, dtype=torch.int64, device=device),
            "prune1": torch.full((counts[1],), n_layers, dtype=torch.int64, device=device),
            "num_pruned0": 0,
            "num_pruned1": 0,
        }
    return {
        "prune0": survived[0],
        "prune1": survived[1],
        "num_pruned0": counts[0] - int(alive[0].numel()),
        "num_pruned1": counts[1] - int(alive[1].numel()),
    }


# ---- checkpoints -----------------------------------------------------------------

_MODULE_NAMING = re.compile(r"^transformers\.(\d+)\.(self_attn|cross_attn)\.")
UNUSED_RELEASE_KEY = re.compile(r"^log_assignment\.\d+\.r$")  # present in releases, never used


def release_state_dict(state: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A checkpoint in either upstream naming -> (the state dict of :class:`LightGlue`,
    the keys taken out because the network does not use them).

    Renames ``transformers.{i}.self_attn.*`` / ``cross_attn.*`` (upstream module
    ``state_dict()``) to ``self_attn.{i}.*`` / ``cross_attn.{i}.*`` (release files);
    takes out the unused ``log_assignment.{i}.r`` scalars of the release files and the
    ``confidence_thresholds`` buffer (its values are recomputed; :func:`load_into`
    copies them). Any other key, and a tensor present in both namings, is left for
    the strict check.
    """
    out: dict[str, Any] = {}
    unused: list[str] = []
    for key, value in state.items():
        if UNUSED_RELEASE_KEY.match(key) or key == "confidence_thresholds":
            unused.append(key)
            continue
        renamed = _MODULE_NAMING.sub(r"\2.\1.", key)
        # a tensor in both namings: the module-named one stays, as an unexpected key
        out[key if renamed != key and renamed in state else renamed] = value
    return out, unused


def config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture keys (input_dim, descriptor_dim, n_layers, num_heads,
    add_scale_ori) a checkpoint in release naming implies (none for absent tensors)."""
    cfg: dict[str, Any] = {}
    qkv = state.get("self_attn.0.Wqkv.weight")
    if qkv is not None and qkv.ndim == 2:
        cfg["descriptor_dim"] = int(qkv.shape[1])
        cfg["input_dim"] = int(qkv.shape[1])
    proj = state.get("input_proj.weight")
    if proj is not None and proj.ndim == 2:
        cfg["input_dim"] = int(proj.shape[1])
    layers = {int(m.group(1)) for k in state if (m := re.match(r"^self_attn\.(\d+)\.", k))}
    if layers:
        cfg["n_layers"] = max(layers) + 1
    wr = state.get("posenc.Wr.weight")
    if wr is not None and wr.ndim == 2:
        cfg["add_scale_ori"] = int(wr.shape[1]) == 4
        head_dim = 2 * int(wr.shape[0])  # Wr gives head_dim / 2 angles
        if "descriptor_dim" in cfg and head_dim and cfg["descriptor_dim"] % head_dim == 0:
            cfg["num_heads"] = cfg["descriptor_dim"] // head_dim
    return cfg
