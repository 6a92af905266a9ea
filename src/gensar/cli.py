"""The `gensar` command line: one command per pipeline stage, plus quickstart.

Every command is a thin wrapper over the stage's Python entry point. Problems a
user can fix are printed as one line (``error: ...``) with a non-zero exit code;
heavy libraries are imported inside commands so that ``gensar --help`` is fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from gensar.errors import ConfigError, GensarError

#: Operating-system errors caused by the paths a user gave, shown as one line.
USER_OS_ERRORS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOENT,
    errno.EEXIST,
    errno.ENAMETOOLONG,
}

app = typer.Typer(
    name="gensar",
    help="Unified generative search and recommendation (GenSAR): data -> identifiers -> model -> evaluation -> service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Run configuration (YAML).")]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace an existing output even if gensar did not write it (its contents are lost).",
    ),
]
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
    out: Annotated[
        Path,
        typer.Option(
            help="Dataset directory to write (replaced atomically; only an earlier dataset is replaced without --overwrite)."
        ),
    ],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Turn raw logs into one validated dataset directory (Parquet + manifest)."""
    from gensar.config import apply_overrides, read_yaml, validate
    from gensar.data.prepare import PrepareConfig, prepare_dataset

    data = read_yaml(config) if config else {}
    data = data.get("prepare", data)
    settings = validate(PrepareConfig, apply_overrides(data, set_), source=config or "--set")
    name, path = source
    prepare_dataset(name, path, out, settings, overwrite=overwrite)


