"""CgriNet and its registry of named variants.

``create_model(name, **overrides)`` / ``list_models()`` build the variants; ``predict`` runs a
model on an image of any size; ``save_weights`` / ``load_model`` store models as safetensors with
the construction arguments in the metadata.
"""

from irstd.models.cgrinet import (
    CgriNet,
    count_parameters,
    create_model,
    list_models,
    model_description,
    model_summary,
)
from irstd.models.predict import predict, predict_batch
from irstd.models.weights import load_backbone_weights, load_model, read_weights_metadata, save_weights

__all__ = [
    "CgriNet",
    "create_model",
    "list_models",
    "model_description",
    "count_parameters",
    "model_summary",
    "predict",
    "predict_batch",
    "save_weights",
    "load_model",
    "read_weights_metadata",
    "load_backbone_weights",
]
