"""Input checks that depend on the configuration or the catalogue.

Each failed check is an :class:`ApiError` (422) whose message names the field
and the limit, e.g. ``body.k must be in 1..50 (got 500)`` or
``body.history[2].item_id: unknown item 'B0X' (not in this model's catalogue)``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from gensar.data import schema
from gensar.families.protocols import HistoryEntry
from gensar.serving.config import ServeConfig
from gensar.serving.errors import ApiError
from gensar.serving.schemas import HistoryEntryIn


class Checks:
    """The configured limits and the model's catalogue, as checks that raise 422s."""

    def __init__(self, config: ServeConfig, catalogue: Collection[str]):
        self.config = config
        self.catalogue = catalogue

    def k(self, k: int) -> None:
        if not 1 <= k <= self.config.max_k:
            raise ApiError(
                422, f"body.k must be in 1..{self.config.max_k} (got {k})", field="body.k"
            )

    def limit(self, limit: int, field: str = "query.limit", most: int = 1000) -> None:
        if not 1 <= limit <= most:
            raise ApiError(422, f"{field} must be in 1..{most} (got {limit})", field=field)

    def identifier(self, value: str, field: str) -> None:
        if not value.strip():
            raise ApiError(422, f"{field} is empty", field=field)
        if len(value) > self.config.max_id_chars:
            raise too_long(field, len(value), "characters", self.config.max_id_chars)

    def query(self, text: str, field: str) -> str:
        """The query without surrounding blanks."""
        query = text.strip()
        if not query:
            raise ApiError(
                422, f"{field} is empty: give the text the user searched for", field=field
            )
        if len(query) > self.config.max_query_chars:
            raise too_long(field, len(query), "characters", self.config.max_query_chars)
        return query

    def behaviours(self, entries: Sequence[HistoryEntryIn], field: str) -> list[HistoryEntry]:
        """A non-empty list of at most ``max_history`` valid behaviours."""
        if not entries:
            raise ApiError(422, f"{field} is empty: give at least one behaviour", field=field)
        if len(entries) > self.config.max_history:
            raise too_long(field, len(entries), "behaviours", self.config.max_history)
        return [self.entry(e, f"{field}[{n}]") for n, e in enumerate(entries)]

    def entry(self, entry: HistoryEntryIn, field: str) -> HistoryEntry:
        if entry.behaviour == schema.SEARCH_QUERY:
            return HistoryEntry(
                entry.behaviour, None, self.query(entry.query or "", f"{field}.query")
            )
        item = entry.item_id or ""
        if item not in self.catalogue:
            shown = item if len(item) <= 60 else item[:60] + "..."
            raise ApiError(
                422,
                f"{field}.item_id: unknown item {shown!r} (not in this model's catalogue)",
                field=f"{field}.item_id",
            )
        return HistoryEntry(entry.behaviour, item, None)


def too_long(field: str, count: int, unit: str, most: int) -> ApiError:
    """The 422 error of a field over its size limit, with both sizes."""
    return ApiError(422, f"{field} is too long ({count} {unit}, at most {most})", field=field)
