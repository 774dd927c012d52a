"""One config dataclass per method and evaluation, derived from the function it configures.

``@configurable("melbo")`` on ``def melbo(model, prompts, *, source_layer=None, ...)`` builds ``melbo.Config``: a
frozen dataclass with one field per keyword-only argument, the same names, defaults and annotations, and the field
docs from the function's ``Args:`` section. The function's signature stays the one source of defaults, so the
Python keywords, the config and the CLI flags generated from it (``add_config_flags``) cannot drift apart. The
function also accepts ``config=`` (explicit keywords win over the config's fields).

Configs serialise as sorted JSON with ``method``, ``config_version`` and ``steerscope_version``; reading a config
written by an older or newer steerscope keeps the fields it knows and warns about the others.

Example:
    >>> cfg = ss.MelboConfig(num_vectors=16, steps=100)
    >>> cfg.save("melbo.json"); cfg == ss.MelboConfig.load("melbo.json")
    True
    >>> res = ss.melbo(m, prompts, config=cfg, seed=1)          # seed overrides the config
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import math
import re
import types as types_module
import typing
import warnings
from collections import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from .errors import InvalidArgumentError

CONFIG_VERSION = 1
_REGISTRY: dict[str, type[Config]] = {}


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every method config: validation, JSON (de)serialisation, replacement."""

    method_name: ClassVar[str] = ""
    field_docs: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        """A clear error for a value whose type cannot be what the field means (ints for floats are fine)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind, optional = strip_optional(f.type)
            # None is the "choose for me" default of many fields; the function validates the rest
            if value is not None and (not isinstance(value, SCALAR_TYPES.get(kind, object)) or (
                    isinstance(value, bool) and kind in (int, float))):
                raise InvalidArgumentError(f"{self.method_name} config: {f.name} must be {kind.__name__}"
                                           f"{' or None' if optional else ''}, got {value!r}")

    def as_kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments for the configured function."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        # settings nested: a method's own keyword may be called "method" (export_lora's rank1/bias)
        return {"method": self.method_name, "config_version": CONFIG_VERSION, "steerscope_version": __version__,
                "settings": _jsonable(self.as_kwargs())}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write sorted JSON atomically."""
        from .io import write_text

        return write_text(path, self.to_json())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build from a dict written by any steerscope version: unknown keys warn, missing keys take defaults."""
        if not isinstance(data, dict):
            raise InvalidArgumentError(f"a {cls.method_name} config must be a JSON object, got {type(data).__name__}")
        method = data.get("method", cls.method_name)
        if method != cls.method_name:
            raise InvalidArgumentError(f"this config is for {method!r}, not {cls.method_name!r}")
        settings = data.get("settings")
        if not isinstance(settings, dict):
            raise InvalidArgumentError(f"a {cls.method_name} config needs a 'settings' object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(settings.keys() - fields)
        if unknown:
            warnings.warn(f"{cls.method_name} config: ignoring unknown settings {', '.join(unknown)} (written by "
                          f"steerscope {data.get('steerscope_version', '?')})", stacklevel=2)
        # JSON has no tuples: a list for a field whose default is a tuple is read back as one
        return cls(**{k: tuple(v) if isinstance(fields[k].default, tuple) and isinstance(v, list) else v
                      for k, v in settings.items() if k in fields})

    @classmethod
    def load(cls, path: str | Path) -> Config:
        from .io import read_json

        return cls.from_dict(read_json(path))

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def config_class(method: str) -> type[Config]:
    """The config class registered for ``method`` (e.g. ``"melbo"``)."""
    if method not in _REGISTRY:
        raise InvalidArgumentError(f"no config for method {method!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[method]


def configurable(method: str, *, name: str | None = None) -> Callable:
    """Decorator: build ``fn.Config`` from ``fn``'s keyword-only arguments and accept ``config=`` in calls."""

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        _REGISTRY[method] = cls = signature_config(fn, method, name=name)

        @functools.wraps(fn)
        def wrapper(*args, config: Config | None = None, **kwargs):
            if config is not None:
                if not isinstance(config, cls):
                    raise InvalidArgumentError(
                        f"{fn.__name__}() takes config={cls.__name__}(...), got {type(config).__name__}")
                kwargs = {**config.as_kwargs(), **kwargs}
            return fn(*args, **kwargs)

        config = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None,
                                   annotation=f"{cls.__name__} | None")
        wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), config])
        wrapper.Config = cls
        return wrapper

    return decorate


