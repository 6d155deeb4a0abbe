"""Inference backends behind one interface (see :mod:`.base`)."""

from .base import (
    Backend,
    BackendOptionError,
    BackendUnavailable,
    available_backend_names,
    backend_option_names,
    create_backend,
    register_backend,
)

_BUILTIN = ("torch_backend", "onnxruntime_backend", "openvino_backend", "ascend", "auto")


def load_builtin_backends() -> None:
    """Register the built-in backends (modules import their runtimes lazily)."""
    import importlib

    for module in _BUILTIN:
        importlib.import_module(f"{__name__}.{module}")


__all__ = [
    "Backend",
    "BackendOptionError",
    "BackendUnavailable",
    "available_backend_names",
    "backend_option_names",
    "create_backend",
    "register_backend",
    "load_builtin_backends",
]
