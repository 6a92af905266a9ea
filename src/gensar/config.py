"""Configuration: pydantic models validated from one YAML file per run.

Every stage has its own section model (defined beside the stage); this module
holds the shared base class, the YAML loader with ``key.sub=value`` overrides,
and the conversion of validation errors into one-line messages that name the
file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from gensar.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


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
        value = yaml.safe_load(raw) if raw.strip() else ""
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
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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


def load_config(
    model: type[M], path: str | Path | None = None, overrides: list[str] | None = None
) -> M:
    """Load ``model`` from a YAML file (or defaults) and apply CLI overrides."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    return validate(model, data, source=path or "overrides")


def dump_yaml(model: BaseModel, path: str | Path) -> None:
    """Write the resolved configuration (every default spelled out) as YAML."""
    from gensar.io import atomic_write_bytes

    text = yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    atomic_write_bytes(path, text.encode("utf-8"))
