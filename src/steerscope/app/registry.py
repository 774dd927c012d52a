"""Named steering vectors a server offers, and turning a request's ``steering`` field into engine terms.

A run directory registers every vector of its ``vectors.safetensors`` as ``RUN/INDEX`` (RUN = the directory name);
a set file registers ``STEM/INDEX``; a single-vector file registers ``STEM``. Inline vectors arrive as base64
little-endian float32: ``d_model`` floats (the same direction at every listed layer) or ``len(layers) * d_model``
(one direction per layer, in the order given).

Example:
    >>> reg = VectorRegistry(m, ["runs/melbo", "happy.safetensors"])
    >>> reg.names()[:2]
    ['melbo/0', 'melbo/1']
    >>> terms = reg.terms({"vectors": [{"name": "melbo/1", "scale": 4.0, "positions": "generated"}]}, limits)
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SteerscopeError
from ..sites import SITES
from ..steer import OPERATORS, Positions
from ..vector import SteeringVector, VectorSet
from .engine import Term
from .errors import APIError
from .limits import Limits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    """A vector the server knows by name, and where it came from."""

    name: str
    vector: SteeringVector
    source: str
    index: int | None = None

    def describe(self) -> dict:
        v = self.vector
        return {"name": self.name, "site": v.site, "layers": v.layers, "norm": round(float(v.norm()), 6),
                "method": v.method, "source": self.source, "index": self.index}


def _load_path(path: Path) -> list[Registered]:
    from ..report.data import VECTORS_FILE

    if path.is_dir():
        file = path / VECTORS_FILE
        if not file.is_file():
            raise SteerscopeError(f"{path} has no {VECTORS_FILE}; pass a run directory with vectors or a vector file")
        vs = VectorSet.load(file)
        run = path.resolve().name
        return [Registered(f"{run}/{i}", vs[i], str(path), i) for i in range(len(vs))]
    if not path.is_file():
        raise SteerscopeError(f"{path} is neither a run directory nor a vector file")
    vs = VectorSet.load(path)
    if len(vs) == 1:
        return [Registered(path.stem, vs[0], str(path))]
    return [Registered(f"{path.stem}/{i}", vs[i], str(path), i) for i in range(len(vs))]


class VectorRegistry:
    """The vectors a server offers by name, checked against the model once at start-up.

    Args:
        model: the served ``SteerableModel``.
        paths: run directories and vector files (``.safetensors``).
    """

    def __init__(self, model, paths: list[str | os.PathLike] = ()) -> None:
        self.model = model
        self.entries: dict[str, Registered] = {}
        for p in paths:
            for entry in _load_path(Path(p)):
                self.add(entry)

    def add(self, entry: Registered) -> None:
        """Register one vector (width and layers checked; a duplicate name is an error)."""
        self.model.check_width(entry.vector.d_model)
        for layer in entry.vector.layers:
            self.model.check_layer(layer)
        if entry.name in self.entries:
            raise SteerscopeError(f"two vectors are named {entry.name!r} ({self.entries[entry.name].source} and "
                                  f"{entry.source}); rename one of the files or run directories")
        self.entries[entry.name] = entry

    def names(self) -> list[str]:
        return list(self.entries)

    def describe(self) -> list[dict]:
        return [e.describe() for e in self.entries.values()]

    def get(self, name: str, param: str) -> SteeringVector:
        if name in self.entries:
            return self.entries[name].vector
        known = ", ".join(list(self.entries)[:10]) or "none (start the server with --vectors)"
        raise APIError(f"unknown vector {name!r}; registered vectors: {known} (GET /v1/steering/vectors lists all)",
                       param=param, code="unknown_vector")

    def terms(self, spec, limits: Limits, param: str = "steering") -> list[Term]:
        """The request's ``steering`` object as engine terms; any problem is an ``APIError`` naming its field."""
        if spec is None:
            return []
        if not isinstance(spec, dict):
            raise APIError("steering must be an object like {\"vectors\": [{\"name\": ..., \"scale\": ...}]}",
                           param=param)
        unknown = set(spec) - {"vectors", "positions", "operator"}
        if unknown:
            raise APIError(f"unknown steering field(s) {sorted(unknown)}; use vectors, positions, operator",
                           param=param)
        items = spec.get("vectors", [])
        if not isinstance(items, list):
            raise APIError("steering.vectors must be a list", param=f"{param}.vectors")
        if len(items) > limits.max_vectors:
            raise APIError(f"{len(items)} steering vectors in one request; the limit is {limits.max_vectors}",
                           param=f"{param}.vectors", code="too_many_vectors")
        default_pos = spec.get("positions", "all")
        default_op = spec.get("operator", "add")
        return [self._term(item, limits, f"{param}.vectors[{i}]", default_pos, default_op)
                for i, item in enumerate(items)]

    def _term(self, item, limits: Limits, param: str, default_pos, default_op) -> Term:
        if not isinstance(item, dict):
            raise APIError("each steering vector must be an object with a name or base64 data", param=param)
        unknown = set(item) - {"name", "data", "layers", "layer", "site", "scale", "positions", "operator"}
        if unknown:
            raise APIError(f"unknown field(s) {sorted(unknown)} in a steering vector", param=param)
        if ("name" in item) == ("data" in item):
            raise APIError("give exactly one of name (a registered vector) or data (base64 float32)", param=param)
        if "name" in item:
            if not isinstance(item["name"], str):
                raise APIError("name must be a string", param=f"{param}.name")
            vector = self.get(item["name"], f"{param}.name")
        else:
            vector = self.inline(item, param)
        scale = check_scale(item.get("scale", 1.0), limits, f"{param}.scale")
        positions = item.get("positions", default_pos)
        try:
            positions = Positions.parse(positions) if isinstance(positions, (str, int)) else None
        except SteerscopeError as exc:
            raise APIError(str(exc), param=f"{param}.positions") from None
        if positions is None or isinstance(item.get("positions", default_pos), bool):
            raise APIError("positions must be a string such as all, generated or from:5", param=f"{param}.positions")
        operator = item.get("operator", default_op)
        if operator not in OPERATORS:
            raise APIError(f"operator must be one of {', '.join(OPERATORS)}; got {operator!r}",
                           param=f"{param}.operator")
        spec = positions.kind if positions.kind in ("all", "prompt", "generated") else f"{positions.kind}:{positions.k}"
        return Term(vector, scale, spec, operator)

    def inline(self, item: dict, param: str) -> SteeringVector:
        """A vector sent in the request: base64 float32 ``data``, ``layers`` (or ``layer``) and ``site``."""
        m = self.model
        layers = item.get("layers", [item["layer"]] if "layer" in item else None)
        if (not isinstance(layers, list) or not layers
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in layers)):
            raise APIError("an inline vector needs layers: a non-empty list of block indices", param=f"{param}.layers")
        if len(set(layers)) != len(layers):
            raise APIError("each layer can be listed once", param=f"{param}.layers")
        bad = [x for x in layers if not 0 <= x < m.n_layers]
        if bad:
            raise APIError(f"layer {bad[0]} is out of range: {m.name} has {m.n_layers} blocks (0..{m.n_layers - 1})",
                           param=f"{param}.layers")
        site = item.get("site", "resid_post")
        if site not in SITES:
            raise APIError(f"site must be one of {', '.join(SITES)}; got {site!r}", param=f"{param}.site")
        data = item["data"]
        if not isinstance(data, str):
            raise APIError("data must be a base64 string of little-endian float32 values", param=f"{param}.data")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise APIError("data is not valid base64", param=f"{param}.data") from None
        if len(raw) % 4:
            raise APIError(f"data decodes to {len(raw)} bytes, not a whole number of float32 values",
                           param=f"{param}.data")
        values = torch.from_numpy(np.frombuffer(raw, dtype="<f4").astype(np.float32))
        n = values.numel()
        if n not in (m.d_model, m.d_model * len(layers)):
            raise APIError(f"inline vector has {n} floats but model {m.name} has d_model {m.d_model}; send "
                           f"{m.d_model} floats (or {m.d_model} per listed layer)", param=f"{param}.data",
                           code="wrong_width")
        if not bool(torch.isfinite(values).all()):
            raise APIError("inline vector contains NaN or infinity", param=f"{param}.data", code="not_finite")
        rows = values.reshape(-1, m.d_model)
        directions = {layer: rows[i if len(rows) > 1 else 0].clone() for i, layer in enumerate(layers)}
        return SteeringVector(directions, site=site)


