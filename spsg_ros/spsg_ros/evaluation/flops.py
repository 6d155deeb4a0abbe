"""FLOPs of the networks a bench runner executes, and the machine's fp32 GEMM rate.

**Counting** (:func:`superpoint_flops`, :func:`superglue_flops`,
:func:`runner_stage_flops`): the network a runner executes runs once, on
PyTorch's ``meta`` device (shapes only: no weights, no arithmetic; a CPU run
with random weights if the meta run fails), under two counters:

- :class:`torch.utils.flop_counter.FlopCounterMode` for convolutions (``conv``:
  the SuperPoint convolutions, SuperGlue's 1x1 Conv1d layers) and matrix
  products (``matmul``: mm, bmm, addmm, baddbmm, einsum, matmul, scaled
  dot-product attention; ``mv`` added here); FLOPs = 2 x multiply-adds;
  element-wise work (adds, ReLU, normalisation) is not counted;
- :class:`ExponentialCounter`, a dispatch mode counting the elements that go
  through exponential-family ops (``exp``, ``expm1``, ``softmax``,
  ``log_softmax``, ``logsumexp``, ``sigmoid``): one exponential per element.

The optimal transport (Sinkhorn) is counted apart (``sinkhorn_exp``,
``sinkhorn_matmul``) by wrapping, at call time, whatever function the model
calls for it: ``SuperGlue.optimal_transport`` of the upstream network and the
module function ``networks.superglue.log_optimal_transport_masked`` that
:class:`~spsg_ros.networks.superglue.MaskedSuperGlue` (the exported model)
calls. So the counts follow the code, never a formula.

Which network: the torch backend runs :class:`~spsg_ros.networks.superpoint.SuperPoint`
(``forward_dense``) and the upstream :class:`~spsg_ros.networks.superglue.SuperGlue`;
the exported backends (onnxruntime, openvino, ascend) run what
:mod:`~spsg_ros.networks.onnx_export` exports: the same dense SuperPoint and
:class:`~spsg_ros.networks.superglue.MaskedSuperGlue` on their slot count (K,
or ``num_slots`` for a static model), which folds the attention's merge
projection into the MLP (fewer FLOPs than upstream). Counts are cached per
(model kind, configuration, size).

Reference figures (upstream SuperGlue indoor config): SuperPoint at 480x640 is
26.05 G multiply-adds (52.1 GFLOP); upstream SuperGlue at K=512 is 17.16 G
multiply-adds (34.3 GFLOP) plus 100 Sinkhorn iterations of two log-sum-exps
over 513 x 513 (52.6 M exponentials).

**GEMM probe** (:func:`gemm_probe`): an fp32 square matrix product (n = 2048 by
default) with every GEMM library present: torch (torch's thread count, as the
torch runners) and ONNX Runtime's MatMul (MLAS, the kernels of the exported
models; same thread count, spinning off), numpy when neither is installed;
``warmup`` untimed and ``runs`` timed calls each; GFLOP/s = 2 n^3 / median time.
The probe's rate is the best library's (each library's in ``rates``): the rate
this machine reaches on the friendliest dense kernel, a practical ceiling for
the networks' conv/matmul work (one library alone can sit below what another
runtime's convolutions reach: torch's 2048^3 product reached about 125 GFLOP/s
where onnxruntime's SuperPoint ran at 160 on the issue's machine).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_PROBE_SIZE = 2048
EXPONENTIAL_OPS = (
    "exp",
    "exp_",
    "expm1",
    "_softmax",
    "_log_softmax",
    "logsumexp",
    "sigmoid",
    "log_sigmoid_forward",
    # the composite forms, seen before decomposition (e.g. under inference mode)
    "softmax",
    "log_softmax",
    "log_sigmoid",
)
# fused attention kernels: softmax over (..., N, M) inside, q (..., N, d), k (..., M, d)
ATTENTION_OPS = (
    "_scaled_dot_product_flash_attention_for_cpu",
    "scaled_dot_product_attention",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
)
CONVOLUTION_OPS = (
    "convolution",
    "_convolution",
    "cudnn_convolution",
    "mkldnn_convolution",
    "convolution_overrideable",
    "_slow_conv2d_forward",
)
MODEL_TORCH = "torch"  # upstream SuperGlue, SuperPoint forward_dense
MODEL_EXPORTED = "exported"  # MaskedSuperGlue (the ONNX contract), SuperPoint forward_dense


# ---- counts -------------------------------------------------------------------
@dataclass(frozen=True)
class FlopCount:
    """What one network call costs: FLOPs (2 x multiply-adds) of convolutions and
    matrix products, and exponentials; the optimal transport's share apart."""

    conv: float = 0.0
    matmul: float = 0.0
    exp: float = 0.0  # exponentials, all of them (attention softmaxes + Sinkhorn)
    sinkhorn_exp: float = 0.0  # of which in the optimal transport
    sinkhorn_matmul: float = 0.0  # matmul FLOPs in the optimal transport (in matmul)

    @property
    def flops(self) -> float:
        return self.conv + self.matmul

    @property
    def gflop(self) -> float:
        return self.flops / 1e9

    def __add__(self, other: "FlopCount") -> "FlopCount":
        return FlopCount(
            self.conv + other.conv,
            self.matmul + other.matmul,
            self.exp + other.exp,
            self.sinkhorn_exp + other.sinkhorn_exp,
            self.sinkhorn_matmul + other.sinkhorn_matmul,
        )

    def times(self, n: float) -> "FlopCount":
        return FlopCount(
            self.conv * n,
            self.matmul * n,
            self.exp * n,
            self.sinkhorn_exp * n,
            self.sinkhorn_matmul * n,
        )

    def to_json(self) -> dict[str, float]:
        return {
            "conv_gflop": round(self.conv / 1e9, 6),
            "matmul_gflop": round(self.matmul / 1e9, 6),
            "gflop": round(self.gflop, 6),
            "exp_m": round(self.exp / 1e6, 6),
            "sinkhorn_exp_m": round(self.sinkhorn_exp / 1e6, 6),
            "sinkhorn_matmul_gflop": round(self.sinkhorn_matmul / 1e9, 6),
        }


