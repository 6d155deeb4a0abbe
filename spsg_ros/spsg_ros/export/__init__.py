"""Exported models: the ONNX I/O contract and sidecars (:mod:`.contract`), the host
side of the static masked SuperGlue (:mod:`.static_superglue`, numpy only) and
the exporter (:mod:`.onnx_export`, needs torch + onnx; imported lazily)."""
from . import contract
from .contract import ModelContractError, check_superglue_model, check_superpoint_model, read_sidecar

__all__ = ["contract", "ModelContractError", "check_superglue_model", "check_superpoint_model",
           "read_sidecar"]
