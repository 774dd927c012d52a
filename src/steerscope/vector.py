"""SteeringVector and VectorSet: tensors plus metadata, algebra, and the version-1 file format.

File format (one ``.safetensors`` file, no pickle): tensors ``layers.{L}`` of shape ``(d_model,)`` for a
SteeringVector or ``(n, d_model)`` for a VectorSet; ``__metadata__["steerscope"]`` is a JSON header with
``format_version``, ``steerscope_version``, ``site``, ``layers``, ``d_model``, ``model_type``, ``model_name``,
``method``, ``method_config``, ``created_at``, ``notes``, and (added within version 1) ``checksums``:
``{"algorithm": "sha256", "header": <hex of the sorted-key JSON of the header without "checksums">,
"tensors": {"layers.L": <hex of the tensor's bytes as stored, fp32 little-endian>}}``. Loading verifies them and
refuses a mismatch; files written before checksums load with an ``UnverifiedVectorFileWarning``. Writes are atomic
(temp file + rename). Loading is total: any corrupt file raises a ``SteerscopeError``, never anything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor

from .errors import (
    InvalidArgumentError,
    ShapeMismatchError,
    SteerscopeError,
    UnverifiedVectorFileWarning,
    VectorFileError,
)
from .sites import check_site

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_HEADER_KEY = "steerscope"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    from . import __version__

    return __version__


@dataclass(frozen=True)
class _Meta:
    site: str = "resid_post"
    model_type: str | None = None
    model_name: str | None = None
    method: str | None = None
    method_config: dict = field(default_factory=dict)
    created_at: str = field(default_factory=_now)
    notes: str = ""


def _header(meta: _Meta, layers: list[int], d_model: int, kind: str, n: int | None) -> dict:
    header = {
        "format_version": FORMAT_VERSION,
        "steerscope_version": _version(),
        "kind": kind,
        "site": meta.site,
        "layers": layers,
        "d_model": d_model,
        "model_type": meta.model_type,
        "model_name": meta.model_name,
        "method": meta.method,
        "method_config": meta.method_config,
        "created_at": meta.created_at,
        "notes": meta.notes,
    }
    if n is not None:
        header["num_vectors"] = n
    return header


def _umask() -> int:
    """The process umask (read without changing it where /proc allows; else set-and-restore)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` then rename over ``path``, so a crash never leaves a half-written file.

    The file gets the usual permissions (``0o666`` minus the umask), not the owner-only mode of a temp file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _header_digest(header: dict) -> str:
    """SHA-256 of the header's canonical JSON (sorted keys) without its ``checksums`` entry."""
    body = {k: v for k, v in header.items() if k != "checksums"}
    return _sha256(json.dumps(body, sort_keys=True).encode())


def _save(path, tensors: dict[int, Tensor], header: dict) -> Path:
    from safetensors.torch import save_file

    payload = {f"layers.{layer}": t.detach().to("cpu", torch.float32).contiguous() for layer, t in tensors.items()}
    header = {k: v for k, v in header.items() if k != "checksums"}
    header["checksums"] = {
        "algorithm": "sha256",
        "header": _header_digest(header),
        "tensors": {name: _sha256(_le_bytes(t)) for name, t in payload.items()},
    }
    metadata = {_HEADER_KEY: json.dumps(header, sort_keys=True)}
    return atomic_write(path, lambda tmp: save_file(payload, tmp, metadata=metadata))


def _le_bytes(t: Tensor) -> bytes:
    """The fp32 little-endian bytes of a tensor, exactly as safetensors stores them."""
    return t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False).tobytes()


_DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_safetensors(path: Path, data: bytes) -> tuple[dict[str, Tensor], dict[str, bytes], dict]:
    """Split a safetensors file into tensors, their raw bytes and ``__metadata__``, checking every field."""
    def bad(why: str) -> VectorFileError:
        return VectorFileError(f"{path} is not a readable safetensors file ({why}); it may be truncated or corrupt")

    if len(data) < 8:
        raise bad(f"only {len(data)} bytes")
    n = int.from_bytes(data[:8], "little")
    if n > min(_MAX_HEADER, len(data) - 8):
        raise bad(f"header length {n} exceeds the file size {len(data)}")
    try:
        table = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise bad(f"header is not UTF-8 JSON: {exc}") from None
    if not isinstance(table, dict):
        raise bad("header is not a JSON object")
    body = data[8 + n:]
    metadata = table.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ is not an object of strings")
    tensors: dict[str, Tensor] = {}
    raw: dict[str, bytes] = {}
    for name, info in table.items():
        if not isinstance(info, dict):
            raise bad(f"entry {name!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPES:
            raise bad(f"tensor {name!r} has dtype {dtype!r}; vectors are stored as F32")
        if not isinstance(shape, list) or not all(_is_int(s) and 0 <= s < 2**40 for s in shape) or len(shape) > 8:
            raise bad(f"tensor {name!r} has an invalid shape {str(shape)[:80]}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= len(body)):
            raise bad(f"tensor {name!r} has invalid data offsets {str(offsets)[:80]} (data section: {len(body)} bytes)")
        torch_dtype, size = _DTYPES[dtype]
        count = math.prod(shape)
        if offsets[1] - offsets[0] != count * size:
            raise bad(f"tensor {name!r} has {offsets[1] - offsets[0]} bytes but shape {shape} needs {count * size}")
        chunk = body[offsets[0]:offsets[1]]
        raw[name] = chunk
        # cpu-ok: a tensor read from file bytes; vectors are kept on the host in fp32
        t = torch.frombuffer(bytearray(chunk), dtype=torch_dtype) if count else torch.zeros(0, dtype=torch_dtype)
        tensors[name] = t.reshape(shape).to(torch.float32)
    return tensors, raw, metadata


def _check_header(path: Path, header) -> dict:
    """Type-check every header field a reader relies on; return the header."""
    if not isinstance(header, dict):
        raise VectorFileError(f"{path} has a corrupt steerscope header (a JSON {type(header).__name__}, not an object)")
    version = header.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        raise VectorFileError(
            f"{path} has format_version {str(version)[:40]}; this steerscope reads version {FORMAT_VERSION} "
            "(upgrade steerscope, or the file is corrupt)"
        )
    layers = header.get("layers")
    if not isinstance(layers, list) or not all(_is_int(x) and 0 <= x < 100_000 for x in layers):
        raise VectorFileError(f"{path} has a corrupt header: 'layers' must be a list of layer numbers, "
                              f"got {str(layers)[:80]}")
    if len(set(layers)) != len(layers):
        raise VectorFileError(f"{path} has a corrupt header: 'layers' lists a layer twice ({layers})")
    d_model = header.get("d_model")
    if not _is_int(d_model) or d_model < 1:
        raise VectorFileError(f"{path} has a corrupt header: 'd_model' must be a positive integer, "
                              f"got {str(d_model)[:40]}")
    for key in ("site", "kind", "model_type", "model_name", "method", "created_at", "notes", "steerscope_version"):
        if header.get(key) is not None and not isinstance(header[key], str):
            raise VectorFileError(f"{path} has a corrupt header: {key!r} must be a string, "
                                  f"got {type(header[key]).__name__}")
    if header.get("kind") not in (None, "vector", "set"):
        raise VectorFileError(f"{path} has a corrupt header: kind {header['kind'][:40]!r} is not 'vector' or 'set'")
    if header.get("method_config") is not None and not isinstance(header["method_config"], dict):
        raise VectorFileError(f"{path} has a corrupt header: 'method_config' must be an object")
    if header.get("num_vectors") is not None and not _is_int(header["num_vectors"]):
        raise VectorFileError(f"{path} has a corrupt header: 'num_vectors' must be an integer")
    return header


def _verify_checksums(path: Path, header: dict, raw: dict[str, bytes]) -> None:
    """Compare the recorded SHA-256 of the header and of every tensor; warn for files written before checksums."""
    sums = header.get("checksums")
    if sums is None:
        message = (f"{path} has no checksums (written by an older steerscope); its values cannot be verified. "
                   "Re-save it to add them")
        log.debug(message)
        warnings.warn(message, UnverifiedVectorFileWarning, stacklevel=4)
        return
    tensor_sums = sums.get("tensors") if isinstance(sums, dict) else None
    if (not isinstance(sums, dict) or sums.get("algorithm") != "sha256" or not isinstance(tensor_sums, dict)
            or not isinstance(sums.get("header"), str)):
        raise VectorFileError(f"{path} has a corrupt 'checksums' entry in its header; the file cannot be verified")
    if sums["header"] != _header_digest(header):
        raise VectorFileError(f"{path}: the header does not match its SHA-256 checksum; the file is corrupt "
                              "(re-create or re-download it)")
    if set(tensor_sums) != set(raw):
        missing = sorted(set(raw) ^ set(tensor_sums))
        raise VectorFileError(f"{path}: tensors {missing[:5]} are not covered by the recorded checksums; the file "
                              "is corrupt")
    for name, chunk in raw.items():
        if tensor_sums[name] != _sha256(chunk):
            raise VectorFileError(f"{path}: tensor {name} does not match its SHA-256 checksum; the file is corrupt "
                                  "(re-create or re-download it)")


def _load(path) -> tuple[dict[int, Tensor], dict]:
    """Read and fully check a vector file. Any problem is a ``VectorFileError`` (or ``ShapeMismatchError``)."""
    path = Path(path)
    try:
        if not path.is_file():
            what = "is not a regular file" if path.exists() else "does not exist"
            raise VectorFileError(f"vector file {path} {what}; check the path")
        data = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise VectorFileError(f"cannot read vector file {path} ({exc})") from None
    try:
        return _load_bytes(path, data)
    except SteerscopeError:
        raise
    except Exception as exc:  # a total loader: whatever a corrupt file trips, the caller sees a VectorFileError
        raise VectorFileError(f"{path} is corrupt ({type(exc).__name__}: {exc}); re-create it") from exc


def _load_bytes(path: Path, data: bytes) -> tuple[dict[int, Tensor], dict]:
    tensors, raw, metadata = _parse_safetensors(path, data)
    text = metadata.get(_HEADER_KEY)
    if text is None:
        raise VectorFileError(f"{path} is a safetensors file but not a steerscope vector (no '{_HEADER_KEY}' header)")
    try:
        header = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise VectorFileError(f"{path} has a corrupt steerscope header: {str(exc)[:200]}") from None
    header = _check_header(path, header)
    _verify_checksums(path, header, raw)
    d_model = header["d_model"]
    directions: dict[int, Tensor] = {}
    ndims = set()
    for layer in header["layers"]:
        name = f"layers.{layer}"
        if name not in tensors:
            raise VectorFileError(f"{path} lists layer {layer} in its header but has no tensor {name!r}")
        t = tensors[name]
        if t.ndim not in (1, 2) or t.shape[-1] != d_model:
            raise ShapeMismatchError(f"{path}: tensor {name} has shape {list(t.shape)} but the header says d_model "
                                     f"{d_model} (expected ({d_model},) or (n, {d_model})); the file is corrupt")
        if t.ndim == 2 and t.shape[0] < 1:
            raise VectorFileError(f"{path}: tensor {name} holds no vectors")
        if not torch.isfinite(t).all():
            raise VectorFileError(f"{path}: tensor {name} contains NaN or inf")
        ndims.add(tuple(t.shape))
        directions[int(layer)] = t
    if not directions:
        raise VectorFileError(f"{path} holds no layers")
    if len(ndims) != 1:
        raise VectorFileError(f"{path}: layers hold tensors of different shapes {sorted(ndims)}; the file is corrupt")
    n = header.get("num_vectors")
    shape = next(iter(ndims))
    if n is not None and (len(shape) != 2 or shape[0] != n):
        raise VectorFileError(f"{path}: the header says {n} vectors but the tensors have shape {list(shape)}")
    return directions, header


def _meta_from_header(header: dict) -> _Meta:
    return _Meta(
        site=header.get("site") or "resid_post",
        model_type=header.get("model_type"),
        model_name=header.get("model_name"),
        method=header.get("method"),
        method_config=header.get("method_config") or {},
        created_at=header.get("created_at") or _now(),
        notes=header.get("notes") or "",
    )


class SteeringVector:
    """Directions at one or more layers of one site: ``{layer: (d_model,)}``.

    Immutable in practice: algebra returns new vectors. Metadata travels with it into files.

    Example:
        >>> v = SteeringVector({10: torch.randn(576)}, site="resid_post")
        >>> w = (2 * v + v).normalized()
        >>> w.save("v.safetensors"); SteeringVector.load("v.safetensors").layers
        [10]
    """

    def __init__(
        self,
        directions: dict[int, Tensor],
        site: str = "resid_post",
        *,
        model_type: str | None = None,
        model_name: str | None = None,
        method: str | None = None,
        method_config: dict | None = None,
        notes: str = "",
        created_at: str | None = None,
    ) -> None:
        if not directions:
            raise InvalidArgumentError("a SteeringVector needs at least one layer")
        widths = {int(t.shape[-1]) for t in directions.values()}
        if len(widths) != 1 or any(t.ndim != 1 for t in directions.values()):
            raise ShapeMismatchError(f"every layer's direction must be 1-D with one width; got shapes "
                                     f"{[tuple(t.shape) for t in directions.values()]}")
        self.directions = {int(k): v for k, v in sorted(directions.items())}
        self.meta = _Meta(
            site=check_site(site),
            model_type=model_type,
            model_name=model_name,
            method=method,
            method_config=dict(method_config or {}),
            notes=notes,
            created_at=created_at or _now(),
        )

    # -- properties -------------------------------------------------------------------------------------------
    @property
    def site(self) -> str:
        return self.meta.site

    @property
    def layers(self) -> list[int]:
        return list(self.directions)

    @property
    def d_model(self) -> int:
        return int(next(iter(self.directions.values())).shape[-1])

    @property
    def method(self) -> str | None:
        return self.meta.method

    def norm(self) -> float:
        """Euclidean norm over all layers together."""
        return math.sqrt(sum(float(t.double().pow(2).sum()) for t in self.directions.values()))

    def layer_norms(self) -> dict[int, float]:
        return {layer: float(t.norm()) for layer, t in self.directions.items()}

    def __repr__(self) -> str:
        return (f"SteeringVector(site={self.site!r}, layers={self.layers}, d_model={self.d_model}, "
                f"norm={self.norm():.3g}, method={self.method!r})")

    # -- algebra ----------------------------------------------------------------------------------------------
    def _with(self, directions: dict[int, Tensor]) -> SteeringVector:
        out = object.__new__(SteeringVector)
        out.directions = dict(sorted(directions.items()))
        out.meta = self.meta
        return out

    def map(self, fn) -> SteeringVector:
        return self._with({layer: fn(t) for layer, t in self.directions.items()})

    def __mul__(self, scale: float) -> SteeringVector:
        if not math.isfinite(float(scale)):
            raise InvalidArgumentError(f"scale must be a finite number, got {scale}")
        return self.map(lambda t: t * float(scale))

    __rmul__ = __mul__

    def __truediv__(self, scale: float) -> SteeringVector:
        return self * (1.0 / float(scale))

    def __neg__(self) -> SteeringVector:
        return self * -1.0

    def __add__(self, other: SteeringVector) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        if other.site != self.site:
            raise InvalidArgumentError(f"cannot add vectors at different sites ({self.site} and {other.site})")
        if other.d_model != self.d_model:
            raise ShapeMismatchError(f"cannot add vectors of width {self.d_model} and {other.d_model}")
        out = dict(self.directions)
        for layer, t in other.directions.items():
            out[layer] = out[layer] + t if layer in out else t
        return self._with(out)

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        return self + (-other)

    def normalized(self) -> SteeringVector:
        """Unit norm at every layer (each layer's direction divided by its own norm)."""
        return self.map(lambda t: t / t.norm().clamp_min(1e-12))

    def to(self, device=None, dtype=None) -> SteeringVector:
        return self.map(lambda t: t.to(device=device, dtype=dtype))

    def with_meta(self, **changes) -> SteeringVector:
        out = self._with(self.directions)
        out.meta = replace(self.meta, **changes)
        return out

    def header(self) -> dict:
        return _header(self.meta, self.layers, self.d_model, "vector", None)

    # -- files ------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically as a version-1 steerscope safetensors file."""
        return _save(path, self.directions, self.header())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SteeringVector:
        """Read a vector file; for a VectorSet file use ``VectorSet.load(path)[i]`` or ``load_vector("f:i")``."""
        return cls._from_loaded(path, *_load(path))

    @classmethod
    def _from_loaded(cls, path, directions: dict[int, Tensor], header: dict) -> SteeringVector:
        if any(t.ndim != 1 for t in directions.values()):
            n = next(iter(directions.values())).shape[0]
            raise VectorFileError(f"{path} holds a VectorSet of {n} vectors; pick one with {path}:INDEX "
                                  "or VectorSet.load(path)[INDEX]")
        out = cls(directions, header.get("site") or "resid_post")
        out.meta = _meta_from_header(header)
        return out


class VectorSet:
    """``n`` vectors at the same layers and site, stored as ``{layer: (n, d_model)}``. ``vs[i]`` is a SteeringVector.

    Example:
        >>> vs = VectorSet({7: torch.randn(8, 576)}, method="melbo")
        >>> len(vs), vs[3].layers
        (8, [7])
    """

    def __init__(self, tensors: dict[int, Tensor], site: str = "resid_post", **meta) -> None:
        if not tensors:
            raise InvalidArgumentError("a VectorSet needs at least one layer")
        shapes = {tuple(t.shape) for t in tensors.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ShapeMismatchError(f"every layer must hold an (n, d_model) tensor of one shape; got {sorted(shapes)}")
        self.tensors = {int(k): v for k, v in sorted(tensors.items())}
        self.meta = _Meta(site=check_site(site), **{**meta, "method_config": dict(meta.get("method_config") or {})})

    @classmethod
    def from_vectors(cls, vectors: list[SteeringVector], **meta) -> VectorSet:
        if not vectors:
            raise InvalidArgumentError("from_vectors needs at least one vector")
        layers = vectors[0].layers
        if any(v.layers != layers or v.site != vectors[0].site for v in vectors):
            raise InvalidArgumentError("all vectors of a VectorSet must share layers and site")
        base = vectors[0].meta
        meta = {"model_type": base.model_type, "model_name": base.model_name, "method": base.method,
                "method_config": base.method_config, **meta}
        return cls({layer: torch.stack([v.directions[layer] for v in vectors]) for layer in layers},
                   vectors[0].site, **meta)

    @property
    def site(self) -> str:
        return self.meta.site

    @property
    def layers(self) -> list[int]:
        return list(self.tensors)

    @property
    def d_model(self) -> int:
        return int(next(iter(self.tensors.values())).shape[-1])

    def __len__(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    def __getitem__(self, index: int) -> SteeringVector:
        n = len(self)
        if not isinstance(index, int) or not -n <= index < n:
            raise InvalidArgumentError(f"vector index {index} is out of range: this set has {n} vectors (0..{n - 1})")
        out = SteeringVector({layer: t[index] for layer, t in self.tensors.items()}, self.site)
        out.meta = replace(self.meta, notes=(self.meta.notes + f" [index {index % n}]").strip())
        return out

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"VectorSet(n={len(self)}, site={self.site!r}, layers={self.layers}, d_model={self.d_model})"

    def norms(self) -> Tensor:
        """(n,) norms over all layers together."""
        return torch.sqrt(sum(t.double().pow(2).sum(-1) for t in self.tensors.values())).float()

    def header(self) -> dict:
        return _header(self.meta, self.layers, self.d_model, "set", len(self))

    def save(self, path: str | os.PathLike) -> Path:
        return _save(path, self.tensors, self.header())

    @classmethod
    def load(cls, path: str | os.PathLike) -> VectorSet:
        """Read a set file (a single-vector file loads as a set of one)."""
        return cls._from_loaded(*_load(path))

    @classmethod
    def _from_loaded(cls, tensors: dict[int, Tensor], header: dict) -> VectorSet:
        tensors = {k: (t if t.ndim == 2 else t[None]) for k, t in tensors.items()}
        out = cls(tensors, header.get("site") or "resid_post")
        out.meta = _meta_from_header(header)
        return out


def split_spec(spec: str | os.PathLike) -> tuple[str, int | None]:
    """``"run/vectors.safetensors:3"`` -> ``("run/vectors.safetensors", 3)``; no index -> ``None``."""
    text = str(spec)
    head, sep, tail = text.rpartition(":")
    if sep and tail.lstrip("-").isdigit():
        return head, int(tail)
    return text, None


def load_vector(spec: str | os.PathLike) -> SteeringVector:
    """Load ``FILE`` (a single vector) or ``FILE:INDEX`` (one vector of a set). A set file without an index
    is an error unless it holds exactly one vector. A result directory stands for its vector file
    (``vector.safetensors`` of a one-shot result, ``vectors.safetensors`` of a MELBO run: ``runs/melbo:3``).

    Example:
        >>> v = load_vector("runs/melbo/vectors.safetensors:3")
    """
    path, index = split_spec(spec)
    if Path(path).is_dir():
        found = [Path(path) / n for n in ("vector.safetensors", "vectors.safetensors") if (Path(path) / n).is_file()]
        if not found:
            raise VectorFileError(f"{path} is a directory without vector.safetensors or vectors.safetensors; "
                                  "give the vector file")
        path = found[0]
    if index is None and not Path(path).exists():
        head, sep, tail = str(path).rpartition(":")
        if sep and head and Path(head).is_file():
            raise VectorFileError(f"{spec}: {tail!r} is not a vector index; use {head}:INDEX with an integer INDEX "
                                  f"(e.g. {head}:0)")
    tensors, header = _load(path)
    if index is None and header.get("kind") != "set":
        return SteeringVector._from_loaded(path, tensors, header)
    vs = VectorSet._from_loaded(tensors, header)
    if index is None and len(vs) != 1:
        raise VectorFileError(f"{path} holds {len(vs)} vectors; pick one with {path}:INDEX (0..{len(vs) - 1})")
    return vs[index or 0]
