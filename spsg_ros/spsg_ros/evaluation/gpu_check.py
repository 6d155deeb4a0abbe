"""GPU check: the torch networks on a CUDA device against the CPU float32 reference.

Run by ``scripts/gpu_check.sh`` on a machine with a CUDA build of torch, from a
source checkout (``PYTHONPATH=spsg_ros``, nothing installed, no network). It
imports only numpy, OpenCV, torch and the project's networks / features /
matching code (no tqdm, yaml, matplotlib, bag libraries).

Steps:

1. **Reference**, once: SuperPoint and SuperGlue in float32 on the CPU, as the
   torch backend runs them (``forward_dense`` + the upstream torch
   post-processing; ``similarity`` + optimal transport + mutual matches), on two
   frames at ``--size``: all keypoints (``max_keypoints`` -1), and for every K
   the top-K keypoints topped up to exactly K
   (:func:`~spsg_ros.evaluation.benchmark.fill_features`) with their matches.
2. **Variants** on ``--device``, each timed per stage (``--warmup`` untimed then
   ``--runs`` timed calls; CUDA synchronised around every call):

   - ``fp32-eager`` / ``fp16-eager``: the reference modules, fp16 under
     ``torch.autocast`` (the torch backend's ``fp16`` option: networks in half
     precision, post-processing and optimal transport in float32);
   - ``fp32-eager-notf32``: fp32-eager with TF32 off (IEEE float32 convolutions
     and matmuls): torch's default lets cuDNN run float32 convolutions in TF32
     on Ampere and later GPUs, which the torch backend inherits;
   - ``fp32-static``: SuperPoint on a fixed-size input buffer and
     :class:`~spsg_ros.networks.superglue.MaskedSuperGlue` on fixed K-slot
     buffers, without a graph (separates the static model's rounding from the
     graph's speed);
   - ``fp32-graph`` / ``fp16-graph``: the same static forwards captured once per
     shape in a ``torch.cuda.CUDAGraph`` (after a warm-up on a side stream) and
     replayed after copying the inputs into the captured buffers.

   fp16, graphs and the TF32 switch need CUDA: elsewhere they are reported as n/a.
3. Stages (milliseconds, median and p90): ``superpoint`` the dense network per
   image (image upload included), ``post`` the torch post-processing per image
   (results downloaded), ``superglue`` at each K on the reference's K-point
   feature sets (upload, network, optimal transport, mutual matches, download).
   ``pair`` rows (untimed) run the variant end to end at each K: its own top-K
   keypoints, topped up, then its SuperGlue.
4. Agreement with the reference, as :func:`~spsg_ros.evaluation.benchmark.agreement`
   defines it: ``kp agree`` the share of reference keypoints found at the same
   pixel, ``match agree`` the share of reference keypoints whose match (or
   non-match) is identical; ``max abs d LA`` the largest difference of the log
   assignment from the reference's (``superglue`` rows; none when the variant's
   holds inf/NaN, e.g. fp16 overflow in a network with large activations).

A markdown table goes to stdout, progress lines to stderr, and a JSON file
(environment, settings, reference summary, one record per row) to ``--out``,
rewritten after every variant so that a run stopped by a time limit keeps what
it measured. ``--budget-s`` skips the remaining work once it is spent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

VARIANTS = (
    "fp32-eager",
    "fp32-eager-notf32",
    "fp16-eager",
    "fp32-static",
    "fp32-graph",
    "fp16-graph",
)
DEFAULT_KS = (512, 1024, 2048)
DEFAULT_SIZE = (480, 640)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp")
GRAPH_WARMUP_CALLS = 3  # eager calls on a side stream before capture (cuBLAS/cuDNN set-up)
REPO_ROOT = Path(__file__).resolve().parents[3]


class CheckError(RuntimeError):
    """A bad option or a missing input: reported as one line, exit status 2."""


@dataclass(frozen=True)
class Variant:
    name: str
    fp16: bool
    mode: str  # eager | static | graph
    tf32: bool = True  # False: float32 convolutions and matmuls in IEEE float32 (no TF32)

    @property
    def cuda_only_reason(self) -> str | None:
        needs = []
        if self.fp16:
            needs.append("fp16 autocast")
        if self.mode == "graph":
            needs.append("CUDA graphs")
        if not self.tf32:
            needs.append("the TF32 switch")
        return f"n/a (CUDA only: {' and '.join(needs)})" if needs else None


def variant(name: str) -> Variant:
    """'fp16-graph' -> Variant; a '-notf32' suffix turns TF32 off."""
    precision, mode, *suffix = name.split("-")
    return Variant(name, precision == "fp16", mode, tf32=suffix != ["notf32"])


def _has_fp32_precision_api(torch) -> bool:
    conv = getattr(torch.backends.cudnn, "conv", None)
    return hasattr(conv, "fp32_precision") and hasattr(
        torch.backends.cuda.matmul, "fp32_precision"
    )


def tf32_settings(torch) -> dict[str, Any]:
    """Whether float32 convolutions / matmuls may use TF32: torch's fp32_precision API
    where it exists (then the legacy allow_tf32 flags are not read: torch refuses a mix
    of the two APIs), else the legacy flags."""
    info: dict[str, Any] = {"float32_matmul_precision": torch.get_float32_matmul_precision()}
    if _has_fp32_precision_api(torch):
        info["cudnn_conv_fp32_precision"] = torch.backends.cudnn.conv.fp32_precision
        info["cuda_matmul_fp32_precision"] = torch.backends.cuda.matmul.fp32_precision
    else:
        info["cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
        info["cuda_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return info


@contextlib.contextmanager
def float32_precision(torch, tf32: bool):
    """With ``tf32`` False: IEEE float32 convolutions and matmuls for the block, then
    torch's settings back. With True: torch's defaults (what the torch backend gets;
    on Ampere and later GPUs cuDNN convolutions default to TF32)."""
    if tf32:
        yield
        return
    if _has_fp32_precision_api(torch):
        owners = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
        attr, off = "fp32_precision", "ieee"
    else:
        owners = (torch.backends.cudnn, torch.backends.cuda.matmul)
        attr, off = "allow_tf32", False
    saved = [getattr(owner, attr) for owner in owners]
    for owner in owners:
        setattr(owner, attr, off)
    try:
        yield
    finally:
        for owner, old in zip(owners, saved):
            setattr(owner, attr, old)


@dataclass
class Row:
    """One line of the table (and one JSON record)."""

    variant: str
    stage: str
    k: int | None = None
    stats: dict[str, float] | None = None  # ms: median, p90, max, n
    kp_agree: float | None = None
    match_agree: float | None = None
    log_assignment_diff: float | None = None
    matches: int | None = None
    matches_ref: int | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "stage": self.stage,
            "k": self.k,
            "median_ms": None if self.stats is None else self.stats["median"],
            "p90_ms": None if self.stats is None else self.stats["p90"],
            "max_ms": None if self.stats is None else self.stats["max"],
            "n": None if self.stats is None else self.stats["n"],
            "kp_agree": self.kp_agree,
            "match_agree": self.match_agree,
            "log_assignment_max_abs_diff": self.log_assignment_diff,
            "matches": self.matches,
            "matches_ref": self.matches_ref,
            "note": self.note,
        }


# ---- options -------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 480x640, got '{text}'")
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"size {h}x{w}: height and width must be >= 16")
    return h, w


def int_at_least(minimum: int):
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got '{text}'")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpu_check",
        description="Time the torch networks on a CUDA device (fp32/fp16, eager/CUDA graphs) "
        "per stage and compare keypoints and matches with the CPU float32 reference.",
    )
    p.add_argument("--device", default="cuda", help="torch device (default cuda; cpu: dry run)")
    p.add_argument(
        "--ks", type=int_at_least(1), nargs="+", default=list(DEFAULT_KS), help="SuperGlue sizes K"
    )
    p.add_argument(
        "--runs", type=int_at_least(1), help="timed calls per stage (default 20 on cuda, 2 on cpu)"
    )
    p.add_argument(
        "--warmup", type=int_at_least(0), help="untimed calls first (default 3 cuda, 0 cpu)"
    )
    p.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, help="HxW (default 480x640)")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        help="default: all on cuda; on another device fp32-eager, the CUDA-only ones as n/a",
    )
    p.add_argument("--no-graphs", action="store_true", help="leave out the CUDA graph variants")
    p.add_argument(
        "--weights-dir",
        type=Path,
        help="folder of the weights (default $SPSG_SHARED_DIR/weights, shared/weights or "
        "../shared/weights of the repository)",
    )
    p.add_argument("--superpoint-weights", default="superpoint", help="short name or file")
    p.add_argument("--superglue-weights", default="indoor", help="short name or file")
    p.add_argument(
        "--frames", nargs=2, type=Path, metavar=("IMAGE0", "IMAGE1"), help="the two frames"
    )
    p.add_argument(
        "--frames-dir",
        type=Path,
        help="first two images of this folder (or of its first sub-folder holding two); "
        "default $SPSG_SHARED_DIR/data, shared/data or ../shared/data; synthetic if none",
    )
    p.add_argument(
        "--out", type=Path, help="JSON file (default $OUT/gpu_check.json, else out/gpu_check.json)"
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=270.0,
        help="skip the remaining work once this many seconds are spent (default 270)",
    )
    return p


def default_shared_dirs(sub: str) -> list[Path]:
    """Where the shared weights / data are looked for, in order."""
    dirs = []
    env = os.environ.get("SPSG_SHARED_DIR")
    if env:
        dirs.append(Path(env) / sub)
    dirs += [REPO_ROOT / "shared" / sub, REPO_ROOT.parent / "shared" / sub]
    return dirs


def find_weights_dir(explicit: Path | None) -> Path:
    if explicit is not None:
        if not explicit.is_dir():
            raise CheckError(f"--weights-dir {explicit} is not a folder")
        return explicit
    for candidate in default_shared_dirs("weights"):
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(d) for d in default_shared_dirs("weights"))
    raise CheckError(f"no weights folder found (looked in {looked}): pass --weights-dir")


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def frames_in(folder: Path) -> list[Path]:
    """The first two images of ``folder``, else of its first sub-folder holding two."""
    found = images_in(folder)
    if len(found) >= 2:
        return found[:2]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        found = images_in(sub)
        if len(found) >= 2:
            return found[:2]
    return []


def find_frames(args) -> tuple[list[Path], str]:
    """(frame paths, description); no paths: synthetic images."""
    if args.frames:
        for path in args.frames:
            if not path.is_file():
                raise CheckError(f"--frames: {path} is not a file")
        return list(args.frames), "given frames"
    if args.frames_dir is not None:
        if not args.frames_dir.is_dir():
            raise CheckError(f"--frames-dir {args.frames_dir} is not a folder")
        frames = frames_in(args.frames_dir)
        if not frames:
            raise CheckError(f"--frames-dir {args.frames_dir} holds fewer than two images")
        return frames, f"first two images of {frames[0].parent}"
    for candidate in default_shared_dirs("data"):
        if candidate.is_dir():
            frames = frames_in(candidate)
            if frames:
                return frames, f"first two images of {frames[0].parent}"
    looked = ", ".join(str(d) for d in default_shared_dirs("data"))
    return [], f"synthetic images (no frames found in {looked})"


# ---- output --------------------------------------------------------------------
class Progress:
    """Timestamped progress lines on stderr."""

    def __init__(self):
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {message}", file=sys.stderr, flush=True)


def _ms(stats: dict[str, float] | None, key: str) -> str:
    if stats is None:
        return "-"
    value = stats[key]
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def format_table(rows: Sequence[Row]) -> str:
    lines = [
        "| variant | stage | K | median ms | p90 ms | kp agree | match agree | max abs d LA "
        "| note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = "-" if r.log_assignment_diff is None else f"{r.log_assignment_diff:.2e}"
        k = "-" if r.k is None else r.k
        lines.append(
            f"| {r.variant} | {r.stage} | {k} | {_ms(r.stats, 'median')} "
            f"| {_ms(r.stats, 'p90')} | {_share(r.kp_agree)} | {_share(r.match_agree)} "
            f"| {diff} | {r.note} |"
        )
    return "\n".join(lines)


def environment(torch, device) -> dict[str, Any]:
    import cv2

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": bool(torch.cuda.is_available()),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        **tf32_settings(torch),
        "spsg_ros": str(Path(__file__).resolve().parents[1]),  # the package actually imported
    }
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        info.update(
            device_name=props.name,
            capability=f"{props.major}.{props.minor}",
            device_memory_gib=round(props.total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
        )
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    return info


# ---- the networks, as each variant runs them -------------------------------------
class Networks:
    """SuperPoint, SuperGlue and MaskedSuperGlue of one device (float32 weights)."""

    def __init__(self, torch, device, superpoint_path: Path, superglue_path: Path):
        from ..networks import weights
        from ..networks.superglue import MaskedSuperGlue

        self.torch = torch
        self.device = device
        self.superpoint = weights.load_superpoint(superpoint_path).to(device)
        self.superglue = weights.load_superglue(superglue_path).to(device)
        self.masked = MaskedSuperGlue(self.superglue).eval().to(device)
        self.match_threshold = self.superglue.config["match_threshold"]

    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)


def autocast(torch, fp16: bool, for_graph: bool = False):
    """float16 autocast on CUDA (the torch backend's fp16), else nothing; graph capture
    needs the cast cache off (cached casts would be freed outside the graph's pool)."""
    if not fp16:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.float16, cache_enabled=not for_graph)


def capture_graph(torch, forward: Callable[[], Any]):
    """(graph, static outputs) of ``forward`` reading captured input buffers."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(GRAPH_WARMUP_CALLS):
            forward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = forward()
    return graph, outputs


class StaticSuperPoint:
    """SuperPoint's dense network on a fixed (1, 1, H, W) input buffer, eager or as
    a CUDA graph; outputs are copied out (the next image reuses the buffers)."""

    def __init__(self, nets: Networks, size: tuple[int, int], fp16: bool, graph: bool):
        torch = nets.torch
        self.torch = torch
        self.image = torch.zeros((1, 1, *size), dtype=torch.float32, device=nets.device)

        def forward():
            with autocast(torch, fp16, for_graph=graph):
                return nets.superpoint.forward_dense(self.image)

        self.forward = forward
        self.graph = None
        if graph:
            self.graph, self.outputs = capture_graph(torch, forward)

    def __call__(self, image: Any):
        self.image.copy_(image)
        if self.graph is None:
            semi, desc = self.forward()
        else:
            self.graph.replay()
            semi, desc = self.outputs
        return semi.clone(), desc.clone()


class StaticSuperGlue:
    """MaskedSuperGlue on K-slot input buffers (all slots valid: the feature sets hold
    exactly K points), eager or as a CUDA graph."""

    def __init__(self, nets: Networks, k: int, fp16: bool, graph: bool):
        torch = nets.torch
        dim = nets.superglue.config["descriptor_dim"]

        def buffers():
            return [
                torch.zeros((1, k, 2), dtype=torch.float32, device=nets.device),
                torch.zeros((1, k), dtype=torch.float32, device=nets.device),
                torch.zeros((1, dim, k), dtype=torch.float32, device=nets.device),
                torch.ones((1, k), dtype=torch.float32, device=nets.device),
                torch.zeros((1, 2), dtype=torch.float32, device=nets.device),
            ]

        self.torch = torch
        self.k = k
        self.inputs = buffers() + buffers()

        def forward():
            with autocast(torch, fp16, for_graph=graph):
                return nets.masked(*self.inputs)

        self.forward = forward
        self.graph = None
        self.graph_requested = graph

    def load(self, host_inputs: Sequence[Any]) -> None:
        """Copy the inputs in (keypoints, scores, descriptors, mask, size per image);
        the first load captures the graph, on real inputs."""
        for buffer, value in zip(self.inputs, host_inputs):
            buffer.copy_(value)
        if self.graph_requested and self.graph is None:
            self.graph, self.output = capture_graph(self.torch, self.forward)

    def __call__(self):
        if self.graph is None:
            return self.forward()
        self.graph.replay()
        return self.output


class VariantRunner:
    """The stage callables of one variant on one device."""

    def __init__(self, nets: Networks, spec: Variant, size: tuple[int, int]):
        self.nets = nets
        self.torch = nets.torch
        self.spec = spec
        self.image_size = (size[1], size[0])  # (W, H), as Features and SuperGlue take it
        self.static_superpoint = (
            None
            if spec.mode == "eager"
            else StaticSuperPoint(nets, size, spec.fp16, spec.mode == "graph")
        )
        self.static_superglue: dict[int, StaticSuperGlue] = {}

    def superpoint(self, images: Sequence[np.ndarray]) -> list[tuple[Any, Any]]:
        """Dense outputs (semi, raw descriptors) on the device, per (1, 1, H, W) image."""
        torch, nets = self.torch, self.nets
        out = []
        for image in images:
            host = torch.from_numpy(image)
            if self.static_superpoint is not None:
                out.append(self.static_superpoint(host))
                continue
            with autocast(torch, self.spec.fp16):
                out.append(nets.superpoint.forward_dense(host.to(nets.device)))
        return out

    def postprocess(self, dense, config) -> list[Any]:
        """The upstream torch post-processing (float32) on the device -> host Features."""
        from ..features.types import Features
        from ..networks.superpoint import reference_postprocess

        out = []
        for semi, desc in dense:
            r = reference_postprocess(semi.float(), desc.float(), config)
            out.append(
                Features(
                    r["keypoints"][0].cpu().numpy(),
                    r["scores"][0].cpu().numpy(),
                    r["descriptors"][0].cpu().numpy(),
                    self.image_size,
                )
            )
        return out

    def superglue(self, features0, features1) -> tuple[Any, Any]:
        """(host Matches, device log assignment) of one pair."""
        from ..matching.types import Matches
        from ..networks.superglue import mutual_matches

        torch, nets = self.torch, self.nets
        if self.spec.mode == "eager":

            def tensors(f):
                return (
                    torch.from_numpy(f.keypoints)[None].to(nets.device),
                    torch.from_numpy(f.scores)[None].to(nets.device),
                    torch.from_numpy(np.ascontiguousarray(f.descriptors))[None].to(nets.device),
                    f.image_size,
                )

            with autocast(torch, self.spec.fp16):
                scores = nets.superglue.similarity(*tensors(features0), *tensors(features1))
            log_assignment = nets.superglue.optimal_transport(scores.float())
        else:
            k = len(features0)
            if len(features1) != k:
                raise CheckError(
                    f"static SuperGlue needs K x K inputs, got {k} x {len(features1)}"
                )
            static = self.static_superglue.get(k)
            if static is None:
                static = StaticSuperGlue(nets, k, self.spec.fp16, self.spec.mode == "graph")
                self.static_superglue[k] = static
            host = []
            for f in (features0, features1):
                host += [
                    torch.from_numpy(f.keypoints)[None],
                    torch.from_numpy(f.scores)[None],
                    torch.from_numpy(np.ascontiguousarray(f.descriptors))[None],
                    torch.ones((1, k), dtype=torch.float32),
                    torch.tensor([f.image_size], dtype=torch.float32),
                ]
            static.load(host)
            log_assignment = static()
        m = mutual_matches(log_assignment, nets.match_threshold)
        matches = Matches(
            m["matches0"][0].cpu().numpy(),
            m["matches1"][0].cpu().numpy(),
            m["matching_scores0"][0].float().cpu().numpy(),
            m["matching_scores1"][0].float().cpu().numpy(),
        )
        return matches, log_assignment

    def close(self) -> None:
        self.static_superpoint = None
        self.static_superglue.clear()


# ---- measuring -------------------------------------------------------------------
def time_calls(
    fn: Callable[[], Any], runs: int, warmup: int, sync: Callable[[], None], per: int = 1
) -> tuple[dict[str, float], Any]:
    """``warmup`` untimed then ``runs`` timed calls, the device synchronised before and
    after each; (ms per item: median, p90, max, n; the last call's result)."""
    from .benchmark import stats_ms

    seconds = []
    out = None
    for i in range(warmup + runs):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        if i >= warmup:
            seconds.append((time.perf_counter() - start) / per)
    return stats_ms(seconds), out


def keypoint_agreement(reference: Sequence[Any], other: Sequence[Any]) -> float:
    """Share of the reference keypoints (all images) found at the same pixel."""
    total = same = 0
    for fr, fo in zip(reference, other):
        ref = {(float(x), float(y)) for x, y in fr.keypoints}
        oth = {(float(x), float(y)) for x, y in fo.keypoints}
        total += len(ref)
        same += len(ref & oth)
    return same / total if total else 1.0


def same_features(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return all(
        np.array_equal(fa.keypoints, fb.keypoints)
        and np.array_equal(fa.scores, fb.scores)
        and np.array_equal(fa.descriptors, fb.descriptors)
        for fa, fb in zip(a, b)
    )


def log_assignment_diff(reference: np.ndarray, other: np.ndarray) -> float | None:
    """Largest absolute difference; None when ``other`` holds non-finite values."""
    if not np.all(np.isfinite(other)):
        return None
    return float(np.max(np.abs(other.astype(np.float64) - reference.astype(np.float64))))


@dataclass
class Reference:
    """The CPU float32 results every variant is compared with."""

    features: list[Any]  # all keypoints (max_keypoints -1), per image
    filled: dict[int, list[Any]] = field(default_factory=dict)  # top-K topped up to K
    pairs: dict[int, Any] = field(default_factory=dict)  # PairOutput per K
    log_assignment: dict[int, np.ndarray] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "keypoints": [len(f) for f in self.features],
            "per_k": {
                str(k): {
                    "detected": [int(min(len(f), k)) for f in self.features],
                    "matches": int(self.pairs[k].matches.num_matches),
                }
                for k in self.pairs
            },
        }


def superpoint_configs(ks: Sequence[int]) -> tuple[dict, dict[int, dict]]:
    from ..features.superpoint_post import superpoint_config

    return superpoint_config({"max_keypoints": -1}), {
        k: superpoint_config({"max_keypoints": int(k)}) for k in ks
    }


def compute_reference(nets: Networks, inputs, size, ks, progress: Progress) -> Reference:
    from .benchmark import PairOutput, fill_features

    runner = VariantRunner(nets, variant("fp32-eager"), size)
    config_all, config_k = superpoint_configs(ks)
    progress("reference (cpu, fp32): SuperPoint")
    dense = runner.superpoint(inputs)
    raw = [desc[0].float().cpu().numpy() for _, desc in dense]
    reference = Reference(runner.postprocess(dense, config_all))
    for k in ks:
        progress(f"reference (cpu, fp32): SuperGlue K={k}")
        top = runner.postprocess(dense, config_k[k])
        filled = [fill_features(f, k, raw[i], seed=i) for i, f in enumerate(top)]
        matches, log_assignment = runner.superglue(*filled)
        reference.filled[k] = filled
        reference.pairs[k] = PairOutput(tuple(filled), matches)
        reference.log_assignment[k] = log_assignment[0].cpu().numpy()
    return reference


def check_variant(
    spec: Variant,
    nets: Networks,
    reference: Reference,
    inputs,
    args,
    progress: Progress,
) -> list[Row]:
    """Time and compare one variant; a failure (e.g. a graph capture) becomes a row."""
    from .benchmark import PairOutput, agreement, fill_features

    torch = nets.torch
    size, ks = args.size, args.ks
    config_all, config_k = superpoint_configs(ks)
    rows: list[Row] = []

    def over_budget(stage: str, k: int | None = None) -> bool:
        if progress.elapsed() <= args.budget_s:
            return False
        rows.append(Row(spec.name, stage, k, note=f"skipped: --budget-s {args.budget_s:g} spent"))
        return True

    if over_budget("all"):
        return rows
    progress(f"{spec.name}: set-up" + (" (CUDA graph capture)" if spec.mode == "graph" else ""))
    try:
        runner = VariantRunner(nets, spec, size)
        progress(f"{spec.name}: SuperPoint, {args.warmup} warm-up + {args.runs} runs")
        stats, dense = time_calls(
            lambda: runner.superpoint(inputs), args.runs, args.warmup, nets.sync, per=len(inputs)
        )
        rows.append(Row(spec.name, "superpoint", None, stats, note="per image"))
        stats, features = time_calls(
            lambda: runner.postprocess(dense, config_all),
            args.runs,
            args.warmup,
            nets.sync,
            per=len(dense),
        )
        rows.append(
            Row(
                spec.name,
                "post",
                None,
                stats,
                kp_agree=keypoint_agreement(reference.features, features),
                note=f"per image; keypoints {'/'.join(str(len(f)) for f in features)} "
                f"(reference {'/'.join(str(len(f)) for f in reference.features)})",
            )
        )
    except Exception as exc:  # reported, the other variants still run
        rows.append(Row(spec.name, "superpoint", note=f"failed: {type(exc).__name__}: {exc}"))
        return rows
    raw = [desc[0].float().cpu().numpy() for _, desc in dense]
    for k in ks:
        if over_budget("superglue", k):
            continue
        ref_filled = reference.filled[k]
        try:
            if spec.mode != "eager":  # the K-slot buffers (and the graph capture), untimed
                runner.superglue(*ref_filled)
            progress(f"{spec.name}: SuperGlue K={k}, {args.warmup} warm-up + {args.runs} runs")
            stats, (matches, log_assignment) = time_calls(
                lambda: runner.superglue(*ref_filled), args.runs, args.warmup, nets.sync
            )
            ag = agreement(reference.pairs[k], PairOutput(tuple(ref_filled), matches))
            diff = log_assignment_diff(
                reference.log_assignment[k], log_assignment[0].float().cpu().numpy()
            )
            rows.append(
                Row(
                    spec.name,
                    "superglue",
                    k,
                    stats,
                    match_agree=ag["match_agree"],
                    log_assignment_diff=diff,
                    matches=ag["matches"],
                    matches_ref=ag["matches_ref"],
                    note=f"reference inputs; matches {ag['matches']} "
                    f"(reference {ag['matches_ref']})"
                    + ("; non-finite log assignment" if diff is None else ""),
                )
            )
            top = runner.postprocess(dense, config_k[k])
            filled = [fill_features(f, k, raw[i], seed=i) for i, f in enumerate(top)]
            if not same_features(filled, ref_filled):
                matches, _ = runner.superglue(*filled)
            ag = agreement(reference.pairs[k], PairOutput(tuple(filled), matches))
            rows.append(
                Row(
                    spec.name,
                    "pair",
                    k,
                    kp_agree=ag["kp_agree"],
                    match_agree=ag["match_agree"],
                    matches=ag["matches"],
                    matches_ref=ag["matches_ref"],
                    note=f"end to end, untimed; matches {ag['matches']} "
                    f"(reference {ag['matches_ref']})",
                )
            )
        except Exception as exc:
            rows.append(
                Row(spec.name, "superglue", k, note=f"failed: {type(exc).__name__}: {exc}")
            )
    runner.close()
    if nets.device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def resolve_variants(args, on_cuda: bool) -> list[Variant]:
    if args.variants:
        names = list(dict.fromkeys(args.variants))
    elif on_cuda:
        names = list(VARIANTS)
    else:
        names = [n for n in VARIANTS if n != "fp32-static"]
    if args.no_graphs:
        names = [n for n in names if not n.endswith("-graph")]
    return [variant(n) for n in names]


def default_out() -> Path:
    out_dir = os.environ.get("OUT")
    return Path(out_dir) / "gpu_check.json" if out_dir else Path("out") / "gpu_check.json"


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def run_check(args, progress: Progress) -> dict[str, Any]:
    """The whole check; returns the JSON report (also written to ``args.out``)."""
    try:
        import torch
    except ImportError as exc:
        raise CheckError(f"PyTorch is not importable ({exc}); install nothing, use a torch build")
    from ..features.extractor import to_network_input
    from ..images import ImageDecodeError
    from ..networks.weights import WeightError, resolve_weights
    from .benchmark import load_pair

    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise CheckError(f"--device {args.device}: {exc}")
    on_cuda = device.type == "cuda"
    if on_cuda and not torch.cuda.is_available():
        raise CheckError(
            f"--device {args.device}: torch {torch.__version__} (CUDA "
            f"{torch.version.cuda or 'none: a CPU build'}) sees no CUDA device; "
            "--device cpu runs the dry run"
        )
    if device.type not in ("cuda", "cpu"):
        raise CheckError(f"--device {args.device}: only cuda and cpu are supported")
    if on_cuda and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise CheckError(
                f"--device {args.device}: torch sees {torch.cuda.device_count()} CUDA device(s)"
            )
        torch.cuda.set_device(device)  # streams and graphs are made on the current device
    height, width = args.size
    # fill_features draws the top-up points from the pixels 4 or more from the border
    free_pixels = (max(5, width - 4) - 4) * (max(5, height - 4) - 4)
    if max(args.ks) > free_pixels:
        raise CheckError(
            f"--ks {max(args.ks)}: a {height}x{width} image has {free_pixels} pixels for "
            "keypoints; use a smaller K or a larger --size"
        )
    args.ks = list(dict.fromkeys(args.ks))
    args.runs = args.runs or (20 if on_cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (3 if on_cuda else 0)
    args.out = args.out or default_out()
    weights_dir = find_weights_dir(args.weights_dir)
    try:
        sp_path = resolve_weights(args.superpoint_weights, "superpoint", weights_dir)
        sg_path = resolve_weights(args.superglue_weights, "superglue", weights_dir)
    except WeightError as exc:
        raise CheckError(str(exc))
    frames, frames_note = find_frames(args)
    try:
        images = load_pair(args.size, frames)
    except (ImageDecodeError, OSError) as exc:
        raise CheckError(f"frames: {exc}")
    inputs = [to_network_input([img]) for img in images]
    variants = resolve_variants(args, on_cuda)

    env = environment(torch, device)
    progress(
        f"torch {env['torch']} (CUDA {env['torch_cuda']}), device {device}"
        + (f" = {env['device_name']}" if on_cuda else "")
        + f"; frames: {frames_note}; weights: {sp_path.name}, {sg_path.name}"
    )
    report: dict[str, Any] = {
        "environment": env,
        "settings": {
            "device": str(device),
            "size": list(args.size),
            "ks": list(args.ks),
            "runs": args.runs,
            "warmup": args.warmup,
            "variants": [v.name for v in variants],
            "superpoint_weights": str(sp_path),
            "superglue_weights": str(sg_path),
            "frames": [str(p) for p in frames],
            "frames_note": frames_note,
            "budget_s": args.budget_s,
        },
        "rows": [],
    }
    rows: list[Row] = []
    with torch.inference_mode():
        ref_nets = Networks(torch, torch.device("cpu"), sp_path, sg_path)
        reference = compute_reference(ref_nets, inputs, args.size, args.ks, progress)
        report["reference"] = reference.summary()
        nets = ref_nets if device.type == "cpu" else Networks(torch, device, sp_path, sg_path)
        for spec in variants:
            reason = None if on_cuda else spec.cuda_only_reason
            if reason is not None:
                rows.append(Row(spec.name, "all", note=reason))
                continue
            try:
                with float32_precision(torch, spec.tf32):
                    rows += check_variant(spec, nets, reference, inputs, args, progress)
            except CheckError as exc:
                rows.append(Row(spec.name, "all", note=f"failed: {exc}"))
            report["rows"] = [r.to_json() for r in rows]
            write_report(args.out, report)
    report["rows"] = [r.to_json() for r in rows]
    report["table"] = format_table(rows)
    report["wall_s"] = round(progress.elapsed(), 1)
    write_report(args.out, report)
    progress(f"done in {progress.elapsed():.1f} s; JSON: {args.out}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = Progress()
    try:
        report = run_check(args, progress)
    except CheckError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2
    settings = report["settings"]
    print(
        f"## GPU check: {report['environment'].get('device_name', settings['device'])}, "
        f"{settings['size'][0]}x{settings['size'][1]}, {settings['warmup']} warm-up + "
        f"{settings['runs']} runs, frames: {settings['frames_note']}\n"
    )
    print(report["table"])
    failed = [r for r in report["rows"] if r["note"].startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
