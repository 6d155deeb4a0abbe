"""Host side of the staged LightGlue export: upstream's adaptive depth and width
around fixed-shape stage models (numpy only).

:class:`StagedLightGlue` pads both keypoint sets to the export's K slots (more
than K: the K best by score, as for SuperGlue), runs the input stage, then the
layers one by one. After layer j it applies upstream's rules to the points
still taking part (mask 1), exactly as upstream's removal would count them:

- exit: the confident fraction is ``1 - (#alive points with token < lambda_j) /
  (N0 + N1)`` with N the valid (unpadded) counts, so padded slots never count
  and pruned points count as confident; exit when it is ``> depth_confidence``;
- pruning (unless the layer exits, and only for an image holding more alive
  points than the rule's minimum): a point stays when ``matchability >
  1 - width_confidence`` or ``token <= lambda_j``; a pruned point's mask becomes 0
  (``width="mask"``, the only choice for static shapes) or, with a dynamic-K
  export, its row is removed from the tensors (``width="remove"``, upstream's
  own procedure: later layers really get smaller).

The assignment head of the last layer run gives the log assignment; the rows and
columns of alive points (and the dustbins) are cut out and read like upstream
(mutual arg-max, threshold), then scattered back to all keypoints (pruned and
unkept points unmatched, score 0).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..features.types import Features
from ..matching.lightglue_matcher import LightGlueResult, lightglue_match_config
from ..matching.superglue_post import matches_from_log_assignment
from ..matching.types import Matches
from ..networks import lightglue_contract as lc
from .static_superglue import scatter_matches, select_slots

log = logging.getLogger(__name__)

#: run(stage name, feeds) -> outputs by name, float32 numpy
StageRunner = Callable[[str, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]

PRUNING_MIN_POINTS = {"cpu": -1, "cuda": 1024, "flash": 1536}
WIDTH_MODES = ("mask", "remove")


def adaptive_config(config: Mapping[str, Any] | None, device_kind: str = "cpu") -> dict:
    """A backend ``lightglue`` config checked and completed
    (:func:`~spsg_ros.matching.lightglue_matcher.lightglue_match_config`), plus
    ``min_points``, the pruning rule's minimum point count (``auto`` follows
    ``device_kind``: ``cuda`` gives upstream's CUDA rule, anything else the CPU's)."""
    cfg = lightglue_match_config(config)
    rule = cfg["pruning_rule"]
    if rule == "auto":
        rule = "cuda" if device_kind == "cuda" else "cpu"
    cfg["min_points"] = PRUNING_MIN_POINTS[rule]
    return cfg


SlotPolicy = Callable[[int, int], "int | None"]


class StagedLightGlue:
    """LightGlue from the stage models of one export (see :mod:`..networks.lightglue_contract`).

    ``manifest``: the export's manifest; ``run``: runs one stage; ``num_slots``: K to
    pad to, None for exact sizes (a dynamic-K export), or a function of the two
    point counts giving either; ``width``: ``mask``, ``remove`` (exact sizes only)
    or None: ``remove`` where the sizes are exact, else ``mask``."""

    def __init__(
        self,
        manifest: Mapping[str, Any],
        run: StageRunner,
        num_slots: int | None | SlotPolicy,
        width: str | None = None,
    ):
        if width is not None and width not in WIDTH_MODES:
            raise ValueError(f"width '{width}': one of {', '.join(WIDTH_MODES)}")
        if width == "remove" and num_slots is not None:
            raise ValueError(
                "width='remove' changes shapes: it needs exact sizes (num_slots None)"
            )
        cfg = manifest["config"]
        self.n_layers = int(cfg["n_layers"])
        self.input_dim = int(cfg["input_dim"])
        self.thresholds = np.asarray(manifest["confidence_thresholds"], np.float32)
        self.run = run
        self.num_slots = num_slots
        self.width = width
        #: what the last call did: alive counts entering each layer, exit fractions
        self.last_trace: dict[str, list] = {}

    def match(
        self, features0: Features, features1: Features, config: Mapping[str, Any] | None = None
    ) -> LightGlueResult:
        cfg = config if config is not None and "min_points" in config else adaptive_config(config)
        n0, n1 = len(features0), len(features1)
        if n0 == 0 or n1 == 0:
            return LightGlueResult(Matches.empty(n0, n1), 0, (0, 0), self.n_layers)
        for i, f in enumerate((features0, features1)):
            if f.descriptors.shape[0] != self.input_dim:
                raise ValueError(
                    f"descriptors{i}: {f.descriptors.shape[0]}-D, but this LightGlue export "
                    f"takes {self.input_dim}-D descriptors"
                )
        slots = self.num_slots(n0, n1) if callable(self.num_slots) else self.num_slots
        width = self.width or ("remove" if slots is None else "mask")
        if width == "remove" and slots is not None:
            raise ValueError("width='remove' changes shapes: it needs exact sizes")
        index = [select_slots(f.scores, slots) for f in (features0, features1)]
        feats = [
            f if idx is None else f.subset(idx) for f, idx in zip((features0, features1), index)
        ]
        matches, stop, pruned = self._run(feats, cfg, slots, width)
        matches = scatter_matches(matches, index[0], index[1], n0, n1)
        return LightGlueResult(matches, stop, pruned, self.n_layers)

    # ---- the loop ------------------------------------------------------------------
    def _feeds(self, feats: Sequence[Features], slots: int | None) -> dict[str, np.ndarray]:
        feeds = {}
        for i, f in enumerate(feats):
            n = len(f)
            k = n if slots is None else slots
            kpts = np.zeros((1, k, 2), np.float32)
            kpts[0, :n] = f.keypoints
            desc = np.zeros((1, k, self.input_dim), np.float32)
            desc[0, :n] = f.descriptors.T
            feeds[f"keypoints{i}"] = kpts
            feeds[f"descriptors{i}"] = desc
            feeds[f"image_size{i}"] = np.asarray(f.image_size, np.float32).reshape(1, 2)
        return {name: feeds[name] for name in lc.INPUT_INPUTS}

    def _run(self, feats: Sequence[Features], cfg: Mapping[str, Any], slots, width: str):
        counts = [len(f) for f in feats]
        out = self.run(lc.INPUT_STAGE, self._feeds(feats, slots))
        x = [out["desc0"], out["desc1"]]
        enc = [out["encoding0"], out["encoding1"]]
        slots = [x[0].shape[1], x[1].shape[1]]
        # slot s of image i holds original point rows[i][s]; alive[i][s]: takes part
        rows = [np.arange(k) for k in slots]
        alive = [np.arange(k) < n for k, n in zip(slots, counts)]
        early_exit = cfg["depth_confidence"] > 0
        pruning = cfg["width_confidence"] > 0
        min_points = cfg["min_points"]
        keep_above = np.float32(1 - cfg["width_confidence"])
        depth = np.float32(cfg["depth_confidence"])
        total = np.float32(counts[0] + counts[1])
        trace: dict[str, list] = {"alive0": [], "alive1": [], "confident_fraction": []}
        self.last_trace = trace
        layer = 0
        for layer in range(self.n_layers):
            if not alive[0].any() or not alive[1].any():
                layer -= 1  # nothing left to attend: the previous layer's state is final
                break
            trace["alive0"].append(int(alive[0].sum()))
            trace["alive1"].append(int(alive[1].sum()))
            feeds = {}
            for i in (0, 1):
                feeds[f"desc{i}"] = x[i]
                feeds[f"encoding{i}"] = enc[i]
                feeds[f"mask{i}"] = alive[i].astype(np.float32)[None]
            out = self.run(lc.layer_stage(layer), {n: feeds[n] for n in lc.LAYER_INPUTS})
            x = [out["out_desc0"], out["out_desc1"]]
            if layer == self.n_layers - 1:
                break
            threshold = self.thresholds[layer]
            token = None
            if early_exit:
                token = [out["token0"][0], out["token1"][0]]
                unsure = sum(int((token[i][alive[i]] < threshold).sum()) for i in (0, 1))
                confident = np.float32(1) - np.float32(unsure) / total
                trace["confident_fraction"].append(float(confident))
                if confident > depth:
                    break
            if not pruning:
                continue
            for i in (0, 1):
                if int(alive[i].sum()) <= min_points:
                    continue
                keep = out[f"matchability{i}"][0] > keep_above
                if token is not None:
                    keep |= token[i] <= threshold
                alive[i] = alive[i] & keep
                if width == "remove":
                    kept = np.flatnonzero(alive[i])
                    rows[i], alive[i] = rows[i][kept], alive[i][kept]
                    x[i], enc[i] = x[i][:, kept], enc[i][:, :, kept]
        stop = layer + 1
        alive_rows = [rows[i][alive[i]] for i in (0, 1)]
        pruned = (counts[0] - len(alive_rows[0]), counts[1] - len(alive_rows[1]))
        if not pruning:
            pruned = (0, 0)
        if len(alive_rows[0]) == 0 or len(alive_rows[1]) == 0:
            return Matches.empty(*counts), stop, pruned
        feeds = {f"desc{i}": x[i] for i in (0, 1)}
        feeds.update({f"mask{i}": alive[i].astype(np.float32)[None] for i in (0, 1)})
        la = self.run(lc.assign_stage(stop - 1), {n: feeds[n] for n in lc.ASSIGN_INPUTS})
        la = np.asarray(la[lc.LOG_ASSIGNMENT])[0]
        slot0 = np.r_[np.flatnonzero(alive[0]), la.shape[0] - 1]
        slot1 = np.r_[np.flatnonzero(alive[1]), la.shape[1] - 1]
        sub = la[np.ix_(slot0, slot1)]
        matches = matches_from_log_assignment(sub, cfg["filter_threshold"])
        return scatter_matches(matches, alive_rows[0], alive_rows[1], *counts), stop, pruned


def single_feeds(
    features0: Features, features1: Features, num_slots: int | None, input_dim: int
) -> tuple[dict[str, np.ndarray], list[np.ndarray | None]]:
    """Feeds of the single (non-adaptive) model and the slot selections."""
    feeds: dict[str, np.ndarray] = {}
    index = []
    for i, f in enumerate((features0, features1)):
        idx = select_slots(f.scores, num_slots)
        index.append(idx)
        f = f if idx is None else f.subset(idx)
        n = len(f)
        k = n if num_slots is None else num_slots
        kpts = np.zeros((1, k, 2), np.float32)
        kpts[0, :n] = f.keypoints
        desc = np.zeros((1, k, input_dim), np.float32)
        desc[0, :n] = f.descriptors.T
        mask = np.zeros((1, k), np.float32)
        mask[0, :n] = 1
        feeds.update(
            {
                f"keypoints{i}": kpts,
                f"descriptors{i}": desc,
                f"mask{i}": mask,
                f"image_size{i}": np.asarray(f.image_size, np.float32).reshape(1, 2),
            }
        )
    return {n: feeds[n] for n in lc.SINGLE_INPUTS}, index


def single_matches(
    log_assignment: np.ndarray,
    features0: Features,
    features1: Features,
    index: Sequence[np.ndarray | None],
    filter_threshold: float,
) -> Matches:
    """Matches from the single model's output over all keypoints."""
    la = np.asarray(log_assignment)[0]
    kept = [len(f) if idx is None else len(idx) for f, idx in zip((features0, features1), index)]
    rows = np.r_[np.arange(kept[0]), la.shape[0] - 1]
    cols = np.r_[np.arange(kept[1]), la.shape[1] - 1]
    sub = la[np.ix_(rows, cols)]
    return scatter_matches(
        matches_from_log_assignment(sub, filter_threshold),
        index[0],
        index[1],
        len(features0),
        len(features1),
    )


