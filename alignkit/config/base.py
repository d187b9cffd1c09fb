"""The machinery of every config: fields with docs, bounds and conditions; loading, validation, output.

A config is a tree of dataclasses. YAML and ``--set key=value`` overrides go in; every value is
checked against its field's type and bounds, and the first problem raises :class:`ConfigError`
naming the dotted key, the bad value and what is allowed. An unknown key is answered with the
nearest valid one. A key that acts only under some value of another key of its section says so
(``option(..., only=...)``); moved from its default where it would do nothing, it is a ConfigError
naming both keys. Nothing is rewritten or ignored silently: what the user wrote is what runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import operator
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml

from alignkit.errors import ConfigError


def option(
    default: Any,
    doc: str,
    *,
    min: float | None = None,
    max: float | None = None,
    only: str | tuple[str, ...] = (),
    parse: Callable[[Any], Any] | None = None,
) -> Any:
    """A config field with its documentation and optional inclusive bounds.

    ``only``: the conditions under which the key acts, each ``"<key of the same section> <op> <value>"``
    with op ``==``, ``!=`` or ``>`` and the value as YAML writes it (``"algo == ppo"``, ``"kl_target != null"``).
    Where one fails, the key must keep its default. ``parse`` replaces the type check: it returns the value
    to store or raises ValueError saying what is expected.
    """
    meta = {"doc": doc, "min": min, "max": max, "only": (only,) if isinstance(only, str) else only, "parse": parse}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# ---------------------------------------------------------------- loading and validation


def load_config(cls: type, path: str | Path | None = None, overrides: list[str] = ()) -> Any:
    """Build a validated ``cls`` from an optional YAML file and ``key.sub=value`` overrides.

    A class may declare ``WIRED``, dotted keys that are derived from its ``output_dir`` (key -> path
    relative to it); setting one of those in the file or with ``--set`` is a ConfigError naming the key.
    """
    raw = _read_yaml(path) if path is not None else {}
    where = "config" if path is None else str(path)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.learning_rate=1e-5")
        _assign(raw, key.strip().split("."), yaml.safe_load(value) if value else "")
    defaults = cls()
    config = _build(defaults, raw, prefix="", where=where)
    _check_active(config, defaults, prefix="", where=where)
    for key, relative in getattr(cls, "WIRED", {}).items():
        if _is_set(raw, key.split(".")):
            raise ConfigError(f"{where}: '{key}' is wired to output_dir/{relative} "
                              f"({Path(config.output_dir, relative)}) and cannot be set; remove it")
    return config


def load_sections(path: str | Path, sections: dict[str, type], *, known_only: bool = False) -> dict[str, Any]:
    """The sections of the YAML config at ``path`` named in ``sections`` (name -> config class), each
    validated as its class; a section the file lacks is left out, and other keys are not checked.

    For reading parts of a run's ``config.yaml`` (e.g. its ``data`` and ``train.seed``) without
    knowing which stage wrote it: with ``known_only``, keys a section's class lacks (another stage's,
    or those of an older alignkit) are passed over. The conditions of ``option(only=...)`` are not
    checked: a run's record is read as it was written.
    """
    raw = _read_yaml(path)
    found = {}
    for name, cls in sections.items():
        if name in raw:
            if not isinstance(raw[name], dict):
                raise ConfigError(f"{path}: '{name}' is a section; expected a mapping, got {raw[name]!r}")
            found[name] = _build(cls(), raw[name], prefix=name + ".", where=str(path), known_only=known_only)
    return found


def _read_yaml(path: str | Path) -> dict:
    """The top-level mapping of a YAML file; ConfigError when it cannot be read or is not a mapping."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return raw


