"""`gensar benchmark CONFIG`: train and evaluate every listed model on one dataset.

A benchmark YAML names the dataset (prepared once), shared run settings, seeds
and the models; every model is evaluated through the same code path on the same
candidate lists. Stages already built (with the same settings) are reused: the
embeddings and SASRec are shared by all GenSAR variants of a seed, identifiers by
every variant with the same index settings. Writes ``results.json``,
``results.md`` (paper Tables 3-4 layout; mean and standard deviation over seeds)
and ``tradeoff.png`` to the output folder, plus a copy to ``publish`` if set.

    name: amazon-scientific
    dataset: {source: amazon-unisrec, path: ${GENSAR_SHARED_DATA}/amazon-scientific,
              prepared: runs/data/amazon-scientific}
    out: runs/benchmarks/amazon-scientific
    seeds: [0]
    base: {train: {epochs: 3}}          # RunConfig settings for every model
    models:
      - {name: SASRec, family: sasrec}
      - {name: GenSAR, family: gensar}
      - {name: GenSAR (rec only), family: gensar, set: {tasks.counts.nsip: 0, tasks.counts.nsqp: 0}}

``family`` is a registry name (:mod:`gensar.families.registry`) or a module path;
``kind`` is its older spelling. Every model goes through one code path: its run
config (base settings, its ``set``, the seed), the shared stages its family
reads (adopted from earlier runs of the benchmark when their fingerprints
match), its family's training, then its family's ranker on the shared lists.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from gensar.config import Section, apply_overrides, fingerprint_view, read_yaml, validate
from gensar.errors import ConfigError

_logger = logging.getLogger(__name__)


class DatasetSpec(Section):
    prepared: Path = Field(
        description="Prepared dataset directory (built from source/path when missing)."
    )
    source: str | None = Field(None, description="Loader name for `gensar prepare`.")
    path: Path | None = Field(None, description="Raw data path for the loader.")
    source_options: dict[str, Any] = Field(default_factory=dict)


class ModelSpec(Section):
    name: str
    family: str = Field(
        "gensar",
        min_length=1,
        description="The model family: a registry name (gensar, sasrec, bm25, dense, "
        "popularity, ...) or a family module path; `kind` is accepted as its old name.",
    )
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted RunConfig overrides for this model.",
    )
    seeds: list[int] | None = Field(
        None,
        min_length=1,
        description="Seeds of this model (default: the benchmark's seeds); e.g. cheap "
        "baselines over [0, 1, 2] while a costly model runs one seed.",
    )
    exact_too: bool = Field(
        False,
        description="Also rank the candidate lists by exact scoring of every candidate (no "
        "beam pruning; families with an exact variant) and report it beside the beam figure "
        "(rows exact/...).",
    )
    own_budget: bool = Field(
        False,
        description="Train on this model's own settings (train.epochs / train.examples) even "
        "under equal_budget, e.g. a long run of one model; the table states its examples.",
    )

    @model_validator(mode="before")
    @classmethod
    def _kind_is_family(cls, data: Any) -> Any:
        if isinstance(data, dict) and "kind" in data:
            data = dict(data)
            kind = data.pop("kind")
            data.setdefault("family", kind)
        return data


class BenchmarkConfig(Section):
    name: str
    dataset: DatasetSpec
    out: Path
    publish: Path | None = Field(
        None,
        description="Also copy results.md/json/tradeoff.png here (e.g. benchmarks/results/<name>).",
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    base: dict[str, Any] = Field(
        default_factory=dict, description="RunConfig settings shared by every model."
    )
    models: list[ModelSpec] = Field(min_length=1)
    hardware_note: str = Field(
        "", description="Free text recorded with the results (e.g. the machine)."
    )
    claim_model: str | None = Field(
        None,
        description="The model whose gain over the best other model the results check "
        '("the paper\'s claim"); default: the first model; "" for none.',
    )
    claim_targets: dict[str, float] = Field(
        default_factory=lambda: {"recommendation": 0.10, "search": 0.15},
        description="Relative NDCG@10 gain per task the claim expects.",
    )
    equal_budget: bool = Field(
        True,
        description="Models of budgeted families (with_budget) after the first train on as many "
        "examples as the first one (train.examples), not for as many epochs: a single-task "
        "variant has about half the examples per epoch, so equal epochs would halve its compute.",
    )


def _expand_env(value: Any) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match) -> str:
            name = match.group(1)
            default = {"GENSAR_SHARED_DATA": str(Path.cwd().parent / "shared" / "data")}.get(
                name, ""
            )
            return os.environ.get(name, default)

        return re.sub(r"\$\{(\w+)\}", repl, value)
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


def load_benchmark(path: str | Path, overrides: list[str] | None = None) -> BenchmarkConfig:
    data = _expand_env(apply_overrides(read_yaml(path), overrides))
    return validate(BenchmarkConfig, data, source=path)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


def _flatten(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        out = []
        for key, sub in value.items():
            out += _flatten(f"{prefix}.{key}" if prefix else key, sub)
        return out
    import json

    return [f"{prefix}={json.dumps(value) if not isinstance(value, str) else value}"]


def run_config_for(bench: BenchmarkConfig, model: ModelSpec, seed: int, run_dir: Path):
    """The RunConfig of one model and seed (base settings, model overrides, seeds).

    A ``model:`` section in ``base`` (or GenSAR's settings in the older top-level
    layout) applies to the models of its family only.
    """
    from gensar.config import apply_overrides
    from gensar.families import registry
    from gensar.run import load_run_config

    family = registry.get_family(model.family)
    base = registry.upgrade_config(apply_overrides(bench.base, []))
    section = base.get("model")
    if isinstance(section, dict):
        owner = registry.get_family(section.get("family", registry.DEFAULT_FAMILY)).name
        if owner != family.name:
            base = {k: v for k, v in base.items() if k != "model"}
    overrides = _flatten("", base) + [f"model.family={family.name}"]
    overrides += [f"{k}={v}" for k, v in model.set.items()]
    if family.seed_field:
        overrides.append(f"model.{family.seed_field}={seed}")
    overrides += [
        f"collab.seed={seed}",
        f"index.seed={seed + 42}",
        f"name={model.name}",
        f"candidates_dir={bench.out}",
    ]
    return load_run_config(None, overrides, dataset=bench.dataset.prepared, run_dir=run_dir)


def _adopt(
    donors: list[Path],
    run_dir: Path,
    fingerprints: dict[str, str],
    log,
    needed=None,
    shared_lists: str | None = None,
) -> None:
    """Copy already-built stages (of ``needed``, default all) with identical fingerprints
    from earlier runs of this benchmark. ``shared_lists``: the fingerprint of the
    candidate lists the benchmark built once in its output folder; a run whose lists
    have it records them as built instead of writing the shared files again."""
    from gensar.layout import RunLayout
    from gensar.pipeline import StageRecord

    record = StageRecord(run_dir)
    for stage in ("semantic", "collab", "index"):
        if needed is not None and stage not in needed:
            continue
        if record.fingerprint(stage) == fingerprints.get(stage):
            continue
        for donor in donors:
            donor_record = StageRecord(donor)
            if donor_record.fingerprint(stage) != fingerprints.get(stage):
                continue
            source = RunLayout(donor).adoptable(stage)
            target = RunLayout(run_dir).adoptable(stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
            record.done(stage, fingerprints[stage], 0.0)
            log(f"[{stage}] reused from {donor.name}")
            break
    lists = fingerprints.get("candidates")
    if (
        shared_lists is not None
        and lists == shared_lists
        and (needed is None or "candidates" in needed)
        and record.fingerprint("candidates") != lists
    ):
        record.done("candidates", lists, 0.0)
        log("[candidates] the benchmark's shared lists (built once for every model)")


def _reading_dir(
    reads: tuple[str, ...], donors: list[Path], all_donors: list[Path], seed_dir: Path
) -> Path:
    """Where a model without stages of its own reads shared outputs: the first run of this
    seed (then of any seed) that built all of ``reads``; else the first run at all."""
    from gensar.pipeline import StageRecord

    if reads:
        for donor in donors + all_donors:
            record = StageRecord(donor)
            if all(record.fingerprint(stage) for stage in reads):
                return donor
    return (donors or all_donors or [seed_dir])[0]


def _lock_file(run_dir: Path) -> Path:
    """The file beside a run directory while a process builds or evaluates it (its pid);
    beside, not inside, so the run directory holds only stage outputs."""
    return run_dir.parent / f".{run_dir.name}.training-by-pid"


@contextmanager
def _training_lock(run_dir: Path):
    """Mark ``run_dir`` as being built by this process (the full run waits for it)."""
    lock = _lock_file(run_dir)
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _wait_for_other_trainer(run_dir: Path, log, poll_seconds: float = 20.0) -> None:
    """Wait while another live process builds or evaluates ``run_dir`` (so this one
    reuses its model and results instead of producing them a second time)."""
    from gensar.io import _pid_alive

    lock = _lock_file(run_dir)
    announced = False
    while lock.is_file():
        try:
            pid = int(lock.read_text().strip())
        except (OSError, ValueError):
            return
        if pid == os.getpid() or not _pid_alive(pid):
            return
        if not announced:
            log(f"[{run_dir.name}] waiting for process {pid} (--train-only / --only) to finish it")
            announced = True
        time.sleep(poll_seconds)


def train_models(
    bench: BenchmarkConfig, names: list[str], *, resume: bool = False, log=None
) -> list[Path]:
    """Build the runs of the named models (every seed) exactly as :func:`run_benchmark`
    would, without evaluating them: a second process trains them while the full run
    works through the other models, and the full run then finds them up to date.

    Needs the benchmark's candidate lists (started by the full run, or built here when
    the output folder is new). Shared stages that other runs of the same seed have
    built are copied, as the full run does. A model under ``equal_budget`` gets the
    budget of the seed's first budgeted model, which must be trained already.
    """
    from gensar.data import load_dataset
    from gensar.evaluation.candidates import build_candidates
    from gensar.families.registry import get_family
    from gensar.io import check_output_dir
    from gensar.layout import CANDIDATES
    from gensar.pipeline import build_run, stage_fingerprints

    log = log or _logger.info
    _check_names(bench, names, "--train-only")
    _check_model_settings(bench)
    by_name = {m.name: m for m in bench.models}
    out = Path(bench.out)
    base_config = run_config_for(bench, ModelSpec(name="base"), bench.seeds[0], out)
    lists = out / CANDIDATES
    from gensar.pipeline import _main_process_first

    with _main_process_first():  # under `accelerate launch`: built once, by the main process
        if not lists.is_dir():
            check_output_dir(out, "benchmark")
            build_candidates(bench.dataset.prepared, out, base_config.candidates)
    dataset = load_dataset(bench.dataset.prepared)  # a clear error when it is not prepared
    shared_lists = stage_fingerprints(base_config, dataset.manifest.get("content_hash", ""))[
        "candidates"
    ]
    built = []
    for name in names:
        model = by_name[name]
        family = get_family(model.family)
        for seed in model.seeds or bench.seeds:
            run_dir = out / f"seed-{seed}" / slug(model.name)
            config = run_config_for(bench, model, seed, run_dir)
            if bench.equal_budget and family.budgeted and not model.own_budget:
                budget = _budget_of(bench, seed, model, out)
                if budget is not None:
                    config = family.with_budget(config, budget)
            stages = family.stages(config)
            if stages or family.trains:
                # shared stages already built by other runs of this seed are copied, as
                # the full run does (same fingerprints only)
                donors = sorted(d for d in run_dir.parent.glob("*") if d.is_dir() and d != run_dir)
                fps = stage_fingerprints(config, dataset.manifest.get("content_hash", ""))
                _adopt(donors, run_dir, fps, log, stages, shared_lists)
                log(f"== {model.name} (seed {seed}), training only ==")
                with _training_lock(run_dir):
                    build_run(config, log=log, resume=resume)
                built.append(run_dir)
    return built


def _budget_of(bench: BenchmarkConfig, seed: int, model: ModelSpec, out: Path) -> int | None:
    """The equal budget of ``model`` as :func:`run_benchmark` sets it: the examples the
    seed's first budgeted model saw (None: ``model`` is that first one). That model
    must be trained already, or the budget is unknown."""
    from gensar.families.registry import get_family

    for first in bench.models:
        if (
            seed in (first.seeds or bench.seeds)
            and get_family(first.family).budgeted
            and not first.own_budget
        ):
            break
    if first.name == model.name:
        return None
    seen = get_family(first.family).examples_seen(out / f"seed-{seed}" / slug(first.name))
    if seen is None:
        raise ConfigError(
            f"--train-only {model.name}: its equal budget is what {first.name} (seed {seed}) "
            "saw, and that model is not trained yet",
            fix=f"train {first.name} first (the full run does it first)",
        )
    return seen


def _check_names(bench: BenchmarkConfig, names: list[str], option: str) -> None:
    known = [m.name for m in bench.models]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"{option} names models the benchmark does not list: {', '.join(unknown)}",
            fix=f"use the names of its models: {', '.join(known)}",
        )


def _check_model_settings(bench: BenchmarkConfig) -> None:
    """Validate every model's run settings (base, its ``set:``, each seed) before
    anything is prepared or built: a bad override fails in one line, with no output."""
    out = Path(bench.out)
    for model in bench.models:
        for seed in model.seeds or bench.seeds:
            run_config_for(bench, model, seed, out / "settings-check")


def _busy_elsewhere(run_dir: Path) -> bool:
    """Whether another live process holds ``run_dir``'s lock (trains or evaluates it)."""
    from gensar.io import _pid_alive

    lock = _lock_file(run_dir)
    try:
        pid = int(lock.read_text().strip())
    except (OSError, ValueError):
        return False
    return pid != os.getpid() and _pid_alive(pid)


