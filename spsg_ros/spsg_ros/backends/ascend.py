"""Ascend backend: OM models on an Ascend NPU through ``ais_bench``.

``ais_bench.infer.interface.InferSession(device_id, model_path)`` (from the
msit / ais_bench wheels built for the installed CANN toolkit) is imported
lazily, only when this backend is created. The adapter:

* feeds inputs in the order the model declares (``get_inputs()``: name, shape,
  datatype, size), not in the order of the contract, casting each array to the
  declared dtype (an OM converted from an fp16 export takes float16) and
  checking static dimensions, with messages naming the model and the fix;
* chooses the run mode: ``static`` when every dimension is fixed, else the
  mode recorded by ``spsg_ros.export.atc`` in the OM's sidecar (``dymdims``
  with shape gears: images must match a gear, keypoints are padded to the
  smallest K gear that holds them; ``dymshape`` with shape ranges on Ascend
  310P), overridable with ``superpoint_mode`` / ``superglue_mode``;
* passes ``custom_sizes`` = each output's byte size (the size the model
  declares, or the size of the expected output shape in dtype bytes for
  dynamic shapes, where the declared size is 0);
* holds a lock around the set-shape-then-infer sequence (the dynamic shape is
  session state), so one backend may serve several threads;
* smooths over ais_bench releases: ``summary()`` (newer) or ``sumary()``
  (older), ``infer(..., out_array=True)`` where the keyword exists, output
  tensors converted to host numpy arrays when a release returns device
  tensors, and a ``set_dynamic_dims``/``set_dynamic_shape`` + ``run`` fallback
  for sessions without ``infer``;
* calls ``free_resource()`` on close where the release has it (older releases
  free the model when the session is garbage-collected).

SuperGlue uses the static K-slot masked export with the shared host padding of
:mod:`spsg_ros.backends.static_superglue` (more than K keypoints: the K best by
score, the others unmatched).
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..features.superpoint_post import superpoint_config as make_superpoint_config
from ..matching.superglue_post import superglue_config as make_superglue_config
from .base import BackendUnavailable, register_backend
from .padded_superglue import PaddedSuperGlueBackend

log = logging.getLogger(__name__)

MODES = ("auto", "static", "dymdims", "dymshape")

AIS_BENCH_HINT = (
    "install ais_bench and aclruntime, the inference tools of msit "
    "(https://gitee.com/ascend/msit, "
    "msit/components/benchmark), from the wheels matching your CANN toolkit: pip install "
    "aclruntime-<ver>-<py>-linux_<arch>.whl ais_bench-<ver>-py3-none-any.whl, and source the "
    "toolkit environment (. /usr/local/Ascend/ascend-toolkit/set_env.sh)"
)

SessionFactory = Callable[[int, str], Any]

_DTYPE_NAMES = {
    "float": np.float32,
    "float32": np.float32,
    "fp32": np.float32,
    "float16": np.float16,
    "fp16": np.float16,
    "half": np.float16,
    "double": np.float64,
    "float64": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "bool": np.bool_,
}


def import_infer_session() -> SessionFactory:
    """``ais_bench.infer.interface.InferSession``, or BackendUnavailable saying how to get it."""
    try:
        from ais_bench.infer.interface import InferSession
    except ImportError as exc:
        raise BackendUnavailable(
            f"the ascend backend needs ais_bench ({exc}): {AIS_BENCH_HINT}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - aclruntime fails to load without the CANN libraries
        raise BackendUnavailable(
            f"ais_bench is installed but does not load ({type(exc).__name__}: "
            f"{exc}); source the CANN set_env.sh and check the NPU driver"
        ) from exc
    return InferSession


def numpy_dtype(datatype: Any) -> np.dtype:
    """An aclruntime ``dtype`` enum (``dtype.float16``), its name, a string or a
    numpy dtype -> numpy dtype."""
    if isinstance(datatype, np.dtype):
        return datatype
    if isinstance(datatype, type) and issubclass(datatype, np.generic):
        return np.dtype(datatype)
    name = getattr(datatype, "name", None)
    text = str(name if isinstance(name, str) else datatype).strip().lower()
    for prefix in ("dtype.", "tensordatatype.", "tensor_dtype_", "acl_", "dt_", "np."):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if text in _DTYPE_NAMES:
        return np.dtype(_DTYPE_NAMES[text])
    raise ValueError(f"unknown tensor datatype {datatype!r}")


def ascend_device_id(device: Any, device_id: int | None = None) -> int:
    """``npu:1``, ``ascend:1``, ``1`` -> 1; ``npu``, ``cpu`` (the CLI default) or
    None -> ``device_id`` or 0."""
    if device_id is not None:
        return int(device_id)
    if device is None:
        return 0
    if isinstance(device, int):
        return device
    text = str(device).strip().lower()
    if text in ("", "cpu", "npu", "ascend", "auto"):
        return 0
    match = re.fullmatch(r"(?:npu|ascend)?:?(\d+)", text)
    if not match:
        raise BackendUnavailable(
            f"device '{device}': the ascend backend runs on an NPU (npu:<id>)"
        )
    return int(match.group(1))


@dataclass
class TensorSpec:
    name: str
    shape: list[int]  # -1 for a dynamic dimension
    dtype: np.dtype
    size: int  # bytes as declared by the model (0 or max gear when dynamic)

    @property
    def static(self) -> bool:
        return all(d >= 0 for d in self.shape)


def _spec(desc: Any) -> TensorSpec:
    shape = [int(d) for d in getattr(desc, "shape", [])]
    return TensorSpec(
        str(desc.name), shape, numpy_dtype(desc.datatype), int(getattr(desc, "size", 0) or 0)
    )


def _accepts_keyword(func: Callable, keyword: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def _to_host_array(out: Any) -> np.ndarray:
    if isinstance(out, np.ndarray):
        return out
    if hasattr(out, "to_host"):  # aclruntime.Tensor left on the device
        out.to_host()
    return np.array(out)


class SessionAdapter:
    """One ``InferSession`` behind a release-independent, thread-safe interface."""

    def __init__(self, session: Any, model_path: Path):
        self.session = session
        self.model_path = model_path
        self.inputs = [_spec(d) for d in session.get_inputs()]
        self.outputs = [_spec(d) for d in session.get_outputs()]
        self.lock = threading.Lock()
        infer = getattr(session, "infer", None)
        self.has_infer = callable(infer)
        self.infer_takes_out_array = self.has_infer and _accepts_keyword(infer, "out_array")
        self.infer_takes_custom_sizes = self.has_infer and _accepts_keyword(infer, "custom_sizes")
        self.calls = 0

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def ordered_feeds(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Arrays in the model's declared input order, cast to its declared dtypes."""
        missing = [s.name for s in self.inputs if s.name not in feeds]
        extra = [n for n in feeds if n not in self.input_names]
        if missing or extra:
            raise ValueError(
                f"{self.model_path}: the model's inputs are {self.input_names}; "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"it has no input {extra}" if extra else "")
                + ". Was the OM converted from an spsg_ros export?"
            )
        ordered = []
        for spec in self.inputs:
            array = np.asarray(feeds[spec.name])
            if array.ndim != len(spec.shape) or any(
                d >= 0 and d != a for d, a in zip(spec.shape, array.shape)
            ):
                raise ValueError(
                    f"{self.model_path}: input '{spec.name}' is declared {spec.shape} "
                    f"(-1: dynamic), got {list(array.shape)}"
                )
            ordered.append(np.ascontiguousarray(array, dtype=spec.dtype))
        return ordered

    def run(
        self,
        feeds: Mapping[str, np.ndarray],
        mode: str,
        output_shapes: Mapping[str, Sequence[int]],
    ) -> dict[str, np.ndarray]:
        """Run with ``mode``; ``output_shapes`` the expected shape of each output
        (for custom_sizes and for trimming gear-sized buffers)."""
        ordered = self.ordered_feeds(feeds)
        sizes = []
        for spec in self.outputs:
            expected = int(np.prod(output_shapes[spec.name])) * spec.dtype.itemsize
            sizes.append(
                max(spec.size, expected) if mode == "dymshape" else (spec.size or expected)
            )
        with self.lock:  # set shape + infer must not interleave between threads
            raw = self._infer(ordered, mode, sizes)
            self.calls += 1
        if len(raw) != len(self.outputs):
            raise RuntimeError(
                f"{self.model_path}: got {len(raw)} outputs, the model declares "
                f"{len(self.outputs)}"
            )
        result = {}
        for spec, out in zip(self.outputs, raw):
            array = _to_host_array(out)
            shape = list(output_shapes[spec.name])
            count = int(np.prod(shape))
            flat = array.reshape(-1)
            if flat.size < count:
                raise RuntimeError(
                    f"{self.model_path}: output '{spec.name}' has {flat.size} values, "
                    f"expected {shape}"
                )
            # a dymdims output buffer is sized for the largest gear: the result is its prefix
            result[spec.name] = flat[:count].reshape(shape).astype(np.float32)
        return result

    def _infer(self, ordered: list[np.ndarray], mode: str, sizes: list[int]) -> list[Any]:
        session = self.session
        if self.has_infer:
            kwargs: dict[str, Any] = {"mode": mode}
            if self.infer_takes_custom_sizes:
                kwargs["custom_sizes"] = sizes
            if self.infer_takes_out_array:
                kwargs["out_array"] = True
            return list(session.infer(ordered, **kwargs))
        # releases without infer(): set the shape, then run
        shapes = ";".join(
            f"{s.name}:{','.join(str(d) for d in a.shape)}" for s, a in zip(self.inputs, ordered)
        )
        if mode == "dymdims":
            session.set_dynamic_dims(shapes)
        elif mode == "dymshape":
            session.set_dynamic_shape(shapes)
            session.set_custom_outsize(sizes)
        elif hasattr(session, "set_staticbatch"):
            session.set_staticbatch()
        return list(
            session.run(ordered, out_array=True)
            if _accepts_keyword(session.run, "out_array")
            else session.run(ordered)
        )

    def summary(self) -> Any:
        """The session's timing summary (``summary()`` or, in older releases, ``sumary()``)."""
        for name in ("summary", "sumary"):
            method = getattr(self.session, name, None)
            if callable(method):
                return method()
        return None

    def close(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        free = getattr(session, "free_resource", None)
        if callable(free):
            free()


def _find_sidecar(model_path: Path, network: str) -> dict[str, Any] | None:
    """``<om>.json`` (written by ``atc.write_om_sidecars``), else the ONNX sidecar
    ``<stem>.json`` for an OM named ``<stem>_<soc>.om``."""
    from ..networks import contract

    candidates = [model_path]
    stripped = re.sub(r"_Ascend[0-9A-Za-z]+$", "", model_path.stem)
    if stripped != model_path.stem:
        candidates.append(model_path.with_name(stripped + model_path.suffix))
    for candidate in candidates:
        if contract.sidecar_path(candidate).is_file():
            return contract.read_sidecar(candidate, network)
    return None


class OMModel:
    """An OM file with its session, sidecar and run mode."""

    def __init__(
        self,
        path: Path,
        network: str,
        session_factory: SessionFactory,
        device_id: int,
        mode: str,
        gears: Sequence[Any] | None = None,
    ):
        if mode not in MODES:
            raise ValueError(f"mode '{mode}': expected one of {', '.join(MODES)}")
        self.path = path
        self.network = network
        self.meta = _find_sidecar(path, network)
        if self.meta is None:
            log.warning(
                "%s: no spsg_ros sidecar found (%s or the ONNX one); checking the model's "
                "inputs/outputs only",
                path,
                path.with_suffix(".json").name,
            )
        try:
            session = session_factory(device_id, str(path))
        except BackendUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - aclruntime raises RuntimeError with ACL codes
            raise BackendUnavailable(
                f"ais_bench could not load {path} on NPU {device_id} "
                f"({type(exc).__name__}: {exc}); check the device id, that the OM "
                "was converted for this chip (--soc_version) and the CANN version"
            ) from exc
        self.session = SessionAdapter(session, path)
        om = (self.meta or {}).get("om", {})
        self.gears = list(gears) if gears else list(om.get("gears") or [])
        dynamic = not all(s.static for s in self.session.inputs)
        if mode == "auto":
            if not dynamic:
                mode = "static"
            elif om.get("mode") in ("dymdims", "dymshape"):
                mode = om["mode"]
            else:
                mode = "dymdims" if self.gears else "dymshape"
        elif mode == "static" and dynamic:
            raise ValueError(
                f"{path} has dynamic inputs ({self.describe_inputs()}); it cannot run in "
                "static mode"
            )
        if mode == "dymdims" and not self.gears:
            raise ValueError(
                f"{path} is a dymdims (shape gears) model but its gears are unknown: keep the "
                "sidecar written by `spsg-ros export --atc` beside the OM, or pass the gears"
            )
        self.mode = mode

    def describe_inputs(self) -> str:
        return ", ".join(f"{s.name}{s.shape}:{s.dtype}" for s in self.session.inputs)

    def run(
        self, feeds: Mapping[str, np.ndarray], output_shapes: Mapping[str, Sequence[int]]
    ) -> dict[str, np.ndarray]:
        if self.session.session is None:
            raise RuntimeError(f"{self.path}: the backend was closed")
        return self.session.run(feeds, self.mode, output_shapes)

    def close(self) -> None:
        self.session.close()


class AscendBackend(PaddedSuperGlueBackend):
    """SuperPoint (dense) and masked static SuperGlue OM models on an Ascend NPU."""

    name = "ascend"
    supports_batch = True  # the 1xHxW model runs image by image

    def __init__(
        self,
        superpoint_model: Any = None,
        superglue_model: Any = None,
        superpoint_weights: Any = None,
        superglue_weights: Any = None,
        superpoint_config: Mapping[str, Any] | None = None,
        superglue_config: Mapping[str, Any] | None = None,
        weights_dir: Any = None,
        device: Any = None,
        device_id: int | None = None,
        superpoint_mode: str = "auto",
        superglue_mode: str = "auto",
        superglue_gears: Sequence[int] | None = None,
        load_superglue: bool = True,
        session_factory: SessionFactory | None = None,
        num_threads: int | None = 0,  # the NPU runs the networks: no CPU thread pool to size
    ):
        self.sp_config = make_superpoint_config(superpoint_config)
        self.sg_config = make_superglue_config(superglue_config)
        self.device_id = ascend_device_id(device, device_id)
        sp_path = _om_path(superpoint_model, "superpoint") or _om_path(
            superpoint_weights, "superpoint"
        )
        sg_path = None
        if load_superglue:  # matcher nn: no SuperGlue OM is read or loaded
            sg_path = _om_path(superglue_model, "superglue") or _om_path(
                superglue_weights, "superglue"
            )
        if sp_path is None and sg_path is None:
            raise BackendUnavailable(
                "the ascend backend runs OM models: export ONNX models with `spsg-ros export "
                "--atc`, "
                "convert them with the printed atc commands, and pass superpoint_model=PATH.om "
                "(and superglue_model=PATH.om)"
            )
        factory = session_factory or import_infer_session()
        self._session_factory = factory
        self._lightglue: dict[str, Any] = {}
        self._lightglue_oms: list[OMModel] = []
        self.superpoint_om: OMModel | None = None
        self.superglue_om: OMModel | None = None
        try:
            if sp_path is not None:
                self.superpoint_om = OMModel(
                    sp_path, "superpoint", factory, self.device_id, superpoint_mode
                )
                self._check_superpoint(self.superpoint_om)
            if sg_path is not None and load_superglue:
                gears = None
                if superglue_gears:
                    gears = [int(k) for k in superglue_gears]
                self.superglue_om = OMModel(
                    sg_path,
                    "superglue",
                    factory,
                    self.device_id,
                    superglue_mode,
                    self._superglue_gear_shapes(gears) if gears else None,
                )
                self._check_superglue(self.superglue_om)
        except Exception:
            self.close()
            raise

    # ---- checks ----------------------------------------------------------------
    def _check_superpoint(self, om: OMModel) -> None:
        from ..networks import contract

        if om.meta is not None:
            contract.check_superpoint_model(om.meta, self.sp_config, model_path=om.path)
        names = om.session.input_names
        if names != [contract.SUPERPOINT_INPUT]:
            raise contract.ModelContractError(
                f"{om.path}: a SuperPoint OM has the single input '{contract.SUPERPOINT_INPUT}', "
                "this one "
                f"has {om.describe_inputs()}; was the right file passed?"
            )
        missing = [n for n in contract.SUPERPOINT_OUTPUTS if n not in om.session.output_names]
        if missing:
            raise contract.ModelContractError(
                f"{om.path}: outputs {om.session.output_names}, expected "
                f"{list(contract.SUPERPOINT_OUTPUTS)}"
            )
        desc = next(s for s in om.session.outputs if s.name == contract.SUPERPOINT_OUTPUT_DESC)
        if (
            len(desc.shape) == 4
            and desc.shape[1] > 0
            and desc.shape[1] != self.sp_config["descriptor_dim"]
        ):
            raise contract.ModelContractError(
                f"{om.path} outputs {desc.shape[1]}-dimensional descriptors but "
                "superpoint.descriptor_dim "
                f"is {self.sp_config['descriptor_dim']}"
            )

    def _check_superglue(self, om: OMModel) -> None:
        from ..networks import contract

        if om.meta is not None:
            contract.check_superglue_model(om.meta, self.sg_config, model_path=om.path)
        if sorted(om.session.input_names) != sorted(contract.SUPERGLUE_INPUTS):
            raise contract.ModelContractError(
                f"{om.path}: inputs {om.describe_inputs()} are not those of an spsg_ros "
                "SuperGlue export "
                f"({', '.join(contract.SUPERGLUE_INPUTS)})"
            )
        if om.session.output_names != [contract.SUPERGLUE_OUTPUT]:
            raise contract.ModelContractError(
                f"{om.path}: outputs {om.session.output_names}, expected "
                f"['{contract.SUPERGLUE_OUTPUT}']"
            )
        spec = next(s for s in om.session.inputs if s.name == "descriptors0")
        if spec.shape[1] > 0 and spec.shape[1] != self.sg_config["descriptor_dim"]:
            raise contract.ModelContractError(
                f"{om.path} takes {spec.shape[1]}-dimensional descriptors but "
                "superglue.descriptor_dim "
                f"is {self.sg_config['descriptor_dim']}"
            )

    def _superglue_gear_shapes(self, ks: Sequence[int]) -> list[dict[str, list[int]]]:
        from ..networks.contract import superglue_io

        io = superglue_io(None, self.sg_config["descriptor_dim"])["inputs"]
        return [
            {e["name"]: [k if isinstance(d, str) else d for d in e["shape"]] for e in io}
            for k in sorted(ks)
        ]

    # ---- SuperPoint ----------------------------------------------------------------
    def superpoint_dense(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        om = self.superpoint_om
        if om is None:
            raise BackendUnavailable(
                "this ascend backend has no SuperPoint model (superpoint_model=PATH.om)"
            )
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"expected images (B, 1, H, W), got {images.shape}")
        h, w = images.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"image {w}x{h}: SuperPoint needs sizes that are multiples of 8")
        self._check_image_size(om, h, w)
        dim = self.sp_config["descriptor_dim"]
        shapes = {"semi": [1, 65, h // 8, w // 8], "desc": [1, dim, h // 8, w // 8]}
        semis, descs = [], []
        for image in images:
            out = om.run({"image": image[None]}, shapes)
            semis.append(out["semi"][0])
            descs.append(out["desc"][0])
        return np.stack(semis), np.stack(descs)

    def _check_image_size(self, om: OMModel, h: int, w: int) -> None:
        declared = om.session.inputs[0].shape
        if om.mode == "static":
            if list(declared[2:]) != [h, w]:
                raise ValueError(
                    f"{om.path} is a static SuperPoint for {declared[3]}x{declared[2]} (WxH) "
                    f"images, got {w}x{h}: convert an OM for this size (`spsg-ros export "
                    f"--sizes {h}x{w} --atc`) or resize the input"
                )
        elif om.mode == "dymdims":
            sizes = [tuple(g["image"][2:]) for g in om.gears if "image" in g]
            if (h, w) not in sizes:
                raise ValueError(
                    f"{om.path} has image-size gears {', '.join(f'{b}x{a}' for a, b in sizes)} "
                    f"(WxH); {w}x{h} is not one of them"
                )

    # ---- SuperGlue -----------------------------------------------------------------
    def superglue_slots(self, n0: int, n1: int) -> int | None:
        """K to pad to: the static K, the smallest gear holding both sets (else the
        largest gear), or None (dymshape: exact sizes)."""
        om = self.superglue_om
        if om is None:
            raise BackendUnavailable(
                "this ascend backend has no SuperGlue model (built with "
                "load_superglue=False, or no superglue_model=PATH.om)"
            )
        if om.mode == "static":
            return int(next(s for s in om.session.inputs if s.name == "keypoints0").shape[1])
        if om.mode == "dymdims":
            ks = sorted(int(g["keypoints0"][1]) for g in om.gears)
            need = max(n0, n1)
            return next((k for k in ks if k >= need), ks[-1])
        return None

    def run_padded_superglue(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        k0, k1 = feeds["keypoints0"].shape[1], feeds["keypoints1"].shape[1]
        return self.superglue_om.run(feeds, {"log_assignment": [1, k0 + 1, k1 + 1]})[
            "log_assignment"
        ]

    # ---- LightGlue (staged export) -------------------------------------------------
    def lightglue(self, features0, features1, config: Mapping[str, Any]):
        """LightGlue from OM stage models: ``config['weights']`` is the folder holding
        the export's ``manifest.json`` and one OM per stage (``<stage>.om`` or
        ``<stage>_<soc>.om``, as `spsg-ros export --only lightglue --ks K --atc` plans
        them). Static K: padding and pruning by masks, early exit between the layer
        OMs (:mod:`.lightglue_staged`)."""
        from .lightglue_staged import ExportedLightGlue, adaptive_config, is_export_folder

        cfg = adaptive_config(config, "cpu")
        folder = cfg["weights"]
        if not is_export_folder(folder):
            raise BackendUnavailable(
                f"the ascend backend runs LightGlue from OM stage models, not {folder!r}: export "
                "them (`spsg-ros export --only lightglue --ks K --atc`), convert them with the "
                "printed atc commands and pass the OM folder (it holds manifest.json) as the "
                "LightGlue weights"
            )
        key = str(Path(str(folder)).expanduser().resolve())
        if key not in self._lightglue:
            self._lightglue[key] = ExportedLightGlue(
                key, self._open_lightglue_om, check_files=False
            )
        return self._lightglue[key].match(features0, features1, cfg)

    def _open_lightglue_om(self, onnx_path: Path):
        exact = onnx_path.with_suffix(".om")
        found = (
            [exact]
            if exact.is_file()
            else sorted(onnx_path.parent.glob(f"{onnx_path.stem}_Ascend*.om"))
        )
        if len(found) != 1:
            raise BackendUnavailable(
                f"LightGlue stage {onnx_path.stem}: "
                + (
                    f"several OMs {[p.name for p in found]} in {onnx_path.parent}; keep one "
                    "SoC's OMs per folder"
                    if found
                    else f"no {exact.name} or {onnx_path.stem}_<soc>.om in {onnx_path.parent}; "
                    "convert it with the atc command `spsg-ros export --atc` printed"
                )
            )
        om = OMModel(found[0], "lightglue", self._session_factory, self.device_id, "static")
        self._lightglue_oms.append(om)
        shapes = {s.name: s.shape for s in om.session.outputs}
        if om.meta is not None:
            shapes = {e["name"]: e["shape"] for e in om.meta.get("outputs", [])}

        def run(feeds):
            return om.run(feeds, shapes)

        return run

    # ---- info / lifetime ---------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Per-model timing summaries reported by ais_bench."""
        return {
            om.network: om.session.summary()
            for om in (self.superpoint_om, self.superglue_om)
            if om is not None and om.session.session is not None
        }

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.name, "device": f"npu:{self.device_id}"}
        try:
            from importlib.metadata import version

            info["ais_bench"] = version("ais_bench")
        except Exception:  # noqa: BLE001 - not installed as a distribution (or a stand-in)
            pass
        for om in (self.superpoint_om, self.superglue_om):
            if om is None:
                continue
            info[f"{om.network}_model"] = str(om.path)
            info[f"{om.network}_mode"] = om.mode
            soc = (om.meta or {}).get("om", {}).get("soc_version")
            if soc:
                info["soc_version"] = soc
        if getattr(self, "_lightglue", None):
            info["lightglue_models"] = list(self._lightglue)
        return info

    def close(self) -> None:
        for attr in ("superpoint_om", "superglue_om"):
            om = getattr(self, attr, None)
            if om is not None:
                om.close()
        for om in getattr(self, "_lightglue_oms", []):
            om.close()
        self._lightglue_oms = []
        getattr(self, "_lightglue", {}).clear()
        super().close()


def _om_path(spec: Any, network: str) -> Path | None:
    if spec is None:
        return None
    path = Path(str(spec)).expanduser()
    if path.suffix.lower() != ".om":
        return None
    if not path.is_file():
        raise FileNotFoundError(
            f"{network} OM model not found: {path} (convert the ONNX export with the "
            "atc command printed by `spsg-ros export --atc`)"
        )
    return path


register_backend("ascend", AscendBackend)
