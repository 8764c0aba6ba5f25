"""The user-facing Python API: ``Predictor`` (load / create, predict, rank, fit, query)."""

from ledgformer.api.predictor import Predictor
from ledgformer.api.shipped import manifest as shipped_predictors

__all__ = ["Predictor", "shipped_predictors"]