def run_benchmark(
    bench: BenchmarkConfig,
    *,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    resume: bool = False,
    log=None,
) -> dict[str, Any]:
    """Train (or reuse) and evaluate every model; write the table.

    ``only``: train and evaluate just these models (their results are kept in their
    run folders) and write no table, so that processes can share a benchmark: the
    full run skips ahead of a model another process holds, comes back to it at the
    end of the seed and reads its results. A model's results are reused whenever
    nothing they depend on changed (:mod:`gensar.evaluation.result_cache`), so an
    interrupted benchmark resumes where it stopped. ``resume``: a model whose training
    was interrupted continues from its latest checkpoint instead of starting again.
    """
    log = log or _logger.info
    from gensar.data import load_dataset, schema
    from gensar.data.prepare import PrepareConfig, prepare_dataset
    from gensar.evaluation import result_cache
    from gensar.evaluation.candidates import build_candidates, load_candidates
    from gensar.evaluation.runner import evaluate_tasks
    from gensar.families.registry import get_family
    from gensar.pipeline import build_run, stage_fingerprints

    if only:
        _check_names(bench, only, "--only")
    if skip:
        _check_names(bench, skip, "--skip")
        bench = bench.model_copy(update={"models": [m for m in bench.models if m.name not in skip]})
    _check_model_settings(bench)
    started = time.perf_counter()
    spec = bench.dataset
    if not (spec.prepared / "manifest.json").is_file():
        if spec.source is None or spec.path is None:
            raise ConfigError(
                f"{spec.prepared} is not prepared and no source/path is given",
                fix="add dataset.source and dataset.path",
            )
        prepare_dataset(
            spec.source,
            spec.path,
            spec.prepared,
            PrepareConfig(source_options=spec.source_options),
            log=log,
        )
    dataset = load_dataset(spec.prepared)
    out = Path(bench.out)
    base_config = run_config_for(bench, ModelSpec(name="base"), bench.seeds[0], out)
    build_candidates(spec.prepared, out, base_config.candidates)
    split, lists = base_config.evaluate.split, base_config.evaluate.candidate_lists
    sets = {task: load_candidates(out, task, split).subset(lists) for task in schema.TASKS}
    lists_key = result_cache.lists_digest(sets)
    shared_lists = stage_fingerprints(base_config, dataset.manifest.get("content_hash", ""))[
        "candidates"
    ]
    full_samples = base_config.evaluate.full_catalogue_samples

    ties = base_config.evaluate.ties
    per_seed: dict[int, list] = {}
    timings: dict[str, float] = {}
    reused: set[str] = set()  # models whose results an earlier run or another process kept
    examples: dict[str, dict[int, int | None]] = {}
    train_seconds: dict[str, dict[int, float]] = {}  # from the model cards (a reused model too)
    all_donors: list[Path] = []
    seeds = sorted({seed for m in bench.models for seed in (m.seeds or bench.seeds)})
    for seed in seeds:
        seed_dir = out / f"seed-{seed}"
        donors: list[Path] = []  # runs of this seed that built shared stages
        by_model: dict[str, list] = {}
        queue = [
            m
            for m in bench.models
            if seed in (m.seeds or bench.seeds) and (not only or m.name in only)
        ]
        deferred: set[str] = set()
        while queue:
            model = queue.pop(0)
            run_dir = seed_dir / slug(model.name)
            family = get_family(model.family)
            if model.name not in deferred and queue and _busy_elsewhere(run_dir):
                log(f"[{run_dir.name}] another process holds it; back to it at the end")
                deferred.add(model.name)
                queue.append(model)
                continue
            _wait_for_other_trainer(run_dir, log)
            config = run_config_for(bench, model, seed, run_dir)
            if bench.equal_budget and family.budgeted and not model.own_budget:
                try:
                    budget = _budget_of(bench, seed, model, out)
                except ConfigError:  # the first budgeted model is not trained yet
                    if model.name in deferred or not queue:
                        raise
                    deferred.add(model.name)
                    queue.append(model)
                    continue
                if budget is not None:
                    config = family.with_budget(config, budget)
            t0 = time.perf_counter()
            with _training_lock(run_dir):
                stages = family.stages(config)
                if stages or family.trains:
                    siblings = sorted(d for d in seed_dir.glob("*") if d.is_dir() and d != run_dir)
                    fps = stage_fingerprints(config, dataset.manifest.get("content_hash", ""))
                    _adopt(donors + siblings, run_dir, fps, log, stages, shared_lists)
                    log(f"== {model.name} (seed {seed}) ==")
                    build_run(config, log=log, resume=resume)
                    donors.append(run_dir)
                    fit_dir = run_dir
                else:
                    fit_dir = _reading_dir(family.reads, donors, all_donors, seed_dir)
                seen = family.examples_seen(run_dir)
                if family.budgeted or seen is not None:
                    examples.setdefault(model.name, {})[seed] = seen
                spent = family.training_seconds(run_dir)
                if spent is not None:
                    train_seconds.setdefault(model.name, {})[seed] = spent
                settings = {
                    "ties": ties,
                    "full_samples": full_samples,
                    "exact_too": model.exact_too,
                    "model": fingerprint_view(config.model),
                    "evaluate": fingerprint_view(config.evaluate),
                }
                cached = result_cache.cache_file(
                    run_dir,
                    result_cache.cache_key(
                        model_name=model.name,
                        seed=seed,
                        run_dir=run_dir,
                        fit_dir=fit_dir,
                        reads=family.reads,
                        lists=lists_key,
                        settings=settings,
                    ),
                )
                results = result_cache.load_results(cached)
                if results is not None:
                    log(f"[{model.name} (seed {seed})] results reused from {cached}")
                    reused.add(f"{model.name} (seed {seed})")
                else:
                    results = _evaluate(
                        family,
                        model,
                        config,
                        run_dir,
                        fit_dir,
                        dataset,
                        sets,
                        full_samples,
                        ties,
                        log,
                        evaluate_tasks,
                    )
                    result_cache.save_results(cached, results)
            by_model[model.name] = results
            timings[f"{model.name} (seed {seed})"] = round(time.perf_counter() - t0, 1)
        all_donors += donors
        # the table's columns keep the YAML's order, whatever order the models ran in
        per_seed[seed] = [r for m in bench.models for r in by_model.get(m.name, [])]
    if only:
        log(f"--only: {', '.join(only)} trained and evaluated; the full run reads their results")
        return {"only": only, "timings_seconds": timings}
    summary = write_benchmark(
        bench,
        per_seed,
        timings,
        out,
        time.perf_counter() - started,
        examples=examples,
        ties=ties,
        train_seconds=train_seconds,
        skipped=skip or [],
        reused=reused,
    )
    log((out / "results.md").read_text())
    return summary


