"""Import SuperPoint weights from the formats users actually have.

Two sources besides the upstream ``superpoint_v1.pth`` state dict:

* a **pytorch-superpoint training checkpoint** (``.pth.tar``, e.g. from
  eric-yyjau/pytorch-superpoint): ``{'model_state_dict': ..., 'optimizer_state_dict':
  ..., 'n_iter': ...}`` whose network has a BatchNorm after every convolution.
  Two key layouts are recognised, with or without a ``module.`` prefix
  (``nn.DataParallel``):

  - ``SuperPointNet_gauss2``: ``inc.conv.conv.{0,1,3,4}``,
    ``down{1,2,3}.mpconv.1.conv.{0,1,3,4}`` (conv, BN, conv, BN) and
    ``convPa/bnPa, convPb/bnPb, convDa/bnDa, convDb/bnDb``;
  - flat names ``conv1a`` + ``bn1a`` ... ``convDb`` + ``bnDb`` (a BN is optional
    per convolution, so a checkpoint of the plain upstream network works too).

  Each BatchNorm (eval mode: running statistics) is folded into the preceding
  convolution: ``w' = w * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta``.
  Such networks divide the descriptor map by its norm inside ``forward``; the
  upstream post-processing normalises anyway, so the keypoints and descriptors
  are the same.

* an **OpenVINO IR** SuperPoint (``.xml`` + ``.bin``): the 12 convolution
  weights and biases are read straight from the IR with numpy (no OpenVINO
  needed), fp16-compressed constants decompressed, per-channel ``Multiply`` /
  ``Add`` after a convolution (a BatchNorm kept as such by the converter)
  folded in, and the convolutions named by the graph structure (encoder chain,
  then the two heads; the detector head is the one ending in 65 channels).

Both give a state dict in the upstream layout (``conv1a.weight`` ...
``convDb.bias``) that :func:`spsg_ros.networks.weights.load_superpoint` loads
strictly. ``spsg-ros models import`` is the command-line front end.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .weights import check_checkpoint_file, WeightError

#: upstream convolution names in network order, with (kernel, in, out) for D = 256
UPSTREAM_CONVS = (
    "conv1a",
    "conv1b",
    "conv2a",
    "conv2b",
    "conv3a",
    "conv3b",
    "conv4a",
    "conv4b",
    "convPa",
    "convPb",
    "convDa",
    "convDb",
)
ENCODER_CONVS = UPSTREAM_CONVS[:8]
DETECTOR_CHANNELS = 65

# SuperPointNet_gauss2 (eric-yyjau/pytorch-superpoint, models/unet_parts.py double_conv):
# Sequential(Conv2d, BatchNorm2d, ReLU, Conv2d, BatchNorm2d, ReLU)
_GAUSS2_BLOCKS = {
    "conv1": "inc.conv.conv",
    "conv2": "down1.mpconv.1.conv",
    "conv3": "down2.mpconv.1.conv",
    "conv4": "down3.mpconv.1.conv",
}

BN_EPS = 1e-5  # torch.nn.BatchNorm2d default; checkpoints do not store it


@dataclass
class ImportResult:
    """What an import produced: the state dict (numpy float32) and how it was found."""

    state_dict: dict[str, np.ndarray]
    kind: str  # "checkpoint" or "openvino-ir" or "state-dict"
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def descriptor_dim(self) -> int:
        return int(self.state_dict["convDb.weight"].shape[0])


# ---------------------------------------------------------------------------
# BatchNorm folding and checkpoints
# ---------------------------------------------------------------------------


def fold_batchnorm(
    weight: np.ndarray,
    bias: np.ndarray | None,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float = BN_EPS,
) -> tuple[np.ndarray, np.ndarray]:
    """Conv (weight (O, I, kh, kw), bias (O,) or None) followed by an eval-mode
    BatchNorm -> one conv. Computed in float64, returned as float32."""
    weight = np.asarray(weight, np.float64)
    bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, np.float64)
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    folded_w = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    folded_b = (bias - np.asarray(mean, np.float64)) * scale + np.asarray(beta, np.float64)
    return folded_w.astype(np.float32), folded_b.astype(np.float32)


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().float().numpy()
    return np.asarray(value, np.float32)


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """Drop a common ``module.`` (DataParallel) or ``model.`` prefix."""
    keys = list(state)
    for prefix in ("module.", "model.", "net."):
        if keys and all(k.startswith(prefix) for k in keys):
            return _strip_prefix({k[len(prefix) :]: v for k, v in state.items()})
    return dict(state)


def _conv_candidates(name: str) -> list[tuple[str, str | None]]:
    """(conv prefix, BN prefix) pairs under which ``name`` may be stored."""
    candidates: list[tuple[str, str | None]] = []
    if name in ENCODER_CONVS:
        block = _GAUSS2_BLOCKS[name[:5]]
        index = 0 if name.endswith("a") else 3
        candidates.append((f"{block}.{index}", f"{block}.{index + 1}"))
    candidates.append((name, "bn" + name[4:]))  # conv1a/bn1a, convPa/bnPa
    return candidates


def fold_checkpoint_state(
    state: Mapping[str, Any], eps: float = BN_EPS, source: str = "checkpoint"
) -> ImportResult:
    """Upstream-layout SuperPoint state dict from a (BatchNorm) training state dict."""
    state = _strip_prefix(state)
    out: dict[str, np.ndarray] = {}
    used: set[str] = set()
    folded = 0
    for name in UPSTREAM_CONVS:
        for conv, bn in _conv_candidates(name):
            if f"{conv}.weight" in state:
                break
        else:
            tried = " or ".join(f"'{c}.weight'" for c, _ in _conv_candidates(name))
            raise WeightError(
                f"{source}: no weights for SuperPoint's {name} (looked for {tried}); "
                "is this a SuperPoint checkpoint (pytorch-superpoint SuperPointNet, "
                "SuperPointNet_gauss2 or the upstream layout)?"
            )
        weight = _to_numpy(state[f"{conv}.weight"])
        bias = _to_numpy(state[f"{conv}.bias"]) if f"{conv}.bias" in state else None
        used.update(k for k in (f"{conv}.weight", f"{conv}.bias") if k in state)
        if bn is not None and f"{bn}.running_mean" in state:
            keys = [f"{bn}.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
            missing = [k for k in keys if k not in state]
            if missing:
                raise WeightError(f"{source}: BatchNorm '{bn}' lacks {', '.join(missing)}")
            gamma, beta, mean, var = (_to_numpy(state[k]) for k in keys)
            weight, bias = fold_batchnorm(weight, bias, gamma, beta, mean, var, eps)
            used.update(keys)
            used.update(k for k in state if k.startswith(f"{bn}.num_batches_tracked"))
            folded += 1
        out[f"{name}.weight"] = np.ascontiguousarray(weight, np.float32)
        out[f"{name}.bias"] = (
            np.zeros(weight.shape[0], np.float32)
            if bias is None
            else np.ascontiguousarray(bias, np.float32)
        )
    notes = [
        f"folded {folded} BatchNorm layers (eps {eps:g})"
        if folded
        else "no BatchNorm layers found"
    ]
    unused = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
    if unused:
        notes.append(
            f"ignored {len(unused)} other tensors ({', '.join(unused[:4])}"
            f"{' ...' if len(unused) > 4 else ''})"
        )
    _check_shapes(out, source)
    return ImportResult(out, "checkpoint" if folded else "state-dict", source, notes)


def _load_torch_file(path: Path, trust_pickle: bool) -> Any:
    try:
        import torch
    except ImportError as exc:
        raise WeightError(
            "reading a PyTorch checkpoint needs PyTorch: pip install torch==2.13.0"
        ) from exc
    check_checkpoint_file(Path(path))  # random bytes: say so, do not suggest unpickling
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types
        if not trust_pickle:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WeightError(
                f"{path} could not be read safely (torch.load weights_only=True: {first}). "
                "Training "
                "checkpoints sometimes pickle other objects; if you trust the file, pass "
                "--trust-pickle (runs code stored in it)."
            ) from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise WeightError(
            f"{path} is not a readable PyTorch file ({type(exc).__name__}: {exc})"
        ) from exc


def _find_state_dict(obj: Any, source: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        if hasattr(obj, "state_dict"):  # a pickled nn.Module (trusted load)
            return obj.state_dict()
        raise WeightError(f"{source} holds a {type(obj).__name__}, not a checkpoint or state dict")
    for key in ("model_state_dict", "state_dict", "model", "net", "superpoint"):
        if key in obj and isinstance(obj[key], Mapping):
            return _find_state_dict(obj[key], source)
        if key in obj and hasattr(obj[key], "state_dict"):
            return obj[key].state_dict()
    return obj


def convert_checkpoint(
    path: str | os.PathLike, eps: float = BN_EPS, trust_pickle: bool = False
) -> ImportResult:
    """Upstream-layout state dict from a pytorch-superpoint ``.pth.tar`` checkpoint
    (or any SuperPoint state dict, nested under ``model_state_dict`` or not)."""
    path = Path(path)
    state = _find_state_dict(_load_torch_file(path, trust_pickle), str(path))
    return fold_checkpoint_state(state, eps, str(path))


# ---------------------------------------------------------------------------
# OpenVINO IR
# ---------------------------------------------------------------------------

_IR_TYPES = {
    "f16": np.float16,
    "f32": np.float32,
    "f64": np.float64,
    "i8": np.int8,
    "u8": np.uint8,
    "i16": np.int16,
    "u16": np.uint16,
    "i32": np.int32,
    "u32": np.uint32,
    "i64": np.int64,
    "u64": np.uint64,
    "boolean": np.bool_,
}
_ELEMENTWISE = {
    "Multiply": np.multiply,
    "Add": np.add,
    "Subtract": np.subtract,
    "Divide": np.divide,
}


class _IRGraph:
    """Just enough of an OpenVINO IR (v10/v11) to fold constants and walk the graph."""

    def __init__(self, xml_path: Path, bin_path: Path):
        self.xml_path = xml_path
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            raise WeightError(f"{xml_path} is not an OpenVINO IR XML file: {exc}") from exc
        if root.tag != "net" or root.find("layers") is None:
            raise WeightError(f"{xml_path} is not an OpenVINO IR (no <net><layers>)")
        self.weights = np.fromfile(bin_path, np.uint8) if bin_path.is_file() else None
        self.layers: dict[str, ET.Element] = {
            layer.get("id"): layer for layer in root.find("layers")
        }
        self.inputs: dict[str, list[str]] = {}  # layer -> its input port ids in order
        for lid, layer in self.layers.items():
            ports = layer.find("input")
            self.inputs[lid] = [p.get("id") for p in ports] if ports is not None else []
        self.producer: dict[tuple[str, str], tuple[str, str]] = {}
        self.consumers: dict[str, list[tuple[str, str]]] = {lid: [] for lid in self.layers}
        for edge in root.find("edges") if root.find("edges") is not None else []:
            src = (edge.get("from-layer"), edge.get("from-port"))
            dst = (edge.get("to-layer"), edge.get("to-port"))
            self.producer[dst] = src
            self.consumers[src[0]].append(dst)
        self._cache: dict[str, np.ndarray | None] = {}

    def type(self, lid: str) -> str:
        return self.layers[lid].get("type")

    def name(self, lid: str) -> str:
        return self.layers[lid].get("name", lid)

    def data(self, lid: str) -> dict[str, str]:
        node = self.layers[lid].find("data")
        return dict(node.attrib) if node is not None else {}

    def input_layer(self, lid: str, index: int) -> str:
        port = self.inputs[lid][index]
        return self.producer[(lid, port)][0]

    def out_channels(self, lid: str) -> int | None:
        ports = self.layers[lid].find("output")
        dims = (
            [d.text for d in ports[0].findall("dim")] if ports is not None and len(ports) else []
        )
        return int(dims[1]) if len(dims) > 1 and dims[1].lstrip("-").isdigit() else None

    def constant(self, lid: str) -> np.ndarray | None:
        """The value of ``lid`` if it depends on constants only, else None."""
        if lid not in self._cache:
            self._cache[lid] = None  # guards against cycles
            self._cache[lid] = self._fold(lid)
        return self._cache[lid]

    def _fold(self, lid: str) -> np.ndarray | None:
        kind = self.type(lid)
        if kind == "Const":
            return self._read_const(lid)
        n_in = len(self.inputs[lid])
        args = [self.constant(self.input_layer(lid, i)) for i in range(n_in)]
        if n_in == 0 or any(a is None for a in args):
            return None
        data = self.data(lid)
        if kind == "Convert":
            target = data.get("destination_type", "f32")
            return args[0].astype(_IR_TYPES.get(target, np.float32))
        if kind in _ELEMENTWISE:
            return _ELEMENTWISE[kind](args[0], args[1])
        if kind == "Reshape":
            shape = [int(s) for s in args[1].reshape(-1)]
            if data.get("special_zero", "false").lower() == "true":
                shape = [args[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return args[0].reshape(shape)
        if kind in ("Unsqueeze", "Squeeze"):
            axes = [int(a) for a in args[1].reshape(-1)] if n_in > 1 else []
            if kind == "Squeeze":
                return np.squeeze(args[0], tuple(axes) if axes else None)
            out = args[0]
            for axis in sorted(a % (out.ndim + len(axes)) for a in axes):
                out = np.expand_dims(out, axis)
            return out
        if kind == "Transpose":
            return np.transpose(args[0], [int(a) for a in args[1].reshape(-1)])
        return None

    def _read_const(self, lid: str) -> np.ndarray:
        data = self.data(lid)
        etype = data.get("element_type")
        shape = [int(s) for s in data.get("shape", "").replace(" ", "").split(",") if s != ""]
        offset, size = int(data.get("offset", 0)), int(data.get("size", 0))
        if self.weights is None:
            raise WeightError(f"{self.xml_path}: the weights file (.bin) is missing")
        if offset + size > self.weights.size:
            raise WeightError(
                f"{self.xml_path}: constant '{self.name(lid)}' lies beyond the end of "
                "the .bin file (truncated or not the matching .bin)"
            )
        raw = self.weights[offset : offset + size]
        if etype == "bf16":
            value = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif etype in _IR_TYPES:
            value = raw.view(_IR_TYPES[etype])
        else:
            raise WeightError(
                f"{self.xml_path}: constant '{self.name(lid)}' has element type "
                f"{etype}, which the importer does not read (f16/f32/bf16/int only)"
            )
        return value.reshape(shape)


def _channel_vector(value: np.ndarray, channels: int) -> np.ndarray | None:
    """A per-channel (or scalar) NCHW broadcast constant as a (channels,) vector."""
    value = np.asarray(value, np.float64)
    if value.size == 1:
        return np.full(channels, float(value.reshape(-1)[0]))
    squeezed = value.reshape(-1)
    if squeezed.size != channels:
        return None
    if value.ndim == 4 and value.shape[1] != channels:
        return None
    if value.ndim == 3 and value.shape[0] != channels:
        return None
    return squeezed


def _ir_convolutions(graph: _IRGraph) -> dict[str, dict[str, Any]]:
    """Every Convolution with its folded weight/bias, pre-scale, and graph neighbours."""
    convs: dict[str, dict[str, Any]] = {}
    for lid in graph.layers:
        if graph.type(lid) != "Convolution":
            continue
        weight = graph.constant(graph.input_layer(lid, 1))
        if weight is None:
            raise WeightError(
                f"{graph.xml_path}: the weights of convolution '{graph.name(lid)}' are "
                "not constant (quantized or unusual IR); the importer cannot read them"
            )
        weight = weight.astype(np.float64)
        bias = np.zeros(weight.shape[0])
        # fold per-channel elementwise ops that follow (bias Add, BatchNorm as Multiply + Add)
        tail = lid
        while True:
            users = graph.consumers[tail]
            if len(users) != 1:
                break
            nxt, port = users[0]
            kind = graph.type(nxt)
            if kind not in _ELEMENTWISE or len(graph.inputs[nxt]) != 2:
                break
            data_index = graph.inputs[nxt].index(port)
            other = graph.constant(graph.input_layer(nxt, 1 - data_index))
            vec = None if other is None else _channel_vector(other, weight.shape[0])
            if vec is None:
                break
            if kind == "Add":
                bias = bias + vec
            elif kind == "Multiply":
                weight, bias = weight * vec[:, None, None, None], bias * vec
            elif kind == "Subtract" and data_index == 0:
                bias = bias - vec
            elif kind == "Divide" and data_index == 0:
                weight, bias = weight / vec[:, None, None, None], bias / vec
            else:
                break
            tail = nxt
        convs[lid] = {
            "weight": weight,
            "bias": bias,
            "tail": tail,
            "data": graph.data(lid),
            "name": graph.name(lid),
        }
    return convs


def _walk(
    graph: _IRGraph, start: str, forward: bool, convs: Mapping[str, Any]
) -> tuple[set[str], list[str]]:
    """Convolutions first reached from ``start`` (not passing through another
    convolution), and the other layer types passed on the way."""
    found: set[str] = set()
    passed: list[str] = []
    stack = [start]
    seen = {start}
    while stack:
        lid = stack.pop()
        if forward:
            nexts = [dst for dst, _ in graph.consumers[lid]]
        else:
            nexts = [
                graph.producer[(lid, p)][0]
                for p in graph.inputs[lid]
                if (lid, p) in graph.producer
            ]
            if lid in convs:  # only the data input of a convolution
                nexts = nexts[:1]
        for nxt in nexts:
            if nxt in seen:
                continue
            seen.add(nxt)
            if nxt in convs:
                found.add(nxt)
                continue
            if not forward and graph.constant(nxt) is not None:
                continue
            passed.append(nxt)
            stack.append(nxt)
    return found, passed


def convert_openvino_ir(
    xml_path: str | os.PathLike, bin_path: str | os.PathLike | None = None
) -> ImportResult:
    """Upstream-layout state dict from an OpenVINO IR SuperPoint (``.xml`` + ``.bin``)."""
    xml_path = Path(xml_path)
    bin_path = Path(bin_path) if bin_path is not None else xml_path.with_suffix(".bin")
    if not xml_path.is_file():
        raise WeightError(f"OpenVINO IR not found: {xml_path}")
    if not bin_path.is_file():
        raise WeightError(
            f"{xml_path}: its weights file {bin_path} is missing (an IR is a .xml + .bin pair)"
        )
    graph = _IRGraph(xml_path, bin_path)
    convs = _ir_convolutions(graph)
    source = str(xml_path)
    if len(convs) != len(UPSTREAM_CONVS):
        raise WeightError(
            f"{source}: found {len(convs)} convolutions, a SuperPoint has "
            f"{len(UPSTREAM_CONVS)}; not a SuperPoint IR"
        )
    params = [lid for lid in graph.layers if graph.type(lid) == "Parameter"]
    if len(params) != 1:
        raise WeightError(f"{source}: expected one input (the image), found {len(params)}")
    first, pre_ops = _walk(graph, params[0], True, convs)
    if len(first) != 1:
        raise WeightError(f"{source}: the image feeds {len(first)} convolutions, expected 1")
    notes: list[str] = []
    # a scalar input scaling (e.g. x / 255 baked into the IR) folds into conv1a
    scale = 1.0
    for lid in pre_ops:
        kind = graph.type(lid)
        if kind in ("Convert", "Parameter"):
            continue
        operand = None
        if kind in ("Multiply", "Divide") and len(graph.inputs[lid]) == 2:
            operand = graph.constant(graph.input_layer(lid, 1))
        if operand is None or np.asarray(operand).size != 1:
            raise WeightError(
                f"{source}: layer '{graph.name(lid)}' ({kind}) between the image and the "
                "first convolution cannot be folded into it (only a scalar scale can)"
            )
        value = float(np.asarray(operand, np.float64).reshape(-1)[0])
        scale = scale * value if kind == "Multiply" else scale / value
    chain = [next(iter(first))]
    while len(chain) < len(ENCODER_CONVS):
        nxt, _ = _walk(graph, convs[chain[-1]]["tail"], True, convs)
        if len(nxt) != 1:
            raise WeightError(
                f"{source}: convolution '{convs[chain[-1]]['name']}' (encoder layer "
                f"{len(chain)}) feeds {len(nxt)} convolutions; not a SuperPoint graph"
            )
        chain.append(next(iter(nxt)))
    heads, _ = _walk(graph, convs[chain[-1]]["tail"], True, convs)
    if len(heads) != 2:
        raise WeightError(
            f"{source}: the encoder output feeds {len(heads)} convolutions, expected the two heads"
        )
    head_pairs = []
    for head in heads:
        second, _ = _walk(graph, convs[head]["tail"], True, convs)
        if len(second) != 1:
            raise WeightError(
                f"{source}: head convolution '{convs[head]['name']}' feeds {len(second)} "
                "convolutions, expected 1"
            )
        head_pairs.append((head, next(iter(second))))
    detector = [p for p in head_pairs if convs[p[1]]["weight"].shape[0] == DETECTOR_CHANNELS]
    if len(detector) != 1:
        raise WeightError(
            f"{source}: cannot tell the detector head (65 output channels) from the "
            "descriptor head"
        )
    descriptor = [p for p in head_pairs if p is not detector[0]][0]
    names = dict(zip(chain, ENCODER_CONVS))
    names.update(
        {
            detector[0][0]: "convPa",
            detector[0][1]: "convPb",
            descriptor[0]: "convDa",
            descriptor[1]: "convDb",
        }
    )
    out: dict[str, np.ndarray] = {}
    for lid, name in names.items():
        conv = convs[lid]
        kernel = conv["weight"].shape[-1]
        expected_pad = str((kernel - 1) // 2)
        data = conv["data"]
        pads = {
            data.get("pads_begin", "").replace(" ", ""),
            data.get("pads_end", "").replace(" ", ""),
        }
        strides = data.get("strides", "1, 1").replace(" ", "")
        dilations = data.get("dilations", "1, 1").replace(" ", "")
        auto_pad = data.get("auto_pad", "explicit")
        if (
            strides != "1,1"
            or dilations != "1,1"
            or (auto_pad == "explicit" and pads != {f"{expected_pad},{expected_pad}"})
            or (auto_pad not in ("explicit", "same_upper", "same_lower", "notset"))
        ):
            raise WeightError(
                f"{source}: convolution '{conv['name']}' ({name}) has strides {strides}, "
                f"dilations {dilations}, pads {sorted(pads)} / {auto_pad}; SuperPoint uses "
                f"stride 1 and padding {expected_pad}"
            )
        weight, bias = conv["weight"], conv["bias"]
        if name == "conv1a" and scale != 1.0:
            weight = weight * scale
            notes.append(f"input scale {scale:g} folded into conv1a")
        out[f"{name}.weight"] = weight.astype(np.float32)
        out[f"{name}.bias"] = bias.astype(np.float32)
    pools = sum(1 for lid in graph.layers if graph.type(lid) == "MaxPool")
    if pools != 3:
        notes.append(f"warning: the IR has {pools} MaxPool layers, SuperPoint has 3")
    compressed = sorted(
        {graph.data(lid).get("element_type") for lid in graph.layers if graph.type(lid) == "Const"}
        - {"i64", "i32", None}
    )
    notes.append(f"read {len(names)} convolutions (constants stored as {', '.join(compressed)})")
    _check_shapes(out, source)
    return ImportResult(out, "openvino-ir", source, notes)


# ---------------------------------------------------------------------------
# Front end
# ---------------------------------------------------------------------------


def _check_shapes(state: Mapping[str, np.ndarray], source: str) -> None:
    """The converted dict must fit an upstream SuperPoint (any descriptor dim)."""
    expected = {
        "conv1a": (64, 1, 3),
        "conv1b": (64, 64, 3),
        "conv2a": (64, 64, 3),
        "conv2b": (64, 64, 3),
        "conv3a": (128, 64, 3),
        "conv3b": (128, 128, 3),
        "conv4a": (128, 128, 3),
        "conv4b": (128, 128, 3),
        "convPa": (256, 128, 3),
        "convPb": (65, 256, 1),
        "convDa": (256, 128, 3),
    }
    wrong = []
    for name, (o, i, k) in expected.items():
        if tuple(state[f"{name}.weight"].shape) != (o, i, k, k):
            wrong.append(f"{name}: {tuple(state[f'{name}.weight'].shape)} vs {(o, i, k, k)}")
    db = state["convDb.weight"].shape
    if len(db) != 4 or db[1:] != (256, 1, 1):
        wrong.append(f"convDb: {tuple(db)} vs (D, 256, 1, 1)")
    if wrong:
        raise WeightError(
            f"{source} does not have SuperPoint's layer shapes: {'; '.join(wrong[:4])}"
        )


def detect_kind(path: str | os.PathLike) -> str:
    """``openvino-ir`` for an .xml (or a .bin / folder beside one), else ``checkpoint``."""
    path = Path(path)
    if path.is_dir():
        xmls = sorted(path.glob("*.xml"))
        if len(xmls) == 1:
            return "openvino-ir"
        raise WeightError(
            f"{path} is a folder; pass the model file (.xml of an IR, or a .pth/.pth.tar)"
        )
    if path.suffix.lower() == ".xml" or (
        path.suffix.lower() == ".bin" and path.with_suffix(".xml").is_file()
    ):
        return "openvino-ir"
    return "checkpoint"


def import_superpoint(
    source: str | os.PathLike, kind: str = "auto", eps: float = BN_EPS, trust_pickle: bool = False
) -> ImportResult:
    """Convert ``source`` (checkpoint or IR) to an upstream-layout state dict."""
    path = Path(source).expanduser()
    if not path.exists():
        raise WeightError(f"{path} not found")
    kind = detect_kind(path) if kind == "auto" else kind
    if kind in ("openvino-ir", "openvino", "ir"):
        if path.is_dir():
            path = sorted(path.glob("*.xml"))[0]
        return convert_openvino_ir(path.with_suffix(".xml"))
    if kind in ("checkpoint", "pytorch-superpoint", "state-dict"):
        return convert_checkpoint(path, eps, trust_pickle)
    raise WeightError(f"unknown import kind '{kind}' (auto, checkpoint, openvino-ir)")


def save_state_dict(
    result: ImportResult, output: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write the upstream-layout state dict as a ``.pth`` and check that the
    SuperPoint network loads it strictly."""
    import torch

    from .weights import load_superpoint

    output = Path(output).expanduser()
    if output.exists() and not overwrite:
        raise WeightError(f"{output} exists; pass --force to overwrite it")
    output.parent.mkdir(parents=True, exist_ok=True)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in result.state_dict.items()}
    tmp = output.with_name(output.name + ".part")
    torch.save(state, tmp)
    os.replace(tmp, output)
    load_superpoint(output, {"descriptor_dim": result.descriptor_dim})
    return output


def max_dense_difference(
    state_a: Mapping[str, Any], forward_b, image: np.ndarray
) -> tuple[float, float]:
    """Largest |semi| and |normalised desc| difference between a SuperPoint with
    ``state_a`` and ``forward_b(image) -> (semi, desc)`` on one (1, 1, H, W) image."""
    import torch

    from .superpoint import SuperPoint

    state = {k: torch.as_tensor(np.asarray(v)) for k, v in state_a.items()}
    model = SuperPoint({"descriptor_dim": int(state["convDb.weight"].shape[0])}).eval()
    model.load_state_dict(state, strict=True)
    with torch.inference_mode():
        semi_a, desc_a = (t.numpy() for t in model.forward_dense(torch.from_numpy(image)))
    semi_b, desc_b = (np.asarray(t, np.float32) for t in forward_b(image))

    def unit(d: np.ndarray) -> np.ndarray:
        return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)

    return float(np.abs(semi_a - semi_b).max()), float(np.abs(unit(desc_a) - unit(desc_b)).max())
