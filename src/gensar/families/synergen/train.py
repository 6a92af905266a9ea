"""Training SynerGen: ``train(dataset_dir, run_dir, config)`` writes ``run_dir/synergen/``.

One joint objective over both tasks and both heads, per target ``i``::

    L = sum_i w_task(i) * (retrieval_weight * L_ret(i) + ranking_weight * L_rank(i))
        / sum_i w_task(i)
    L_rank(i) = pointwise_weight * BCE(i) + pairwise_weight * BPR(i)

where a target is a search target when a query token is its context (the
query precedes it) and a recommendation target otherwise (:mod:`.data`).
Every position of a sequence is trained in one forward pass (causal decoder).

The loop is plain PyTorch, like SASRec's in :mod:`gensar.embed.collab`: one
process, one device (``pick_device``), small dense steps; accelerate's
distributed and mixed-precision machinery would add nothing here. Seeds fix
initialisation, batching, sampling and dropout. Each epoch ends with an atomic
checkpoint (``run_dir/synergen-checkpoints/``: model, optimizer, RNG states,
the best weights so far); ``resume=True`` continues from the last one.
Validation (full-catalogue NDCG@10 of the retrieval head on a fixed subset of
the validation samples, mean over the trained tasks) picks the best epoch.

Output, written atomically::

    run_dir/synergen/
        model.safetensors   weights of the best epoch (MiniLM item/query vectors included)
        config.json         settings, item ids, query ids and texts, training summary
        metrics.jsonl       one line per epoch
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from gensar.data.dataset import Dataset, load_dataset
from gensar.embed.collab import make_batches
from gensar.embed.semantic import SemanticConfig
from gensar.errors import DataError
from gensar.families.registry import write_family_marker
from gensar.families.synergen import data as D
from gensar.families.synergen.config import SynerGenConfig
from gensar.families.synergen.losses import bpr_loss, infonce_loss, pointwise_loss, softmax_loss
from gensar.families.synergen.model import SynerGen
from gensar.families.synergen.text import item_text_vectors, query_text_vectors
from gensar.io import atomic_output_dir
from gensar.model.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from gensar.utils import MetricsLog, pick_device, seed_everything, torch_threads
from gensar.weights import save_weights_folder

FORMAT = "gensar-synergen"
FORMAT_VERSION = 1
MODEL_DIR = "synergen"
CHECKPOINT_DIR = "synergen-checkpoints"
TOP_K = 10


def train(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: SynerGenConfig | None = None,
    *,
    semantic: SemanticConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train SynerGen on ``dataset_dir``; write ``run_dir/synergen``; return a summary."""
    config = config or SynerGenConfig()
    with torch_threads(config.threads):
        return _train(
            load_dataset(dataset_dir), Path(run_dir), config, semantic, resume, progress, log
        )