def _exponential_counter_class():
    from torch.utils._python_dispatch import TorchDispatchMode

    class ExponentialCounter(TorchDispatchMode):
        """Counts elements through exponential-family aten ops (the first input's
        size); ``sinkhorn`` marks the optimal transport's share."""

        def __init__(self):
            super().__init__()
            self.total = 0
            self.sinkhorn = 0
            self.in_sinkhorn = False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            n = 0
            if name in EXPONENTIAL_OPS and args:
                n = int(args[0].numel())
            elif name in ATTENTION_OPS and len(args) >= 2:
                n = int(args[0].shape[:-1].numel()) * int(args[1].shape[-2])
            if n:
                self.total += n
                if self.in_sinkhorn:
                    self.sinkhorn += n
            return func(*args, **(kwargs or {}))

    return ExponentialCounter


def _mv_flop(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """aten.mv, (m, n) @ (n,): not in FlopCounterMode's table."""
    return 2 * int(a_shape[0]) * int(a_shape[1])


def _cpu_attention_flop(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    """The CPU fused attention (not in FlopCounterMode's table): q k^T and p v,
    (..., N, d) x (..., M, d) and (..., N, M) x (..., M, dv)."""
    n, d = int(q_shape[-2]), int(q_shape[-1])
    batch = math.prod(int(x) for x in q_shape[:-2])
    m, dv = int(k_shape[-2]), int(v_shape[-1])
    return 2 * batch * n * m * (d + dv)


class Counting:
    """Both counters around one network call; :meth:`optimal_transport` wraps the
    function doing the Sinkhorn so that its share is recorded apart."""

    def __init__(self):
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        extra = {torch.ops.aten.mv: _mv_flop}
        cpu_attention = getattr(torch.ops.aten, ATTENTION_OPS[0], None)
        if cpu_attention is not None:
            extra[cpu_attention] = _cpu_attention_flop
        self.flops = FlopCounterMode(display=False, custom_mapping=extra)
        self.exps = _exponential_counter_class()()
        self.sinkhorn_matmul = 0.0

    @contextlib.contextmanager
    def active(self) -> Iterator["Counting"]:
        import torch

        with torch.no_grad(), self.flops, self.exps:
            yield self

    def optimal_transport(self, fn: Callable) -> Callable:
        """``fn`` counting into the Sinkhorn share."""

        @functools.wraps(fn)
        def counted(*args, **kwargs):
            before = self.flops.get_total_flops()
            self.exps.in_sinkhorn = True
            try:
                return fn(*args, **kwargs)
            finally:
                self.exps.in_sinkhorn = False
                self.sinkhorn_matmul += self.flops.get_total_flops() - before

        return counted

    def result(self) -> FlopCount:
        conv = matmul = 0.0
        for op, n in self.flops.get_flop_counts().get("Global", {}).items():
            if getattr(op, "__name__", str(op)).split(".")[-1] in CONVOLUTION_OPS:
                conv += n
            else:
                matmul += n
        return FlopCount(
            float(conv),
            float(matmul),
            float(self.exps.total),
            float(self.exps.sinkhorn),
            float(self.sinkhorn_matmul),
        )


@contextlib.contextmanager
def _patched(owner: Any, name: str, replace: Callable[[Callable], Callable]) -> Iterator[None]:
    """``owner.name`` = ``replace(owner.name)`` for the block (instance or module)."""
    had_own = name in vars(owner)
    original = getattr(owner, name)
    setattr(owner, name, replace(original))
    try:
        yield
    finally:
        if had_own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


def _count(run: Callable[[str], Callable[[Counting], None]]) -> FlopCount:
    """``run(device)`` gives the counted call; meta first (shapes only), then a CPU
    run with random weights when the meta run fails (data-dependent code)."""
    try:
        counting = Counting()
        call = run("meta")
        with counting.active():
            call(counting)
        return counting.result()
    except (RuntimeError, ValueError, TypeError) as exc:  # a missing meta kernel: RuntimeError
        log.info("flops: meta-device count failed (%s); counting a CPU run", exc)
    import torch

    torch.manual_seed(0)
    counting = Counting()
    call = run("cpu")
    with counting.active():
        call(counting)
    return counting.result()


def count_call(call: Callable[[], Any]) -> FlopCount:
    """The FLOPs and exponentials of whatever torch work ``call()`` does, counted
    while it runs for real (data-dependent networks such as LightGlue's adaptive
    depth and width; work outside torch is not seen)."""
    counting = Counting()
    with counting.active():
        call()
    return counting.result()


def _config_key(config: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(config or {}), sort_keys=True, default=str)


@functools.lru_cache(maxsize=64)
def _superpoint_flops(config_key: str, height: int, width: int) -> FlopCount:
    import torch

    from ..networks.superpoint import SuperPoint

    def run(device: str):
        with torch.device(device):
            net = SuperPoint(json.loads(config_key)).eval()
        image = torch.rand(1, 1, height, width, device=device)
        return lambda counting: net.forward_dense(image)

    return _count(run)


def superpoint_flops(
    height: int, width: int, config: Mapping[str, Any] | None = None
) -> FlopCount:
    """SuperPoint's dense network (``forward_dense``) on one ``height`` x ``width``
    image; ``config`` the network's (``descriptor_dim``)."""
    if height < 8 or width < 8:
        raise ValueError(f"image size {height}x{width}: SuperPoint needs at least 8x8 pixels")
    return _superpoint_flops(_config_key(config), int(height), int(width))


@functools.lru_cache(maxsize=64)
def _superglue_flops(kind: str, config_key: str, n0: int, n1: int) -> FlopCount:
    import torch

    from ..networks import superglue as sg

    config = json.loads(config_key)

    def run(device: str):
        with torch.device(device):
            net = sg.SuperGlue(config).eval()
        dim = net.config["descriptor_dim"]
        size = (640, 480)
        if kind == MODEL_TORCH:

            def inputs(n: int, seed: int):
                g = torch.Generator().manual_seed(seed)
                kpts = (torch.rand(1, n, 2, generator=g) * 400).to(device)
                scores = torch.rand(1, n, generator=g).to(device)
                desc = torch.nn.functional.normalize(torch.randn(1, dim, n, generator=g), dim=1)
                return kpts, scores, desc.to(device), size

            args = (*inputs(n0, 0), *inputs(n1, 1))

            def call(counting: Counting):
                with _patched(net, "optimal_transport", counting.optimal_transport):
                    net.scores(*args)

            return call
        with torch.device(device):
            masked = sg.MaskedSuperGlue(net).eval()
        example = _masked_inputs(max(n0, n1), dim, size)
        # slots n0 / n1: the example is square; each side cut to its slot count
        feeds = _cut_side(example[:5], n0) + _cut_side(example[5:], n1)
        feeds = [t.to(device) for t in feeds]

        def call(counting: Counting):
            with _patched(sg, "log_optimal_transport_masked", counting.optimal_transport):
                masked(*feeds)

        return call

    return _count(run)


def _masked_inputs(slots: int, dim: int, size):
    from ..networks.onnx_export import superglue_example_inputs

    return superglue_example_inputs(slots, dim, size)


def _cut_side(side, n: int) -> list:
    """One image's contract inputs (keypoints, scores, descriptors, mask, size) cut
    to ``n`` slots."""
    kpts, scores, desc, mask, size = side
    return [kpts[:, :n], scores[:, :n], desc[:, :, :n], mask[:, :n], size]


def superglue_flops(
    n0: int, n1: int, config: Mapping[str, Any] | None = None, kind: str = MODEL_TORCH
) -> FlopCount:
    """One SuperGlue call on ``n0`` x ``n1`` keypoints (slots for ``kind`` exported):
    ``kind`` :data:`MODEL_TORCH` the upstream network (``SuperGlue.scores``),
    :data:`MODEL_EXPORTED` the exported :class:`MaskedSuperGlue`; ``config`` the
    network's (descriptor_dim, layers, sinkhorn_iterations)."""
    if kind not in (MODEL_TORCH, MODEL_EXPORTED):
        raise ValueError(f"SuperGlue model kind '{kind}': use {MODEL_TORCH} or {MODEL_EXPORTED}")
    if n0 < 1 or n1 < 1:
        raise ValueError(f"SuperGlue on {n0} x {n1} keypoints: needs at least one per image")
    return _superglue_flops(kind, _config_key(config), int(n0), int(n1))


# ---- which network a runner executes ---------------------------------------------
def network_configs(backend) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(model kind, SuperPoint network config, SuperGlue config) of ``backend``; None
    for a backend whose networks are not known here."""
    from ..backends.padded_superglue import PaddedSuperGlueBackend
    from ..backends.torch_backend import TorchBackend

    if isinstance(backend, TorchBackend):
        sp = {"descriptor_dim": backend.superpoint_net.config["descriptor_dim"]}
        sg = backend.superglue_net.config if backend.superglue_net is not None else None
        return MODEL_TORCH, sp, _superglue_arch(sg)
    if isinstance(backend, PaddedSuperGlueBackend):
        sp_config = getattr(backend, "sp_config", None) or {}
        sp = {"descriptor_dim": sp_config.get("descriptor_dim", 256)}
        return MODEL_EXPORTED, sp, _superglue_arch(getattr(backend, "sg_config", None))
    return None


def _superglue_arch(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The keys that shape SuperGlue's work (not weights, not thresholds)."""
    if config is None:
        return None
    keys = ("descriptor_dim", "keypoint_encoder", "GNN_layers", "sinkhorn_iterations")
    return {k: config[k] for k in keys if k in config}


def runner_stage_flops(
    backend, size: tuple[int, int], keypoints: tuple[int, int]
) -> dict[str, FlopCount | None]:
    """FLOPs per bench stage for ``backend`` on images of ``size`` (H, W) with
    ``keypoints`` (n0, n1) into SuperGlue: ``superpoint`` per image, ``superglue``
    per pair (on the backend's slot count), ``total`` = 2 x superpoint + superglue;
    ``pre`` and ``post`` None (not counted). None where the network is unknown."""
    from ..backends.base import BackendUnavailable
    from ..backends.padded_superglue import PaddedSuperGlueBackend

    out: dict[str, FlopCount | None] = dict.fromkeys(
        ("pre", "superpoint", "post", "superglue", "total")
    )
    configs = network_configs(backend)
    if configs is None:
        return out
    kind, sp_config, sg_config = configs
    out["superpoint"] = superpoint_flops(size[0], size[1], sp_config)
    n0, n1 = keypoints
    if sg_config is not None and n0 > 0 and n1 > 0:
        if isinstance(backend, PaddedSuperGlueBackend):
            try:
                slots = backend.superglue_slots(n0, n1)
            except BackendUnavailable:
                return out
            if slots is not None:
                n0 = n1 = int(slots)
        out["superglue"] = superglue_flops(n0, n1, sg_config, kind)
        out["total"] = out["superpoint"].times(2) + out["superglue"]
    return out


# ---- GEMM probe -------------------------------------------------------------------
@dataclass
class GemmProbe:
    """An fp32 n x n matrix product's achieved rate on this machine: the best of the
    GEMM libraries present (``rates``: GFLOP/s per library)."""

    gflop_per_s: float
    n: int
    threads: int | None
    library: str
    runs: int
    times_ms: list[float]
    rates: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "gflop_per_s": float(f"{self.gflop_per_s:.6g}"),
            "n": self.n,
            "threads": self.threads,
            "library": self.library,
            "runs": self.runs,
            "times_ms": [round(t, 3) for t in self.times_ms],
            "rates": {k: float(f"{v:.6g}") for k, v in self.rates.items()},
        }


def _torch_product(n: int) -> tuple[str, int | None, Callable[[], Any]] | None:
    try:
        import torch
    except ImportError:
        return None
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(n, n, generator=g), torch.rand(n, n, generator=g)
    c = torch.empty(n, n)
    return f"torch {torch.__version__}", torch.get_num_threads(), lambda: torch.mm(a, b, out=c)


def _onnxruntime_product(n: int, threads: int | None) -> tuple[str, int | None, Callable] | None:
    """ONNX Runtime's MatMul (MLAS, the kernels the exported models run on), spinning
    off as in the onnxruntime backend."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    shape = [n, n]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm_probe",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape) for x in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 8)
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), so, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # an onnxruntime without the CPU provider: no such probe
        log.info("GEMM probe: onnxruntime unavailable (%s)", exc)
        return None
    rng = np.random.default_rng(0)
    feeds = {x: rng.random((n, n), dtype=np.float32) for x in ("a", "b")}
    return f"onnxruntime {ort.__version__}", threads, lambda: session.run(None, feeds)


def _numpy_product(n: int) -> tuple[str, int | None, Callable[[], Any]]:
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    return f"numpy {np.__version__}", None, lambda: np.matmul(a, b, out=c)


def _time_product(product: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        product()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        product()
        seconds.append(time.perf_counter() - start)
    return seconds


def gemm_probe(n: int = DEFAULT_PROBE_SIZE, runs: int = 5, warmup: int = 2) -> GemmProbe:
    """fp32 ``n`` x ``n`` @ ``n`` x ``n`` with every GEMM library present: torch (its
    current thread count, as the torch runners) and onnxruntime's MLAS (the same thread
    count), else numpy; ``warmup`` untimed and ``runs`` timed calls each;
    GFLOP/s = 2 n^3 / median time. The probe's rate is the best library's: the
    limit a runner could reach with the best GEMM kernels this machine has."""
    if n < 1 or runs < 1 or warmup < 0:
        raise ValueError(f"GEMM probe: n {n}, runs {runs}, warmup {warmup}: need n, runs >= 1")
    candidates = []
    torch_product = _torch_product(n)
    if torch_product is not None:
        candidates.append(torch_product)
    ort_product = _onnxruntime_product(n, torch_product[1] if torch_product else None)
    if ort_product is not None:
        candidates.append(ort_product)
    if not candidates:
        candidates.append(_numpy_product(n))
    best: GemmProbe | None = None
    rates: dict[str, float] = {}
    for library, threads, product in candidates:
        seconds = _time_product(product, runs, warmup)
        rate = 2.0 * n**3 / max(float(np.median(seconds)), 1e-12) / 1e9
        if not math.isfinite(rate):
            raise RuntimeError(f"GEMM probe ({library}): no finite rate from times {seconds}")
        rates[library] = rate
        if best is None or rate > best.gflop_per_s:
            best = GemmProbe(
                rate, int(n), threads, library, int(runs), [s * 1000.0 for s in seconds]
            )
    best.rates = rates
    return best
