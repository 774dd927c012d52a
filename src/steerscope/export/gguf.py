"""llama.cpp control vectors: write and read the GGUF file that ``llama-cli/llama-server --control-vector`` loads.

File layout (what llama.cpp's loader reads, and what its ``cvector-generator`` and repeng write): GGUF key
``general.architecture = "controlvector"``, ``controlvector.model_hint`` (a string naming the model family;
informational, llama.cpp does not check it), ``controlvector.layer_count`` (int32, the number of direction
tensors), and one 1-D F32 tensor ``direction.N`` of length ``n_embd`` per steered layer.

Layer convention (checked against llama.cpp's ``src/llama-adapter.cpp`` and the model graphs): the loader
rejects ``direction.0`` and stores ``direction.N`` for N >= 1; every graph builder ends block ``il`` (0-based)
with ``cur = build_cvec(cur, il)``, which adds ``direction.il`` to that block's output. So ``direction.N`` is
added to the output of 0-based block N, which is exactly our ``resid_post[N]``, at every token. Hence:

* ``resid_post[L]`` -> ``direction.L`` (needs L >= 1: llama.cpp never steers block 0's output);
* ``resid_pre[L]`` (the input of block L, identical to the output of block L-1) -> ``direction.{L-1}``
  (needs L >= 2);
* ``mlp_out`` / ``attn_out`` cannot be expressed (llama.cpp only adds to block outputs) and are refused.

Import reads any file in that layout (llama.cpp's ``cvector-generator``, repeng, ours) into a ``resid_post``
SteeringVector with the same layer numbers. Files we write also carry ``steerscope.header`` (our JSON header)
so method and model metadata survive a round trip, and ``steerscope.checksums``: JSON
``{"algorithm": "sha256", "kv": <hex>, "tensors": {"direction.N": <hex of the F32 little-endian bytes>}}`` where
``kv`` hashes the sorted-key JSON of ``{"header", "layer_count", "model_hint"}`` as written. Import verifies them
when present and refuses a mismatch; other readers ignore unknown keys. Import is total: a corrupt file raises a
``VectorFileError``, never another exception.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import InvalidArgumentError, SteerscopeError, VectorFileError
from ..vector import SteeringVector, _sha256, atomic_write

log = logging.getLogger(__name__)

ARCHITECTURE = "controlvector"
KEY_MODEL_HINT = "controlvector.model_hint"
KEY_LAYER_COUNT = "controlvector.layer_count"
KEY_HEADER = "steerscope.header"
KEY_CHECKSUMS = "steerscope.checksums"
TENSOR_PREFIX = "direction."


def gguf_layers(vector: SteeringVector) -> dict[int, int]:
    """``{our layer: llama.cpp direction index}`` for a vector, or a clear error when llama.cpp cannot express it.

    Example:
        >>> gguf_layers(SteeringVector({10: torch.zeros(576)}))                      # resid_post[10]
        {10: 10}
        >>> gguf_layers(SteeringVector({10: torch.zeros(576)}, site="resid_pre"))    # = resid_post[9]
        {10: 9}
    """
    if vector.site not in ("resid_post", "resid_pre"):
        raise InvalidArgumentError(f"llama.cpp control vectors are added to block outputs only; a vector at site "
                                   f"{vector.site!r} cannot be expressed. Export a resid_post/resid_pre vector, or "
                                   "use `export_lora` (mlp_out/attn_out map to a LoRA on the output projection)")
    shift = 1 if vector.site == "resid_pre" else 0
    layer = vector.layers[0]  # the lowest: layers are sorted
    if layer - shift < 1:
        where = f"resid_pre[{layer}] (= resid_post[{layer - 1}])" if shift else f"resid_post[{layer}]"
        raise InvalidArgumentError(
            f"llama.cpp cannot steer {where}: its loader has no direction.0 and never adds to the output of "
            "block 0 (or to the embeddings). Drop that layer or move the vector to resid_post[1] or later")
    return {layer: layer - shift for layer in vector.layers}


def export_gguf(
    vector: SteeringVector, path: str | os.PathLike, *, scale: float = 1.0, model_hint: str | None = None
) -> Path:
    """Write ``scale * vector`` as a llama.cpp control-vector GGUF (atomic write).

    Args:
        vector: a ``resid_post`` or ``resid_pre`` vector (see the module docstring for the layer mapping).
        path: output ``.gguf`` file.
        scale: baked into the tensors; llama.cpp multiplies again by ``--control-vector-scaled FILE S`` (default 1).
        model_hint: ``controlvector.model_hint``; default the vector's ``model_type`` (e.g. "llama").

    Returns:
        The written path.

    Example:
        >>> ss.export_gguf(v, "happy.gguf", scale=4.0)
        >>> # llama-cli -m model.gguf --control-vector happy.gguf
    """
    import gguf

    scale = float(scale)
    if not math.isfinite(scale):
        raise InvalidArgumentError(f"scale must be a finite number, got {scale}")
    mapping = gguf_layers(vector)
    hint = model_hint or vector.meta.model_type or "unknown"
    header = {**vector.header(), "gguf_scale": scale, "gguf_site_mapping": {str(k): v for k, v in mapping.items()}}
    tensors = {}
    for layer, index in mapping.items():  # vector layers are sorted, so the indices are too
        data = (vector.directions[layer].detach().to("cpu", torch.float64) * scale).to(torch.float32)
        if not torch.isfinite(data).all():
            raise InvalidArgumentError(f"layer {layer} of the vector holds NaN or inf; nothing was written")
        tensors[f"{TENSOR_PREFIX}{index}"] = data.numpy()
    header_text = json.dumps(header, sort_keys=True)
    checksums = {"algorithm": "sha256", "kv": _kv_digest(hint, len(tensors), header_text),
                 "tensors": {name: _sha256(array.astype("<f4").tobytes()) for name, array in tensors.items()}}

    def write(tmp: str) -> None:
        writer = gguf.GGUFWriter(tmp, ARCHITECTURE)
        writer.add_string(KEY_MODEL_HINT, hint)
        writer.add_int32(KEY_LAYER_COUNT, len(tensors))
        writer.add_string(KEY_HEADER, header_text)
        writer.add_string(KEY_CHECKSUMS, json.dumps(checksums, sort_keys=True))
        for name, array in tensors.items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    out = atomic_write(path, write)
    log.info("wrote %s: %d direction tensors (%s)", out, len(tensors), ", ".join(tensors))
    return out


def _kv_digest(hint, layer_count, header_text) -> str:
    """SHA-256 of the steerscope-relevant key/values, as sorted-key JSON."""
    return _sha256(json.dumps({"header": header_text, "layer_count": layer_count, "model_hint": hint},
                              sort_keys=True).encode())


def _field_value(reader, key: str, path: Path):
    """A scalar or string field's value, or None when absent; a field that cannot be decoded is a VectorFileError."""
    field = reader.get_field(key)
    if field is None:
        return None
    try:
        return field.contents()
    except (UnicodeDecodeError, ValueError, IndexError, TypeError) as exc:
        raise VectorFileError(f"{path}: GGUF field {key!r} cannot be decoded ({type(exc).__name__}: {exc}); "
                              "the file is corrupt") from None


