"""Predictors: LeDG-Former (``ledgformer.model.ledgformer``), featurisation and the model registry."""

from ledgformer.model.features import Batch, GraphTensors, HardwareBatch, TextTable, collate, graph_tensors
from ledgformer.model.registry import PredictorModel, create_model, list_models, register_model

__all__ = [
    "Batch", "GraphTensors", "HardwareBatch", "PredictorModel", "TextTable", "collate", "create_model",
    "graph_tensors", "list_models", "register_model",
]
