"""The `gensar` command line: one command per pipeline stage, plus quickstart.

Every command is a thin wrapper over the stage's Python entry point. Problems a
user can fix are printed as one line (``error: ...``) with a non-zero exit code;
heavy libraries are imported inside commands so that ``gensar --help`` is fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from gensar.errors import GensarError

app = typer.Typer(
    name="gensar",
    help="Unified generative search and recommendation (GenSAR): data -> identifiers -> model -> evaluation -> service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Run configuration (YAML).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override one setting, e.g. --set samples.max_rec_history=10 (repeatable).",
    ),
]


@app.command()
def prepare(
    source: Annotated[
        tuple[str, Path],
        typer.Option(
            help="Loader name and input path: amazon-unisrec | amazon-2014 | movielens | kuaisar | jsonl, then PATH."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Dataset directory to write (replaced atomically).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Turn raw logs into one validated dataset directory (Parquet + manifest)."""
    from gensar.config import apply_overrides, read_yaml, validate
    from gensar.data.prepare import PrepareConfig, prepare_dataset

    data = read_yaml(config) if config else {}
    data = data.get("prepare", data)
    settings = validate(PrepareConfig, apply_overrides(data, set_), source=config or "--set")
    name, path = source
    prepare_dataset(name, path, out, settings)


@app.command()
def inspect(
    dataset: Annotated[Path, typer.Argument(help="A prepared dataset directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the dataset's statistics (paper Table 2, history lengths, samples per split)."""
    from gensar.data.inspect import dataset_statistics, format_statistics

    stats = dataset_statistics(dataset)
    typer.echo(json.dumps(stats, indent=2) if as_json else format_statistics(stats))


@app.command()
def quickstart(
    out: Annotated[
        Path, typer.Option(help="Where the quickstart writes its dataset and run.")
    ] = Path("runs/quickstart"),
) -> None:
    """Run the whole pipeline on MovieLens-100K (downloaded once and cached)."""
    from gensar.quickstart import run_quickstart

    run_quickstart(out)


def main() -> None:
    """Console entry point: user errors become one line and exit code 2."""
    try:
        app()
    except GensarError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
