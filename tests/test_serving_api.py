"""The HTTP API in process (FastAPI TestClient) on the tiny trained model.

Every bad input gets its 4xx status and a message that names the problem;
live histories change the next answer; batched answers equal unbatched ones.
"""

from __future__ import annotations

import concurrent.futures

import pytest
import torch
from fastapi.testclient import TestClient

from gensar.families.gensar.api import GenSAR
from gensar.serving import ServeConfig, create_app
from gensar.serving.store import HistoryStore

KEY = "s3cret-key-for-tests"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Session scope so that it also covers building ``tiny_run`` (8x faster on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(tiny_run) -> GenSAR:
    return GenSAR.load(tiny_run / "model")


def make_client(tiny_run, tiny_dataset, model, store, **settings) -> TestClient:
    config = ServeConfig(store=store, threads=1, **settings)
    return TestClient(create_app(tiny_run / "model", tiny_dataset, config, model=model))


@pytest.fixture(scope="module")
def client(tiny_run, tiny_dataset, model, tmp_path_factory):
    store = tmp_path_factory.mktemp("serving") / "history.sqlite3"
    with make_client(
        tiny_run, tiny_dataset, model, store, max_k=20, max_history=30, max_query_chars=40
    ) as c:
        yield c


def items(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["item_id"] for i in response.json()["items"]]


# -- the endpoints ----------------------------------------------------------------------------------
def test_health_and_openapi(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["items"] == 60 and health["events"] > 0
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/recommend",
        "/search",
        "/suggest-queries",
        "/events",
        "/items/{item_id}",
        "/health",
    ):
        assert path in paths


def test_recommend_for_a_stored_user_matches_the_python_api(client, model, tiny_dataset):
    got = client.post("/recommend", json={"user_id": "u3", "k": 5}).json()
    assert got["user_id"] == "u3" and got["k"] == 5 and len(got["items"]) == 5
    assert all(set(i) == {"item_id", "title", "score"} for i in got["items"])
    assert got["items"][0]["title"] == model.titles[got["items"][0]["item_id"]]
    scores = [i["score"] for i in got["items"]]
    assert scores == sorted(scores, reverse=True)
    # The same window through the Python API gives the same ranking.
    store = HistoryStore(client.app.state.service.store_path)
    window = store.window("u3", 5, 5)
    store.close()
    assert got["history_used"] == len(window)
    expected = model.recommend(
        [{"behaviour": e.behaviour, "item_id": e.item_id, "query": e.query} for e in window], k=5
    )
    assert [i["item_id"] for i in got["items"]] == [p.item_id for p in expected]


def test_search_and_suggestions(client):
    found = client.post("/search", json={"user_id": "u2", "query": "  topic2 red ", "k": 4}).json()
    assert found["query"] == "topic2 red" and len(found["items"]) == 4
    suggested = client.post("/suggest-queries", json={"user_id": "u2", "k": 3}).json()
    assert len(suggested["queries"]) == 3
    assert all(q["query"] for q in suggested["queries"])


def test_explicit_history_needs_no_stored_user(client):
    history = [
        {"behaviour": "rec_item", "item_id": "i1"},
        {"behaviour": "search_query", "query": "topic1 blue"},
        {"behaviour": "search_item", "item_id": "i7"},
    ]
    got = client.post("/recommend", json={"history": history, "k": 3})
    assert len(items(got)) == 3 and got.json()["user_id"] is None
    assert got.json()["history_used"] == 3


def test_item_lookup(client, model):
    got = client.get("/items/i4").json()
    assert got["item_id"] == "i4" and got["title"] == model.titles["i4"]
    assert got["description"]


def test_events_change_the_next_recommendation(client):
    """A new user: posted behaviours are the history the next answer reads."""
    user = "fresh-user"
    assert client.post("/recommend", json={"user_id": user}).status_code == 404
    first = client.post(
        "/events", json={"user_id": user, "events": [{"behaviour": "rec_item", "item_id": "i0"}]}
    ).json()
    assert first["accepted"] == 1
    before = client.post("/recommend", json={"user_id": user, "k": 10}).json()
    assert before["history_used"] == 1
    more = [{"behaviour": "rec_item", "item_id": f"i{n}"} for n in (13, 25, 37, 49)]
    more += [
        {"behaviour": "search_query", "query": "topic1 steel"},
        {"behaviour": "search_item", "item_id": "i7"},
    ]
    last = client.post("/events", json={"user_id": user, "events": more}).json()
    assert last["last_seq"] > first["last_seq"]
    after = client.post("/recommend", json={"user_id": user, "k": 10}).json()
    assert after["history_used"] == 7
    # The answer is exactly what the model gives for the new history.
    history = [{"behaviour": "rec_item", "item_id": "i0"}] + more
    direct = client.post("/recommend", json={"history": history, "k": 10}).json()
    assert [i["item_id"] for i in after["items"]] == [i["item_id"] for i in direct["items"]]
    assert after["items"] != before["items"]
    shown = client.get(f"/users/{user}/history").json()
    assert shown["total"] == 7
    assert [e["item_id"] for e in shown["entries"]][-1] == "i7"
    assert shown["entries"][-2]["query"] == "topic1 steel"


def test_users_listing(client):
    assert client.get("/users", params={"prefix": "u1", "limit": 3}).json()["users"] == [
        "u1",
        "u10",
        "u11",
    ]


def test_concurrent_requests_are_batched_and_equal_to_single_requests(client):
    users = [f"u{n}" for n in range(12)]
    singles = {u: items(client.post("/recommend", json={"user_id": u, "k": 5})) for u in users}
    batcher = client.app.state.service.recommender
    calls, requests = batcher.calls, batcher.requests
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(
            pool.map(lambda u: client.post("/recommend", json={"user_id": u, "k": 5}), users)
        )
    assert {u: items(a) for u, a in zip(users, answers, strict=True)} == singles
    assert batcher.requests - requests == len(users)
    assert batcher.calls - calls < len(users), "concurrent requests were never batched"


# -- bad input: status and message -------------------------------------------------------------------
BAD = [
    ("/recommend", {"user_id": "nobody"}, 404, "unknown user 'nobody'"),
    ("/search", {"user_id": "nobody", "query": "x"}, 404, "unknown user 'nobody'"),
    ("/suggest-queries", {"user_id": "nobody"}, 404, "unknown user 'nobody'"),
    ("/recommend", {"user_id": "u1", "k": 0}, 422, "body.k"),
    ("/recommend", {"user_id": "u1", "k": 21}, 422, "body.k must be in 1..20 (got 21)"),
    ("/suggest-queries", {"user_id": "u1", "k": 99}, 422, "body.k must be in 1..20"),
    ("/recommend", {"user_id": "u1", "k": "ten"}, 422, "body.k: Input should be a valid integer"),
    ("/recommend", {}, 422, "give either 'user_id' or 'history'"),
    ("/recommend", {"user_id": "u1", "history": []}, 422, "give either 'user_id' or 'history'"),
    ("/recommend", {"user": "u1"}, 422, "body.user: unknown field"),
    ("/recommend", {"user_id": ""}, 422, "body.user_id is empty"),
    ("/recommend", {"user_id": "u" * 201}, 422, "body.user_id is too long"),
    ("/recommend", {"history": []}, 422, "body.history is empty"),
    (
        "/recommend",
        {"history": [{"behaviour": "rec_item", "item_id": "i1"}] * 31},
        422,
        "body.history is too long (31 behaviours, at most 30)",
    ),
    (
        "/recommend",
        {
            "history": [
                {"behaviour": "rec_item", "item_id": "i1"},
                {"behaviour": "rec_item", "item_id": "B0NOPE"},
            ]
        },
        422,
        "body.history[1].item_id: unknown item 'B0NOPE'",
    ),
    (
        "/recommend",
        {"history": [{"behaviour": "clicked", "item_id": "i1"}]},
        422,
        "body.history[0].behaviour",
    ),
    (
        "/recommend",
        {"history": [{"behaviour": "search_query"}]},
        422,
        "a search_query needs a 'query' text",
    ),
    ("/recommend", {"history": [{"behaviour": "rec_item"}]}, 422, "a rec_item needs an 'item_id'"),
    (
        "/recommend",
        {"history": [{"behaviour": "search_query", "query": " "}]},
        422,
        "body.history[0].query is empty",
    ),
    ("/search", {"user_id": "u1"}, 422, "body.query: this field is required"),
    ("/search", {"user_id": "u1", "query": "   "}, 422, "body.query is empty"),
    (
        "/search",
        {"user_id": "u1", "query": "q" * 41},
        422,
        "body.query is too long (41 characters, at most 40)",
    ),
    ("/events", {"user_id": "u1", "events": []}, 422, "body.events is empty"),
    (
        "/events",
        {"user_id": "u1", "events": [{"behaviour": "search_item", "item_id": "nope"}]},
        422,
        "body.events[0].item_id: unknown item 'nope'",
    ),
    (
        "/events",
        {"user_id": "", "events": [{"behaviour": "rec_item", "item_id": "i1"}]},
        422,
        "body.user_id is empty",
    ),
    (
        "/events",
        {"events": [{"behaviour": "rec_item", "item_id": "i1"}]},
        422,
        "body.user_id: this field is required",
    ),
    (
        "/events",
        {"user_id": "u1", "events": [{"behaviour": "rec_item", "item_id": "i1"}] * 31},
        422,
        "body.events is too long",
    ),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD)
def test_bad_input_is_a_4xx_that_says_what_is_wrong(client, path, body, status, message):
    got = client.post(path, json=body)
    assert got.status_code == status, got.text
    error = got.json()
    assert message in error["detail"]
    assert error["status"] == status


def test_rejected_events_store_nothing(client):
    before = client.get("/users/u5/history").json()["total"]
    bad = [{"behaviour": "rec_item", "item_id": "i1"}, {"behaviour": "rec_item", "item_id": "nope"}]
    assert client.post("/events", json={"user_id": "u5", "events": bad}).status_code == 422
    assert client.get("/users/u5/history").json()["total"] == before


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        (b'{"user_id": ', {"content-type": "application/json"}, 400, "not valid JSON"),
        (b"", {"content-type": "application/json"}, 422, "body is missing"),
        (b"[1, 2]", {"content-type": "application/json"}, 422, "must be a JSON object"),
        (b'{"user_id": "u1"}', {"content-type": "text/plain"}, 422, "must be a JSON object"),
        (b"x" * 70_000, {"content-type": "application/json"}, 413, "too large (70000 bytes)"),
    ],
)
def test_malformed_or_oversized_bodies(client, content, headers, status, message):
    got = client.post("/recommend", content=content, headers=headers)
    assert got.status_code == status, got.text
    assert message in got.json()["detail"]


