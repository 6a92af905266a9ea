"""`gensar train`: identifiers + dataset -> a trained GenSAR model directory.

Reads ``<dataset>`` and ``<run>/identifiers``, builds (or extends) the
vocabulary, the backbone and the five tasks, trains with validation-based model
selection, and writes ``<run>/model``: a ``save_pretrained`` folder with the
tokenizer, ``identifiers.parquet``, ``items.parquet`` (titles) and
``gensar.json`` (the settings), i.e. everything ``GenSAR.load`` needs.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from gensar import __version__
from gensar.card import DatasetRef, HistoryWindow
from gensar.config import Section
from gensar.data import load_dataset, schema
from gensar.errors import GensarError
from gensar.families.gensar.directory import GenSARCard, weight_checksums
from gensar.families.gensar.soft_inputs import (
    SoftVocabulary,
    save_soft_tokens,
    soft_inputs_for_run,
)
from gensar.families.gensar.tasks.builder import SampleRows, TaskBuilder
from gensar.families.gensar.tasks.config import TaskConfig
from gensar.families.gensar.tasks.templates import (
    DESC2ID,
    ID2DESC,
    NRIP,
    NSIP,
    NSQP,
    template_texts,
)
from gensar.families.gensar.training import TrainConfig, TrainResult, train
from gensar.io import atomic_output_dir, write_parquet
from gensar.layout import RunLayout
from gensar.model.backbone import (
    ModelConfig,
    build_model,
    init_identifier_embeddings,
    minilm_path,
)
from gensar.model.soft_tokens import attach_soft_tokens
from gensar.tasks.vocab import (
    BEHAVIOUR_TOKENS,
    TASK_TOKENS,
    build_tokenizer,
    extend_tokenizer,
)

_logger = logging.getLogger(__name__)


class GenSARConfig(Section):
    """Everything `gensar train` needs besides the dataset and the identifiers."""

    tasks: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    name: str = Field("GenSAR", description="Shown in result tables.")


def evaluated_tasks(config: TaskConfig) -> list[str]:
    """Dataset tasks the model is trained to answer (used for validation)."""
    out = []
    if config.counts.nrip != 0:
        out.append(schema.RECOMMENDATION)
    if config.counts.nsip != 0:
        out.append(schema.SEARCH)
    if not out:
        raise GensarError(
            "both NRIP and NSIP are switched off: the model would answer neither task",
            fix="keep tasks.counts.nrip or tasks.counts.nsip above 0",
        )
    return out


def item_descriptions(items: pl.DataFrame) -> dict[str, str]:
    """The item text used by Desc2ID/ID2Desc: the title, or the text when there is none."""
    return {
        item: (title or text)
        for item, title, text in zip(
            items["item_id"].to_list(),
            items["title"].to_list(),
            items["text"].to_list(),
            strict=True,
        )
    }


def build_vocabulary(dataset, identifiers, config: GenSARConfig):
    """The tokenizer of a run: learned (from-scratch presets) or a pretrained one extended."""
    special = (
        list(BEHAVIOUR_TOKENS.values())
        + list(TASK_TOKENS.values())
        + list(identifiers.all_tokens())
    )
    if config.model.preset in ("tiny", "small"):
        queries = dataset.events.filter(pl.col("behaviour") == schema.SEARCH_QUERY)[
            "query_id"
        ].to_list()
        counts = Counter(dataset.query_text[q] for q in queries)
        return build_tokenizer(
            dataset.items["text"].to_list(),
            counts,
            special,
            config.tasks.vocab,
            extra_texts=template_texts(),
        )
    from transformers import AutoTokenizer

    source = (
        config.model.pretrained_path
        if config.model.preset == "pretrained"
        else (config.model.encoder_path or minilm_path())
    )
    if source is None:
        raise GensarError(
            "preset=pretrained needs model.pretrained_path",
            fix="set model.pretrained_path to a local checkpoint folder",
        )
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if tokenizer.eos_token is None and tokenizer.sep_token is not None:
        tokenizer.eos_token = tokenizer.sep_token
    return extend_tokenizer(tokenizer, special)


class Validator:
    """Validation NDCG@5/10 and HR@10 on a fixed subset of the valid candidate lists (SPEC 8),
    through the evaluation's own loop (:func:`gensar.evaluation.protocol.evaluate_model`)
    with the model being trained as a :class:`GenSARRanker`."""

    #: Beam width of validation's restricted beam search (what it has always used).
    NUM_BEAMS = 20

    def __init__(
        self,
        dataset,
        builder: TaskBuilder,
        candidates_dir: Path,
        tasks: list[str],
        n_samples: int,
        seed: int,
        ranking: str = "beam",
    ):
        from gensar.evaluation.candidates import CandidateSet, load_candidates

        self.dataset = dataset
        self.subsets = []
        rng = np.random.default_rng(seed)
        for task in tasks:
            cands = load_candidates(candidates_dir, task, "valid")
            rows = np.sort(rng.choice(len(cands), size=min(n_samples, len(cands)), replace=False))
            self.subsets.append(
                CandidateSet(cands.task, cands.split, cands.frame[rows], cands.path)
            )
        self.ranking = ranking

    def __call__(self, gensar) -> dict[str, float]:
        from gensar.evaluation.protocol import evaluate_model
        from gensar.families.gensar.ranking import GenSARRanker

        ranker = GenSARRanker(
            gensar=gensar, num_beams=self.NUM_BEAMS, candidate_ranking=self.ranking
        )
        ranker.fit(self.dataset)
        metrics: dict[str, float] = {}
        ndcg5 = []
        for subset in self.subsets:
            values = evaluate_model(
                ranker, self.dataset, subset, full_catalogue=False, progress=False
            ).metrics
            for name in ("NDCG@5", "NDCG@10", "HR@10"):
                metrics[f"{subset.task}/{name}"] = values[name]
            ndcg5.append(values["NDCG@5"])
        metrics["score"] = float(np.mean(ndcg5))
        return metrics


def train_gensar(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: GenSARConfig | None = None,
    *,
    candidates_dir: str | Path | None = None,
    resume: bool = False,
    log=None,
    stop_after_steps: int | None = None,
    progress: bool = True,
    semantic=None,
) -> dict[str, Any]:
    """Train GenSAR on ``dataset_dir`` with the identifiers in ``run_dir``; write ``run_dir/model``.

    ``semantic`` (a ``SemanticConfig``, default its defaults) encodes the query texts of
    ``tasks.soft_tokens`` with the settings the run's item vectors were built with.

    ``candidates_dir`` holds the candidate lists validation ranks (default ``run_dir``);
    only their own stage builds them (``gensar train``/``gensar run`` run it first). Returns a summary (best validation metrics, speed).
    """
    log = log or _logger.info
    from gensar.families.gensar.api import GenSAR
    from gensar.ids.identifiers import ItemIdentifiers
    from gensar.utils import seed_everything

    config = config or GenSARConfig()
    run_dir = Path(run_dir)
    dataset = load_dataset(dataset_dir)
    identifiers = ItemIdentifiers.load(run_dir)
    if list(identifiers.item_ids) != dataset.item_ids:
        raise GensarError(
            "the identifiers were built for another dataset",
            where=RunLayout(run_dir).identifiers,
            fix="run `gensar index` for this dataset first",
        )
    tasks = evaluated_tasks(config.tasks)
    if config.train.threads:  # before the model is built: initialisation must not depend on it
        import torch

        torch.set_num_threads(config.train.threads)
    seed_everything(config.train.seed)
    candidates_dir = Path(candidates_dir or run_dir)

    work = RunLayout(run_dir).training
    vocab_dir = work / "tokenizer"
    if resume and vocab_dir.is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(vocab_dir))
    else:
        log("building the vocabulary ...")
        tokenizer = build_vocabulary(dataset, identifiers, config)
        with atomic_output_dir(vocab_dir) as tmp:
            tokenizer.save_pretrained(str(tmp))
    descriptions = item_descriptions(dataset.items)
    model = build_model(config.model, tokenizer, seed=config.train.seed)
    if config.model.init_identifier_embeddings:
        n = init_identifier_embeddings(
            model, tokenizer, identifiers.code_vectors(), seed=config.train.seed
        )
        log(f"initialised {n} identifier-token embeddings from the RQ-VAE code vectors")
    soft = soft_table = None
    if config.tasks.soft_tokens != "off":
        import torch

        soft, soft_table = soft_inputs_for_run(
            run_dir,
            dataset.item_ids,
            list(dataset.query_text.values()),
            model.get_input_embeddings().num_embeddings,
            config.tasks.soft_tokens,
            semantic,
            log=log,
        )
        attach_soft_tokens(model, torch.from_numpy(soft_table), seed=config.train.seed)
        log(
            f"soft tokens ({config.tasks.soft_tokens}): {len(soft.items):,} items and "
            f"{len(soft.queries):,} queries, vectors of {soft_table.shape[1]} dimensions"
        )
    builder = TaskBuilder(tokenizer, identifiers, descriptions, config.tasks, soft)
    log(
        f"model: {config.model.preset}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, vocabulary {len(tokenizer):,}"
    )

    # Positions in the samples table: an epoch converts only the samples it draws into
    # dicts (all ~2M training samples of a MovieLens-1M-sized log as dicts drove the
    # quick benchmark to 24 GB there), and no filtered copy of the table is made.
    train_rows = {
        NRIP: SampleRows.of(dataset.samples, schema.RECOMMENDATION, "train"),
        NSIP: SampleRows.of(dataset.samples, schema.SEARCH, "train"),
    }
    train_rows[NSQP] = train_rows[NSIP]
    query_text = dataset.query_text
    items = dataset.item_ids
    cache: dict[int, list] = {}

    def epoch_examples(epoch: int):
        if epoch not in cache:
            cache.clear()
            cache[epoch] = builder.epoch_examples(
                train_rows, query_text, items, epoch=epoch, seed=config.train.seed
            )
        return cache[epoch]

    titles = dict(zip(items, dataset.items["title"].to_list(), strict=True))
    gensar = GenSAR(model, tokenizer, identifiers, builder, titles)
    validator = Validator(
        dataset,
        builder,
        candidates_dir,
        tasks,
        config.train.eval_samples,
        config.train.seed,
        config.train.eval_ranking,
    )
    best_dir = work / "best"

    def validate(trained_model) -> dict[str, float]:
        gensar.model = trained_model
        return validator(gensar)

    def save_best(trained_model) -> None:
        with atomic_output_dir(best_dir) as tmp:
            trained_model.save_pretrained(str(tmp))

    counts = Counter(e.task for e in epoch_examples(0))
    log(
        "examples per epoch: "
        + ", ".join(f"{t} {counts.get(t, 0):,}" for t in (NRIP, NSIP, NSQP, DESC2ID, ID2DESC))
    )
    result: TrainResult = train(
        model,
        epoch_examples,
        validate,
        save_best,
        config.train,
        work,
        pad_id=tokenizer.pad_token_id,
        resume=resume,
        stop_after_steps=stop_after_steps,
        progress=progress,
    )
    if (
        stop_after_steps is not None
        and result.steps >= stop_after_steps
        and not (best_dir / "config.json").exists()
    ):
        return {"interrupted": True, "steps": result.steps}
    summary = {
        "best_validation": result.best_score,
        "best_step": result.best_step,
        "steps": result.steps,
        "epochs": result.epochs_run,
        "stopped_early": result.stopped_early,
        "train_seconds": result.seconds,
        "examples_per_second": result.examples_per_second,
        "validation_seconds": result.validation_seconds,
        "examples_seen": result.examples_seen,
        "validation_history": result.history,
    }
    model_dir = RunLayout(run_dir).model
    write_model_dir(
        model_dir, best_dir, tokenizer, run_dir, dataset, config, summary, soft, soft_table
    )
    log(
        f"model written to {model_dir} (best validation NDCG@5 {result.best_score:.4f} at step {result.best_step})"
    )
    return summary


def write_model_dir(
    out: Path,
    weights_dir: Path,
    tokenizer,
    run_dir: Path,
    dataset,
    config: GenSARConfig,
    summary: dict[str, Any],
    soft: SoftVocabulary | None = None,
    soft_table=None,
) -> None:
    """Assemble the self-contained model directory atomically."""
    from gensar.ids.identifiers import ItemIdentifiers

    with atomic_output_dir(out) as tmp:
        for file in weights_dir.iterdir():
            shutil.copy2(file, tmp / file.name)
        tokenizer.save_pretrained(str(tmp))
        if soft is not None:
            save_soft_tokens(tmp, soft, soft_table)
        ItemIdentifiers.load(run_dir).save_table(tmp)
        items = dataset.items.select("item_id", "title")
        descriptions = item_descriptions(dataset.items)
        items = items.with_columns(
            pl.Series("description", [descriptions[i] for i in items["item_id"].to_list()])
        )
        write_parquet(items, tmp / "items.parquet")
        GenSARCard(
            gensar_version=__version__,
            checksums=weight_checksums(tmp),  # verified by every load
            name=config.name,
            tasks=config.tasks.model_dump(mode="json"),
            model=config.model.model_dump(mode="json"),
            train=config.train.model_dump(mode="json"),
            dataset=DatasetRef.of(dataset),
            history_window=HistoryWindow.of(dataset),
            training={k: v for k, v in summary.items() if k != "validation_history"},
            validation_history=summary.get("validation_history", []),
        ).write(tmp)
