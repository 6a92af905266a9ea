"""The service as a real uvicorn process: SIGKILL loses no acknowledged event."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import pytest
import torch

from gensar.serving.launch import ServerProcess


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Session scope so that it also covers building ``tiny_run`` (8x faster on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_acknowledged_events_survive_sigkill(tiny_run, tiny_dataset, tmp_path):
    settings = [f"store={tmp_path / 'history.sqlite3'}", "threads=1", "log_level=warning"]
    log = tmp_path / "server.log"
    server = ServerProcess(tiny_run / "model", tiny_dataset, settings, log_file=log).start()
    imported = httpx.get(f"{server.url}/users/u1/history").json()["total"]
    acked: list[tuple[str, int, str]] = []  # (user, seq of the query, query text)
    stop = threading.Event()

    def writer(w: int) -> None:
        user = f"killed-{w}"
        with httpx.Client(base_url=server.url, timeout=10) as client:
            n = 0
            while not stop.is_set():
                query = f"query {w}-{n}"
                body = {
                    "user_id": user,
                    "events": [
                        {"behaviour": "rec_item", "item_id": f"i{(7 * w + n) % 60}"},
                        {"behaviour": "search_query", "query": query},
                    ],
                }
                try:
                    reply = client.post("/events", json=body)
                except httpx.HTTPError:
                    return  # the server is gone: this one was never acknowledged
                assert reply.status_code == 200, reply.text
                acked.append((user, reply.json()["last_seq"], query))
                n += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # while the writers are still posting
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 60, f"only {len(acked)} events acknowledged; see {log}"

    with (
        ServerProcess(tiny_run / "model", tiny_dataset, settings, log_file=log) as again,
        httpx.Client(base_url=again.url, timeout=10) as client,
    ):
        stored: dict[str, dict[int, dict]] = {}
        for w in range(4):
            user = f"killed-{w}"
            reply = client.get(f"/users/{user}/history", params={"limit": 1000})
            assert reply.status_code == 200, reply.text
            stored[user] = {e["seq"]: e for e in reply.json()["entries"]}
        for user, seq, query in acked:
            assert stored[user][seq]["query"] == query, (user, seq)
            assert stored[user][seq - 1]["behaviour"] == "rec_item"
        # the restarted server reads the recovered history
        reply = client.post("/recommend", json={"user_id": "killed-0", "k": 3})
        assert reply.status_code == 200 and len(reply.json()["items"]) == 3
        # the dataset is imported once, not again at the restart
        assert client.get("/users/u1/history").json()["total"] == imported


def test_bad_model_dir_is_a_one_line_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gensar.serving", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "not a gensar model directory" in result.stderr
    assert "Traceback" not in result.stderr
