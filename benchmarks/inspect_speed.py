"""Prepare and inspect amazon-scientific; the issue asks for `gensar inspect` in <= 30 s.

.venv/bin/python benchmarks/inspect_speed.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gensar.data.prepare import prepare_dataset

from _common import REPO, SHARED_DATA, write_results


def main() -> None:
    source = SHARED_DATA / "amazon-scientific"
    if not source.exists():
        sys.exit(f"amazon-scientific not found at {source}; set GENSAR_SHARED_DATA")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "amazon-scientific"
        started = time.perf_counter()
        prepare_dataset("amazon-unisrec", source, out, log=lambda *_: None)
        prepare_s = time.perf_counter() - started
        started = time.perf_counter()
        result = subprocess.run(
            [str(REPO / ".venv" / "bin" / "gensar"), "inspect", str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        inspect_s = time.perf_counter() - started
    table = (
        "| step | seconds | target |\n|---|---:|---:|\n"
        f"| gensar prepare (amazon-unisrec) | {prepare_s:.1f} | - |\n"
        f"| gensar inspect (whole command) | {inspect_s:.1f} | <= 30 |\n\n"
        "```\n" + result.stdout.replace(str(out), "amazon-scientific") + "```\n"
    )
    write_results(
        "inspect_speed",
        table,
        {
            "prepare_seconds": prepare_s,
            "inspect_seconds": inspect_s,
            "inspect_output": result.stdout,
        },
    )


if __name__ == "__main__":
    main()
