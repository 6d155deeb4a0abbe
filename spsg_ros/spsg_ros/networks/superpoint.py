"""SuperPoint (DeTone et al. 2018) in PyTorch, loading the upstream state dict.

``forward_dense`` is the network proper (what backends export and run);
``forward`` adds the upstream post-processing written in torch, kept as the
reference semantics that the numpy host path and the benchmark baseline are
checked against.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from .config import CELL, superpoint_config

ENCODER = [
    ("conv1a", 1, 64),
    ("conv1b", 64, 64),
    ("conv2a", 64, 64),
    ("conv2b", 64, 64),
    ("conv3a", 64, 128),
    ("conv3b", 128, 128),
    ("conv4a", 128, 128),
    ("conv4b", 128, 128),
]


class SuperPoint(nn.Module):
    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__()
        self.config = superpoint_config(config)
        for name, c_in, c_out in ENCODER:
            setattr(self, name, nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1))
        self.convPa = nn.Conv2d(128, 256, kernel_size=3, stride=1, padding=1)
        self.convPb = nn.Conv2d(256, 65, kernel_size=1, stride=1, padding=0)
        self.convDa = nn.Conv2d(128, 256, kernel_size=3, stride=1, padding=1)
        self.convDb = nn.Conv2d(
            256, self.config["descriptor_dim"], kernel_size=1, stride=1, padding=0
        )

    def forward_dense(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image (B, 1, H, W) in [0, 1] -> logits (B, 65, H/8, W/8) and the raw,
        unnormalised descriptor map (B, D, H/8, W/8)."""
        x = image
        for i, (name, _, _) in enumerate(ENCODER):
            x = F.relu(getattr(self, name)(x))
            if i in (1, 3, 5):  # after conv1b, conv2b, conv3b
                x = F.max_pool2d(x, kernel_size=2, stride=2)
        semi = self.convPb(F.relu(self.convPa(x)))
        descriptors = self.convDb(F.relu(self.convDa(x)))
        return semi, descriptors

    def forward(self, image: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Upstream semantics end to end (torch post-processing)."""
        semi, raw = self.forward_dense(image)
        return reference_postprocess(semi, raw, self.config)


def simple_nms(scores: torch.Tensor, radius: int) -> torch.Tensor:
    def max_pool(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, kernel_size=radius * 2 + 1, stride=1, padding=radius)

    zeros = torch.zeros_like(scores)
    keep = scores == max_pool(scores)
    for _ in range(2):
        suppressed = max_pool(keep.float()) > 0
        rest = torch.where(suppressed, zeros, scores)
        keep = keep | ((rest == max_pool(rest)) & ~suppressed)
    return torch.where(keep, scores, zeros)


def sample_descriptors(
    keypoints: torch.Tensor, descriptors: torch.Tensor, s: int = CELL
) -> torch.Tensor:
    """keypoints (B, N, 2) x,y; descriptors (B, D, h, w) normalised map -> (B, D, N)."""
    b, c, h, w = descriptors.shape
    keypoints = keypoints - s / 2 + 0.5
    keypoints = (
        keypoints
        / torch.tensor([(w * s - s / 2 - 0.5), (h * s - s / 2 - 0.5)]).to(keypoints)[None]
    )
    keypoints = keypoints * 2 - 1
    sampled = F.grid_sample(
        descriptors, keypoints.view(b, 1, -1, 2), mode="bilinear", align_corners=True
    )
    return F.normalize(sampled.reshape(b, c, -1), p=2, dim=1)


def reference_postprocess(
    semi: torch.Tensor, raw_descriptors: torch.Tensor, config: Mapping[str, Any]
) -> dict[str, list[torch.Tensor]]:
    """Upstream SuperPoint post-processing in torch, per image of the batch."""
    scores = F.softmax(semi, 1)[:, :-1]
    b, _, h, w = scores.shape
    scores = scores.permute(0, 2, 3, 1).reshape(b, h, w, CELL, CELL)
    scores = scores.permute(0, 1, 3, 2, 4).reshape(b, h * CELL, w * CELL)
    if config["nms_radius"] > 0:
        scores = simple_nms(scores, config["nms_radius"])
    border = config["remove_borders"]
    out: dict[str, list[torch.Tensor]] = {"keypoints": [], "scores": [], "descriptors": []}
    descriptors = F.normalize(raw_descriptors, p=2, dim=1)
    for i in range(b):
        rc = torch.nonzero(scores[i] > config["keypoint_threshold"])
        values = scores[i][tuple(rc.t())]
        inside = (
            (rc[:, 0] >= border)
            & (rc[:, 0] < h * CELL - border)
            & (rc[:, 1] >= border)
            & (rc[:, 1] < w * CELL - border)
        )
        rc, values = rc[inside], values[inside]
        k = config["max_keypoints"]
        if 0 <= k < len(rc):
            values, order = torch.topk(values, k, dim=0)
            rc = rc[order]
        kp = torch.flip(rc, [1]).float()
        out["keypoints"].append(kp)
        out["scores"].append(values)
        out["descriptors"].append(sample_descriptors(kp[None], descriptors[i : i + 1])[0])
    return out
