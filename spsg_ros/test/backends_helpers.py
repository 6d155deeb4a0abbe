"""Shared helpers of the backend/export tests: generated weights, synthetic
feature pairs and ONNX exports cached for the whole session (exports take a
few seconds each, so each model is exported once per test run)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

K_SMALL = 32  # keypoint slots of the small static SuperGlue used by the tests


def conditioned_superglue_state(seed: int = 0):
    """A generated SuperGlue state dict (default architecture) that matches well.

    A randomly initialised SuperGlue gives a nearly uniform assignment (no
    matches above 0.2), and the shared random one is chaotic: 1e-7 input
    changes flip near-tie matches. This one starts from a seeded random init and
    damps the keypoint encoder and the residual updates of the GNN, with a
    scaled identity as final projection, so the scores follow descriptor
    similarity: corresponding keypoints match with large margins and the
    result is well conditioned (strict match identity is a fair test).
    """
    import torch
    from spsg_ros.networks.superglue import SuperGlue

    torch.manual_seed(seed)
    sg = SuperGlue()
    with torch.no_grad():
        sg.kenc.encoder[-1].weight.mul_(0.01)
        for layer in sg.gnn.layers:
            layer.mlp[-1].weight.mul_(0.05)
        sg.final_proj.weight.copy_((torch.eye(256) * 16)[:, :, None])
        sg.final_proj.bias.zero_()
        sg.bin_score.fill_(2.0)
    return sg.state_dict()


def feature_pair(n0: int, n1: int, seed: int = 0, size=(320, 240), noise: float = 0.01):
    """Two Features sets where min(n0, n1) keypoints of image 1 are noisy copies of
    keypoints of image 0 (position +- 1 px, descriptor + ``noise``)."""
    from spsg_ros.features.types import Features

    w, h = size
    rng = np.random.default_rng(seed)

    def unit(d):
        return (d / np.linalg.norm(d, axis=0, keepdims=True)).astype(np.float32)

    k0 = np.stack([rng.integers(0, w, n0), rng.integers(0, h, n0)], 1).astype(np.float32)
    d0 = unit(rng.standard_normal((256, n0)))
    s0 = rng.uniform(0.005, 1, n0).astype(np.float32)
    k1 = np.stack([rng.integers(0, w, n1), rng.integers(0, h, n1)], 1).astype(np.float32)
    d1 = rng.standard_normal((256, n1))
    s1 = rng.uniform(0.005, 1, n1).astype(np.float32)
    m = min(n0, n1)
    if m:
        idx = rng.permutation(n0)[:m]
        k1[:m] = k0[idx] + rng.integers(-1, 2, (m, 2))
        d1[:, :m] = d0[:, idx] + noise * rng.standard_normal((256, m))
        order = rng.permutation(n1)
        k1, d1, s1 = k1[order], d1[:, order], s1[order]
    return Features(k0, s0, d0, (w, h)), Features(
        k1, s1, unit(d1) if n1 else d1.astype(np.float32), (w, h)
    )


def reference_log_assignment(model, f0, f1) -> np.ndarray:
    """The unpadded reference SuperGlue (``SuperGlue.scores``) on two Features."""
    import torch

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a))[None]

    with torch.inference_mode():
        return model.scores(
            t(f0.keypoints),
            t(f0.scores),
            t(f0.descriptors),
            f0.image_size,
            t(f1.keypoints),
            t(f1.scores),
            t(f1.descriptors),
            f1.image_size,
        )[0].numpy()


@functools.lru_cache(maxsize=None)
def conditioned_weights(folder: str) -> Path:
    import torch

    path = Path(folder) / "superglue_conditioned.pth"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(conditioned_superglue_state(), path)
    return path


@functools.lru_cache(maxsize=None)
def export_superglue_cached(
    folder: str, weights: str, num_slots, fp16: bool = False, sinkhorn_iterations: int = 100
) -> Path:
    from spsg_ros.networks import contract
    from spsg_ros.networks.onnx_export import export_superglue

    tag = Path(weights).stem
    path = (
        Path(folder)
        / tag
        / f"{contract.superglue_stem(num_slots, fp16)}_it{sinkhorn_iterations}.onnx"
    )
    export_superglue(
        path, weights, {"sinkhorn_iterations": sinkhorn_iterations}, num_slots=num_slots, fp16=fp16
    )
    return path


@functools.lru_cache(maxsize=None)
def export_superpoint_cached(
    folder: str, weights: str, height=None, width=None, fp16: bool = False
) -> Path:
    from spsg_ros.networks import contract
    from spsg_ros.networks.onnx_export import export_superpoint

    tag = Path(weights).stem
    path = Path(folder) / tag / f"{contract.superpoint_stem(height, width, fp16)}.onnx"
    export_superpoint(path, weights, None, None, height, width, fp16=fp16)
    return path


def export_folder(tmp_path_factory) -> str:
    """One folder per test session for the cached exports."""
    return str(tmp_path_factory.getbasetemp() / "onnx_exports")
