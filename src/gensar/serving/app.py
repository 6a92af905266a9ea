"""The HTTP application: ``create_app`` builds it, ``serve`` runs it on uvicorn.

    serve("runs/sci/model", "runs/data/amazon-scientific", ServeConfig(port=8000))

The model is loaded once, in ``create_app``: a missing or broken model
directory is a :class:`~gensar.errors.GensarError` before the server starts,
not a failed first request.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gensar.card import ModelCard
from gensar.errors import GensarError
from gensar.families.protocols import Servable
from gensar.families.registry import load_model
from gensar.layout import RunLayout
from gensar.serving import schemas as s
from gensar.serving.config import ServeConfig
from gensar.serving.errors import ApiError, ErrorBody, validation_message
from gensar.serving.limits import BodySizeLimit
from gensar.serving.service import Service, card_of
from gensar.serving.store import HistoryStore

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
DEFAULT_WINDOW = (5, 5)

ERRORS = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Malformed JSON",
        401: "Missing or wrong X-API-Key",
        404: "Unknown user or item",
        413: "Body too large",
        422: "Invalid field",
    }.items()
}


def default_store(model_dir: str | Path) -> Path:
    """``<run>/serving/history.sqlite3`` beside the run's ``model/`` folder."""
    return RunLayout.of_model(model_dir).store


def create_app(
    model_dir: str | Path,
    dataset_dir: str | Path | None = None,
    config: ServeConfig | None = None,
    *,
    model: Servable | None = None,
) -> FastAPI:
    """Load the model, open (and if needed fill) the history store, and build the app.

    ``dataset_dir`` seeds the store with the dataset's histories (once; later
    starts find them there). ``model`` skips loading when the caller holds one.
    """
    import torch

    config = config or ServeConfig()
    torch.set_num_threads(config.threads)
    model = model or load_model(model_dir)
    store_path = config.store or default_store(model_dir)
    window = _window(config, dataset_dir, card_of(model))
    store = HistoryStore(store_path, synchronous=config.synchronous)
    try:
        if dataset_dir is not None:
            _check_same_dataset(model, dataset_dir)
            added = store.import_dataset(dataset_dir)
            if added:
                log.info("imported %d events of %s into %s", added, dataset_dir, store_path)
    finally:
        store.close()
    service = Service(model, store_path, config, window=window)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="gensar",
        summary="Unified generative search and recommendation: one model, live histories.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.config = config
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    _add_error_handlers(app)
    _add_routes(app, service, config)
    return app


def serve(
    model_dir: str | Path,
    dataset_dir: str | Path | None = None,
    config: ServeConfig | None = None,
) -> None:
    """Run the service on uvicorn until interrupted (one process, one model)."""
    import uvicorn

    config = config or ServeConfig()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=config.log_level.upper(), format="%(levelname)s: %(message)s")
    refuse_open_binding(config)
    app = create_app(model_dir, dataset_dir, config)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        access_log=config.log_level == "debug",
        timeout_graceful_shutdown=5,
    )


def refuse_open_binding(config: ServeConfig) -> None:
    """Binding beyond the loopback interface without an API key would hand every user's
    history to anyone who can reach the machine: refused, not warned about."""
    if not config.is_local() and not config.api_key:
        raise GensarError(
            f"refusing to serve on {config.host} without an API key: anyone who can reach "
            "it could read and write every user's history",
            fix="set serve.api_key (e.g. --set api_key=$(openssl rand -hex 16)) or bind to 127.0.0.1",
        )


# -- pieces of create_app ----------------------------------------------------------------------------
def _window(
    config: ServeConfig, dataset_dir: str | Path | None, card: ModelCard | None = None
) -> tuple[int, int]:
    """The history window of training: recorded in the model card (or the dataset's
    sample options), unless configured."""
    rec, sessions = DEFAULT_WINDOW
    trained = card.history_window if card is not None else None
    if trained is not None:
        rec, sessions = trained.max_rec_history, trained.max_search_sessions
    if dataset_dir is not None:
        from gensar.data.dataset import load_dataset

        samples = load_dataset(dataset_dir).manifest.get("options", {}).get("samples", {})
        rec = int(samples.get("max_rec_history", rec))
        sessions = int(samples.get("max_search_sessions", sessions))
    return (
        config.window_rec if config.window_rec is not None else rec,
        config.window_sessions if config.window_sessions is not None else sessions,
    )


