"""Settings of ``gensar serve``: one validated section, every limit in one place."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field

from gensar.config import Section, apply_overrides, read_yaml, validate

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class ServeConfig(Section):
    """Where the service listens, how it batches, and what it accepts."""

    host: str = Field("127.0.0.1", description="Interface to bind; localhost unless deployed.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port.")
    api_key: str | None = Field(
        None,
        min_length=8,
        description="When set, every API call needs the header X-API-Key with this value "
        "(/health and the demo page's files stay open).",
    )
    batching: bool = Field(True, description="Micro-batch concurrent model calls.")
    max_batch: int = Field(16, ge=1, le=512, description="Requests in one model call at most.")
    max_wait_ms: float = Field(
        5.0,
        ge=0.0,
        le=1000.0,
        description="How long the first request of a batch waits for company.",
    )
    threads: int = Field(
        2,
        ge=1,
        le=256,
        description=(
            "torch CPU threads of the process. On the 2-core machine of "
            "benchmarks/serving_load.py, 2 threads serve 17% more requests per second than 1 "
            "with micro-batching (whose batched matrix products use both cores) and ~10% fewer "
            "without it."
        ),
    )
    max_k: int = Field(50, ge=1, le=1000, description="Largest k a request may ask for.")
    max_history: int = Field(
        100, ge=1, description="Most behaviours in an explicit history or one /events call."
    )
    max_query_chars: int = Field(
        1000,
        ge=1,
        description="Longest query text accepted (amazon-scientific's longest is 541).",
    )
    max_body_bytes: int = Field(
        65_536, ge=1024, description="Larger request bodies are refused with 413."
    )
    max_id_chars: int = Field(200, ge=1, description="Longest user or item id accepted.")
    window_rec: int | None = Field(
        None,
        ge=0,
        description="Rec items of a stored history the model sees (default: the dataset's "
        "samples.max_rec_history, else 5).",
    )
    window_sessions: int | None = Field(
        None,
        ge=0,
        description="Search sessions of a stored history the model sees (default: the "
        "dataset's samples.max_search_sessions, else 5).",
    )
    store: Path | None = Field(
        None,
        description="SQLite file of the live histories (default: <model_dir>/../serving/"
        "history.sqlite3).",
    )
    synchronous: Literal["full", "normal"] = Field(
        "full",
        description="SQLite synchronous mode. Both survive a killed process once a commit "
        "returned; only 'full' also survives a power cut or an OS crash.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    def is_local(self) -> bool:
        """Whether ``host`` is a loopback address (only this machine can connect)."""
        if self.host in LOCAL_HOSTS:
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False


def load_serve_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ServeConfig:
    """The ``serve:`` section of a YAML file (or the whole file), with ``key=value`` overrides."""
    data = read_yaml(path) if path else {}
    data = data.get("serve", data)
    # `--set store=...` and `--set serve.store=...` (the key as written in a run YAML) alike
    overrides = [o.removeprefix("serve.") for o in overrides or []]
    return validate(ServeConfig, apply_overrides(data, overrides), source=path or "--set")