class _Trainer:
    """The state of one training run (kept together so a checkpoint can restore it)."""

    def __init__(self, dataset: Dataset, run_dir: Path, config: SynerGenConfig, semantic, log):
        self.config = config
        self.device = pick_device(config.device)
        seed_everything(config.seed)
        self.streams = D.build_streams(
            dataset, merge_duplicate_clicks=config.merge_duplicate_clicks
        )
        self.windows = D.training_windows(self.streams, D.heldout_cutoffs(dataset), config.max_len)
        if not self.windows:
            raise DataError(
                "no user has a training target with an earlier event, so SynerGen has "
                "nothing to learn",
                where=dataset.path,
                fix="use a dataset with longer user histories",
            )
        n_items = len(dataset.item_ids)
        if config.semantic:
            item_text = item_text_vectors(dataset, run_dir, semantic)
            query_text = query_text_vectors(dataset.queries["text"].to_list(), semantic)
        else:
            item_text = np.zeros((n_items, 1), np.float32)
            query_text = np.zeros((dataset.queries.height, 1), np.float32)
        self.model = SynerGen(config, torch.from_numpy(item_text), torch.from_numpy(query_text)).to(
            self.device
        )
        self.optimiser = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            betas=(0.9, 0.98),
            weight_decay=config.weight_decay,
        )
        self.rng = np.random.default_rng(config.seed)
        popularity = D.item_popularity(self.windows, n_items) + 1.0
        self.popularity = torch.as_tensor(popularity / popularity.sum(), dtype=torch.float32)
        self.valid = _validation_sets(dataset, self.streams, config)
        self.per_epoch = D.examples_in(self.windows)
        log(
            f"SynerGen: {len(self.windows):,} training sequences, {self.per_epoch:,} targets "
            f"per epoch, {n_items:,} items, {dataset.queries.height:,} queries, "
            f"device {self.device}"
        )

    # ------------------------------------------------------------------ one step
    def step(self, windows: list[D.Window]) -> tuple[float, int]:
        """One optimiser step on ``windows``; returns (loss, targets)."""
        config, model = self.config, self.model
        batch = D.pad_batch([(w.kinds, w.ids, w.times) for w in windows], config.time_unit)
        batch = batch.to(self.device)
        rows = np.concatenate([np.full(len(w.ctx), r) for r, w in enumerate(windows)])
        ctx = np.concatenate([w.ctx for w in windows])
        targets = torch.as_tensor(np.concatenate([w.items for w in windows]), device=self.device)
        tasks = torch.as_tensor(np.concatenate([w.tasks for w in windows]), device=self.device)
        weights = torch.where(tasks == D.TASK_REC, config.rec_weight, config.search_weight)
        keep = weights > 0
        at = (torch.as_tensor(rows, device=self.device), torch.as_tensor(ctx, device=self.device))
        table = model.item_vectors()  # projected once per step, shared by inputs and heads
        states = model(batch, table)[at][keep]
        targets, weights = targets[keep], weights[keep].float()
        per_target = torch.zeros_like(weights)
        logits = None
        if config.retrieval_weight > 0:
            u = model.retrieval_queries(states) / config.temperature
            vectors = table
            if config.retrieval_loss == "softmax":
                logits = u @ vectors.T
                retrieval = softmax_loss(logits, targets)
            else:
                sampled = self._sampled_negatives(config.infonce_negatives)
                retrieval = infonce_loss(u, vectors, targets, sampled)
            per_target = per_target + config.retrieval_weight * retrieval
        if config.ranking_weight > 0:
            negatives = self._ranking_negatives(states, targets, logits)
            items = torch.cat([targets[:, None], negatives], dim=1)
            scores = model.ranking_scores(states, items, table)
            positive, negative = scores[:, 0], scores[:, 1:]
            ranking = config.pointwise_weight * pointwise_loss(
                positive, negative
            ) + config.pairwise_weight * bpr_loss(positive, negative)
            per_target = per_target + config.ranking_weight * ranking
        loss = (weights * per_target).sum() / weights.sum()
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        return float(loss.item()), int(targets.shape[0])

    def _sampled_negatives(self, count: int) -> torch.Tensor:
        n = self.model.n_items
        if self.config.infonce_sampling == "popularity":
            rows = torch.multinomial(self.popularity, count, replacement=True)
        else:
            rows = torch.randint(0, n, (count,))
        return rows.to(self.device)

    @torch.no_grad()
    def _ranking_negatives(
        self, states: torch.Tensor, targets: torch.Tensor, logits: torch.Tensor | None
    ) -> torch.Tensor:
        """[t, hard + random] negative item rows per target (never the target itself).

        Hard negatives are drawn uniformly from the retrieval head's current top
        ``hard_pool`` items (the target excluded); random ones by training popularity.
        """
        config, n = self.config, self.model.n_items
        parts = []
        if config.rank_hard_negatives:
            scores = logits.detach() if logits is not None else self.model.retrieval_scores(states)
            scores = scores.clone()
            scores[torch.arange(len(targets)), targets] = float("-inf")
            pool = scores.topk(min(config.hard_pool, n - 1), dim=1).indices
            pick = torch.randint(0, pool.shape[1], (len(targets), config.rank_hard_negatives))
            parts.append(pool.gather(1, pick.to(pool.device)))
        if config.rank_random_negatives:
            drawn = torch.multinomial(
                self.popularity, len(targets) * config.rank_random_negatives, replacement=True
            ).view(len(targets), -1)
            parts.append(drawn.to(targets.device))
        negatives = torch.cat(parts, dim=1) if parts else targets.new_zeros(len(targets), 1)
        clash = negatives == targets[:, None]
        return torch.where(clash, (negatives + 1) % n, negatives)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Full-catalogue NDCG@10 / HR@10 of the retrieval head per validation task."""
        self.model.eval()
        out: dict[str, float] = {}
        for task, (contexts, targets) in self.valid.items():
            ranks = []
            for rows in D.length_sorted_batches(contexts, self.config.eval_batch_size):
                batch = D.pad_batch([contexts[i] for i in rows], self.config.time_unit)
                states = self.model.last_states(batch.to(self.device))
                scores = self.model.retrieval_scores(states)
                t = torch.as_tensor(targets[rows], device=scores.device)
                target = scores.gather(1, t[:, None])
                ranks.append(((scores >= target).sum(1)).cpu().numpy())  # pessimistic, 1-based
            rank = np.concatenate(ranks) if ranks else np.zeros(0)
            hit = rank <= TOP_K
            out[f"{task}_ndcg10"] = float(np.where(hit, 1 / np.log2(rank + 1), 0).mean())
            out[f"{task}_hr10"] = float(hit.mean())
        self.model.train()
        return out

    def score(self, metrics: dict[str, float]) -> float:
        """Model selection value: mean validation NDCG@10 over the trained tasks."""
        tasks = [
            t
            for t, w in (
                ("recommendation", self.config.rec_weight),
                ("search", self.config.search_weight),
            )
            if w > 0 and f"{t}_ndcg10" in metrics
        ]
        return float(np.mean([metrics[f"{t}_ndcg10"] for t in tasks])) if tasks else 0.0


def _validation_sets(
    dataset: Dataset, streams: dict[str, D.UserStream], config: SynerGenConfig
) -> dict[str, tuple[list, np.ndarray]]:
    """Per task, a fixed seeded subset of the validation samples: (contexts, target rows)."""
    out = {}
    for task in ("recommendation", "search"):
        samples = dataset.samples_for(task, "valid")
        if samples.height == 0:
            continue
        if samples.height > config.eval_samples:
            rows = np.random.default_rng(config.seed).choice(
                samples.height, config.eval_samples, replace=False
            )
            samples = samples[np.sort(rows)]
        contexts = D.sample_contexts(streams, samples, config.max_len)
        targets = np.array(
            [dataset.item_index[i] for i in samples["target_item_id"].to_list()], dtype=np.int64
        )
        out[task] = (contexts, targets)
    return out


def _train(
    dataset: Dataset,
    run_dir: Path,
    config: SynerGenConfig,
    semantic: SemanticConfig | None,
    resume: bool,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    setup_started = time.perf_counter()
    trainer = _Trainer(dataset, run_dir, config, semantic, log)
    setup_seconds = time.perf_counter() - setup_started
    started = time.perf_counter()  # the time budget counts training, not text encoding
    model = trainer.model
    ckpt_dir = run_dir / CHECKPOINT_DIR
    state: dict[str, Any] = {
        "epoch": 0,
        "examples": 0,
        "seconds": 0.0,
        "best": {"score": -1.0, "epoch": 0, "metrics": {}},
        "stale": 0,
    }
    best_weights = _weights(model)
    metrics_rows: list[dict[str, Any]] = []
    # a checkpoint killed between its atomic write and its best weights is skipped
    checkpoints = [c for c in list_checkpoints(ckpt_dir) if (c / "best.safetensors").is_file()]
    if resume and checkpoints:
        state = load_checkpoint(
            checkpoints[-1], model=model, optimizer=trainer.optimiser, scheduler=None
        )
        trainer.rng.bit_generator.state = state.pop("numpy_generator")
        metrics_rows = state.pop("metrics_rows")
        best_weights = load_file(str(checkpoints[-1] / "best.safetensors"))
        log(f"resuming after epoch {state['epoch']} ({checkpoints[-1]})")
    offset = state["seconds"]  # training seconds already spent before a resume
    budget = None if config.max_minutes is None else config.max_minutes * 60
    stop = "epochs"
    bar = tqdm(
        total=config.epochs,
        initial=state["epoch"],
        desc="SynerGen",
        unit="epoch",
        disable=not progress,
    )
    model.train()
    while state["epoch"] < config.epochs:
        epoch_start = time.perf_counter()
        total, count, out_of_time = 0.0, 0, False
        for batch in make_batches(trainer.windows, config.batch_size, trainer.rng):
            loss, n = trainer.step([trainer.windows[i] for i in batch])
            total += loss * n
            count += n
            elapsed = offset + time.perf_counter() - started
            if budget is not None and elapsed >= budget:
                out_of_time = True
                break
        state["epoch"] += 1
        state["examples"] += count
        epoch_seconds = time.perf_counter() - epoch_start
        row: dict[str, Any] = {
            "epoch": state["epoch"],
            "loss": round(total / max(count, 1), 6),
            "examples": state["examples"],
            "epoch_seconds": round(epoch_seconds, 2),
            "partial_epoch": out_of_time,
        }
        if state["epoch"] % config.eval_every == 0 or out_of_time:
            valid = trainer.validate()
            score = trainer.score(valid)
            row.update({k: round(v, 6) for k, v in valid.items()})
            improved = score > state["best"]["score"]
            row["best"] = improved
            if improved:
                state["best"] = {"score": score, "epoch": state["epoch"], "metrics": valid}
                best_weights = _weights(model)
                state["stale"] = 0
            else:
                state["stale"] += 1
        metrics_rows.append(row)
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}", best=f"{state['best']['score']:.4f}")
        state["seconds"] = offset + time.perf_counter() - started
        _checkpoint(ckpt_dir, trainer, state, metrics_rows, best_weights)
        if out_of_time:
            stop = "time"
            break
        if state["stale"] >= config.patience:
            stop = "patience"
            break
    bar.close()
    model.load_state_dict(best_weights)
    seconds = offset + time.perf_counter() - started
    summary = {
        "epochs_run": state["epoch"],
        "best_epoch": state["best"]["epoch"],
        "valid": state["best"]["metrics"],
        "examples_seen": state["examples"],
        "targets_per_epoch": trainer.per_epoch,
        "train_sequences": len(trainer.windows),
        "stopped_by": stop,
        "seconds": round(seconds, 2),
        "setup_seconds": round(setup_seconds, 2),
        "device": trainer.device,
    }
    out_dir = run_dir / MODEL_DIR
    with atomic_output_dir(out_dir) as tmp:
        log_file = MetricsLog(tmp / "metrics.jsonl")
        for row in metrics_rows:
            log_file.log(**row)
        save_model(tmp, model, config, dataset, summary, semantic)
    log(
        f"SynerGen: best validation {state['best']['metrics']} at epoch "
        f"{state['best']['epoch']} of {state['epoch']}, {state['examples']:,} examples, "
        f"{seconds:.0f} s (stopped by {stop})"
    )
    return {**summary, "model_dir": str(out_dir)}


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _checkpoint(
    folder: Path,
    trainer: _Trainer,
    state: dict[str, Any],
    metrics_rows: list[dict[str, Any]],
    best_weights: dict[str, torch.Tensor],
) -> None:
    """Atomic end-of-epoch checkpoint (the shared writer) plus the best weights so far."""
    payload = {
        **copy.deepcopy(state),
        "numpy_generator": trainer.rng.bit_generator.state,
        "metrics_rows": metrics_rows,
        "step": state["epoch"],
    }
    path = save_checkpoint(
        folder, model=trainer.model, optimizer=trainer.optimiser, scheduler=None, state=payload
    )
    tmp = path / ".best.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in best_weights.items()}, str(tmp))
    tmp.replace(path / "best.safetensors")


def save_model(
    folder: Path,
    model: SynerGen,
    config: SynerGenConfig,
    dataset: Dataset,
    summary: dict,
    semantic: SemanticConfig | None = None,
) -> None:
    """``model.safetensors`` and ``config.json`` of a trained model into ``folder``."""
    save_weights_folder(
        folder,
        model.state_dict(),
        fmt=FORMAT,
        version=FORMAT_VERSION,
        config=config,
        dataset=dataset,
        item_ids=dataset.item_ids,
        query_ids=dataset.queries["query_id"].to_list(),
        query_texts=dataset.queries["text"].to_list(),
        item_titles=dataset.items["title"].to_list(),
        # the MiniLM settings of training: serving encodes a new query text with them
        semantic=(semantic or SemanticConfig()).model_dump(mode="json"),
        summary=summary,
    )
    write_family_marker(folder, "synergen")