def _evaluate(
    family, model, config, run_dir, fit_dir, dataset, sets, full_samples, ties, log, evaluate_tasks
) -> list:
    """One model's ranker (and exact variant) fitted and evaluated on every task's lists."""
    ranker = family.ranker(run_dir, config, model.name)
    exact = (
        family.ranker(run_dir, family.exact_variant(config), model.name)
        if model.exact_too
        else None
    )
    ranker.fit(dataset, fit_dir)
    if exact is not None:
        exact.fit(dataset, fit_dir)
    return evaluate_tasks(
        ranker, dataset, sets, full_samples=full_samples, ties=ties, exact=exact, log=log
    )


def _lists_note(bench: BenchmarkConfig) -> str:
    """Which candidate lists the metrics come from (all, or a stated seeded subset)."""
    lists = run_config_for(
        bench, ModelSpec(name="base"), bench.seeds[0], Path(bench.out)
    ).evaluate.candidate_lists
    if lists is None:
        return "Candidate metrics on every test sample; "
    return (
        f"Candidate metrics on a fixed seeded subset of {lists:,} test lists per task (the "
        "same rows for every model: `evaluate.candidate_lists`); "
    )


def write_benchmark(
    bench: BenchmarkConfig,
    per_seed: dict[int, list],
    timings: dict[str, float],
    out: Path,
    seconds: float,
    *,
    examples: dict[str, dict[int, int | None]] | None = None,
    ties: str = "expected",
    train_seconds: dict[str, dict[int, float]] | None = None,
    skipped: list[str] | None = None,
    reused: set[str] | None = None,
) -> dict[str, Any]:
    """results.json (per seed, mean and std), results.md and tradeoff.png.

    A model's row is the mean over the seeds it ran with; with more than one
    seed every cell reads "mean ± std" (population std over seeds).
    """
    from gensar.evaluation.evaluate import EvaluationResult
    from gensar.evaluation.report import plot_tradeoff, results_table_markdown, tie_header
    from gensar.io import atomic_write_bytes, write_json

    examples = examples or {}
    train_seconds = train_seconds or {}
    runs_of: dict[tuple[str, str, str], list] = {}
    for results in per_seed.values():
        for result in results:
            runs_of.setdefault((result.model, result.task, result.split), []).append(result)
    merged: list[EvaluationResult] = []
    spread: dict[str, dict[str, float]] = {}
    seeds_of: dict[str, list[int]] = {}
    for seed, results in per_seed.items():
        for result in results:
            if seed not in seeds_of.setdefault(result.model, []):
                seeds_of[result.model].append(seed)
    for (model, task, split), runs in runs_of.items():
        first = runs[0]
        metrics = {k: float(np.mean([r.metrics[k] for r in runs])) for k in first.metrics}
        per_sample = {k: np.mean([r.per_sample[k] for r in runs], axis=0) for k in first.per_sample}
        merged.append(
            EvaluationResult(model, task, split, metrics, first.sample_ids, per_sample, ties=ties)
        )
        if len(runs) > 1:
            spread[f"{model}/{task}"] = {
                k: float(np.std([r.metrics[k] for r in runs])) for k in first.metrics
            }
    extra_rows = {"seeds": {m: ", ".join(map(str, s)) for m, s in seeds_of.items()}}
    if examples:
        extra_rows["training examples seen"] = {
            m: ", ".join(f"{v:,}" if v is not None else "?" for v in by_seed.values())
            for m, by_seed in examples.items()
        }
    if train_seconds:
        # the families' own record of training (not evaluation): the units of "examples
        # seen" differ by family (GenSAR: instruction examples; GenSR: judged samples with
        # their negatives; SynerGen: next-event targets), the minutes do not
        extra_rows["training minutes"] = {
            m: ", ".join(f"{v / 60:.1f}" for v in by_seed.values())
            for m, by_seed in train_seconds.items()
        }
    table = results_table_markdown(merged, spread=spread, extra_rows=extra_rows)
    from gensar.families.registry import get_family

    families = list({f.name: f for f in (get_family(m.family) for m in bench.models)}.values())
    budgeted = "/".join(f.title for f in families if f.budgeted)
    if not budgeted:
        budget = ""
    elif bench.equal_budget:
        budget = (
            f"{budgeted}-family rows trained on the same number of examples as the first "
            "(equal budget, `train.examples`), not the same number of epochs."
        )
        own = [m.name for m in bench.models if m.own_budget]
        if own:
            budget += f" Except {', '.join(own)}: its own budget (`own_budget`)."
    else:
        budget = f"{budgeted}-family rows trained for the same number of epochs."
    notes = " ".join(f.benchmark_note for f in families if f.benchmark_note)
    header = [
        f"# Benchmark: {bench.name}",
        "",
        tie_header(ties),
        "",
        "Seeds: per model in the `seeds` row; a model with several seeds shows mean ± std "
        "over them. "
        + _lists_note(bench)
        + "`full/` metrics on a fixed random subset (the same rows for every model). "
        + " ".join(t for t in (notes, budget, bench.hardware_note) if t)
        + (" " if not bench.hardware_note else ""),
        "",
        f"Total time: {seconds / 60:.1f} min"
        + (
            f" (this run; the kept results of {len(reused)} model runs were read, see the "
            "time list at the end)."
            if reused
            else "."
        ),
        "",
    ]
    if skipped:
        header += [
            f"Not in this table: {', '.join(skipped)} (left out of this run with `--skip`).",
            "",
        ]
    subject = bench.claim_model if bench.claim_model is not None else bench.models[0].name
    claim = _claim(merged, subject or None, bench.claim_targets)
    text = (
        "\n".join(header)
        + table
        + "\n"
        + claim
        + "\n## Time per model (train + evaluate)\n\n"
        + "\n".join(
            f"- {k}: {v / 60:.1f} min"
            + (
                " (its kept results read: ranked by an earlier run or another process)"
                if k in (reused or set())
                else ""
            )
            for k, v in timings.items()
        )
        + "\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "results.md", text.encode())
    summary = {
        "name": bench.name,
        "ties": ties,
        "seeds": {m: s for m, s in seeds_of.items()},
        "equal_budget": bench.equal_budget,
        "skipped": skipped or [],
        "examples_seen": {m: {str(k): v for k, v in d.items()} for m, d in examples.items()},
        "training_seconds": {
            m: {str(k): v for k, v in d.items()} for m, d in train_seconds.items()
        },
        "results": [r.to_json() for r in merged],
        "std": spread,
        "per_seed": {str(s): [r.to_json() for r in rs] for s, rs in per_seed.items()},
        "timings_seconds": timings,
        "total_seconds": round(seconds, 1),
        "config": bench.model_dump(mode="json"),
    }
    write_json(out / "results.json", summary)
    plot_tradeoff(merged, out / "tradeoff.png")
    if bench.publish is not None:
        bench.publish.mkdir(parents=True, exist_ok=True)
        for name, target in (
            ("results.md", f"{bench.name}.md"),
            ("results.json", f"{bench.name}.json"),
            ("tradeoff.png", f"{bench.name}-tradeoff.png"),
        ):
            shutil.copy2(out / name, bench.publish / target)
    return summary


def _claim(results, subject: str | None, targets: dict[str, float]) -> str:
    """The paper's central claim, checked: the subject model (by default the benchmark's
    first) vs the best other model per task; its own variants ("<subject> (...)") listed."""
    lines = ["## The paper's claim on this data", ""]
    by_task: dict[str, dict[str, float]] = {}
    for r in results:
        by_task.setdefault(r.task, {})[r.model] = r.metrics.get("NDCG@10", float("nan"))
    for task, scores in by_task.items():
        if subject is None or subject not in scores or task not in targets:
            continue
        others = {m: v for m, v in scores.items() if not m.startswith(subject)}
        if not others:
            continue
        best = max(others, key=others.get)
        gain = scores[subject] / others[best] - 1 if others[best] > 0 else float("nan")
        verdict = "met" if gain >= targets[task] else "NOT met"
        lines.append(
            f"- {task}: {subject} NDCG@10 {scores[subject]:.4f} vs best baseline {best} "
            f"{others[best]:.4f}: {gain:+.1%} (target +{targets[task]:.0%}: {verdict})"
        )
        singles = {m: v for m, v in scores.items() if m.startswith(f"{subject} (")}
        for name, value in singles.items():
            lines.append(f"  - joint {subject} vs {name}: {scores[subject]:.4f} vs {value:.4f}")
    return "\n".join(lines) + "\n"
