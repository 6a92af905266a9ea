"""Training GenSR: ``train(dataset_dir, run_dir, config)`` writes ``run_dir/gensr/``.

Per step, ``batch_size`` training samples (both tasks mixed), each with its
positive and ``negatives`` sampled negatives (:class:`.data.NegativeSampler`)::

    L = CE_yes/no(positive -> Yes, negatives -> No)
        + infonce_weight * InfoNCE(pooled collaborative history, pooled semantic history)

AdamW with linear warm-up and cosine decay (over the epochs, or over the time
budget when ``max_minutes`` is set, whichever ends first). Every ``eval_every``
steps a fixed seeded subset of the validation candidate lists (the evaluation's
own lists, built into the run directory when missing) is ranked; NDCG@10 under
the shared tie rule, mean over the tasks, picks the best weights.

The collaborative item table is the SASRec item table of the run
(``run_dir/embeddings/collab.safetensors``; SASRec is trained first when it is
missing), or ``collab_path``.

Output, written atomically::

    run_dir/gensr/
        model.safetensors   weights of the best validation (item table included)
        config.json         settings, item ids, training summary (the model card)
        metrics.jsonl       one line per validation (the learning curve)
        tokenizer/          the vocabulary
        items.parquet       item ids, titles and texts (BM25 first stage, answers)
        sasrec/             the first-stage recommender (a copy of the run's SASRec)
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gensar.data import schema
from gensar.data.dataset import Dataset, load_dataset
from gensar.embed.store import ItemEmbeddings
from gensar.errors import DataError
from gensar.evaluation import metrics
from gensar.evaluation.candidates import build_candidates, load_candidates
from gensar.families.gensr import data as D
from gensar.families.gensr.config import GenSRConfig
from gensar.families.gensr.losses import symmetric_infonce, yes_no_loss
from gensar.families.gensr.model import GenSR
from gensar.families.gensr.scoring import score_rows
from gensar.families.registry import write_family_marker
from gensar.io import atomic_output_dir, write_parquet
from gensar.model.backbone import build_model
from gensar.utils import MetricsLog, pick_device, seed_everything, torch_threads
from gensar.weights import save_weights_folder

FORMAT = "gensar-gensr"
FORMAT_VERSION = 1
MODEL_DIR = "gensr"
COLLAB_FILE = Path("embeddings") / "collab.safetensors"
SASREC_DIR = Path("embeddings") / "sasrec"
TASKS = (schema.RECOMMENDATION, schema.SEARCH)


def train(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: GenSRConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    candidates_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train GenSR on ``dataset_dir``; write ``run_dir/gensr``; return a summary.

    ``candidates_dir`` holds the validation candidate lists (default ``run_dir``, where
    they are built when missing); a benchmark passes its shared lists.
    """
    config = config or GenSRConfig()
    dataset_dir, run_dir = Path(dataset_dir), Path(run_dir)
    ensure_first_stage(dataset_dir, run_dir, config, log)
    lists = Path(candidates_dir) if candidates_dir is not None else run_dir
    with torch_threads(config.threads):
        return _train(load_dataset(dataset_dir), dataset_dir, run_dir, config, progress, log, lists)


def ensure_first_stage(dataset_dir: Path, run_dir: Path, config: GenSRConfig, log) -> None:
    """Train the run's SASRec (item table + first-stage recommender) when missing."""
    if (run_dir / COLLAB_FILE).is_file() and (run_dir / SASREC_DIR / "config.json").is_file():
        return
    from gensar.embed.collab import train_collaborative

    log("GenSR: training the run's SASRec first (item table and first-stage recommender)")
    train_collaborative(dataset_dir, run_dir, config.collab, progress=False, log=log)


def item_titles(dataset: Dataset) -> list[str]:
    """The title of each item (its text when it has none), in dataset order."""
    return [
        title or text
        for title, text in zip(
            dataset.items["title"].to_list(), dataset.items["text"].to_list(), strict=True
        )
    ]


def build_network(config: GenSRConfig, tokenizer, item_table: torch.Tensor) -> GenSR:
    backbone = build_model(config.backbone, tokenizer, seed=config.seed)
    answers = D.answer_ids(tokenizer)
    if answers is None:  # build_vocabulary adds <yes>/<no> whenever needed
        raise DataError("the vocabulary has no answer tokens", fix="rebuild the vocabulary")
    return GenSR(backbone, item_table, config, *answers)