def test_streamed_body_over_the_limit_is_413(client):
    def chunks():
        for _ in range(80):
            yield b"x" * 1000

    got = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert got.status_code == 413
    assert "too large" in got.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("get", "/items/nope", 404, "unknown item 'nope'"),
        ("get", "/users/nobody/history", 404, "unknown user 'nobody'"),
        ("get", "/users/u1/history?limit=0", 422, "query.limit must be in 1..1000"),
        ("get", "/users?limit=abc", 422, "query.limit"),
        ("get", "/no-such-thing", 404, "no such endpoint"),
        ("get", "/recommend", 405, "method not allowed"),
    ],
)
def test_bad_paths_and_parameters(client, method, path, status, message):
    got = getattr(client, method)(path)
    assert got.status_code == status, got.text
    assert message in got.json()["detail"]


def test_demo_page_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="/static/demo.js"' in page.text
    script = client.get("/static/demo.js")
    assert script.status_code == 200 and "/recommend" in script.text


# -- API key ----------------------------------------------------------------------------------------
def test_api_key_guards_the_api_but_not_health(tiny_run, tiny_dataset, model, tmp_path):
    with make_client(tiny_run, tiny_dataset, model, tmp_path / "h.sqlite3", api_key=KEY) as c:
        missing = c.post("/recommend", json={"user_id": "u1"})
        assert missing.status_code == 401 and "missing X-API-Key" in missing.json()["detail"]
        wrong = c.post("/recommend", json={"user_id": "u1"}, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and "wrong API key" in wrong.json()["detail"]
        assert c.get("/items/i1").status_code == 401
        assert c.get("/health").status_code == 200
        assert c.get("/").status_code == 200
        ok = c.post("/recommend", json={"user_id": "u1", "k": 2}, headers={"X-API-Key": KEY})
        assert len(items(ok)) == 2
        assert "X-API-Key" in str(c.get("/openapi.json").json()["components"]["securitySchemes"])
