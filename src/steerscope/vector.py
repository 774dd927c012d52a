"""SteeringVector and VectorSet: tensors plus metadata, algebra, and the version-1 file format.

File format (one ``.safetensors`` file, no pickle): tensors ``layers.{L}`` of shape ``(d_model,)`` for a
SteeringVector or ``(n, d_model)`` for a VectorSet; ``__metadata__["steerscope"]`` is a JSON header with
``format_version``, ``steerscope_version``, ``site``, ``layers``, ``d_model``, ``model_type``, ``model_name``,
``method``, ``method_config``, ``created_at``, ``notes``. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor

from .errors import InvalidArgumentError, ShapeMismatchError, VectorFileError
from .sites import check_site

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


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` then rename over ``path``, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _save(path, tensors: dict[int, Tensor], header: dict) -> Path:
    from safetensors.torch import save_file

    payload = {f"layers.{layer}": t.detach().to("cpu", torch.float32).contiguous() for layer, t in tensors.items()}
    metadata = {_HEADER_KEY: json.dumps(header, sort_keys=True)}
    return atomic_write(path, lambda tmp: save_file(payload, tmp, metadata=metadata))


def _load(path) -> tuple[dict[int, Tensor], dict]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise VectorFileError(f"vector file {path} does not exist; check the path")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_HEADER_KEY)
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:  # safetensors raises several types for truncated/garbled files
        raise VectorFileError(f"{path} is not a readable safetensors file ({exc}); it may be truncated") from exc
    if raw is None:
        raise VectorFileError(f"{path} is a safetensors file but not a steerscope vector (no '{_HEADER_KEY}' header)")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise VectorFileError(f"{path} has a corrupt steerscope header: {exc}") from exc
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise VectorFileError(
            f"{path} has format_version {version}; this steerscope reads version {FORMAT_VERSION} (upgrade steerscope)"
        )
    d_model = header.get("d_model")
    directions: dict[int, Tensor] = {}
    for layer in header.get("layers", []):
        name = f"layers.{layer}"
        if name not in tensors:
            raise VectorFileError(f"{path} lists layer {layer} in its header but has no tensor {name!r}")
        t = tensors[name]
        if t.shape[-1] != d_model:
            raise ShapeMismatchError(f"{path}: tensor {name} has width {t.shape[-1]} but the header says d_model {d_model}")
        if not torch.isfinite(t).all():
            raise VectorFileError(f"{path}: tensor {name} contains NaN or inf")
        directions[int(layer)] = t
    if not directions:
        raise VectorFileError(f"{path} holds no layers")
    return directions, header


def _meta_from_header(header: dict) -> _Meta:
    return _Meta(
        site=header.get("site", "resid_post"),
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
        out = cls(directions, header.get("site", "resid_post"))
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
        out = cls(tensors, header.get("site", "resid_post"))
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
    is an error unless it holds exactly one vector."""
    path, index = split_spec(spec)
    tensors, header = _load(path)
    if index is None and header.get("kind") != "set":
        return SteeringVector._from_loaded(path, tensors, header)
    vs = VectorSet._from_loaded(tensors, header)
    if index is None and len(vs) != 1:
        raise VectorFileError(f"{path} holds {len(vs)} vectors; pick one with {path}:INDEX (0..{len(vs) - 1})")
    return vs[index or 0]