def import_gguf(path: str | os.PathLike, *, model_type: str | None = None) -> SteeringVector:
    """Read a llama.cpp control-vector GGUF (ours, llama.cpp's ``cvector-generator``, repeng's) as a SteeringVector.

    ``direction.N`` becomes ``resid_post[N]`` and checksums written by ``export_gguf`` are verified (module
    docstring); values are taken as stored (any scale baked in at export stays baked in).

    llama.cpp's ``cvector-generator`` convention: it measures the activation difference at the output of block
    ``il`` and writes it as ``direction.{il+1}``, so llama.cpp applies it one block *later* than where it was
    measured. The import keeps llama.cpp's placement (steering with the imported vector reproduces what
    ``llama-cli --control-vector`` does); to compare it with a steerscope vector measured at ``resid_post[L]``
    (e.g. ``contrastive_vector(..., layers=[L])``), use the imported layer L+1.

    Args:
        path: the ``.gguf`` control vector.
        model_type: recorded on the vector; default the file's ``controlvector.model_hint``.

    Raises:
        VectorFileError: the file is missing, corrupt, fails its checksums or is not a control vector.

    Example:
        >>> v = ss.import_gguf("happy.gguf")
        >>> v.site, v.layers
        ('resid_post', [10])
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise VectorFileError(f"GGUF file {path} does not exist; check the path")
        return _import(path, model_type)
    except SteerscopeError:
        raise
    except Exception as exc:  # a total loader: a corrupt file is a VectorFileError, whatever it trips
        raise VectorFileError(f"{path} is a corrupt GGUF file ({type(exc).__name__}: {exc}); re-create it") from exc


def _import(path: Path, model_type: str | None) -> SteeringVector:
    from gguf import GGMLQuantizationType, GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError/struct/Unicode errors for garbled files
        raise VectorFileError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc}); it may be "
                              "truncated or corrupt") from exc
    arch = _field_value(reader, "general.architecture", path)
    if arch is not None and arch != ARCHITECTURE:
        raise VectorFileError(f"{path} is a GGUF file of architecture {str(arch)[:60]!r}, not a control vector "
                              f"(expected {ARCHITECTURE!r}); load models with ss.load_model(path) instead")
    _check_extent(reader, path)
    hint = _field_value(reader, KEY_MODEL_HINT, path)
    declared = _field_value(reader, KEY_LAYER_COUNT, path)
    raw = _field_value(reader, KEY_HEADER, path)
    int_count = isinstance(declared, (int, np.integer)) and not isinstance(declared, bool)
    layer_count = int(declared) if int_count else declared
    # the recorded tensor checksums, after verifying the key/value checksum (None for files without them)
    sums = _field_value(reader, KEY_CHECKSUMS, path)
    if sums is not None:
        sums = _json_or_none(sums)
        if (not isinstance(sums, dict) or sums.get("algorithm") != "sha256"
                or not isinstance(sums.get("tensors"), dict) or not isinstance(sums.get("kv"), str)):
            raise VectorFileError(f"{path}: the {KEY_CHECKSUMS} field is corrupt; the file cannot be verified")
        if sums["kv"] != _kv_digest(hint, layer_count, raw):
            raise VectorFileError(f"{path}: the steerscope metadata does not match its SHA-256 checksum; the file "
                                  "is corrupt (re-export it)")
        sums = sums["tensors"]
    if hint is not None and not isinstance(hint, str):
        raise VectorFileError(f"{path}: {KEY_MODEL_HINT} is not a string")
    if declared is not None and not int_count:
        raise VectorFileError(f"{path}: {KEY_LAYER_COUNT} is not an integer")
    directions: dict[int, torch.Tensor] = {}
    for tensor in reader.tensors:
        name = tensor.name
        if not name.startswith(TENSOR_PREFIX):
            log.warning("%s: ignoring tensor %r (not a direction.N tensor)", path, name)
            continue
        suffix = name[len(TENSOR_PREFIX):]
        index = int(suffix) if suffix.isascii() and suffix.isdigit() and len(suffix) <= 6 else 0
        if index < 1:
            raise VectorFileError(f"{path}: tensor {name!r} is not direction.N with N >= 1 (llama.cpp rejects it)")
        f32 = tensor.tensor_type == GGMLQuantizationType.F32  # only F32 tensors have a checksum
        if not f32 and tensor.tensor_type != GGMLQuantizationType.F16:
            raise VectorFileError(f"{path}: tensor {name} has type {tensor.tensor_type.name}; expected F32")
        stored = np.asarray(tensor.data)
        if sums is not None and sums.get(name) != (_sha256(stored.astype("<f4").tobytes()) if f32 else None):
            raise VectorFileError(f"{path}: tensor {name} does not match its SHA-256 checksum; the file is "
                                  "corrupt (re-export it)")
        data = stored.astype(np.float32).reshape(-1)
        if data.size != int(np.prod(tensor.shape)) or sum(s != 1 for s in tensor.shape) > 1:
            raise VectorFileError(f"{path}: tensor {name} is not 1-D (shape {list(tensor.shape)})")
        if index in directions:
            raise VectorFileError(f"{path}: tensor {name} appears twice")
        directions[index] = torch.from_numpy(data)  # astype made a copy: no view of the file
    if sums is not None and set(sums) != {t.name for t in reader.tensors}:
        raise VectorFileError(f"{path}: the tensors do not match the recorded checksums (some are missing or "
                              "extra); the file is corrupt")
    if not directions:
        raise VectorFileError(f"{path} holds no direction.N tensors; it is not a control vector")
    widths = {t.numel() for t in directions.values()}
    if len(widths) != 1 or 0 in widths:
        raise VectorFileError(f"{path}: direction tensors have different or zero widths {sorted(widths)}")
    for layer, t in directions.items():
        if not torch.isfinite(t).all():
            raise VectorFileError(f"{path}: direction.{layer} contains NaN or inf")
    if layer_count is not None and layer_count != len(directions):
        # llama.cpp itself ignores layer_count; other tools write n_layers here, so this is informational
        log.info("%s: controlvector.layer_count is %s but the file has %d direction tensors", path, declared,
                 len(directions))
    header = _json_or_none(raw) if raw else {}
    if not isinstance(header, dict):
        if sums is not None:
            raise VectorFileError(f"{path}: the {KEY_HEADER} field is corrupt")
        log.warning("%s: ignoring an unreadable %s field", path, KEY_HEADER)
        header = {}
    text_keys = ("method", "site", "model_type", "model_name", "notes")
    header = {k: v for k, v in header.items() if k in (*text_keys, "gguf_scale", "method_config")}
    for key in text_keys:
        if header.get(key) is not None and not isinstance(header[key], str):
            log.warning("%s: ignoring a non-string %r in %s", path, key, KEY_HEADER)
            header.pop(key)
    config = {"source": str(path), "model_hint": hint, "layer_count": layer_count}
    if header:
        config.update(original_method=header.get("method"), original_site=header.get("site"),
                      scale=header.get("gguf_scale"), original_method_config=header.get("method_config"))
    return SteeringVector(directions, "resid_post", model_type=model_type or header.get("model_type") or hint,
                          model_name=header.get("model_name"), method="gguf_import", method_config=config,
                          notes=header.get("notes") or "")


def _check_extent(reader, path: Path) -> None:
    """The tensors must end where the file ends (up to alignment padding): an edited tensor count shifts the data
    section, and the tensors would then be read from the wrong bytes."""
    size = path.stat().st_size
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=int(reader.data_offset))
    alignment = int(getattr(reader, "alignment", 32) or 32)
    if end > size or size - end >= max(alignment, 1):
        raise VectorFileError(f"{path}: the tensors end at byte {end} but the file has {size} bytes; the tensor "
                              "count or offsets in the GGUF header are corrupt")


def _json_or_none(text):
    """The JSON value of a string field, or None when it is not a string or not valid JSON."""
    try:
        return json.loads(text) if isinstance(text, str) else None
    except (RecursionError, ValueError):  # json.JSONDecodeError is a ValueError
        return None
