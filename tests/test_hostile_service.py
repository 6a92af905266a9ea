"""Hostile inputs, part 5: the HTTP service. Binding beyond localhost without an API key
is refused (issue 16, item 2); lone surrogates, out-of-range times and booleans for
integers are 4xx answers, never a 500 or a dropped connection (item 6)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from hostile import assert_one_line_error, run_cli

from gensar.families.gensar.api import GenSAR
from gensar.serving import ServeConfig, create_app
from gensar.serving.app import refuse_open_binding

from conftest import REPO


@pytest.fixture(scope="module")
def client(tiny_run, tiny_dataset, tmp_path_factory):
    store = tmp_path_factory.mktemp("hostile-serving") / "history.sqlite3"
    model = GenSAR.load(tiny_run / "model")
    config = ServeConfig(store=store, threads=1)
    with TestClient(
        create_app(tiny_run / "model", tiny_dataset, config, model=model),
        raise_server_exceptions=False,
    ) as c:
        yield c


@pytest.fixture(scope="module")
def item(tiny_run) -> str:
    return GenSAR.load(tiny_run / "model").item_ids[0]


def post(client, path: str, raw: str):
    """Send ``raw`` as the exact body bytes (escapes stay escapes, as a client sends them)."""
    return client.post(path, content=raw.encode(), headers={"Content-Type": "application/json"})


# -- item 2: no open binding without a key ----------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_open_binding_without_a_key_is_refused(capsys, tmp_path, host):
    # refused before the model is even loaded: the model directory need not exist
    result = run_cli(capsys, "serve", tmp_path / "model", "--set", f"host='{host}'")
    assert_one_line_error(result, "refusing", host, "api_key")


def test_open_binding_refused_by_python_m_gensar_serving(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gensar.serving", str(tmp_path), "--set", "host=0.0.0.0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("host", "key"),
    [("127.0.0.1", None), ("localhost", None), ("::1", None), ("127.0.0.2", None)]
    + [("0.0.0.0", "a-long-secret-key")],
)
def test_local_or_keyed_bindings_are_allowed(host, key):
    refuse_open_binding(ServeConfig(host=host, api_key=key))  # no error


# -- item 6: client errors are 4xx -------------------------------------------------------------------
def body_cases(item: str) -> list[tuple[str, str, str]]:
    hist = f'[{{"behaviour": "rec_item", "item_id": "{item}"}}]'
    return [
        ("/search", f'{{"history": {hist}, "query": "tape \\ud800"}}', "surrogate"),
        ("/search", f'{{"history": {hist}, "query": "\\udfff"}}', "surrogate"),
        (
            "/recommend",
            '{"history": [{"behaviour": "search_query", "query": "a\\ud83d"}]}',
            "surrogate",
        ),
        (
            "/recommend",
            '{"history": [{"behaviour": "rec_item", "item_id": "\\ud800"}]}',
            "surrogate",
        ),
        ("/recommend", '{"user_id": "u\\ud800"}', "surrogate"),
        ("/suggest-queries", '{"user_id": "\\udc00"}', "surrogate"),
        ("/recommend", f'{{"history": {hist}, "k": true}}', "integer"),
        ("/suggest-queries", f'{{"history": {hist}, "k": false}}', "integer"),
        ("/search", f'{{"history": {hist}, "query": "tape", "k": true}}', "integer"),
        ("/recommend", f'{{"history": {hist}, "k": 1e999}}', "k"),
        (
            "/events",
            '{"user_id": "hostile", "events": [{"behaviour": "search_query", "query": "x\\ud800"}]}',
            "surrogate",
        ),
        (
            "/events",
            f'{{"user_id": "hostile\\ud800", "events": [{{"behaviour": "rec_item", "item_id": "{item}"}}]}}',
            "surrogate",
        ),
        (
            "/events",
            f'{{"user_id": "h", "events": [{{"behaviour": "rec_item", "item_id": "{item}", "time": 9223372036854775808}}]}}',
            "9223372036854775807",
        ),
        (
            "/events",
            f'{{"user_id": "h", "events": [{{"behaviour": "rec_item", "item_id": "{item}", "time": -9223372036854775809}}]}}',
            "time",
        ),
        (
            "/events",
            f'{{"user_id": "h", "events": [{{"behaviour": "rec_item", "item_id": "{item}", "time": 1e300}}]}}',
            "time",
        ),
        (
            "/events",
            f'{{"user_id": "h", "events": [{{"behaviour": "rec_item", "item_id": "{item}", "time": true}}]}}',
            "time",
        ),
        (
            "/events",
            f'{{"user_id": "h", "events": [{{"behaviour": "rec_item", "item_id": "{item}", "time": NaN}}]}}',
            "time",
        ),
    ]


N_BODY_CASES = 17


@pytest.mark.parametrize("case", range(N_BODY_CASES))
def test_bad_request_bodies_are_4xx(client, item, case):
    cases = body_cases(item)
    assert len(cases) == N_BODY_CASES
    path, raw, word = cases[case]
    reply = post(client, path, raw)
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text)
    body = reply.json()
    assert word.lower() in body["detail"].lower(), body
    assert "\n" not in body["detail"]
    # the service still answers, and nothing of a refused /events call was stored
    assert client.get("/health").status_code == 200
    if path == "/events":
        assert client.get("/users", params={"prefix": "h"}).json()["users"] == []


@pytest.mark.parametrize("path", ["/items/%ED%A0%80", "/users/%ED%A0%80/history", "/items/%FF"])
def test_undecodable_path_parameters_are_4xx(client, path):
    reply = client.get(path)
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text)


def test_a_valid_64_bit_time_is_stored(client, item):
    raw = f'{{"user_id": "t64", "events": [{{"behaviour": "rec_item", "item_id": "{item}", "time": 9223372036854775807}}]}}'
    assert post(client, "/events", raw).status_code == 200
    entries = client.get("/users/t64/history").json()["entries"]
    assert entries[-1]["time"] == 2**63 - 1
