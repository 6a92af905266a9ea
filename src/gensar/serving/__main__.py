"""``python -m gensar.serving MODEL_DIR [--dataset DIR] [-c FILE] [--set key=value]``.

The same as ``gensar serve``; used by the tests and the load benchmark to start
the server in a separate process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gensar.errors import GensarError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gensar.serving", description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("-c", "--config", type=Path, default=None)
    parser.add_argument("-s", "--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    from gensar.serving.app import serve
    from gensar.serving.config import load_serve_config

    try:
        serve(args.model_dir, args.dataset, load_serve_config(args.config, args.overrides))
    except GensarError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
