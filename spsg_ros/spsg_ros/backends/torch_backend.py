"""PyTorch backend: the reference networks on CPU or CUDA.

``fp16=True`` (CUDA only) runs both networks under autocast in half precision;
SuperPoint's post-processing and SuperGlue's optimal transport stay float32.
It is an explicit option because it changes keypoints and matches slightly
(``spsg-ros bench`` reports the agreement rate with the float32 reference).
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import numpy as np

from ..features.types import Features
from .base import Backend, BackendUnavailable, register_backend


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self,
        superpoint_weights: Any = "superpoint",
        superglue_weights: Any = "indoor",
        superpoint_config: Mapping[str, Any] | None = None,
        superglue_config: Mapping[str, Any] | None = None,
        weights_dir: Any = None,
        device: str = "cpu",
        load_superglue: bool = True,
        host_postprocess: bool = False,
        fp16: bool = False,
    ):
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable(
                "the torch backend needs PyTorch: pip install torch==2.13.0 "
                "(CPU) or a CUDA build from pytorch.org"
            ) from exc
        from ..networks import weights

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(
                f"device '{device}' requested but torch {torch.__version__} "
                "sees no CUDA device; use --device cpu"
            )
        if fp16 and not device.startswith("cuda"):
            raise BackendUnavailable(
                "the torch backend runs fp16 on CUDA devices only (--device cuda:N); "
                "on a CPU use --backend onnxruntime or openvino"
            )
        self.torch = torch
        self.fp16 = bool(fp16)
        # The upstream torch post-processing is bit-identical to the reference; the
        # numpy host path agrees to ~1e-7 (different exp/norm rounding).
        self.host_postprocess = host_postprocess
        self.device = torch.device(device)
        sp_cfg = dict(superpoint_config or {})
        self.superpoint_net = weights.load_superpoint(superpoint_weights, sp_cfg, weights_dir).to(
            self.device
        )
        self.superglue_net = (
            weights.load_superglue(superglue_weights, superglue_config, weights_dir).to(
                self.device
            )
            if load_superglue
            else None
        )

    def _half(self):
        """autocast to float16 when fp16 was asked for (CUDA), else nothing."""
        if self.fp16:
            return self.torch.autocast(device_type="cuda", dtype=self.torch.float16)
        return contextlib.nullcontext()

    def superpoint_dense(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.inference_mode(), self._half():
            x = self.torch.from_numpy(np.ascontiguousarray(images, np.float32)).to(self.device)
            semi, desc = self.superpoint_net.forward_dense(x)
        return semi.float().cpu().numpy(), desc.float().cpu().numpy()

    def superpoint(self, images: np.ndarray, config: Mapping[str, Any]) -> list[Features]:
        if self.host_postprocess:
            return super().superpoint(images, config)
        from ..networks.superpoint import reference_postprocess

        height, width = images.shape[-2:]
        with self.torch.inference_mode():
            x = self.torch.from_numpy(np.ascontiguousarray(images, np.float32)).to(self.device)
            with self._half():
                semi, desc = self.superpoint_net.forward_dense(x)
            out = reference_postprocess(semi.float(), desc.float(), config)
        return [
            Features(k.cpu().numpy(), s.cpu().numpy(), d.cpu().numpy(), (width, height))
            for k, s, d in zip(out["keypoints"], out["scores"], out["descriptors"])
        ]

    def superglue_log_assignment(self, features0: Features, features1: Features) -> np.ndarray:
        if self.superglue_net is None:
            raise BackendUnavailable(
                "this torch backend was built without SuperGlue "
                "(load_superglue=False, as for matcher nn)"
            )
        t = self.torch

        def tensors(f: Features):
            return (
                t.from_numpy(f.keypoints)[None].to(self.device),
                t.from_numpy(f.scores)[None].to(self.device),
                t.from_numpy(np.ascontiguousarray(f.descriptors))[None].to(self.device),
                f.image_size,
            )

        with t.inference_mode():
            with self._half():
                scores = self.superglue_net.similarity(*tensors(features0), *tensors(features1))
            log_assignment = self.superglue_net.optimal_transport(scores.float())
            return log_assignment[0].cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "device": str(self.device), "fp16": self.fp16}


register_backend("torch", TorchBackend)
