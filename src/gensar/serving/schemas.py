"""Request and response bodies of the HTTP API (they are also its OpenAPI schema).

Limits that depend on the configuration (largest k, longest history or
query) are checked by the service, with messages that name them; the models
here check shape and types.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gensar.data import schema
from gensar.values import INT64_MAX, INT64_MIN, check_json_text

BehaviourName = Literal["rec_item", "search_query", "search_item"]


class Strict(BaseModel):
    """Unknown fields are errors: a typo (``"user"`` for ``"user_id"``) is never silently ignored.

    Text goes through the shared check of :mod:`gensar.values`: JSON can escape a
    lone surrogate (``"\\ud800"``), which no database or response can hold (a 422
    here instead of a 500 later).
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        check_json_text(data)
        return data


class HistoryEntryIn(Strict):
    """One behaviour: a rec click or a search click (``item_id``), or a query (``query``)."""

    behaviour: BehaviourName
    item_id: str | None = Field(None, description="For rec_item and search_item.")
    query: str | None = Field(None, description="For search_query.")

    @model_validator(mode="after")
    def _one_payload(self) -> HistoryEntryIn:
        if self.behaviour == schema.SEARCH_QUERY:
            if self.query is None:
                raise ValueError("a search_query needs a 'query' text")
            if self.item_id is not None:
                raise ValueError("a search_query has a 'query', not an 'item_id'")
        else:
            if self.item_id is None:
                raise ValueError(f"a {self.behaviour} needs an 'item_id'")
            if self.query is not None:
                raise ValueError(f"a {self.behaviour} has an 'item_id', not a 'query'")
        return self


class EventIn(HistoryEntryIn):
    """A behaviour to append; ``time`` is informational (the server's clock by default)."""

    time: int | None = Field(
        None,
        ge=INT64_MIN,
        le=INT64_MAX,
        strict=True,
        description="Client time stamp (a 64-bit integer), optional.",
    )


class UserOrHistory(Strict):
    """Whose next behaviour to predict: a stored user, or an explicit history."""

    user_id: str | None = Field(None, description="A user whose history the server stores.")
    history: list[HistoryEntryIn] | None = Field(
        None, description="Behaviours oldest first, instead of a user_id."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> UserOrHistory:
        if (self.user_id is None) == (self.history is None):
            raise ValueError("give either 'user_id' or 'history' (exactly one of them)")
        return self


class RecommendRequest(UserOrHistory):
    k: int = Field(10, ge=1, strict=True, description="How many items.")


class SearchRequest(UserOrHistory):
    query: str = Field(description="What the user typed.")
    k: int = Field(10, ge=1, strict=True, description="How many items.")


class SuggestRequest(UserOrHistory):
    k: int = Field(5, ge=1, strict=True, description="How many queries.")


class EventsRequest(Strict):
    user_id: str = Field(description="The user; a new id starts a new history.")
    events: list[EventIn] = Field(description="Behaviours in the order they happened.")


class ItemOut(BaseModel):
    item_id: str
    title: str | None
    score: float = Field(description="Log-likelihood of the item (higher is better).")


class RankingResponse(BaseModel):
    user_id: str | None
    k: int
    history_used: int = Field(description="Behaviours of the history the model read.")
    items: list[ItemOut]


class SearchResponse(RankingResponse):
    query: str


class QueryOut(BaseModel):
    query: str
    score: float


class SuggestResponse(BaseModel):
    user_id: str | None
    k: int
    history_used: int
    queries: list[QueryOut]


class EventsResponse(BaseModel):
    user_id: str
    accepted: int = Field(description="Behaviours stored (committed before this reply).")
    last_seq: int = Field(description="Arrival number of the last one.")


class ItemResponse(BaseModel):
    item_id: str
    title: str | None
    description: str | None


class StoredEntryOut(BaseModel):
    seq: int
    behaviour: str
    item_id: str | None
    title: str | None
    query: str | None
    time: int | None


class HistoryResponse(BaseModel):
    user_id: str
    total: int = Field(description="Behaviours stored for this user.")
    entries: list[StoredEntryOut] = Field(description="The newest ones, oldest first.")
    window: list[int] = Field(description="seq of the behaviours the model reads.")


class UsersResponse(BaseModel):
    users: list[str]


class HealthResponse(BaseModel):
    status: Literal["ok"]
    items: int
    events: int
    batching: bool
    threads: int
    batches: dict[str, dict[str, float]] = Field(
        description="Per kind of call: model calls, requests served, mean batch size."
    )
