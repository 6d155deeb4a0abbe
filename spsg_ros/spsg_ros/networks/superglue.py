"""SuperGlue (Sarlin et al. 2020) in PyTorch, loading the upstream state dict.

Keypoint encoder, attentional GNN of alternating self/cross layers, final
projection, and optimal transport with a learned dustbin score, as in the
paper and the upstream release.
"""
from __future__ import annotations

from copy import deepcopy
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..matching.superglue_post import superglue_config

NUM_HEADS = 4


def mlp(channels: Sequence[int]) -> nn.Sequential:
    """1x1 Conv1d steps; all but the last followed by BatchNorm1d and ReLU."""
    layers: list[nn.Module] = []
    for i in range(1, len(channels)):
        layers.append(nn.Conv1d(channels[i - 1], channels[i], kernel_size=1, bias=True))
        if i < len(channels) - 1:
            layers.append(nn.BatchNorm1d(channels[i]))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def normalize_keypoints(kpts: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Centre on the image and scale by 0.7 * its longest side."""
    size = kpts.new_tensor([width, height])
    return (kpts - size / 2) / (size.max() * 0.7)


class KeypointEncoder(nn.Module):
    def __init__(self, feature_dim: int, layers: Sequence[int]):
        super().__init__()
        self.encoder = mlp([3, *layers, feature_dim])
        nn.init.constant_(self.encoder[-1].bias, 0.0)

    def forward(self, kpts: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.encoder(torch.cat([kpts.transpose(1, 2), scores.unsqueeze(1)], dim=1))


def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention over (B, head_dim, heads, N) tensors.

    ``key_mask`` (B, M) bool, True for real source points: padded sources get
    -inf logits so they take no weight (used by the static-shape export).
    """
    dim = query.shape[1]
    logits = torch.einsum("bdhn,bdhm->bhnm", query, key) / dim ** 0.5
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    prob = torch.softmax(logits, dim=-1)
    if key_mask is not None:  # a query with no valid source at all: no message
        prob = torch.nan_to_num(prob, nan=0.0)
    return torch.einsum("bhnm,bdhm->bdhn", prob, value)


class MultiHeadedAttention(nn.Module):
    def __init__(self, num_heads: int, d_model: int):
        super().__init__()
        assert d_model % num_heads == 0
        self.dim = d_model // num_heads
        self.num_heads = num_heads
        self.merge = nn.Conv1d(d_model, d_model, kernel_size=1)
        self.proj = nn.ModuleList([deepcopy(self.merge) for _ in range(3)])

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b = query.size(0)
        # view(B, head_dim, heads, N): channel c belongs to head c % heads
        q, k, v = [proj(x).view(b, self.dim, self.num_heads, -1)
                   for proj, x in zip(self.proj, (query, key, value))]
        x = attention(q, k, v, key_mask)
        return self.merge(x.contiguous().view(b, self.dim * self.num_heads, -1))


class AttentionalPropagation(nn.Module):
    def __init__(self, feature_dim: int, num_heads: int):
        super().__init__()
        self.attn = MultiHeadedAttention(num_heads, feature_dim)
        self.mlp = mlp([feature_dim * 2, feature_dim * 2, feature_dim])
        nn.init.constant_(self.mlp[-1].bias, 0.0)

    def forward(self, x: torch.Tensor, source: torch.Tensor,
                source_mask: torch.Tensor | None = None) -> torch.Tensor:
        message = self.attn(x, source, source, source_mask)
        return self.mlp(torch.cat([x, message], dim=1))


class AttentionalGNN(nn.Module):
    def __init__(self, feature_dim: int, layer_names: Sequence[str]):
        super().__init__()
        self.layers = nn.ModuleList([AttentionalPropagation(feature_dim, NUM_HEADS)
                                     for _ in layer_names])
        self.names = list(layer_names)

    def forward(self, desc0: torch.Tensor, desc1: torch.Tensor,
                mask0: torch.Tensor | None = None, mask1: torch.Tensor | None = None):
        for layer, name in zip(self.layers, self.names):
            if name == "cross":
                src0, src1, smask0, smask1 = desc1, desc0, mask1, mask0
            else:
                src0, src1, smask0, smask1 = desc0, desc1, mask0, mask1
            delta0, delta1 = layer(desc0, src0, smask0), layer(desc1, src1, smask1)
            desc0, desc1 = desc0 + delta0, desc1 + delta1
        return desc0, desc1


def log_sinkhorn_iterations(z: torch.Tensor, log_mu: torch.Tensor, log_nu: torch.Tensor,
                            iters: int) -> torch.Tensor:
    u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
    for _ in range(iters):
        u = log_mu - torch.logsumexp(z + v.unsqueeze(1), dim=2)
        v = log_nu - torch.logsumexp(z + u.unsqueeze(2), dim=1)
    return z + u.unsqueeze(2) + v.unsqueeze(1)


def log_optimal_transport(scores: torch.Tensor, alpha: torch.Tensor, iters: int) -> torch.Tensor:
    """Sinkhorn in log space on the scores augmented with a dustbin row/column."""
    b, m, n = scores.shape
    one = scores.new_tensor(1)
    ms, ns = (m * one).to(scores), (n * one).to(scores)
    bins0 = alpha.expand(b, m, 1)
    bins1 = alpha.expand(b, 1, n)
    corner = alpha.expand(b, 1, 1)
    couplings = torch.cat([torch.cat([scores, bins0], -1), torch.cat([bins1, corner], -1)], 1)
    norm = -(ms + ns).log()
    log_mu = torch.cat([norm.expand(m), ns.log()[None] + norm])
    log_nu = torch.cat([norm.expand(n), ms.log()[None] + norm])
    log_mu, log_nu = log_mu[None].expand(b, -1), log_nu[None].expand(b, -1)
    z = log_sinkhorn_iterations(couplings, log_mu, log_nu, iters)
    return z - norm


class SuperGlue(nn.Module):
    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__()
        self.config = superglue_config(config)
        dim = self.config["descriptor_dim"]
        self.kenc = KeypointEncoder(dim, self.config["keypoint_encoder"])
        self.gnn = AttentionalGNN(dim, self.config["GNN_layers"])
        self.final_proj = nn.Conv1d(dim, dim, kernel_size=1, bias=True)
        self.register_parameter("bin_score", nn.Parameter(torch.tensor(1.0)))

    def scores(self, kpts0, scores0, desc0, size0, kpts1, scores1, desc1, size1) -> torch.Tensor:
        """Log assignment (B, m+1, n+1) for batched keypoints (B, N, 2), scores (B, N),
        descriptors (B, D, N); sizes are (width, height) of each image."""
        desc0 = desc0 + self.kenc(normalize_keypoints(kpts0, *size0), scores0)
        desc1 = desc1 + self.kenc(normalize_keypoints(kpts1, *size1), scores1)
        desc0, desc1 = self.gnn(desc0, desc1)
        mdesc0, mdesc1 = self.final_proj(desc0), self.final_proj(desc1)
        scores = torch.einsum("bdn,bdm->bnm", mdesc0, mdesc1) / self.config["descriptor_dim"] ** 0.5
        return log_optimal_transport(scores, self.bin_score, self.config["sinkhorn_iterations"])

    def forward(self, data: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Upstream-style call: keys keypoints0/1, scores0/1, descriptors0/1, image0/1
        (only the image shapes are used). Returns matches and matching scores."""
        kpts0, kpts1 = data["keypoints0"], data["keypoints1"]
        if kpts0.shape[1] == 0 or kpts1.shape[1] == 0:
            shape0, shape1 = kpts0.shape[:-1], kpts1.shape[:-1]
            return {"matches0": kpts0.new_full(shape0, -1, dtype=torch.int64),
                    "matches1": kpts1.new_full(shape1, -1, dtype=torch.int64),
                    "matching_scores0": kpts0.new_zeros(shape0),
                    "matching_scores1": kpts1.new_zeros(shape1)}
        h0, w0 = data["image0"].shape[-2:]
        h1, w1 = data["image1"].shape[-2:]
        scores = self.scores(kpts0, data["scores0"], data["descriptors0"], (w0, h0),
                             kpts1, data["scores1"], data["descriptors1"], (w1, h1))
        return {"log_assignment": scores, **mutual_matches(scores, self.config["match_threshold"])}


def mutual_matches(scores: torch.Tensor, threshold: float) -> dict[str, torch.Tensor]:
    """Upstream match extraction from the log assignment, in torch."""
    max0, max1 = scores[:, :-1, :-1].max(2), scores[:, :-1, :-1].max(1)
    indices0, indices1 = max0.indices, max1.indices
    mutual0 = torch.arange(indices0.shape[1], device=scores.device)[None] == indices1.gather(1, indices0)
    mutual1 = torch.arange(indices1.shape[1], device=scores.device)[None] == indices0.gather(1, indices1)
    zero = scores.new_tensor(0)
    mscores0 = torch.where(mutual0, max0.values.exp(), zero)
    mscores1 = torch.where(mutual1, mscores0.gather(1, indices1), zero)
    valid0 = mutual0 & (mscores0 > threshold)
    valid1 = mutual1 & valid0.gather(1, indices1)
    return {"matches0": torch.where(valid0, indices0, indices0.new_tensor(-1)),
            "matches1": torch.where(valid1, indices1, indices1.new_tensor(-1)),
            "matching_scores0": mscores0, "matching_scores1": mscores1}
