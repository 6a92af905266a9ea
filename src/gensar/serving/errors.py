"""HTTP errors of the service: every user mistake is a 4xx with a one-line message.

The JSON body is always ``{"detail": <message>, "status": <code>, "field":
<where, or null>}``, whichever layer found the problem (request validation, a
size limit, an unknown id): a client needs one error format, not three.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """What every error response carries."""

    detail: str
    status: int
    field: str | None = None


class ApiError(Exception):
    """A request the service cannot answer, and why (``status`` is a 4xx code)."""

    def __init__(self, status: int, message: str, *, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        return ErrorBody(detail=self.message, status=self.status, field=self.field).model_dump()


def validation_message(error: dict[str, Any]) -> tuple[str, str | None]:
    """One pydantic/FastAPI validation error -> (message, field path)."""
    loc = [str(part) for part in error.get("loc", ())]
    field = _field_path(loc)
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    kind = error.get("type", "")
    if kind == "json_invalid":
        ctx = error.get("ctx") or {}
        return f"the request body is not valid JSON ({ctx.get('error', 'syntax error')})", None
    if loc == ["body"] and kind == "missing":
        return "the request body is missing: send a JSON object", None
    if loc == ["body"] and kind in ("model_attributes_type", "dict_type"):
        return (
            "the request body must be a JSON object, sent with Content-Type: application/json",
            None,
        )
    if kind == "missing":
        return f"{field}: this field is required", field
    if kind == "extra_forbidden":
        return f"{field}: unknown field", field
    value = error.get("input")
    shown = ""
    if kind not in ("model_attributes_type",) and not isinstance(value, dict | list):
        text = repr(value)
        shown = f" (got {text[:60]}{'...' if len(text) > 60 else ''})"
    return (f"{field}: {message}{shown}" if field else f"{message}{shown}"), field


def _field_path(loc: list[str]) -> str | None:
    """``['body', 'history', '2', 'item_id']`` -> ``body.history[2].item_id``."""
    if not loc:
        return None
    out = loc[0]
    for part in loc[1:]:
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out