def _assign(tree: dict, keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
        if not isinstance(tree, dict):
            raise ConfigError(f"--set {'.'.join(keys)}: '{key}' is not a section")
    tree[keys[-1]] = value


def _is_set(tree: dict, keys: list[str]) -> bool:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def _build(base: Any, raw: dict, prefix: str, where: str, known_only: bool = False) -> Any:
    """``base`` (a config with its stage's defaults) with the keys of ``raw`` checked and applied
    (with ``known_only``, those ``base`` has; others are passed over)."""
    cls = type(base)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields and not known_only:
            close = difflib.get_close_matches(str(key), fields, n=1, cutoff=0.6)  # not packing -> train
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(fields)}"
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'{hint}")
    values = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        key = prefix + name
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(raw[name], dict):
                raise ConfigError(f"{where}: '{key}' is a section; expected a mapping, got {raw[name]!r}")
            values[name] = _build(getattr(base, name), raw[name], key + ".", where, known_only)
        else:
            values[name] = _check(raw[name], hints[name], f.metadata, key, where)
    return dataclasses.replace(base, **values)


def _check(value: Any, hint: Any, meta: Any, key: str, where: str) -> Any:
    def fail(expected: str) -> typing.NoReturn:
        raise ConfigError(f"{where}: '{key}' must be {expected}, got {value!r}")

    if meta["parse"] is not None:
        try:
            return meta["parse"](value)
        except ValueError as exc:
            fail(str(exc))
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in args:
            fail("one of " + ", ".join(repr(a) for a in args))
        return value
    if origin is list:
        allowed = typing.get_args(args[0]) if typing.get_origin(args[0]) is Literal else None
        if allowed and not (isinstance(value, list) and all(v in allowed for v in value)):
            fail("a list of " + ", ".join(repr(a) for a in allowed))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            fail("a list of strings")
        return list(value)
    if hint is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if hint is str:
        if not isinstance(value, str) or not value:
            fail("a non-empty string")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer" + _bounds(meta))
    elif hint is float:
        if isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                fail("a number" + _bounds(meta))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a number" + _bounds(meta))
        value = float(value)
    if (meta["min"] is not None and value < meta["min"]) or (meta["max"] is not None and value > meta["max"]):
        fail(("an integer" if hint is int else "a number") + _bounds(meta))
    return value


_COMPARE = {"==": operator.eq, "!=": operator.ne, ">": operator.gt}


def _check_active(config: Any, defaults: Any, prefix: str, where: str) -> None:
    """ConfigError for a key moved from its default (``defaults``: the stage's) where a condition of its
    ``only`` fails, i.e. where another setting would make it do nothing."""
    for f in dataclasses.fields(config):
        value, default = getattr(config, f.name), getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            _check_active(value, default, f"{prefix}{f.name}.", where)
            continue
        if value == default:
            continue
        for condition in f.metadata["only"]:
            other, op, literal = condition.split(" ", 2)
            actual = getattr(config, other)
            if not _COMPARE[op](actual, yaml.safe_load(literal)):
                raise ConfigError(
                    f"{where}: '{prefix}{f.name}' is {value!r}, but it acts only when {prefix}{condition} "
                    f"({prefix}{other} is {actual!r}); remove it or change {prefix}{other}"
                )


def _bounds(meta: Any) -> str:
    lo, hi = meta["min"], meta["max"]
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


# ---------------------------------------------------------------- output and documentation


def to_dict(config: Any) -> dict:
    """The config as plain data (what ``config.yaml`` in a run folder holds)."""
    return dataclasses.asdict(config)


def describe(config: Any, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Every option of ``config`` (a class or an instance) as (dotted key, type, default, doc), for ``--help``;
    the class's ``WIRED`` keys, which cannot be set, are left out."""
    defaults = config() if isinstance(config, type) else config
    rows = []
    hints = typing.get_type_hints(type(defaults))
    for f in dataclasses.fields(defaults):
        hint, default = hints[f.name], getattr(defaults, f.name)
        if dataclasses.is_dataclass(hint):
            rows += describe(default, prefix + f.name + ".")
            continue
        conditions = " and ".join(prefix + condition for condition in f.metadata["only"])
        bounds = _bounds(f.metadata)
        acts = f"{'.' if bounds else ''} Acts only when {conditions}." if conditions else ""
        rows.append((prefix + f.name, _type_name(hint), default, f.metadata["doc"] + bounds + acts))
    wired = getattr(defaults, "WIRED", {})
    return [row for row in rows if row[0] not in wired]


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Literal:
        return "|".join(str(a) for a in args)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args).replace("NoneType", "null")
    if typing.get_origin(hint) is list:
        return "list"
    return getattr(hint, "__name__", str(hint))