def signature_config(fn: Callable, method: str, *, name: str | None = None) -> type[Config]:
    """The config dataclass of ``fn``'s keyword-only arguments (not registered; ``configurable`` registers it).

    Also usable on a function that is not ``@configurable`` (the CLI of ``vector_from_lora``): the flags generated
    from it still carry the function's own names and defaults."""
    hints = typing.get_type_hints(fn)
    specs = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.name == "config":
            continue
        if isinstance(p.default, (list, dict, set)):  # mutable: each config gets its own copy
            spec = dataclasses.field(default_factory=functools.partial(type(p.default), p.default))
        else:  # no default: a required keyword (e.g. optimize_vector's layer)
            spec = dataclasses.field(default=dataclasses.MISSING if p.default is p.empty else p.default)
        specs.append((p.name, hints.get(p.name, Any), spec))
    cls = dataclasses.make_dataclass(name or "".join(part.title() for part in method.split("_")) + "Config", specs,
                                     bases=(Config,), frozen=True, kw_only=True,
                                     namespace={"method_name": method, "field_docs": field_docs(fn.__doc__ or ""),
                                                "__module__": fn.__module__})
    cls.__doc__ = f"Settings of ``{fn.__name__}`` (fields = its keyword arguments, same defaults)."
    return cls


def field_docs(doc: str) -> dict[str, str]:
    """``{name: text}`` from a Google-style ``Args:`` section (``a, b: shared text`` or ``a / b: ...`` gives both).

    A continuation line is indented deeper than its name; a line back at the names' indent that is not ``name:``
    (or one at the ``Args:`` indent) ends the entry."""
    match = re.search(r"^(\s*)Args:\s*$(.*?)(?=^\s*(Returns|Raises|Example|Examples|Yields|Note)s?:\s*$|\Z)", doc,
                      flags=re.MULTILINE | re.DOTALL)
    if not match:
        return {}
    base = len(match.group(1))
    out: dict[str, str] = {}
    current: list[str] = []
    item_indent = math.inf  # the first ``name:`` line sets it
    for line in match.group(2).splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= base:
            break
        head = re.match(r"^\s*([A-Za-z_][\w]*(?:\s*[,/]\s*[A-Za-z_][\w]*)*):\s*(.*)$", line)
        if head and indent <= item_indent:
            item_indent = indent
            current = [n.strip() for n in re.split(r"[,/]", head.group(1))]
            out.update(dict.fromkeys(current, head.group(2).strip()))
        elif current and indent > item_indent:
            for n in current:
                out[n] = f"{out[n]} {line.strip()}"
        else:
            current = []
    return out


def config_defaults(cls: type) -> dict[str, Any]:
    """``{field: default}`` of a config (or any dataclass); fields without a default, like ``optimize_vector``'s
    ``layer``, are left out."""
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}


