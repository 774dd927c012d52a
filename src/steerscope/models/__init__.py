from .architectures import ARCHITECTURES, ArchSpec
from .load import DEFAULT_MODEL_NAME, SteerableModel, load_model, wrap_model

__all__ = ["ARCHITECTURES", "DEFAULT_MODEL_NAME", "ArchSpec", "SteerableModel", "load_model", "wrap_model"]