@app.command()
def inspect(
    dataset: Annotated[Path, typer.Argument(help="A prepared dataset directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the dataset's statistics (paper Table 2, history lengths, samples per split)."""
    from gensar.data.inspect import dataset_statistics, format_statistics

    stats = dataset_statistics(dataset)
    typer.echo(json.dumps(stats, indent=2) if as_json else format_statistics(stats))


DatasetArg = Annotated[
    Path, typer.Argument(help="A prepared dataset directory (`gensar prepare`).")
]
RunOpt = Annotated[Path, typer.Option("--run", "-r", help="The run directory the stages write to.")]

embed_app = typer.Typer(
    help="Item embeddings (paper 3.2.1): semantic (text encoder) and collaborative (SASRec).",
    no_args_is_help=True,
)
app.add_typer(embed_app, name="embed")


@contextlib.contextmanager
def _stage(
    config: Path | None,
    set_: list[str] | None,
    dataset: Path | None,
    run: Path | None,
    overwrite: bool = False,
) -> Iterator[Any]:
    """Validate the settings, refuse a run directory gensar did not write, record the
    settings, and run the stage's block (allowed to replace foreign outputs only with --overwrite)."""
    from gensar.io import allow_overwrite
    from gensar.run import load_run_config, save_run_config

    settings = load_run_config(config, set_, dataset=dataset, run_dir=run)
    save_run_config(settings, overwrite=overwrite)
    with allow_overwrite(overwrite):
        yield settings


@embed_app.command("text")
def embed_text(
    dataset: DatasetArg,
    run: RunOpt,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Embed item texts with the sentence encoder -> RUN/embeddings/semantic.safetensors."""
    from gensar.embed.semantic import embed_items

    with _stage(config, set_, dataset, run, overwrite) as settings:
        path = embed_items(settings.dataset, settings.run_dir, settings.semantic)
    typer.echo(f"wrote {path}")


@embed_app.command("collab")
def embed_collab(
    dataset: DatasetArg,
    run: RunOpt,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train SASRec on the training rec sequences -> RUN/embeddings/collab.safetensors."""
    from gensar.embed.collab import train_collaborative

    with _stage(config, set_, dataset, run, overwrite) as settings:
        summary = train_collaborative(settings.dataset, settings.run_dir, settings.collab)
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def index(
    dataset: DatasetArg,
    run: RunOpt,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Learn the joint RQ-VAE and assign unique identifiers -> RUN/identifiers/."""
    from gensar.ids.build import build_identifiers

    with _stage(config, set_, dataset, run, overwrite) as settings:
        report = build_identifiers(settings.dataset, settings.run_dir, settings.index)
    for kind, rates in report.get("collision_rate", {}).items():
        steps = ", ".join(f"{step} {rate:.2%}" for step, rate in rates.items())
        typer.echo(f"{kind} collisions: {steps}")
    usage = [row["usage"] for row in report.get("codebook_usage", []) if not row["disambiguation"]]
    if usage:
        typer.echo(f"lowest codebook usage {min(usage):.1%}")
    typer.echo(f"wrote {Path(settings.run_dir) / 'identifiers'}")


@app.command("index-report")
def index_report(
    run: Annotated[Path, typer.Argument(help="A run directory (or its identifiers/ folder).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Print what the identifiers mean: reconstruction, collisions, usage, agreement with queries."""
    from gensar.errors import DataError
    from gensar.ids.identifiers import REPORT, identifiers_dir
    from gensar.ids.report import format_report
    from gensar.io import read_json

    path = identifiers_dir(run) / REPORT
    if not path.is_file():
        raise DataError(f"no {REPORT}", where=path, fix="build the identifiers with `gensar index`")
    report = read_json(path)
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@app.command()
def train(
    dataset: DatasetArg,
    run: RunOpt,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the latest checkpoint in RUN/training.")
    ] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train the run's model family (GenSAR by default: the five tasks) -> RUN/model."""
    from gensar.pipeline import build_run

    with _stage(config, set_, dataset, run, overwrite) as settings:
        build_run(settings, only=("candidates",))  # the lists its validation reads, if any
        settings.family.train(settings.dataset, settings.run_dir, settings, resume=resume)


@app.command("run")
def run_all(
    dataset: DatasetArg,
    run: RunOpt,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """All stages for one dataset: embeddings, identifiers, GenSAR training, evaluation."""
    from gensar.pipeline import run_pipeline

    with _stage(config, set_, dataset, run, overwrite) as settings:
        run_pipeline(settings)


@app.command()
def evaluate(
    dataset: DatasetArg,
    run: RunOpt,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    baselines: Annotated[
        bool, typer.Option(help="Also evaluate SASRec, BM25 and dense retrieval.")
    ] = True,
    overwrite: OverwriteOpt = False,
) -> None:
    """Evaluate RUN/model (and the baselines) on the shared test candidate lists -> RUN/results."""
    from gensar.pipeline import evaluate_run

    with _stage(config, set_, dataset, run, overwrite) as settings:
        evaluate_run(settings, baselines=baselines)


@app.command()
def benchmark(
    config: Annotated[Path, typer.Argument(help="Benchmark YAML (see benchmarks/*.yaml).")],
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
    train_only: Annotated[
        list[str] | None,
        typer.Option(
            "--train-only",
            help="Only build (train) the runs of these models (by name; repeatable) and stop: "
            "a second process can train them beside a full run of the same YAML, which then "
            "reuses them (same settings, same folders). No evaluation, no table.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="A model whose training was interrupted continues from its latest "
            "checkpoint (GenSAR, SynerGen) instead of starting again.",
        ),
    ] = False,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip",
            help="Leave these models (by name; repeatable) out of this run and its table; "
            "the header says so.",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Train and evaluate only these models (by name; repeatable) and keep their "
            "results in their run folders; no table. A full run of the same YAML, beside it "
            "or later, reads those results instead of ranking the lists again.",
        ),
    ] = None,
) -> None:
    """Train and evaluate every model a benchmark YAML lists; write results.md/json and tradeoff.png."""
    from gensar.benchmark import load_benchmark, run_benchmark, train_models
    from gensar.io import allow_overwrite, check_output_dir

    if train_only and (only or skip):
        raise ConfigError(
            "--train-only does not combine with --only or --skip",
            fix="use --train-only NAME to train without evaluating, or --only/--skip to "
            "choose the models a run trains and evaluates",
        )
    bench = load_benchmark(config, set_)
    if train_only:
        with allow_overwrite(overwrite):
            train_models(bench, train_only, resume=resume)
        return
    check_output_dir(bench.out, "benchmark", overwrite=overwrite)
    with allow_overwrite(overwrite):
        run_benchmark(bench, only=only, skip=skip, resume=resume)


@app.command()
def predict(
    model_dir: Annotated[
        Path, typer.Argument(help="A model directory written by `gensar train` (RUN/model).")
    ],
    input: Annotated[
        Path,
        typer.Option("--input", "-i", help="JSON lines: {task, history, query?, k?} per line."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="JSON lines with the answers, same order.")
    ],
    batch_size: Annotated[int, typer.Option(min=1, help="Requests answered together.")] = 32,
    overwrite: OverwriteOpt = False,
) -> None:
    """Answer a batch file of requests: task = recommend | search | suggest_queries."""
    from gensar.predict import predict_file

    n = predict_file(model_dir, input, output, batch_size=batch_size, overwrite=overwrite)
    typer.echo(f"wrote {n} answers to {output}")


@app.command()
def serve(
    model_dir: Annotated[Path, typer.Argument(help="A trained model directory (RUN/model).")],
    dataset: Annotated[
        Path | None, typer.Option(help="Prepared dataset whose histories seed the store.")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Serve recommend / search / suggest-queries / events over HTTP, with a demo page at /."""
    from gensar.serving import serve as run_server
    from gensar.serving.config import load_serve_config

    run_server(model_dir, dataset, load_serve_config(config, set_))


@app.command("config")
def show_config(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved run configuration (every default, as YAML)."""
    import yaml

    from gensar.run import load_run_config

    settings = load_run_config(config, set_)
    typer.echo(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))


@app.command()
def quickstart(
    out: Annotated[
        Path, typer.Option(help="Where the quickstart writes its dataset and run.")
    ] = Path("runs/quickstart"),
    overwrite: OverwriteOpt = False,
) -> None:
    """Run the whole pipeline on MovieLens-100K (downloaded once and cached)."""
    from gensar.io import allow_overwrite, check_output_dir
    from gensar.quickstart import run_quickstart

    check_output_dir(out, "quickstart", overwrite=overwrite)
    with allow_overwrite(overwrite):
        run_quickstart(out)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line and exit code 2.

    A refusal of the operating system to read or write a path the user gave
    (permission, read-only file system, a file where a folder should be, a full
    disk) is a user error too: one line naming the path, never a traceback.
    """
    from gensar.logs import console_logging

    console_logging()
    try:
        app(args=argv, prog_name="gensar")
    except GensarError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(err.exit_code)
    except OSError as err:
        if err.errno not in USER_OS_ERRORS:
            raise
        from gensar.io import os_error

        typer.secho(f"error: {os_error(err)}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