def lr_factor(step: int, total_steps: int, time_fraction: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0 over the larger of the step and time fractions."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    done = max((step - warmup) / max(1, total_steps - warmup), time_fraction)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))


class _Trainer:
    def __init__(
        self, dataset: Dataset, run_dir: Path, config: GenSRConfig, log, candidates_dir: Path
    ):
        self.config = config
        self.dataset = dataset
        self.device = pick_device(config.device)
        seed_everything(config.seed)
        collab_file = config.collab_path or run_dir / COLLAB_FILE
        table = ItemEmbeddings.load(collab_file, expected_item_ids=dataset.item_ids).matrix
        self.collab_file = collab_file
        self.tokenizer = D.build_vocabulary(dataset, config)
        self.model = build_network(config, self.tokenizer, torch.as_tensor(np.asarray(table)))
        self.model.to(self.device)
        self.layout = D.Layout(
            self.tokenizer,
            item_titles(dataset),
            config,
            D.start_id(self.tokenizer, self.model.backbone),
        )
        self.examples = D.training_examples(dataset, TASKS)
        if len(self.examples) == 0:
            raise DataError(
                "the dataset has no training samples", where=dataset.path, fix="prepare it again"
            )
        self.sampler = D.NegativeSampler(dataset, config.candidates, config.seed)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.rng = np.random.default_rng(config.seed)
        self.valid = self._validation_sets(candidates_dir)
        n_params = sum(p.numel() for p in params)
        log(
            f"GenSR: {len(self.examples):,} training samples, {len(dataset.item_ids):,} items, "
            f"{n_params / 1e6:.2f}M trainable parameters, vocabulary {len(self.tokenizer):,}, "
            f"device {self.device}"
        )

    def _validation_sets(self, candidates_dir: Path) -> dict[str, tuple]:
        """Per task: a fixed seeded subset of the validation candidate lists."""
        config, dataset = self.config, self.dataset
        build_candidates(dataset.path, candidates_dir, config.candidates)
        out = {}
        for task in TASKS:
            if task not in config.candidates.tasks or "valid" not in config.candidates.splits:
                continue
            cands = load_candidates(candidates_dir, task, "valid")
            if len(cands) == 0:
                continue
            rows = np.arange(len(cands))
            if len(cands) > config.eval_samples:
                rows = np.sort(
                    np.random.default_rng(config.seed).choice(
                        len(cands), config.eval_samples, replace=False
                    )
                )
            samples = cands.samples(dataset)[rows]
            items = cands.item_indices(dataset.item_index)[rows]
            out[task] = (
                samples["task"].to_list(),
                D.sample_queries(samples, dataset),
                D.sample_histories(samples, dataset),
                items,
                cands.target_index[rows],
            )
        return out

    def step(self, batch: np.ndarray) -> tuple[float, float]:
        """One optimiser step; returns (yes/no loss, InfoNCE)."""
        config, ex = self.config, self.examples
        parts, rows, labels = [], [], []
        for i in batch.tolist():
            parts.append(self.layout.encoder(ex.tasks[i], ex.queries[i], ex.histories[i]))
            negatives = self.sampler.draw(
                self.rng,
                ex.tasks[i],
                ex.users[i],
                int(ex.targets[i]),
                ex.queries[i],
                config.negatives,
            )
            rows += [int(ex.targets[i]), *negatives.tolist()]
            labels += [1] + [0] * len(negatives)
        encoder = D.pad(parts, self.layout.pad_id).to(self.device)
        candidates = self.layout.candidates(rows).to(self.device)
        logp = self.model(encoder, candidates, 1 + config.negatives)
        loss = yes_no_loss(logp, torch.tensor(labels, device=self.device))
        align = torch.zeros((), device=self.device)
        if config.infonce_weight > 0 and config.collaborative and config.semantic:
            pooled_c, pooled_s, keep = self.model.pooled_history(encoder)
            align = symmetric_infonce(pooled_c[keep], pooled_s[keep], config.infonce_temperature)
        total = loss + config.infonce_weight * align
        self.optimiser.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimiser.step()
        return float(loss.item()), float(align.item())

    def validate(self) -> dict[str, float]:
        out = {}
        for task, (tasks, queries, histories, items, target_index) in self.valid.items():
            scores = score_rows(
                self.model,
                self.layout,
                tasks,
                queries,
                histories,
                items,
                batch=self.config.score_batch,
                device=self.device,
            )
            ranks = metrics.rank_of_target(scores, target_index)
            values = metrics.candidate_metrics(ranks)
            out[f"{task}_ndcg10"] = values["NDCG@10"]
            out[f"{task}_hr10"] = values["HR@10"]
        return out


def _train(
    dataset: Dataset,
    dataset_dir: Path,
    run_dir: Path,
    config: GenSRConfig,
    progress: bool,
    log: Callable[[str], None],
    candidates_dir: Path,
) -> dict[str, Any]:
    setup_started = time.perf_counter()
    trainer = _Trainer(dataset, run_dir, config, log, candidates_dir)
    setup_seconds = time.perf_counter() - setup_started
    model = trainer.model
    n = len(trainer.examples)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    budget = None if config.max_minutes is None else config.max_minutes * 60
    started = time.perf_counter()
    eval_seconds = 0.0
    step, examples, stale, stop = 0, 0, 0, "epochs"
    best = {"score": -1.0, "step": 0, "metrics": {}}
    best_weights = _weights(model)
    rows: list[dict[str, Any]] = []
    losses: list[float] = []
    aligns: list[float] = []

    def train_seconds() -> float:
        return time.perf_counter() - started - eval_seconds

    def run_validation(epoch: int) -> bool:
        nonlocal eval_seconds, stale, best_weights
        t0 = time.perf_counter()
        valid = trainer.validate()
        eval_seconds += time.perf_counter() - t0
        tasks = [t for t in TASKS if f"{t}_ndcg10" in valid]
        score = float(np.mean([valid[f"{t}_ndcg10"] for t in tasks])) if tasks else 0.0
        improved = score > best["score"]
        row = {
            "step": step,
            "epoch": epoch,
            "examples": examples,
            "train_seconds": round(train_seconds(), 1),
            "loss": round(float(np.mean(losses)), 5) if losses else None,
            "infonce": round(float(np.mean(aligns)), 5) if aligns else None,
            **{k: round(v, 5) for k, v in valid.items()},
            "best": improved,
        }
        losses.clear()
        aligns.clear()
        rows.append(row)
        log(f"GenSR validation: {row}")
        if improved:
            best.update(score=score, step=step, metrics=valid)
            best_weights = _weights(model)
            stale = 0
        else:
            stale += 1
        return stale >= config.patience

    model.train()
    done = False
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        order = trainer.rng.permutation(n)
        for start in range(0, n, config.batch_size):
            fraction = 0.0 if budget is None else train_seconds() / budget
            factor = lr_factor(step, total_steps, fraction, config.warmup_steps)
            for group in trainer.optimiser.param_groups:
                group["lr"] = config.lr * factor
            batch = order[start : start + config.batch_size]
            loss, align = trainer.step(batch)
            losses.append(loss)
            aligns.append(align)
            step += 1
            examples += len(batch)
            if progress and step % 50 == 0:
                log(f"GenSR step {step}: loss {np.mean(losses[-50:]):.4f}")
            if budget is not None and train_seconds() >= budget:
                stop, done = "time", True
                break
            if step % config.eval_every == 0 and run_validation(epoch):
                stop, done = "patience", True
                break
        if done:
            break
    if not rows or rows[-1]["step"] != step:
        run_validation(epoch)
    model.load_state_dict(best_weights)
    summary = {
        "steps": step,
        "epochs_run": round(examples / n, 3),
        "examples_seen": examples,
        "candidate_pairs_seen": examples * (1 + config.negatives),
        "train_samples": n,
        "best_step": best["step"],
        "valid": best["metrics"],
        "stopped_by": stop,
        "seconds": round(train_seconds(), 1),
        "validation_seconds": round(eval_seconds, 1),
        "setup_seconds": round(setup_seconds, 1),
        "device": trainer.device,
        "collab_table": str(trainer.collab_file),
    }
    out_dir = run_dir / MODEL_DIR
    with atomic_output_dir(out_dir) as tmp:
        metrics_log = MetricsLog(tmp / "metrics.jsonl")
        for row in rows:
            metrics_log.log(**row)
        save_model(tmp, trainer, run_dir, summary)
    log(
        f"GenSR: best validation {best['metrics']} at step {best['step']} of {step}, "
        f"{examples:,} samples seen, {summary['seconds']:.0f} s training (stopped by {stop})"
    )
    return {**summary, "model_dir": str(out_dir)}


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_model(folder: Path, trainer: _Trainer, run_dir: Path, summary: dict) -> None:
    """The model card, weights, vocabulary, item texts and first-stage SASRec."""
    dataset = trainer.dataset
    save_weights_folder(
        folder,
        _weights(trainer.model),  # clones: tied tensors must not share memory in safetensors
        fmt=FORMAT,
        version=FORMAT_VERSION,
        config=trainer.config,
        dataset=dataset,
        item_ids=dataset.item_ids,
        summary=summary,
        first_stage={"recommendation": "SASRec (sasrec/)", "search": "BM25 over item text"},
    )
    write_family_marker(folder, "gensr")
    trainer.tokenizer.save_pretrained(str(folder / "tokenizer"))
    write_parquet(dataset.items.select("item_id", "title", "text"), folder / "items.parquet")
    sasrec = run_dir / SASREC_DIR
    if sasrec.is_dir():
        shutil.copytree(sasrec, folder / "sasrec")
