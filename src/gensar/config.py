"""Configuration: pydantic models validated from one YAML file per run.

Every stage has its own section model (defined beside the stage); this module
holds the shared base class, the YAML loader with ``key.sub=value`` overrides,
and the conversion of validation errors into one-line messages that name the
file and the field.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from gensar.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

#: Largest YAML document accepted, counted with every alias expanded (a config has
#: a few hundred nodes; "billion laughs" documents expand to billions).
MAX_YAML_NODES = 100_000


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored.

    Numbers are checked as :mod:`gensar.values` checks every outside value: a
    float setting must be finite (``inf``/``NaN`` refused) and an integer setting
    must be an integer (``true`` is not 1).
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and not _admits_bool(field.annotation):
                raise ValueError(f"a boolean is not accepted here (got {value!r})")
        return value


#: Mark a field added after runs were trained whose default keeps the earlier behaviour:
#: ``Field(default, json_schema_extra=ADDED_OPTION)``. It joins a stage's fingerprint only
#: when set to something else, so adding an option does not invalidate every trained run.
ADDED_OPTION: dict[str, Any] = {"fingerprint": "when_set"}


def fingerprint_view(section: BaseModel) -> dict[str, Any]:
    """``section.model_dump(mode="json")`` without :data:`ADDED_OPTION` fields left at their
    default (recursively): what a stage fingerprint hashes."""
    out = section.model_dump(mode="json")
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("fingerprint") == "when_set" and value == field.get_default(
            call_default_factory=True
        ):
            out.pop(name, None)
        elif isinstance(value, BaseModel):
            out[name] = fingerprint_view(value)
    return out


def _admits_bool(annotation: Any) -> bool:
    """Whether a field's type takes ``True``/``False`` as they are (bool, Any, Literal[True]...)."""
    if annotation is bool or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return any(isinstance(arg, bool) for arg in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return any(_admits_bool(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _admits_bool(typing.get_args(annotation)[0])
    return annotation is object


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses documents whose aliases expand beyond MAX_YAML_NODES.

    PyYAML builds aliases as shared objects, so loading a "billion laughs" document
    is quick, but everything that walks the result (copying overrides, validation,
    dumping) would visit every expanded node. The size is counted on the node graph
    with memoisation, so the check itself is linear in the document.
    """

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set())
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int], active: set[int]) -> int:
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise _YamlTooLarge("a recursive alias (a node that contains itself)")
    active.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes, active) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(
            _expanded_size(k, sizes, active) + _expanded_size(v, sizes, active)
            for k, v in node.value
        )
    active.discard(key)
    if size > MAX_YAML_NODES:
        raise _YamlTooLarge(
            f"aliases expand it to more than {MAX_YAML_NODES:,} values (an alias bomb?)"
        )
    sizes[key] = size
    return size


class _YamlTooLarge(Exception):
    pass


def safe_load_yaml(text: str, where: str | Path = "YAML") -> Any:
    """``yaml.safe_load`` with a bound on the alias-expanded size; errors are ConfigErrors."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
    except _YamlTooLarge as err:
        raise ConfigError(
            f"YAML document refused: {err}",
            where=where,
            fix="write the settings out without nested aliases",
        ) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` into (["a", "b", "c"], value), the value read as YAML."""
    if "=" not in text:
        raise ConfigError(
            f"override {text!r} has no '='",
            fix="write overrides as key.sub=value, e.g. train.epochs=3",
        )
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ConfigError(f"override {text!r} has an empty key", fix="write key.sub=value")
    try:
        value = safe_load_yaml(raw, where=f"--set {key.strip()}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key.sub=value`` override applied."""
    result = _deep_copy(data)
    for text in overrides or []:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return result


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with clear errors for a missing file or bad syntax."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", where=path, fix="check the path")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"not valid UTF-8 (byte 0x{err.object[err.start]:02x})",
            where=f"{path}:{line}",
            fix="save the file as UTF-8",
        ) from None
    except OSError as err:
        raise ConfigError(
            f"cannot read the file ({err.strerror})", where=path, fix="check the path"
        ) from None
    try:
        data = safe_load_yaml(text, where=path)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"invalid YAML ({problem})", where=where, fix="correct the syntax"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections", where=path)
    return data


def validate(model: type[M], data: dict[str, Any], *, source: str | Path = "config") -> M:
    """Validate ``data`` against ``model``; the first error becomes a one-line ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown setting"
        value = first.get("input")
        shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
        raise ConfigError(
            f"field '{field}': {message}{shown}",
            where=source,
            fix="see the documented settings in the README or `gensar config --help`",
        ) from None


def dump_yaml(model: BaseModel, path: str | Path) -> None:
    """Write the resolved configuration (every default spelled out) as YAML."""
    from gensar.io import atomic_write_bytes

    text = yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    atomic_write_bytes(path, text.encode("utf-8"))
