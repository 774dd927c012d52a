from .architectures import ARCHITECTURES, ArchSpec
from .load import DEFAULT_MODEL_NAME, SteerableModel, load_model, wrap_model

__all__ = ["ARCHITECTURES", "ArchSpec", "DEFAULT_MODEL_NAME", "SteerableModel", "load_model", "wrap_model"]