def _check_same_dataset(model: Servable, dataset_dir: str | Path) -> None:
    from gensar.data.dataset import load_dataset

    trained_on = card_of(model).dataset.content_hash
    given = load_dataset(dataset_dir).manifest.get("content_hash")
    if trained_on and given and trained_on != given:
        log.warning(
            "the model was trained on another dataset than %s: histories of items the model "
            "does not know are ignored",
            dataset_dir,
        )


def _error(status: int, message: str, field: str | None = None, headers=None) -> JSONResponse:
    body = ErrorBody(detail=message, status=status, field=field).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, err: ApiError) -> JSONResponse:
        return _error(err.status, err.message, err.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        problems = list(err.errors())
        if not problems:
            return _error(422, "invalid request")
        message, field = validation_message(problems[0])
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})"
        status = 400 if problems[0].get("type") == "json_invalid" else 422
        return _error(status, message, field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = str(err.detail)
        if err.status_code == 404 and message == "Not Found":
            message = "no such endpoint: see /docs for the API"
        elif err.status_code == 405:
            message = "method not allowed on this endpoint: see /docs for the API"
        return _error(err.status_code, message, headers=getattr(err, "headers", None))

    @app.exception_handler(GensarError)
    async def gensar_error(_request: Request, err: GensarError) -> JSONResponse:
        return _error(422, str(err))


def _add_routes(app: FastAPI, service: Service, config: ServeConfig) -> None:
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    # A default, not Annotated[...]: the header scheme is local, and string annotations
    # (``from __future__ import annotations``) are resolved in the module's globals.
    async def require_key(key: str | None = Depends(key_header)) -> None:  # noqa: B008
        if config.api_key is None:
            return
        if key is None:
            raise ApiError(401, "missing X-API-Key header: this server needs an API key")
        if not secrets.compare_digest(key.encode(), config.api_key.encode()):
            raise ApiError(401, "wrong API key in X-API-Key")

    guarded = {"dependencies": [Depends(require_key)], "responses": ERRORS}

    @app.get("/", include_in_schema=False)
    async def demo_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", response_model=s.HealthResponse, tags=["service"])
    async def health() -> s.HealthResponse:
        """Liveness, the catalogue size and the number of stored events."""
        return await service.health()

    @app.post("/recommend", response_model=s.RankingResponse, tags=["model"], **guarded)
    async def recommend(req: s.RecommendRequest) -> s.RankingResponse:
        """The k items a user most likely clicks next from recommendation."""
        return await service.recommend(req)

    @app.post("/search", response_model=s.SearchResponse, tags=["model"], **guarded)
    async def search(req: s.SearchRequest) -> s.SearchResponse:
        """The k items a user most likely clicks for a query, personalised by the history."""
        return await service.search(req)

    @app.post("/suggest-queries", response_model=s.SuggestResponse, tags=["model"], **guarded)
    async def suggest_queries(req: s.SuggestRequest) -> s.SuggestResponse:
        """The k queries a user most likely searches next."""
        return await service.suggest_queries(req)

    @app.post("/events", response_model=s.EventsResponse, tags=["histories"], **guarded)
    async def events(req: s.EventsRequest) -> s.EventsResponse:
        """Append behaviours to a user's history; stored durably before the reply."""
        return await service.add_events(req)

    @app.get("/items/{item_id}", response_model=s.ItemResponse, tags=["catalogue"], **guarded)
    async def item(item_id: str) -> s.ItemResponse:
        """An item's title and description."""
        return service.item(item_id)

    @app.get("/users", response_model=s.UsersResponse, tags=["histories"], **guarded)
    async def users(
        prefix: Annotated[str, Query(description="Only ids starting with this.")] = "",
        limit: Annotated[int, Query(description="At most this many (1..1000).")] = 50,
    ) -> s.UsersResponse:
        """Stored user ids in sorted order."""
        return await service.users(prefix, limit)

    @app.get(
        "/users/{user_id}/history", response_model=s.HistoryResponse, tags=["histories"], **guarded
    )
    async def history(
        user_id: str,
        limit: Annotated[int, Query(description="Newest behaviours to return (1..1000).")] = 50,
    ) -> s.HistoryResponse:
        """A user's newest behaviours, and which of them the model reads."""
        return await service.user_history(user_id, limit)
