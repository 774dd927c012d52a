"""steerscope: find, optimise, extract, evaluate and ship steering vectors for Hugging Face causal LMs.

Example:
    >>> import steerscope as ss
    >>> m = ss.load_model()                                   # embedded SmolLM2-135M-Instruct
    >>> v = ss.SteeringVector({10: torch.randn(m.d_model)})
    >>> with ss.steer(m, v, scale=4.0):
    ...     print(ss.generate(m, ["Tell me a story."], max_new_tokens=20))

Everything is imported on first use (PEP 562), so ``import steerscope`` (and ``steerscope --help``) does not import
torch or transformers; ``ss.load_model`` and friends import them when first touched.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from .errors import SteerscopeError  # cheap, and what callers catch

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load lazily
    from .generate import generate
    from .models.load import SteerableModel, load_model, wrap_model
    from .steer import SteeringHandle, steer
    from .vector import SteeringVector, VectorSet, load_vector

# public name -> module that defines it (relative to this package)
_CORE: dict[str, str] = {
    "generate": ".generate",
    "SteerableModel": ".models.load",
    "load_model": ".models.load",
    "wrap_model": ".models.load",
    "SteeringHandle": ".steer",
    "steer": ".steer",
    "SteeringVector": ".vector",
    "VectorSet": ".vector",
    "load_vector": ".vector",
}
_EXPORTS: dict[str, str] = {
    "record_activations": ".hooks",
    "LayerReplay": ".layers",
    "prompt_lengths": ".inputs",
    # configs (one per method / evaluation; fields = the function's keywords)
    "MelboConfig": ".runs",
    "OrthoConfig": ".runs",
    "OneShotConfig": ".methods.one_shot",
    "LoraDiscoveryConfig": ".runs",
    "ContrastiveConfig": ".methods.contrastive",
    "SweepConfig": ".runs",
    "TransferConfig": ".runs",
    "LinearityConfig": ".runs",
    "ExportConfig": ".export.peft_lora",
    "KLConfig": ".evaluate.kl",
    # methods
    "melbo": ".runs",
    "MelboResult": ".methods.melbo",
    "melbo_ortho": ".runs",
    "OrthoResult": ".methods.ortho",
    "optimize_vector": ".methods.one_shot",
    "Example": ".methods.one_shot",
    "OptimizeResult": ".methods.one_shot",
    "discover_lora": ".runs",
    "LoraDiscoveryResult": ".methods.lora_discovery",
    "vector_from_lora": ".methods.from_lora",
    "contrastive_vector": ".methods.contrastive",
    # evaluation
    "kl_divergence": ".evaluate.kl",
    "evaluate_transfer": ".runs",
    "TransferResult": ".evaluate.transfer",
    "sweep": ".runs",
    "SweepResult": ".evaluate.sweep",
    "Judge": ".evaluate.judges",
    "LocalJudge": ".evaluate.judges",
    "HTTPJudge": ".evaluate.judges",
    "pairwise_compare": ".evaluate.judge_tasks",
    "describe_differences": ".evaluate.judge_tasks",
    "linearity_score": ".runs",
    "LinearityResult": ".evaluate.linearity",
    # export and report
    "export_lora": ".export.peft_lora",
    "export_gguf": ".export.gguf",
    "import_gguf": ".export.gguf",
    "write_report": ".report.html",
    # results and run directories
    "write_run": ".runs",
    "load_result": ".results",
}

__all__ = [
    "SteerableModel",
    "SteeringHandle",
    "SteeringVector",
    "SteerscopeError",
    "VectorSet",
    "__version__",
    "generate",
    "load_model",
    "load_vector",
    "steer",
    "wrap_model",
]
__all__ += list(_EXPORTS)

# `steer` and `generate` are also submodule names. Importing a submodule binds it as an attribute of the package,
# which would make `ss.steer` the module; the package class below keeps those two names for the functions.
_FUNCTIONS_NAMED_LIKE_MODULES = frozenset({"steer", "generate"})


def __getattr__(name: str):
    module = _CORE.get(name) or _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'steerscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        if name in _FUNCTIONS_NAMED_LIKE_MODULES and isinstance(value, types.ModuleType):
            return  # the submodule stays reachable as sys.modules["steerscope.<name>"]
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