def parse_model_id(model_id: str, base_ids: set[str], registry: VectorRegistry, limits: Limits) -> list[Term]:
    """``base`` (or the model's name) plus optional ``+NAME`` or ``+NAME@SCALE`` parts, e.g. ``base+melbo/3@4.0``.

    Clients that cannot send extra fields pick vectors this way; positions are ``all`` and the default scale is 1.
    """
    if not isinstance(model_id, str):
        raise APIError("model must be a string", param="model")
    head, *parts = model_id.split("+")
    if head not in base_ids:
        raise APIError(f"model {model_id!r} does not exist; use one of {', '.join(sorted(base_ids))}, optionally "
                       "followed by +VECTOR or +VECTOR@SCALE (GET /v1/models lists them)", param="model",
                       code="model_not_found", status=404)
    if len(parts) > limits.max_vectors:
        raise APIError(f"{len(parts)} steering vectors in model; the limit is {limits.max_vectors}", param="model",
                       code="too_many_vectors")
    terms = []
    for part in parts:
        name, at, scale_text = part.rpartition("@") if "@" in part else (part, "", "")
        scale = 1.0
        if at:
            try:
                scale = float(scale_text)
            except ValueError:
                raise APIError(f"{scale_text!r} after @ in model is not a number", param="model") from None
        scale = check_scale(scale, limits, "model")
        terms.append(Term(registry.get(name, "model"), scale))
    return terms


def check_scale(value, limits: Limits, param: str) -> float:
    """A finite number with |value| <= limits.max_scale."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise APIError(f"scale must be a number; got {value!r}", param=param)
    value = float(value)
    if not math.isfinite(value) or abs(value) > limits.max_scale:
        raise APIError(f"scale must be a finite number between -{limits.max_scale:g} and {limits.max_scale:g}; "
                       f"got {value}", param=param, code="scale_out_of_range")
    return value
