"""ONNX Runtime backend: the exported models (see :mod:`spsg_ros.networks.contract`)
on TensorRT, CUDA, OpenVINO or CPU execution providers.

Models come from ``superpoint_model`` / ``superglue_model`` (``.onnx`` files with
their JSON sidecars), from an ``onnx_dir`` written by ``spsg-ros export``, or,
when neither is given, are exported once from the ``.pth`` weights into a cache
folder (needs torch + onnx; ``$SPSG_ROS_CACHE`` or ``~/.cache/spsg_ros/onnx``).
A model whose sidecar does not fit the configuration is refused.

Providers are tried in the configured order (short names ``tensorrt``, ``cuda``,
``openvino``, ``cpu`` or the full ORT names); :func:`provider_chain` assembles
their options as the ONNX Runtime documentation describes them:

- TensorRT EP: ``device_id``, ``trt_fp16_enable``, ``trt_engine_cache_enable`` +
  ``trt_engine_cache_path`` (engines are built once per shape and reused),
  ``trt_timing_cache_enable`` + ``trt_timing_cache_path``,
  ``trt_max_workspace_size``;
- CUDA EP: ``device_id``, ``cudnn_conv_algo_search`` (EXHAUSTIVE),
  ``arena_extend_strategy`` (kSameAsRequested), ``do_copy_in_default_stream``;
- OpenVINO EP: ``device_type`` (CPU, GPU, GPU.0, NPU ...), ``precision`` (FP32
  by default so that keypoints do not change; FP16 with ``fp16``),
  ``num_of_threads``, ``cache_dir``;
- CPU EP: no options; the sessions' intra-/inter-op thread counts, graph
  optimisation level (``all``: includes the NCHWc layout and Conv+BatchNorm
  fusion) and spinning apply. ``num_threads`` (every backend's thread option;
  0: the cores available to the process) sets the intra-op threads unless
  ``intra_op_threads`` is given; the inter-op pool, idle in sequential
  execution, gets one thread unless ``inter_op_threads`` is given. Spinning is
  off by default, intra- and inter-op: each session has its own thread pool,
  and the SuperPoint session's workers busy-waiting after their work slowed the
  SuperGlue session down (a frame pair took ~10% longer on 2 cores), and on a
  shared machine they burn cores other processes need; ``spinning=None`` keeps
  ONNX Runtime's default (on).

``provider_options`` overrides/extends any of these per provider. Providers
that the installed onnxruntime lacks are an error when asked for explicitly
(the message lists what is installed and which package brings the missing
one), and skipped with a log line in the default chain of a device.

SuperGlue runs either the dynamic model (exact keypoints, masks of ones; the
default, fastest on CPU) or a static model with ``num_slots`` K (TensorRT,
fixed engines): padded with validity masks; more than K keypoints keep the K
best by score (see :mod:`spsg_ros.backends.static_superglue`).

LightGlue (``lightglue``) runs the staged export of
:mod:`spsg_ros.networks.lightglue_export` with upstream's early exit and pruning
decided on the host (:mod:`spsg_ros.backends.lightglue_staged`): without
``num_slots`` the dynamic-K stages, fed exact sizes, pruned points removed (the
fastest on CPU); with ``num_slots`` K the static stages, padding and pruning by
masks. ``fp16`` selects the half-precision stages.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..networks import contract
from ..features.superpoint_post import superpoint_config
from ..matching.superglue_post import superglue_config
from .base import BackendUnavailable, register_backend, resolve_num_threads
from .lightglue_staged import ExportedLightGlue, StagedLightGlueBackend, locate_lightglue_export
from .model_cache import cache_folder, default_cache_dir, export_once, find_model
from .padded_superglue import PaddedSuperGlueBackend

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
PROVIDER_PACKAGES = {
    "TensorrtExecutionProvider": "pip install onnxruntime-gpu (CUDA 12) plus TensorRT 10 "
    "(pip install tensorrt, or the NVIDIA packages) on the library path",
    "CUDAExecutionProvider": (
        "pip install onnxruntime-gpu (instead of onnxruntime; CUDA 12 + cuDNN 9)"
    ),
    "OpenVINOExecutionProvider": "pip install onnxruntime-openvino (instead of onnxruntime)",
    "CPUExecutionProvider": "pip install onnxruntime",
}
GRAPH_OPTIMIZATION = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(
            "the onnxruntime backend needs ONNX Runtime: pip install onnxruntime "
            "(CPU), onnxruntime-gpu (CUDA/TensorRT) or onnxruntime-openvino"
        ) from exc
    return onnxruntime


def full_provider_name(name: str) -> str:
    key = name.strip()
    if key.lower() in PROVIDER_NAMES:
        return PROVIDER_NAMES[key.lower()]
    if key.endswith("ExecutionProvider"):
        return key
    raise BackendUnavailable(
        f"unknown execution provider '{name}' (known: "
        f"{', '.join(sorted(set(PROVIDER_NAMES)))} or a full ONNX Runtime name)"
    )


def device_index(device: str) -> int:
    """``cuda:1`` -> 1; ``cuda`` / ``cpu`` -> 0."""
    _, _, idx = str(device).partition(":")
    return int(idx) if idx.isdigit() else 0


def default_providers(device: str) -> list[str]:
    """The provider chain for a device: ``cuda[:i]`` -> TensorRT, CUDA, CPU;
    ``openvino[:DEV]`` -> OpenVINO, CPU; ``cpu`` -> CPU."""
    kind = str(device).split(":")[0].lower()
    if kind in ("cuda", "gpu", "tensorrt", "trt"):
        return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    if kind == "openvino":
        return ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    raise BackendUnavailable(
        f"device '{device}' is not one the onnxruntime backend knows: use cpu, "
        "cuda[:N] or openvino[:CPU|GPU|NPU]"
    )


def provider_chain(
    providers: Sequence[str] | None = None,
    device: str = "cpu",
    fp16: bool = False,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    provider_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[tuple[str, dict[str, str]]]:
    """(provider name, options) in order, options as strings the way ONNX Runtime
    documents them. ``cache_dir`` is where TensorRT engines, its timing cache
    and OpenVINO blobs are kept (None: no caches)."""
    names = [full_provider_name(p) for p in providers] if providers else default_providers(device)
    idx = device_index(device)
    extra = {full_provider_name(k): dict(v) for k, v in (provider_options or {}).items()}
    chain = []
    for name in names:
        opts: dict[str, Any] = {}
        if name == "TensorrtExecutionProvider":
            opts = {"device_id": idx, "trt_fp16_enable": fp16, "trt_max_workspace_size": 4 << 30}
            if cache_dir is not None:
                engines = Path(cache_dir) / "tensorrt"
                opts.update(
                    {
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(engines),
                        "trt_timing_cache_enable": True,
                        "trt_timing_cache_path": str(engines),
                    }
                )
        elif name == "CUDAExecutionProvider":
            opts = {
                "device_id": idx,
                "cudnn_conv_algo_search": "EXHAUSTIVE",
                "arena_extend_strategy": "kSameAsRequested",
                "do_copy_in_default_stream": True,
            }
        elif name == "OpenVINOExecutionProvider":
            _, _, ov_dev = str(device).partition(":")
            kind = str(device).split(":")[0].lower()
            ov_device = ov_dev.upper() if kind == "openvino" and ov_dev else "CPU"
            opts = {"device_type": ov_device, "precision": "FP16" if fp16 else "FP32"}
            if threads:
                opts["num_of_threads"] = threads
            if cache_dir is not None:
                opts["cache_dir"] = str(Path(cache_dir) / "openvino")
        opts.update(extra.get(name, {}))
        chain.append((name, {k: _option_str(v) for k, v in opts.items()}))
    return chain


def _option_str(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def session_options(
    ort,
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
    graph_optimization: str = "all",
    spinning: bool | None = None,
):
    """SessionOptions with the thread counts, optimisation level and spinning."""
    so = ort.SessionOptions()
    if graph_optimization not in GRAPH_OPTIMIZATION:
        raise ValueError(
            f"graph_optimization '{graph_optimization}': choose from "
            f"{', '.join(GRAPH_OPTIMIZATION)}"
        )
    so.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION[graph_optimization]
    )
    if intra_op_threads:
        so.intra_op_num_threads = int(intra_op_threads)
    if inter_op_threads:
        so.inter_op_num_threads = int(inter_op_threads)
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # the memory pattern pre-plans one block per input shape: with SuperPoint at 1280x960
    # that held ~500 MB more at the same speed (measured, 2-core CPU); results are unchanged
    so.enable_mem_pattern = False
    if spinning is not None:
        for pool in ("intra_op", "inter_op"):
            so.add_session_config_entry(f"session.{pool}.allow_spinning", "1" if spinning else "0")
    so.log_severity_level = 3
    return so


def check_providers_available(
    chain: list[tuple[str, dict]], available: Sequence[str], explicit: bool
) -> list[tuple[str, dict]]:
    """Drop providers the installed onnxruntime lacks (an error when they were
    asked for explicitly, or when nothing but CPU would remain of a GPU chain)."""
    missing = [name for name, _ in chain if name not in available]
    kept = [(name, opts) for name, opts in chain if name in available]
    installed = ", ".join(available)
    if missing and explicit:
        hints = "; ".join(
            f"{m}: {PROVIDER_PACKAGES.get(m, 'see onnxruntime.ai')}" for m in missing
        )
        raise BackendUnavailable(
            f"execution provider(s) {', '.join(missing)} not available in this "
            f"onnxruntime (installed providers: {installed}). To get them: {hints}"
        )
    requested_accel = [n for n, _ in chain if n != "CPUExecutionProvider"]
    kept_accel = [n for n, _ in kept if n != "CPUExecutionProvider"]
    if requested_accel and not kept_accel:
        hints = "; ".join(f"{m}: {PROVIDER_PACKAGES.get(m, '')}" for m in requested_accel)
        raise BackendUnavailable(
            f"none of {', '.join(requested_accel)} is available in this "
            f"onnxruntime (installed providers: {installed}). {hints}; or use "
            "--device cpu"
        )
    for name in missing:
        log.info("onnxruntime: %s not installed, skipped (installed: %s)", name, installed)
    if not kept:
        raise BackendUnavailable(f"no usable execution provider (installed: {installed})")
    return kept


class OnnxRuntimeBackend(StagedLightGlueBackend, PaddedSuperGlueBackend):
    name = "onnxruntime"

    def __init__(
        self,
        superpoint_weights: Any = "superpoint",
        superglue_weights: Any = "indoor",
        superpoint_config: Mapping[str, Any] | None = None,
        superglue_config: Mapping[str, Any] | None = None,
        weights_dir: Any = None,
        device: str = "cpu",
        superpoint_model: str | os.PathLike | None = None,
        superglue_model: str | os.PathLike | None = None,
        onnx_dir: str | os.PathLike | None = None,
        providers: Sequence[str] | None = None,
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
        num_slots: int | None = None,
        fp16: bool = False,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        graph_optimization: str = "all",
        spinning: bool | None = False,
        cache_dir: str | os.PathLike | None = None,
        export_missing: bool = True,
        load_superglue: bool = True,
        num_threads: int | None = 0,
    ):
        self.ort = _import_ort()
        self.sp_config = _sp_config(superpoint_config)
        self.sg_config = _sg_config(superglue_config)
        self.device = str(device or "cpu")
        self.fp16 = bool(fp16)
        self.num_slots = num_slots
        self.weights = {"superpoint": superpoint_weights, "superglue": superglue_weights}
        self.weights_dir = weights_dir
        self.onnx_dir = Path(onnx_dir) if onnx_dir is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.export_missing = export_missing
        self._explicit_providers = bool(providers)
        requested_threads = intra_op_threads or num_threads or None
        intra_op_threads = intra_op_threads or resolve_num_threads(num_threads)
        inter_op_threads = inter_op_threads or 1  # sequential execution: the pool idles
        chain = provider_chain(
            providers, self.device, self.fp16, self.cache_dir, requested_threads, provider_options
        )
        self.chain = check_providers_available(
            chain, self.ort.get_available_providers(), self._explicit_providers
        )
        self.threads = {
            "intra_op": intra_op_threads,
            "inter_op": inter_op_threads,
            "spinning": spinning,
        }
        self._so_args = dict(
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
            graph_optimization=graph_optimization,
            spinning=spinning,
        )
        self._lock = threading.Lock()
        self._sp_sessions: dict[tuple[int, int] | None, tuple[Any, Path]] = {}
        self._sp_explicit = Path(superpoint_model) if superpoint_model is not None else None
        self._sg_explicit = Path(superglue_model) if superglue_model is not None else None
        self.sg_session = None
        self.sg_path: Path | None = None
        self.sg_slots: int | None = None
        self._lightglue: dict[tuple[str, str], Any] = {}
        if self._sp_explicit is not None:  # fail early on a wrong model
            self._open_superpoint_file(self._sp_explicit, None)
        if load_superglue:
            self._open_superglue()

    # ---- sessions ------------------------------------------------------------
    def _session(self, path: Path):
        so = session_options(self.ort, **self._so_args)
        names = [n for n, _ in self.chain]
        opts = [o for _, o in self.chain]
        for name, o in self.chain:
            if name == "TensorrtExecutionProvider" and o.get("trt_engine_cache_path"):
                Path(o["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        try:
            sess = self.ort.InferenceSession(str(path), so, providers=names, provider_options=opts)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendUnavailable(
                f"onnxruntime could not load {path} with {names}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        used = sess.get_providers()
        if names[0] not in used:
            log.warning(
                "onnxruntime: %s was requested first but the session runs on %s",
                names[0],
                ", ".join(used),
            )
        return sess

    def _open_superpoint_file(self, path: Path, size: tuple[int, int] | None):
        meta = contract.read_sidecar(path, "superpoint")
        contract.check_superpoint_model(meta, self.sp_config, size, path)
        if meta.get("fp16") and not self.fp16:
            log.info("%s is an fp16 model", path)
        sess = self._session(path)
        _check_io(sess, contract.SUPERPOINT_INPUTS, contract.SUPERPOINT_OUTPUTS, path)
        key = tuple(meta["image_size"]) if meta.get("image_size") else None
        self._sp_sessions[key] = (sess, path)
        return sess, path

    def _find_or_export(self, network: str, stems: list[str], export) -> Path:
        if self.onnx_dir is not None:
            found = find_model(self.onnx_dir, stems, network, not self.export_missing)
            if found is not None:
                return found
        config = self.sg_config if network == "superglue" else self.sp_config
        folder = cache_folder(
            self.cache_dir, network, self.weights[network], self.weights_dir, config
        )
        return export_once(folder, stems[0], network, export)

    def _superpoint_session(self, height: int, width: int):
        size = (width, height)
        with self._lock:
            if size in self._sp_sessions:
                return self._sp_sessions[size][0]
            if None in self._sp_sessions:
                return self._sp_sessions[None][0]
            if self._sp_explicit is not None:  # a static model for another size
                meta = contract.read_sidecar(self._sp_explicit, "superpoint")
                contract.check_superpoint_model(meta, self.sp_config, size, self._sp_explicit)
            stems = [
                contract.superpoint_stem(height, width, self.fp16),
                contract.superpoint_stem(None, None, self.fp16),
            ]
            if self.onnx_dir is None:
                stems = stems[1:]  # the cache holds one dynamic model

            def export(target: Path):
                from ..networks.onnx_export import export_superpoint

                export_superpoint(
                    target,
                    self.weights["superpoint"],
                    {"descriptor_dim": self.sp_config["descriptor_dim"]},
                    self.weights_dir,
                    fp16=self.fp16,
                )

            path = self._find_or_export("superpoint", stems, export)
            return self._open_superpoint_file(path, size)[0]

    def _open_superglue(self):
        if self._sg_explicit is not None:
            path = self._sg_explicit
        else:
            k = self.num_slots
            stems = contract.superglue_stems(self.onnx_dir, k, self.fp16)

            def export(target: Path):
                from ..networks.onnx_export import export_superglue

                export_superglue(
                    target,
                    self.weights["superglue"],
                    {k_: self.sg_config[k_] for k_ in contract.SUPERGLUE_ARCH_KEYS},
                    self.weights_dir,
                    num_slots=k,
                    fp16=self.fp16,
                )

            path = self._find_or_export("superglue", stems, export)
        meta = contract.read_sidecar(path, "superglue")
        contract.check_superglue_model(meta, self.sg_config, path)
        sess = self._session(path)
        _check_io(sess, contract.SUPERGLUE_INPUTS, contract.SUPERGLUE_OUTPUTS, path)
        self.sg_session, self.sg_path, self.sg_slots = sess, path, contract.num_slots(meta)
        self.sg_meta = meta

    # ---- Backend interface ---------------------------------------------------
    def superpoint_dense(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        b, _, h, w = images.shape
        sess = self._superpoint_session(h, w)
        semis, descs = [], []
        for i in range(b):
            semi, desc = sess.run(
                list(contract.SUPERPOINT_OUTPUTS), {contract.SUPERPOINT_INPUT: images[i : i + 1]}
            )
            semis.append(semi)
            descs.append(desc)
        if b == 1:
            return semis[0], descs[0]
        return np.concatenate(semis), np.concatenate(descs)

    def superglue_slots(self, n0: int, n1: int) -> int | None:
        if self.sg_session is None:
            raise BackendUnavailable(
                "this onnxruntime backend was built without SuperGlue "
                "(load_superglue=False, as for matcher nn)"
            )
        return self.sg_slots

    def run_padded_superglue(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.sg_session.run(list(contract.SUPERGLUE_OUTPUTS), feeds)[0]

    # ---- LightGlue (staged export: StagedLightGlueBackend.lightglue) ---------------
    # num_slots None: the dynamic-K export fed exact sizes, pruned points removed
    # (upstream's own procedure); K: the static export, padded slots and pruned points
    # masked. Exported once per weights file (cache keyed by its sha256) unless
    # onnx_dir holds lightglue_k<K>/ (or the weights name such a folder).
    @property
    def lightglue_device_kind(self) -> str:
        return self.device.split(":")[0].lower()

    def _open_lightglue_export(self, weights: Any, weights_dir: Any) -> ExportedLightGlue:
        folder = locate_lightglue_export(
            weights,
            weights_dir,
            self.num_slots,
            self.fp16,
            self.onnx_dir,
            self.cache_dir,
            self.export_missing,
        )
        return ExportedLightGlue(folder, self._open_lightglue_model)

    def _open_lightglue_model(self, path: Path):
        meta = contract.read_sidecar(path, "lightglue")
        sess = self._session(path)
        names = [o.name for o in sess.get_outputs()]
        expected = [e["name"] for e in meta.get("inputs", [])]
        _check_io(sess, expected, [e["name"] for e in meta.get("outputs", [])], path)

        def run(feeds):
            return dict(zip(names, sess.run(names, dict(feeds))))

        return run

    def describe(self) -> dict[str, Any]:
        sp = {
            f"{k[0]}x{k[1]}" if k else "dynamic": str(p) for k, (_, p) in self._sp_sessions.items()
        }
        used = None
        if self.sg_session is not None:
            used = self.sg_session.get_providers()
        elif self._sp_sessions:
            used = next(iter(self._sp_sessions.values()))[0].get_providers()
        return {
            "backend": self.name,
            "device": self.device,
            "providers": used or [n for n, _ in self.chain],
            "provider_options": {n: o for n, o in self.chain},
            "superpoint_models": sp,
            "superglue_model": str(self.sg_path) if self.sg_path else None,
            "num_slots": self.sg_slots,
            "lightglue_models": [str(m.folder) for m in self._lightglue.values()],
            "fp16": self.fp16,
            "threads": self.threads,
            "onnxruntime": self.ort.__version__,
        }

    def close(self) -> None:
        self._sp_sessions.clear()
        self.sg_session = None
        self._lightglue.clear()
        super().close()


def _sp_config(cfg):
    return superpoint_config(cfg)


def _sg_config(cfg):
    return superglue_config(cfg)


def _check_io(sess, inputs: Sequence[str], outputs: Sequence[str], path: Path) -> None:
    have_in = [i.name for i in sess.get_inputs()]
    have_out = [o.name for o in sess.get_outputs()]
    if sorted(have_in) != sorted(inputs) or not set(outputs) <= set(have_out):
        raise contract.ModelContractError(
            f"{path} has inputs {have_in} and outputs {have_out}; the spsg_ros contract needs "
            "inputs "
            f"{list(inputs)} and outputs {list(outputs)} (export it with `spsg-ros export`)"
        )


register_backend("onnxruntime", OnnxRuntimeBackend)
