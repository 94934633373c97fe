"""The networks: one registry of architectures and variants, model files, inference.

``create_model(name, **overrides)`` / ``list_models()`` build the registered networks
(:mod:`irstd.models.registry`: CgriNet's variants and the field's networks); ``predict`` runs a
model on an image of any size; ``save_weights`` / ``load_model`` store any of them as safetensors
with the construction arguments in the metadata; :mod:`irstd.models.packaged` finds the weights
shipped with irstd. Names are imported on first use (PEP 562), so the registry and the packaged
weights can be looked up without importing PyTorch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SegmentationNet": "irstd.models.base",
    "count_parameters": "irstd.models.base",
    "CgriNet": "irstd.models.cgrinet",
    "ModelSpec": "irstd.models.registry",
    "MODELS": "irstd.models.registry",
    "create_model": "irstd.models.registry",
    "get_spec": "irstd.models.registry",
    "list_models": "irstd.models.registry",
    "families": "irstd.models.registry",
    "model_description": "irstd.models.registry",
    "model_summary": "irstd.models.registry",
    "predict": "irstd.models.inference",
    "predict_batch": "irstd.models.inference",
    "save_weights": "irstd.models.weights",
    "load_model": "irstd.models.weights",
    "read_weights_metadata": "irstd.model_file",
    "load_backbone_weights": "irstd.models.backbone",
    "default_weights": "irstd.models.packaged",
    "packaged_weights": "irstd.models.packaged",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'irstd.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
