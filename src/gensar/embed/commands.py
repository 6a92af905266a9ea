"""The ``embed-collab`` command: a thin Typer wrapper over :func:`train_collaborative`.

Mount it with ``app.add_typer(commands.app)`` (its command then appears at the
top level) or call :func:`embed_collab` from another command. The config file
may be a whole run config (its ``collab:`` section is used) or just that section;
``--set key=value`` overrides one setting, e.g. ``--set max_epochs=10``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gensar.errors import GensarError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command("embed-collab")
def embed_collab(
    dataset: Annotated[Path, typer.Argument(help="A prepared dataset directory.")],
    run: Annotated[
        Path, typer.Option("--run", "-r", help="Run directory; writes RUN/embeddings/.")
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="YAML: a run config (its collab: section) or the section."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override one setting, e.g. --set max_epochs=10."),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train SASRec on the training rec sequences -> RUN/embeddings/collab.safetensors
    and RUN/embeddings/sasrec/ (the recommendation baseline)."""
    from gensar.config import apply_overrides, read_yaml, validate
    from gensar.embed.collab import train_collaborative
    from gensar.embed.sasrec import SASRecConfig

    try:
        data = read_yaml(config) if config else {}
        section = data.get("collab", data)
        settings = validate(SASRecConfig, apply_overrides(section, set_), source=config or "--set")
        summary = train_collaborative(dataset, run, settings, progress=not quiet)
    except GensarError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(err.exit_code) from None
    typer.echo(json.dumps(summary, indent=2))