ModelRunner = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


def is_export_folder(spec: Any) -> bool:
    """True when ``spec`` names a folder written by ``spsg-ros export --lightglue``."""
    if spec is None:
        return False
    path = Path(str(spec)).expanduser()
    return path.is_dir() and (path / lc.MANIFEST).is_file()


class ExportedLightGlue:
    """The models of one LightGlue export folder, opened by a backend.

    ``open_model(path)`` returns a function running that model (feeds by name ->
    outputs by name). :meth:`match` runs the staged loop, or the single
    non-adaptive model for a config without early exit and pruning when the
    export holds one. ``num_slots``/``width``: see :class:`StagedLightGlue`; a
    static export always pads to its own K. ``check_files`` False: the folder holds
    converted models (``open_model`` finds them from the ONNX names).
    """

    def __init__(
        self,
        folder: str | Path,
        open_model: Callable[[Path], ModelRunner],
        num_slots: int | None | SlotPolicy = None,
        width: str | None = None,
        check_files: bool = True,
    ):
        self.folder = Path(folder)
        self.manifest = lc.read_manifest(self.folder, check_files)
        static = self.manifest.get("num_slots")
        self.num_slots = int(static) if static is not None else num_slots
        self.models = {
            name: open_model(self.folder / file) for name, file in self.manifest["stages"].items()
        }
        missing = [
            n
            for n in lc.stage_names(int(self.manifest["config"]["n_layers"]))
            if n not in self.models
        ]
        self.staged = None
        if self.models:
            if missing:
                raise lc.LightGlueModelError(f"{self.folder}: stages {missing} are missing")
            self.staged = StagedLightGlue(self.manifest, self._run, self.num_slots, width)
        self._open_model = open_model
        self._single: ModelRunner | None = None
        self._single_failed = not self.manifest.get("single")

    @property
    def single(self) -> ModelRunner | None:
        """The single non-adaptive model, opened on first use (None when the export has
        none, or when it cannot be opened and the stages serve instead)."""
        if self._single is None and not self._single_failed:
            try:
                self._single = self._open_model(self.folder / self.manifest["single"])
            except Exception as exc:  # noqa: BLE001 - any runtime's load error
                if self.staged is None:
                    raise
                self._single_failed = True
                log.info("%s: single model not usable (%s); the stages serve", self.folder, exc)
        return self._single

    @property
    def input_dim(self) -> int:
        return int(self.manifest["config"]["input_dim"])

    def _run(self, stage: str, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return self.models[stage](feeds)

    def match(
        self, features0: Features, features1: Features, cfg: Mapping[str, Any]
    ) -> LightGlueResult:
        for i, f in enumerate((features0, features1)):
            if len(f) and f.descriptors.shape[0] != self.input_dim:
                raise ValueError(
                    f"descriptors{i}: {f.descriptors.shape[0]}-D, but the LightGlue export "
                    f"{self.folder} takes {self.input_dim}-D descriptors"
                )
        adaptive = cfg["depth_confidence"] > 0 or cfg["width_confidence"] > 0
        if (not adaptive or self.staged is None) and self.single is not None:
            if adaptive:
                raise lc.LightGlueModelError(
                    f"{self.folder} holds only the non-adaptive single model: set "
                    "depth_confidence and width_confidence to -1, or export the stages"
                )
            return self.match_single(features0, features1, cfg)
        if self.staged is None:
            raise lc.LightGlueModelError(f"{self.folder}: no LightGlue model in the manifest")
        return self.staged.match(features0, features1, cfg)

    def match_single(
        self, features0: Features, features1: Features, cfg: Mapping[str, Any]
    ) -> LightGlueResult:
        n0, n1 = len(features0), len(features1)
        n_layers = int(self.manifest["config"]["n_layers"])
        if n0 == 0 or n1 == 0:
            return LightGlueResult(Matches.empty(n0, n1), 0, (0, 0), n_layers)
        slots = self.num_slots(n0, n1) if callable(self.num_slots) else self.num_slots
        feeds, index = single_feeds(features0, features1, slots, self.input_dim)
        la = self.single(feeds)[lc.LOG_ASSIGNMENT]
        matches = single_matches(la, features0, features1, index, cfg["filter_threshold"])
        return LightGlueResult(matches, n_layers, (0, 0), n_layers)


def locate_lightglue_export(
    weights: Any,
    weights_dir: Any,
    num_slots: int | None,
    fp16: bool,
    onnx_dir: str | Path | None,
    cache_dir: str | Path,
    export_missing: bool = True,
) -> Path:
    """The export folder a backend serves LightGlue ``weights`` from: ``weights``
    itself when it names an export folder; else ``<onnx_dir>/lightglue_k<K>[_fp16]``
    (``lightglue_dynamic`` for ``num_slots`` None); else the stages exported once
    into the model cache (keyed by the weights' sha256; no single model)."""
    from .base import BackendUnavailable
    from .model_cache import cache_folder, export_folder_once

    name = lc.folder_name(num_slots, fp16)
    if is_export_folder(weights):
        return Path(str(weights)).expanduser()
    if onnx_dir is not None and is_export_folder(Path(onnx_dir) / name):
        folder = Path(onnx_dir) / name
        check_export_source(folder, weights, weights_dir)
        return folder
    if onnx_dir is not None and not export_missing:
        slots = f"--ks {num_slots}" if num_slots is not None else "--dynamic-k"
        raise BackendUnavailable(
            f"no LightGlue export {name}/ in {onnx_dir}; run `spsg-ros export --only "
            f"lightglue --out {onnx_dir} {slots}{' --fp16' if fp16 else ''}`"
        )

    def export(target: Path) -> None:
        from ..networks.lightglue_export import export_lightglue

        export_lightglue(
            target, weights, weights_dir, num_slots=num_slots, fp16=fp16, single=False
        )

    cache = cache_folder(Path(cache_dir), "lightglue", weights, weights_dir, {})
    return export_folder_once(cache, name, "lightglue", export)


def check_export_source(folder: Path, weights: Any, weights_dir: Any) -> None:
    """Refuse an export folder made from other weights than the resolvable ``weights``
    (weights that cannot be found here are not checked: the export stands for them)."""
    from ..networks.weights import WeightError, resolve_weights, sha256

    try:
        path = resolve_weights(weights, "lightglue", weights_dir)
    except WeightError:
        return
    made_from = lc.read_manifest(folder).get("source_weights", {}).get("sha256")
    if made_from and made_from != sha256(path):
        raise lc.LightGlueModelError(
            f"{folder} was exported from other weights than {path} (sha256 {made_from[:12]}... "
            "differs); re-export it with `spsg-ros export --only lightglue`"
        )


class StagedLightGlueBackend:
    """``Backend.lightglue`` through the staged export (a mixin for the onnxruntime and
    OpenVINO backends): upstream's early exit and pruning decided here between the
    stage models. One :class:`ExportedLightGlue` per (weights, weights folder), made
    on first use by the backend's ``_open_lightglue_export(weights, weights_dir)``
    under its ``_lock`` and kept in its ``_lightglue`` dict; ``weights_dir`` defaults
    to the backend's own. ``lightglue_device_kind`` picks the pruning rule's device
    (see :func:`adaptive_config`)."""

    lightglue_device_kind = "cpu"

    def lightglue(self, features0, features1, config: Mapping[str, Any]):
        cfg = adaptive_config(config, self.lightglue_device_kind)
        weights_dir = cfg["weights_dir"] if cfg["weights_dir"] is not None else self.weights_dir
        key = (str(cfg["weights"]), str(weights_dir))
        with self._lock:
            models = self._lightglue.get(key)
            if models is None:
                models = self._open_lightglue_export(cfg["weights"], weights_dir)
                self._lightglue[key] = models
        return models.match(features0, features1, cfg)
