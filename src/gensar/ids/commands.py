"""Typer commands of the identifier stage, to be mounted on the main CLI.

``embed-text`` and ``index`` are thin wrappers over :func:`gensar.embed.semantic.embed_items`
and :func:`gensar.ids.build.build_identifiers`. Settings come from the ``semantic:``
/ ``index:`` section of a YAML file (or the whole file when it has no such
section) plus ``--set key=value`` overrides. Heavy imports happen inside the
commands so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

DatasetArg = Annotated[Path, typer.Argument(help="A prepared dataset directory.")]
RunArg = Annotated[Path, typer.Argument(help="The run directory (embeddings/, identifiers/ ...).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Run configuration (YAML).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override one setting, e.g. --set epochs=50 (repeatable)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _settings(model, section: str, config: Path | None, overrides: list[str] | None):
    from gensar.config import apply_overrides, read_yaml, validate

    data = read_yaml(config) if config else {}
    data = data.get(section, data)
    return validate(model, apply_overrides(data, overrides), source=config or "--set")


@app.command("embed-text")
def embed_text(
    dataset: DatasetArg, run: RunArg, config: ConfigOpt = None, set_: SetOpt = None
) -> None:
    """Encode item texts with a sentence-transformers model -> RUN/embeddings/semantic.safetensors."""
    from gensar.embed.semantic import SemanticConfig, embed_items

    settings = _settings(SemanticConfig, "semantic", config, set_)
    path = embed_items(dataset, run, settings)
    typer.echo(f"wrote {path}")


@app.command("index")
def index(
    dataset: DatasetArg,
    run: RunArg,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the joint RQ-VAE and write unique identifiers -> RUN/identifiers/."""
    from gensar.ids.build import build_identifiers
    from gensar.ids.config import IndexConfig

    settings = _settings(IndexConfig, "index", config, set_)
    report = build_identifiers(dataset, run, settings, progress=not quiet)
    for kind, rates in report["collision_rate"].items():
        steps = ", ".join(f"{step} {rate:.2%}" for step, rate in rates.items())
        typer.echo(f"{kind} collisions: {steps}")
    low = min(row["usage"] for row in report["codebook_usage"] if not row["disambiguation"])
    typer.echo(f"lowest codebook usage {low:.1%}; wrote {Path(run) / 'identifiers'}")
