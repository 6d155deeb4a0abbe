"""PyTorch backend: the reference networks on CPU or CUDA.

``fp16=True`` (CUDA only) runs both networks under autocast in half precision;
SuperPoint's post-processing and SuperGlue's optimal transport stay float32.
It is an explicit option because it changes keypoints and matches slightly
(``spsg-ros bench`` reports the agreement rate with the float32 reference).

``num_threads`` sets torch's intra-op threads (``torch.set_num_threads``, which
is process-wide); 0 (auto) uses the cores available to the process
(:func:`~spsg_ros.backends.base.available_cores`), or fewer when torch was
already limited (``OMP_NUM_THREADS``, an earlier ``set_num_threads``). The
inter-op pool, which the networks never use, is set to one thread when torch
still allows it (only before any inter-op work). Idle OpenMP workers sleep
(``OMP_WAIT_POLICY=PASSIVE``, set when spsg_ros is imported before torch).
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import numpy as np

from ..features.types import Features
from .base import Backend, BackendUnavailable, register_backend, resolve_num_threads


def set_torch_threads(torch, num_threads: int | None) -> int:
    """Set torch's intra-op threads for ``num_threads`` (0/None: auto, never more than
    torch already had); the inter-op pool to 1 thread when still allowed."""
    threads = resolve_num_threads(num_threads)
    if not num_threads:
        threads = min(threads, torch.get_num_threads())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # torch allows it once, before any inter-op work
            pass
    return torch.get_num_threads()


def omp_wait_policy() -> str:
    """OMP_WAIT_POLICY (and GOMP_SPINCOUNT) of the environment, which OpenMP read when
    torch was imported; unknown when torch was imported before spsg_ros set it."""
    import os

    from .. import OPENMP_STARTED_BEFORE_SPSG_ROS

    policy = os.environ.get("OMP_WAIT_POLICY", "default (spinning)")
    if "GOMP_SPINCOUNT" in os.environ:  # GNU OpenMP: spin this long before sleeping
        policy += f", GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}"
    if OPENMP_STARTED_BEFORE_SPSG_ROS:
        return f"unknown (torch imported before spsg_ros; environment: {policy})"
    return policy


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
        num_threads: int | None = 0,
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
        self.num_threads = set_torch_threads(torch, num_threads)
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
        return {
            "backend": self.name,
            "device": str(self.device),
            "fp16": self.fp16,
            "threads": {
                "intra_op": self.torch.get_num_threads(),
                "inter_op": self.torch.get_num_interop_threads(),
                "omp_wait_policy": omp_wait_policy(),
            },
        }


register_backend("torch", TorchBackend)