def add_config_flags(parser: argparse.ArgumentParser | Any, cls: type[Config], *, skip: tuple[str, ...] = (),
                     rename: dict[str, str] | None = None, types: dict[str, Callable[[str], Any]] | None = None,
                     choices: dict[str, Sequence[Any]] | None = None, required: tuple[str, ...] = (),
                     options: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """One CLI flag per config field: ``num_vectors`` → ``--num-vectors``, same default, help from the docs.

    ``bool`` fields become ``--x/--no-x``; ``X | None`` takes X (and the word ``none`` gives None); lists take one or
    more values (a ``type`` that returns a list, like ``1:4:1``, is flattened; ``X | Sequence[X]`` gives X for one
    value); ``Literal[...]`` fields get their choices. Per field: ``rename`` gives another flag name (``out_dir`` →
    ``--out``), ``types`` an argparse ``type=`` that validates while parsing (an existing file, a positive number),
    ``choices`` the allowed values, ``required`` makes the flag mandatory (the default stays the field's), and
    ``options`` any other ``add_argument`` keywords (``nargs``, ``metavar``). Returns ``{field: flag}``."""
    rename, types, choices, options = rename or {}, types or {}, choices or {}, options or {}
    defaults = config_defaults(cls)
    unknown = set().union(rename, types, choices, options, required, skip) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    flags = {}
    for f in dataclasses.fields(cls):
        name = f.name
        if name in skip:
            continue
        flags[name] = flag = "--" + rename.get(name, name).replace("_", "-")
        inner, optional = strip_optional(f.type)
        members = typing.get_args(inner) if typing.get_origin(inner) in _UNIONS else (inner,)
        sequence = next((m for m in members if typing.get_origin(m) in (list, tuple, abc.Sequence)), None)
        literal = typing.get_args(inner) if typing.get_origin(inner) is typing.Literal else ()
        if sequence is not None:
            kind = (typing.get_args(sequence) or (str,))[0]
        else:
            kind = type(literal[0]) if literal else inner
        kind = kind if kind in (int, float, bool) else str  # any other annotation reads the string
        doc = cls.field_docs.get(name, "").replace("``", "")
        shown = f" (default: {_shown(defaults[name])})" if name in defaults else " (required)"
        kwargs: dict[str, Any] = {"dest": name, "default": defaults.get(name),
                                  "help": f"{doc}{shown}".strip().replace("%", "%%"),
                                  "required": name not in defaults or name in required}
        if name in choices or literal:
            kwargs["choices"] = list(choices.get(name, literal))
        extra = options.get(name, {})
        if kind is bool and sequence is None and name not in types and "nargs" not in extra:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            parse = types.get(name) or _PARSERS.get(kind, str)
            kwargs["type"] = _none_or(parse) if optional else parse
            if sequence is not None and "nargs" not in extra:
                kwargs.update(nargs="+", action=_ManyAction, collapse=kind in members,
                              as_tuple=isinstance(kwargs["default"], tuple))
        parser.add_argument(flag, **{**kwargs, **extra})
    return flags


def config_from_args(cls: type[Config], args: argparse.Namespace, **overrides: Any) -> Config:
    """The config a parsed command line describes (fields missing from ``args`` keep their defaults)."""
    return cls(**{**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)},
                  **overrides})


class _ManyAction(argparse.Action):
    """One or more values: lists a ``type`` returned are flattened; one value of an ``X | Sequence[X]`` field is X;
    a field whose default is a tuple gets a tuple (so the config equals one built in Python)."""

    def __init__(self, *args: Any, collapse: bool = False, as_tuple: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.collapse, self.as_tuple = collapse, as_tuple

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        flat = [v for value in values for v in (value if isinstance(value, (list, tuple)) else [value])]
        result: Any = tuple(flat) if self.as_tuple else flat
        if self.collapse and len(flat) == 1:
            result = flat[0]
        setattr(namespace, self.dest, result)


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or "none"
    return str(value)


def _none_or(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_optional(text: str) -> Any:
        return None if text.strip().lower() == "none" else parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")
    return parse_optional


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """(``tp`` without None, whether it took None): ``int | None`` gives ``(int, True)``, ``int | str | None``
    gives ``(int | str, True)``."""
    if typing.get_origin(tp) not in _UNIONS:
        return tp, False
    args = tuple(a for a in typing.get_args(tp) if a is not type(None))
    return typing.Union[args], len(args) < len(typing.get_args(tp))  # noqa: UP007 (built from a tuple)


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def integer(text: str) -> int:
    """argparse type: an integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


_UNIONS = (typing.Union, types_module.UnionType)  # the origins of ``X | Y`` and ``Optional[X]``

# how a flag reads the field types it knows (any other field takes the string)
_PARSERS: dict[Any, Callable[[str], Any]] = {int: integer, float: finite_float}

# what a config's or a saved result's value of a scalar annotation may be (bool is an int in Python, never a number)
SCALAR_TYPES = {float: (int, float), int: (int,), str: (str,), bool: (bool,)}


def _jsonable(value: Any, other: Callable[[Any], Any] = repr) -> Any:
    """``value`` as JSON types, containers element by element; ``other(x)`` describes any other object (made
    JSON-able in turn); the default ``repr`` records callables and objects for the reader, not reloadable."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, other) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, other) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return _jsonable(other(value))


def renamed(**old_to_new: str) -> Callable:
    """Decorator: keep accepting old keyword spellings (``held_out_prompts`` → ``heldout_prompts``) with a
    ``DeprecationWarning``, so scripts written against older releases keep working while everything new speaks the
    shared vocabulary."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise InvalidArgumentError(f"{fn.__name__}(): give {new}= only ({old}= is its old name)")
                    warnings.warn(f"{fn.__name__}({old}=) is now {new}=", DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
