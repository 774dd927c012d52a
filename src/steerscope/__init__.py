"""steerscope: find, optimise, extract, evaluate and ship steering vectors for Hugging Face causal LMs.

Example:
    >>> import steerscope as ss
    >>> m = ss.load_model()                                   # embedded SmolLM2-135M-Instruct
    >>> v = ss.SteeringVector({10: torch.randn(m.d_model)})
    >>> with ss.steer(m, v, scale=4.0):
    ...     print(ss.generate(m, ["Tell me a story."], max_new_tokens=20))

The core (models, vectors, steering, generation) is imported eagerly; methods, evaluation, export and report
are imported on first use (PEP 562) so importing steerscope stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Eager core. `steer` and `generate` are also submodule names: binding the functions after the submodules load
# keeps `ss.steer` / `ss.generate` the functions.
from .errors import SteerscopeError
from .generate import generate
from .models.load import SteerableModel, load_model, wrap_model
from .steer import SteeringHandle, steer
from .vector import SteeringVector, VectorSet, load_vector

# public name -> module that defines it (relative to this package)
_EXPORTS: dict[str, str] = {
    "record_activations": ".hooks",
    "LayerReplay": ".layers",
    "prompt_lengths": ".inputs",
    # methods
    "melbo": ".methods.melbo",
    "MelboResult": ".methods.melbo",
    "melbo_ortho": ".methods.ortho",
    "OrthoResult": ".methods.ortho",
    "optimize_vector": ".methods.one_shot",
    "Example": ".methods.one_shot",
    "OptimizeResult": ".methods.one_shot",
    "discover_lora": ".methods.lora_discovery",
    "LoraDiscoveryResult": ".methods.lora_discovery",
    "vector_from_lora": ".methods.from_lora",
    "contrastive_vector": ".methods.contrastive",
    # evaluation
    "kl_divergence": ".evaluate.kl",
    "evaluate_transfer": ".evaluate.transfer",
    "TransferResult": ".evaluate.transfer",
    "sweep": ".evaluate.sweep",
    "SweepResult": ".evaluate.sweep",
    "Judge": ".evaluate.judges",
    "LocalJudge": ".evaluate.judges",
    "HTTPJudge": ".evaluate.judges",
    "pairwise_compare": ".evaluate.judge_tasks",
    "describe_differences": ".evaluate.judge_tasks",
    "linearity_score": ".evaluate.linearity",
    "LinearityResult": ".evaluate.linearity",
    # export and report
    "export_lora": ".export.peft_lora",
    "export_gguf": ".export.gguf",
    "import_gguf": ".export.gguf",
    "write_report": ".report.html",
}

__all__ = [
    "__version__",
    "SteerscopeError",
    "SteerableModel",
    "SteeringHandle",
    "SteeringVector",
    "VectorSet",
    "generate",
    "load_model",
    "load_vector",
    "steer",
    "wrap_model",
    *_EXPORTS,
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'steerscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
