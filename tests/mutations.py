"""File mutations for the bad-input fuzz tests and ``bench/bench_bad_input.py``, plus the outcome classifier.

Every mutation is a pure function of the file's bytes and a ``random.Random``; ``mutate(data, kind, rng)`` picks
one of them by name. Kinds: ``flip`` (flip bits of one byte), ``truncate``, ``header`` (edit one value of the JSON
header: wrong type, huge or non-numeric number, deep nesting, non-object), ``non_utf8`` (an invalid byte inside
the header text), and for GGUF ``tensor_count`` / ``kv_count`` (edit the counts in the GGUF preamble).
"""

from __future__ import annotations

import json
import random
import struct

import torch

import steerscope as ss

SAFETENSORS_KINDS = ["flip", "truncate", "header", "non_utf8"]
GGUF_KINDS = ["flip", "truncate", "header", "non_utf8", "tensor_count", "kv_count"]
TEXT_KINDS = ["flip", "truncate", "json_value", "non_utf8", "deep"]

DEEP = 50_000
REPLACEMENTS = [
    "a string", 1, -1, 0, 1.5, True, False, None, [], {}, [1, "x"], {"a": 1}, 10**400, -(10**30), 1e308,
    float("nan"), float("inf"), "NaN", "1e999", 2**64,
]


def _replacement_text(rng: random.Random) -> str:
    """A JSON value as text: usually a wrong type or an odd number, sometimes deep nesting."""
    pick = rng.randrange(len(REPLACEMENTS) + 2)
    if pick == len(REPLACEMENTS):
        return "[" * DEEP + "]" * DEEP
    if pick == len(REPLACEMENTS) + 1:
        return '{"a":' * DEEP + "1" + "}" * DEEP
    return json.dumps(REPLACEMENTS[pick])


def _edit_json_text(text: str, rng: random.Random) -> str:
    """Replace one value (top level, or one level down) of a JSON object's text, or the whole text."""
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    if not isinstance(obj, dict) or not obj or rng.random() < 0.1:
        return _replacement_text(rng)
    key = rng.choice(sorted(obj))
    value = obj[key]
    marker = "\u0000MUTATED\u0000"
    if isinstance(value, dict) and value and rng.random() < 0.5:
        inner = rng.choice(sorted(value))
        value[inner] = marker
    elif isinstance(value, list) and value and rng.random() < 0.5:
        value[rng.randrange(len(value))] = marker
    else:
        obj[key] = marker
    return json.dumps(obj, sort_keys=True).replace(json.dumps(marker), _replacement_text(rng), 1)


def _flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    i = rng.randrange(len(out))
    out[i] ^= rng.randrange(1, 256)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _safetensors_header(data: bytes, rng: random.Random, non_utf8: bool) -> bytes:
    n = int.from_bytes(data[:8], "little")
    table = json.loads(data[8:8 + n])
    body = data[8 + n:]
    if non_utf8:
        raw = json.dumps(table).encode()
        i = rng.randrange(len(raw))
        raw = raw[:i] + bytes([rng.choice([0xFF, 0xC3, 0x80, 0xED])]) + raw[i + 1:]
    elif rng.random() < 0.6:  # our JSON header, inside __metadata__
        meta = table["__metadata__"]
        meta["steerscope"] = _edit_json_text(meta["steerscope"], rng)
        raw = json.dumps(table).encode()
    else:  # the safetensors tensor table (dtype, shape, data_offsets) or __metadata__ itself
        raw = _edit_json_text(json.dumps(table), rng).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + body


