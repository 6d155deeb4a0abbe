"""OpenVINO backend: exported SuperPoint / SuperGlue models on CPU, GPU or NPU.

Runs the ONNX models written by ``spsg-ros export`` or OpenVINO IR files
(``.xml`` + ``.bin``, e.g. the IR SuperPoint published with the seed report)
through the ``openvino`` runtime package (``pip install openvino``), imported
lazily.

* Inference precision is f32 by default (``INFERENCE_PRECISION_HINT``): left to
  itself the CPU plugin runs bf16 on CPUs that have it (AVX512-BF16, AMX) and
  the GPU plugin f16, which moves keypoints. ``inference_precision="f16"`` /
  ``"bf16"`` / ``None`` (device default) trade that for speed.
* Models with dynamic input dimensions are reshaped to the actual size and
  compiled once per size (a few sizes are cached): static shapes are what GPU
  and NPU need and are faster on CPU too.
* SuperGlue runs the static K-slot masked model (or a dynamic-K one) with the
  shared host padding of :mod:`spsg_ros.backends.static_superglue`.
* A JSON sidecar next to the model (written by the exporter) is checked against
  the configuration when present; an IR without one (such as the seed IR) is
  accepted after its inputs and outputs are checked.
* Models come from ``superpoint_model`` / ``superglue_model``, else from an
  ``onnx_dir`` written by ``spsg-ros export``, else they are exported once from
  the ``.pth`` weights into the cache the onnxruntime backend uses
  (``cache_dir``, default ``~/.cache/spsg_ros/onnx``).
* A dynamic-K SuperGlue is compiled once with dynamic shapes on CPU (exact
  keypoint counts); on GPU/NPU, which want static shapes, keypoints are padded
  to the next power of two (at least 64) so that few shapes get compiled.
* LightGlue (``lightglue``) runs the same staged ONNX export as the onnxruntime
  backend (:mod:`spsg_ros.backends.lightglue_staged`), with the same shape rules.
* Threads: ``num_threads`` (or ``intra_op_threads``) sets
  ``INFERENCE_NUM_THREADS``; 0 on the CPU: the cores available to the process
  (affinity and cgroup quota, which OpenVINO's own default ignores). The CPU
  plugin schedules with oneTBB, whose idle workers spin for a short, bounded
  back-off and then sleep; OpenVINO has no setting for it (unlike OpenMP's
  ``OMP_WAIT_POLICY`` or ONNX Runtime's spinning), so nothing is set.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..features.superpoint_post import superpoint_config as make_superpoint_config
from ..matching.superglue_post import superglue_config as make_superglue_config
from .base import BackendUnavailable, register_backend, resolve_num_threads
from .lightglue_staged import ExportedLightGlue, StagedLightGlueBackend, locate_lightglue_export
from ..networks import contract
from .model_cache import cache_folder, default_cache_dir, export_once, find_model
from .padded_superglue import PaddedSuperGlueBackend

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".onnx", ".xml")
PRECISIONS = ("f32", "f16", "bf16")
_CACHE_SIZE = 4


def import_openvino():
    try:
        import openvino as ov
    except ImportError as exc:
        raise BackendUnavailable(
            "the openvino backend needs the OpenVINO runtime: pip install openvino "
            "(or pip install 'spsg_ros[openvino]'); installed backends: torch, onnxruntime"
        ) from exc
    return ov


def openvino_device(device: str | None) -> str:
    """spsg_ros device strings (cpu, gpu, gpu:1, npu) -> OpenVINO names (CPU, GPU.1, NPU)."""
    if device is None or device == "":
        return "CPU"
    text = str(device).strip()
    lower = text.lower()
    if lower.startswith("cuda"):
        raise BackendUnavailable(
            f"device '{device}': OpenVINO runs on CPU, GPU (Intel) and NPU; for "
            "CUDA use the onnxruntime or torch backend"
        )
    if ":" in text:
        base, index = text.split(":", 1)
        return f"{base.upper()}.{index}"
    if lower in ("cpu", "gpu", "npu", "auto"):
        return text.upper()
    return text  # already an OpenVINO name (GPU.0, HETERO:GPU,CPU ...)


def _model_path(spec: Any, network: str) -> Path | None:
    if spec is None:
        return None
    path = Path(str(spec)).expanduser()
    if path.suffix.lower() in (".om", ".engine", ".plan", ".trt"):
        raise BackendUnavailable(
            f"{path}: OpenVINO runs ONNX or OpenVINO IR (.xml) models, not {path.suffix} files"
        )
    if path.suffix.lower() not in MODEL_SUFFIXES:
        return None
    if not path.is_file():
        raise FileNotFoundError(
            f"{network} model not found: {path} (export one with `spsg-ros export`)"
        )
    if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
        raise FileNotFoundError(
            f"{path}: the IR weights file {path.with_suffix('.bin').name} is missing"
        )
    return path


_CONTRACT_NAMES = frozenset(
    {"image", "semi", "desc", "log_assignment"}
    | {
        f"{n}{i}"
        for n in (
            "keypoints",
            "scores",
            "descriptors",
            "mask",
            "image_size",
            "desc",  # LightGlue stages
            "encoding",
            "out_desc",
            "token",
            "matchability",
        )
        for i in (0, 1)
    }
)


def _port_name(port) -> str:
    names = port.get_names()
    for name in sorted(names):
        if name in _CONTRACT_NAMES:
            return name
    return port.get_any_name()


def _read_sidecar(path: Path, network: str) -> dict[str, Any] | None:
    from ..networks import contract

    if not contract.sidecar_path(path).is_file():
        return None
    return contract.read_sidecar(path, network)


class _Network:
    """One model: compiled per concrete input shape, one infer request each."""

    def __init__(
        self,
        core,
        path: Path,
        device: str,
        config: Mapping[str, Any],
        ov,
        static_shapes: bool = True,
    ):
        self.ov = ov
        self.core = core
        self.path = path
        self.device = device
        self.config = dict(config)
        self.model = core.read_model(str(path))
        # a port may carry several tensor names (e.g. an input feeding a Cast): use
        # the contract's name where it is one of them
        self.input_names = [_port_name(i) for i in self.model.inputs]
        self.output_names = [_port_name(o) for o in self.model.outputs]
        self.dynamic = any(i.get_partial_shape().is_dynamic for i in self.model.inputs)
        self.reshape = self.dynamic and static_shapes  # compile per concrete shape
        self._compiled: OrderedDict[tuple, tuple[Any, Any, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def input_shape(self, name: str) -> list[int | None]:
        port = self.model.inputs[self.input_names.index(name)]
        return [d.get_length() if d.is_static else None for d in port.get_partial_shape()]

    def output_shape(self, name: str) -> list[int | None]:
        port = self.model.outputs[self.output_names.index(name)]
        return [d.get_length() if d.is_static else None for d in port.get_partial_shape()]

    def _get(self, feeds: Mapping[str, np.ndarray]):
        key = tuple((name, feeds[name].shape) for name in self.input_names) if self.reshape else ()
        with self._lock:
            if key in self._compiled:
                self._compiled.move_to_end(key)
                return self._compiled[key]
            model = self.model
            if self.reshape:
                model = self.model.clone()
                model.reshape(
                    {
                        port: self.ov.PartialShape(list(shape))
                        for port, (_, shape) in zip(model.inputs, key)
                    }
                )
            compiled = self.core.compile_model(model, self.device, self.config)
            entry = (compiled, compiled.create_infer_request(), threading.Lock())
            self._compiled[key] = entry
            while len(self._compiled) > _CACHE_SIZE:
                self._compiled.popitem(last=False)
            return entry

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(
                f"{self.path}: the model expects inputs {self.input_names}, {missing} not provided"
            )
        arrays = {}
        for port, name in zip(self.model.inputs, self.input_names):
            dtype = np.float16 if port.get_element_type() == self.ov.Type.f16 else np.float32
            arrays[name] = np.ascontiguousarray(feeds[name], dtype=dtype)
        compiled, request, lock = self._get(arrays)
        with lock:
            request.infer({i: arrays[name] for i, name in enumerate(self.input_names)})
            return {
                name: np.array(request.get_output_tensor(i).data, dtype=np.float32, copy=True)
                for i, name in enumerate(self.output_names)
            }

    def compiled_property(self, name: str) -> Any:
        with self._lock:
            if not self._compiled:
                return None
            compiled = next(reversed(self._compiled.values()))[0]
        try:
            return compiled.get_property(name)
        except Exception:  # noqa: BLE001 - not every plugin reports every property
            return None


class OpenVINOBackend(StagedLightGlueBackend, PaddedSuperGlueBackend):
    """SuperPoint dense network and masked SuperGlue through OpenVINO."""

    name = "openvino"
    supports_batch = True  # images run one by one through the 1xHxW model

    def __init__(
        self,
        superpoint_weights: Any = "superpoint",
        superglue_weights: Any = "indoor",
        superpoint_config: Mapping[str, Any] | None = None,
        superglue_config: Mapping[str, Any] | None = None,
        weights_dir: Any = None,
        device: str | None = "cpu",
        superpoint_model: Any = None,
        superglue_model: Any = None,
        onnx_dir: Any = None,
        num_slots: int | None = None,
        inference_precision: str | None = "f32",
        num_threads: int | None = 0,
        intra_op_threads: int | None = None,
        performance_hint: str | None = "LATENCY",
        cache_dir: Any = None,
        export_missing: bool = True,
        load_superglue: bool = True,
    ):
        ov = import_openvino()
        self.ov = ov
        self.core = ov.Core()
        self.device = openvino_device(device)
        available = list(self.core.available_devices)
        base = self.device.split(".")[0].split(":")[0]
        if base not in ("AUTO", "HETERO", "MULTI") and not any(
            d.split(".")[0] == base for d in available
        ):
            raise BackendUnavailable(
                f"OpenVINO {ov.__version__} has no '{self.device}' device here "
                f"(available: {', '.join(available) or 'none'}); install the "
                "device's driver/plugin or pick one of those"
            )
        if inference_precision is not None and inference_precision not in PRECISIONS:
            raise ValueError(
                f"inference_precision '{inference_precision}': expected one of "
                f"{', '.join(PRECISIONS)} or None (device default)"
            )
        self.inference_precision = inference_precision
        self.sp_config = make_superpoint_config(superpoint_config)
        self.sg_config = make_superglue_config(superglue_config)
        threads = num_threads or intra_op_threads
        if not threads and base == "CPU":  # other devices take no thread count
            threads = resolve_num_threads(0)
        self.compile_config = self._compile_config(inference_precision, threads, performance_hint)
        self.weights = {"superpoint": superpoint_weights, "superglue": superglue_weights}
        self.weights_dir = weights_dir
        self.onnx_dir = Path(onnx_dir) if onnx_dir is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.export_missing = export_missing
        self.requested_slots = num_slots
        self._lock = threading.Lock()
        self._sp_nets: dict[tuple[int, int] | None, _Network] = {}
        self._lightglue: dict[tuple[str, str], Any] = {}
        self.superglue_net: _Network | None = None
        self.num_slots: int | None = None
        self.sp_meta: dict[str, Any] | None = None
        self.sg_meta: dict[str, Any] | None = None

        sp_path = _model_path(superpoint_model, "superpoint") or _model_path(
            superpoint_weights, "superpoint"
        )
        if sp_path is not None:
            self._sp_nets[None] = self._load_superpoint(sp_path)
        elif self.onnx_dir is not None and (self.onnx_dir / "superpoint_dynamic.onnx").is_file():
            self._sp_nets[None] = self._load_superpoint(self.onnx_dir / "superpoint_dynamic.onnx")
        if load_superglue:  # matcher nn: no SuperGlue model is read, checked or exported
            sg_path = _model_path(superglue_model, "superglue") or _model_path(
                superglue_weights, "superglue"
            )
            if sg_path is None:
                sg_path = self._find_or_export(
                    "superglue",
                    contract.superglue_stems(self.onnx_dir, num_slots),
                    self._export_superglue,
                )
            self.superglue_net = self._load_superglue(sg_path)

    # ---- set-up ------------------------------------------------------------
    def _compile_config(self, precision, num_threads, hint) -> dict[str, Any]:
        try:
            supported = set(
                self.core.get_property(self.device.split(".")[0], "SUPPORTED_PROPERTIES")
            )
        except Exception:  # noqa: BLE001 - AUTO/HETERO report differently
            supported = None
        config: dict[str, Any] = {}

        def want(key: str, value: Any) -> None:
            if supported is None or key in supported:
                config[key] = value
            else:
                log.warning(
                    "OpenVINO device %s does not support %s; left at its default", self.device, key
                )

        if precision is not None:
            want("INFERENCE_PRECISION_HINT", precision)
            if precision == "f32" and (
                supported is None or "DYNAMIC_QUANTIZATION_GROUP_SIZE" in supported
            ):
                config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = 0  # no int8 activations in MatMuls
        if num_threads:
            want("INFERENCE_NUM_THREADS", int(num_threads))
        if hint:
            want("PERFORMANCE_HINT", hint)
        return config

    def _find_or_export(self, network: str, stems: list[str], export) -> Path:
        """A model from ``onnx_dir``, else exported once into the shared cache."""
        if self.onnx_dir is not None:
            found = find_model(
                self.onnx_dir, stems, network, not self.export_missing, MODEL_SUFFIXES
            )
            if found is not None:
                return found
        if not self.export_missing:
            raise BackendUnavailable(
                f"the openvino backend needs a {network} model: pass "
                f"{network}_model=PATH (.onnx or .xml) or onnx_dir"
            )
        config = self.sg_config if network == "superglue" else self.sp_config
        folder = cache_folder(
            self.cache_dir or default_cache_dir(),
            network,
            self.weights[network],
            self.weights_dir,
            config,
        )
        return export_once(folder, stems[0], network, export)

    def _export_superglue(self, target: Path) -> None:
        from ..networks.onnx_export import export_superglue

        export_superglue(
            target,
            self.weights["superglue"],
            self.sg_config,
            self.weights_dir,
            num_slots=self.requested_slots,
        )

    def _export_superpoint(self, target: Path) -> None:
        from ..networks.onnx_export import export_superpoint

        export_superpoint(
            target,
            self.weights["superpoint"],
            {"descriptor_dim": self.sp_config["descriptor_dim"]},
            self.weights_dir,
        )

    def _load_superpoint(self, path: Path) -> _Network:
        from ..networks import contract

        meta = _read_sidecar(path, "superpoint")
        if meta is not None:
            contract.check_superpoint_model(meta, self.sp_config, model_path=path)
        else:
            log.warning("%s has no spsg_ros sidecar; checking its inputs/outputs only", path)
        net = _Network(
            self.core, path, self.device, self.compile_config, self.ov, static_shapes=True
        )
        if contract.SUPERPOINT_INPUT not in net.input_names or len(net.input_names) != 1:
            raise contract.ModelContractError(
                f"{path}: a SuperPoint model has the single input '{contract.SUPERPOINT_INPUT}', "
                f"this one has {net.input_names}"
            )
        missing = [n for n in contract.SUPERPOINT_OUTPUTS if n not in net.output_names]
        if missing:
            raise contract.ModelContractError(
                f"{path}: outputs {net.output_names}, expected {list(contract.SUPERPOINT_OUTPUTS)}"
            )
        desc_dim = net.output_shape(contract.SUPERPOINT_OUTPUT_DESC)[1]
        if desc_dim is not None and desc_dim != self.sp_config["descriptor_dim"]:
            raise contract.ModelContractError(
                f"{path} outputs {desc_dim}-dimensional descriptors but "
                "superpoint.descriptor_dim is "
                f"{self.sp_config['descriptor_dim']}"
            )
        self.sp_meta = meta
        return net

    def _load_superglue(self, path: Path) -> _Network:
        from ..networks import contract

        meta = _read_sidecar(path, "superglue")
        if meta is not None:
            contract.check_superglue_model(meta, self.sg_config, model_path=path)
        else:
            log.warning(
                "%s has no spsg_ros sidecar: its Sinkhorn iterations and architecture "
                "cannot be checked",
                path,
            )
        # CPU runs a dynamic-K model as is; other devices get padded bucket sizes
        net = _Network(
            self.core,
            path,
            self.device,
            self.compile_config,
            self.ov,
            static_shapes=not self.device.startswith("CPU"),
        )
        if (
            sorted(net.input_names) != sorted(contract.SUPERGLUE_INPUTS)
            or contract.SUPERGLUE_OUTPUT not in net.output_names
        ):
            raise contract.ModelContractError(
                f"{path}: inputs {net.input_names} / outputs {net.output_names} are not those of "
                "an "
                f"spsg_ros SuperGlue export ({', '.join(contract.SUPERGLUE_INPUTS)})"
            )
        k = net.input_shape("keypoints0")[1]
        self.num_slots = contract.num_slots(meta) if meta is not None else k
        self.sg_meta = meta
        return net

    def _superpoint_net(self, height: int, width: int) -> _Network:
        from ..networks import contract

        with self._lock:
            if None in self._sp_nets:
                return self._sp_nets[None]
            if (width, height) in self._sp_nets:
                return self._sp_nets[(width, height)]
            stems = [contract.superpoint_stem(height, width), contract.superpoint_stem(None, None)]
            path = self._find_or_export(
                "superpoint",
                stems if self.onnx_dir is not None else stems[1:],
                self._export_superpoint,
            )
            net = self._load_superpoint(path)
            key = None if net.dynamic else (width, height)
            self._sp_nets[key] = net
            return net

    # ---- Backend -------------------------------------------------------------
    def superpoint_dense(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"expected images (B, 1, H, W), got {images.shape}")
        h, w = images.shape[-2:]
        net = self._superpoint_net(h, w)
        static = net.input_shape("image")
        if static[2] is not None and static[3] is not None and (static[2], static[3]) != (h, w):
            raise ValueError(
                f"{net.path} is a static SuperPoint for {static[3]}x{static[2]} "
                f"(WxH) images, got {w}x{h}: export one for this size or a dynamic one"
            )
        semis, descs = [], []
        for image in images:
            out = net({"image": image[None]})
            semis.append(out["semi"][0])
            descs.append(out["desc"][0])
        return np.stack(semis), np.stack(descs)

    def superglue_slots(self, n0: int, n1: int) -> int | None:
        if self.superglue_net is None:
            raise BackendUnavailable(
                "this openvino backend was built without SuperGlue "
                "(load_superglue=False, as for matcher nn)"
            )
        if self.num_slots is not None:
            return self.num_slots
        if self.superglue_net.reshape:
            return max(64, 1 << (max(n0, n1, 1) - 1).bit_length())  # few static shapes
        return None

    def run_padded_superglue(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.superglue_net(feeds)["log_assignment"]

    # ---- LightGlue (staged export: StagedLightGlueBackend.lightglue) ---------------
    # The same models as the onnxruntime backend. num_slots K: the static export
    # (padding and pruning by masks); None: the dynamic-K export, on CPU compiled once
    # with dynamic shapes and fed exact sizes (pruned points removed), on GPU/NPU
    # reshaped to power-of-two slot counts (at least 64, pruning by masks).
    def _open_lightglue_export(self, weights: Any, weights_dir: Any) -> ExportedLightGlue:
        folder = locate_lightglue_export(
            weights,
            weights_dir,
            self.requested_slots,
            False,
            self.onnx_dir,
            self.cache_dir or default_cache_dir(),
            self.export_missing,
        )
        cpu = self.device.startswith("CPU")

        def open_model(path: Path):
            contract.read_sidecar(path, "lightglue")
            return _Network(self.core, path, self.device, self.compile_config, self.ov, not cpu)

        def buckets(n0: int, n1: int) -> int:
            return max(64, 1 << (max(n0, n1, 1) - 1).bit_length())

        return ExportedLightGlue(folder, open_model, None if cpu else buckets)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "backend": self.name,
            "device": self.device,
            "openvino": self.ov.__version__,
            "inference_precision": self.inference_precision or "device default",
            "threads": {
                "inference_num_threads": self.compile_config.get("INFERENCE_NUM_THREADS"),
                "idle_workers": "oneTBB back-off, then sleep (no OpenVINO setting)",
            },
        }
        if self._sp_nets:
            info["superpoint_models"] = {
                f"{k[0]}x{k[1]}" if k else "dynamic": str(n.path) for k, n in self._sp_nets.items()
            }
            actual = next(iter(self._sp_nets.values())).compiled_property(
                "INFERENCE_PRECISION_HINT"
            )
            if actual is not None:
                info["compiled_precision"] = str(actual)
        if self.superglue_net is not None:
            info["superglue_model"] = str(self.superglue_net.path)
            info["num_slots"] = self.num_slots
        if self._lightglue:
            info["lightglue_models"] = [str(m.folder) for m in self._lightglue.values()]
        return info

    def close(self) -> None:
        self._sp_nets.clear()
        self.superglue_net = None
        self._lightglue.clear()
        super().close()


register_backend("openvino", OpenVINOBackend)
