"""Start the service in a separate process and wait until it answers (tests, benchmarks).

A real server process, not an in-process app: a load benchmark must not share
the client's interpreter, and a durability test must be able to SIGKILL it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m gensar.serving MODEL_DIR`` on a free port, as a context manager.

    with ServerProcess(model_dir, dataset, ["store=/tmp/h.sqlite3"]) as server:
        httpx.get(server.url + "/health")
    """

    def __init__(
        self,
        model_dir: str | Path,
        dataset_dir: str | Path | None = None,
        settings: list[str] | None = None,
        *,
        port: int | None = None,
        log_file: str | Path | None = None,
        startup_timeout: float = 180.0,
    ):
        self.model_dir = Path(model_dir)
        self.dataset_dir = dataset_dir
        self.settings = list(settings or [])
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = Path(log_file) if log_file else None
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "gensar.serving", str(self.model_dir)]
        if self.dataset_dir is not None:
            cmd += ["--dataset", str(self.dataset_dir)]
        for setting in [*self.settings, f"port={self.port}", "host=127.0.0.1"]:
            cmd += ["--set", setting]
        return cmd

    def start(self) -> ServerProcess:
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.process = subprocess.Popen(
            self.command(), stdout=out, stderr=subprocess.STDOUT, env=env
        )
        if out is not subprocess.DEVNULL:
            out.close()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with code {self.process.returncode} during start-up"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server not ready after {self.startup_timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing, like a crash or the OOM killer."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