def _gguf_strings(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of the GGUF key strings and string values in the preamble (found by their length prefix)."""
    found, i = [], 24
    limit = min(len(data), 1 << 16)
    while i + 8 < limit:
        (n,) = struct.unpack_from("<Q", data, i)
        if 0 < n < 4096 and i + 8 + n <= limit and all(32 <= b < 127 for b in data[i + 8:i + 8 + min(n, 8)]):
            found.append((i + 8, n))
            i += 8 + n
        else:
            i += 1
    return found


def _gguf_header(data: bytes, rng: random.Random) -> bytes:
    """Rewrite the steerscope.header string value with an edited JSON (same key, new length)."""
    key = b"steerscope.header"
    at = data.find(key)
    if at < 0:
        return _flip(data, rng)
    start = at + len(key) + 4  # value type (uint32) follows the key
    (n,) = struct.unpack_from("<Q", data, start)
    text = data[start + 8:start + 8 + n].decode()
    new = _edit_json_text(text, rng).encode()
    return data[:start] + struct.pack("<Q", len(new)) + new + data[start + 8 + n:]


def mutate(data: bytes, kind: str, rng: random.Random, *, fmt: str = "safetensors") -> bytes:
    """One mutation of ``kind`` applied to ``data`` (a safetensors vector file, a GGUF file or a text file)."""
    if kind == "flip":
        return _flip(data, rng)
    if kind == "truncate":
        return _truncate(data, rng)
    if fmt == "safetensors":
        return _safetensors_header(data, rng, non_utf8=kind == "non_utf8")
    if fmt == "gguf":
        if kind == "tensor_count" or kind == "kv_count":
            offset = 8 if kind == "tensor_count" else 16
            (count,) = struct.unpack_from("<Q", data, offset)
            value = rng.choice([0, 1, max(count - 1, 0), count + 1, count + rng.randrange(1, 100), 2**63, 2**64 - 1])
            return data[:offset] + struct.pack("<Q", value) + data[offset + 8:]
        if kind == "non_utf8":
            strings = _gguf_strings(data)
            start, n = rng.choice(strings)
            i = start + rng.randrange(n)
            return data[:i] + bytes([rng.choice([0xFF, 0xC3, 0x80, 0xED])]) + data[i + 1:]
        return _gguf_header(data, rng)
    # text files (prompt files, run-directory JSON/CSV)
    text = data.decode("utf-8", "replace")
    if kind == "non_utf8":
        i = rng.randrange(len(data) + 1)
        return data[:i] + bytes([rng.choice([0xFF, 0xC3, 0x80, 0xED])]) + data[i:]
    if kind == "deep":
        lines = text.splitlines() or [""]
        lines[rng.randrange(len(lines))] = _replacement_text(random.Random(1)) if rng.random() < 0.5 else (
            '{"prompt": ' + "[" * DEEP + "]" * DEEP + "}")
        return "\n".join(lines).encode()
    lines = text.splitlines() or ["{}"]
    i = rng.randrange(len(lines))
    lines[i] = _edit_json_text(lines[i], rng)
    return "\n".join(lines).encode()


# -- outcomes ---------------------------------------------------------------------------------------------------

def same_vector(a, b) -> bool:
    """Bit-identical tensors and equal metadata (SteeringVector or VectorSet)."""
    ta = a.directions if isinstance(a, ss.SteeringVector) else a.tensors
    tb = b.directions if isinstance(b, ss.SteeringVector) else b.tensors
    if type(a) is not type(b) or list(ta) != list(tb):
        return False
    if not all(ta[k].shape == tb[k].shape and torch.equal(ta[k], tb[k]) for k in ta):
        return False
    ma, mb = a.meta, b.meta
    if isinstance(a, ss.SteeringVector) and a.method == "gguf_import":  # the source path differs by design
        strip = lambda m: {k: v for k, v in m.method_config.items() if k != "source"}
        return strip(ma) == strip(mb) and ma.model_type == mb.model_type and ma.notes == mb.notes
    return ma == mb


def classify(load, path, reference, same=same_vector) -> str:
    """``"error"`` (a SteerscopeError), ``"identical"``, ``"different"`` (loaded other values without an error)
    or ``"other:<ExceptionType>"``."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = load(path)
    except ss.SteerscopeError:
        return "error"
    except Exception as exc:  # noqa: BLE001 - this is what we count
        return f"other:{type(exc).__name__}: {str(exc)[:120]}"
    return "identical" if same(value, reference) else "different"
