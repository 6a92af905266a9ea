"""The demo page end to end: headless Chromium, driven over the DevTools protocol.

No browser-automation package is needed: a minimal WebSocket client (standard
library) speaks the DevTools protocol to Debian's ``chromium``. ``make test``
(and so CI) installs it first when it is missing and the user is root
(``make browser``); the test skips only where no Chromium could be installed,
and says why. Set ``GENSAR_CHROMIUM`` to use another binary.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import urlopen

import httpx
import pytest
import torch

from gensar.serving.launch import ServerProcess

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Session scope so that it also covers building ``tiny_run`` (8x faster on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def find_chromium() -> str:
    for candidate in (
        os.environ.get("GENSAR_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    why = (
        "apt-get could not install it (see the output of `make browser`)"
        if os.geteuid() == 0
        else "it cannot be installed without root (run `make browser` as root, or apt-get install -y chromium)"
    )
    pytest.skip(f"chromium is not installed and {why}")


# -- a minimal WebSocket client (RFC 6455: text frames, client masking) ----------------------------
class WebSocket:
    def __init__(self, url: str, timeout: float = 30.0):
        parts = urlparse(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._chunk()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket upgrade refused: {head[:200]!r}")

    def _chunk(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("websocket closed")
        return data

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._chunk()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _frame(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        self.sock.sendall(
            bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        )

    def send(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def recv(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                n = int.from_bytes(self._read(2), "big")
            elif n == 127:
                n = int.from_bytes(self._read(8), "big")
            mask = self._read(4) if second & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode == 0x9:
                self._frame(0xA, data)
                continue
            message += data
            if first & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class Page:
    """One browser tab over the DevTools protocol: evaluate JS, wait for conditions."""

    def __init__(self, ws_url: str):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.errors: list[str] = []
        self.call("Runtime.enable")

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("method") == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(message["params"]["exceptionDetails"])[:500])
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def eval(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()"
        while time.monotonic() < deadline:
            value = self.eval(guarded)  # false while the page is still loading
            if value:
                return value
            time.sleep(0.05)
        status = self.eval("document.getElementById('status').textContent")
        raise AssertionError(f"timed out waiting for {expression!r}; page status: {status!r}")


@pytest.fixture
def browser(tmp_path):
    """A fresh headless Chromium; yields the DevTools HTTP address."""
    binary = find_chromium()
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: we end exactly what we started
    )
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (active.is_file() and active.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit code {process.poll()})")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{active.read_text().split()[0]}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def open_page(devtools: str) -> Page:
    with urlopen(f"{devtools}/json/list", timeout=10) as reply:
        targets = json.load(reply)
    page = next(t for t in targets if t["type"] == "page")
    return Page(page["webSocketDebuggerUrl"])


LIST_IDS = "[...document.querySelectorAll('#{} li')].map(li => li.dataset.itemId)"


def test_demo_page_in_headless_chromium(browser, tiny_run, tiny_dataset, tmp_path):
    settings = [f"store={tmp_path / 'history.sqlite3'}", "threads=1", "log_level=warning"]
    with (
        ServerProcess(
            tiny_run / "model", tiny_dataset, settings, log_file=tmp_path / "s.log"
        ) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        page = open_page(browser)
        page.call("Page.navigate", url=f"{server.url}/?user=u3")

        # Picked user: history and recommendations, the same as the API's.
        page.wait_for("document.getElementById('status').textContent === 'User u3'")
        shown = page.eval(LIST_IDS.format("recs"))
        expected = api.post("/recommend", json={"user_id": "u3", "k": 10}).json()["items"]
        assert shown == [i["item_id"] for i in expected]
        total = api.get("/users/u3/history").json()["total"]
        assert (
            page.eval("document.getElementById('history-count').textContent")
            == f"({total} behaviours)"
        )
        assert page.eval("document.querySelectorAll('#history li.in-window').length") > 0
        assert page.eval("document.querySelectorAll('#suggestions li').length") == 5

        # Search with a query.
        page.eval(
            "document.getElementById('search-input').value = 'topic3 steel';"
            "document.getElementById('search-form').requestSubmit()"
        )
        page.wait_for("document.querySelectorAll('#results li').length === 10")
        found = api.post("/search", json={"user_id": "u3", "query": "topic3 steel", "k": 10}).json()
        assert page.eval(LIST_IDS.format("results")) == [i["item_id"] for i in found["items"]]

        # Clicking a search result records the query and the click; the page refreshes.
        clicked = page.eval("document.querySelector('#results li').dataset.itemId")
        page.eval("document.querySelector('#results li').click()")
        page.wait_for("document.getElementById('status').textContent.startsWith('Recorded 2')")
        entries = api.get("/users/u3/history").json()["entries"]
        assert [(e["behaviour"], e["query"] or e["item_id"]) for e in entries[-2:]] == [
            ("search_query", "topic3 steel"),
            ("search_item", clicked),
        ]
        assert (
            page.eval("document.getElementById('history-count').textContent")
            == f"({total + 2} behaviours)"
        )
        now = api.post("/recommend", json={"user_id": "u3", "k": 10}).json()["items"]
        assert page.eval(LIST_IDS.format("recs")) == [i["item_id"] for i in now]

        # Clicking a recommendation records a rec click.
        rec = page.eval("document.querySelector('#recs li').dataset.itemId")
        page.eval("document.querySelector('#recs li').click()")
        page.wait_for("document.getElementById('status').textContent.startsWith('Recorded 1')")
        last = api.get("/users/u3/history").json()["entries"][-1]
        assert (last["behaviour"], last["item_id"]) == ("rec_item", rec)

        # An empty search shows the server's error message, not a broken page.
        page.eval(
            "document.getElementById('search-input').value = '   ';"
            "document.getElementById('search-form').requestSubmit()"
        )
        page.wait_for("document.getElementById('status').className === 'error'")
        assert "body.query is empty" in page.eval("document.getElementById('status').textContent")

        # Pick another user through the form.
        page.eval(
            "document.getElementById('user-input').value = 'u5';"
            "document.getElementById('user-form').requestSubmit()"
        )
        page.wait_for("document.getElementById('status').textContent === 'User u5'")
        u5 = api.post("/recommend", json={"user_id": "u5", "k": 10}).json()["items"]
        assert page.eval(LIST_IDS.format("recs")) == [i["item_id"] for i in u5]
        assert page.errors == [], page.errors
        page.ws.close()
