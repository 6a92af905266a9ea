"""Helpers for benchmark scripts: where the shared data is, machine facts, result files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED_DATA = Path(os.environ.get("GENSAR_SHARED_DATA", REPO.parent / "shared" / "data"))


def show_progress() -> None:
    """Print gensar's progress messages (stdlib logging) as the CLI does."""
    from gensar.logs import console_logging

    console_logging()


show_progress()


def machine() -> dict[str, Any]:
    """What the numbers were measured on (they are only comparable on the same machine)."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_results(
    name: str, markdown: str, data: dict[str, Any], script: str | None = None
) -> None:
    """Write benchmarks/results/<name>.md and .json (and print the table).

    ``script`` names the benchmark script when it differs from ``name`` (one
    script writing results for several workloads).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    header = f"<!-- written by benchmarks/{script or name}.py; machine: {data['machine']} -->\n"
    (RESULTS / f"{name}.md").write_text(header + markdown.rstrip() + "\n")
    print(markdown)
