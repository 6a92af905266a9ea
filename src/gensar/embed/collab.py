"""`gensar embed collab`: train SASRec on the train split, export its item embeddings.

One function, :func:`train_collaborative`, does the whole stage:

1. Training data: ``Dataset.rec_training_sequences()``, each user's rec items
   strictly before their first validation/test target (of either task), so no
   held-out target is ever a training input or label. By default every prefix
   of a sequence is its own example predicting the next item (RecBole's
   augmentation; ``examples: sequence`` is SASRec's one pass per sequence).
2. Validation: the recommendation/valid samples, input = the user's rec items
   before the target (``Dataset.rec_histories``), metric NDCG@10 and HR@10 over
   the full catalogue. Early stopping with patience; the best weights are kept.
3. Output (atomic)::

       run_dir/embeddings/collab.safetensors   ItemEmbeddings, dataset item order
       run_dir/embeddings/sasrec/
           model.safetensors    SASRec weights + ``popularity`` (train counts)
           config.json          settings, item-id vocabulary, best validation metrics
           metrics.jsonl        one line per epoch

The same trained model is the recommendation baseline of the evaluation:
:class:`SASRecRecommender` loads the ``sasrec/`` folder and scores histories.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gensar import __version__, layout
from gensar.data.dataset import Dataset, load_dataset
from gensar.embed.sasrec import PAD, SASRec, SASRecConfig, pad_left
from gensar.embed.store import ItemEmbeddings
from gensar.errors import DataError, GensarError
from gensar.io import atomic_output_dir
from gensar.utils import MetricsLog, pick_device, seed_everything, torch_threads
from gensar.weights import load_weights, read_weights_folder, save_weights_folder

_logger = logging.getLogger(__name__)

FORMAT = "gensar-sasrec"
FORMAT_VERSION = 2  # 2: post-LN/RecBole variants (input_norm, optional final_norm)
EMBEDDING_FILE = "collab.safetensors"
MODEL_DIR = layout.SASREC
TOP_K = 10
#: How SASRec was built before these settings existed: a saved config.json that lacks
#: them describes a model built this way, whatever the defaults are now.
BEFORE_OPTIONS = {
    "positions": "end",
    "examples": "sequence",
    "ffn_dropout": True,
    "layer_norm_eps": 1e-5,
    "batches": "by_length",
}


class RankMetrics(NamedTuple):
    """Full-catalogue ranking quality of one evaluation pass."""

    ndcg: float  #: NDCG@10, one relevant item per case
    hr: float  #: HR@10 (hit rate)
    n: int  #: number of evaluated cases


class EpochStats(NamedTuple):
    loss: float
    seconds: float


# ----------------------------------------------------------------------------- training


def train_collaborative(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: SASRecConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train SASRec on ``dataset_dir`` and write ``run_dir/embeddings/`` (see module doc).

    Returns a summary: epochs run, best epoch, best validation NDCG@10/HR@10,
    seconds, and the written paths.
    """
    log = log or _logger.info
    config = config or SASRecConfig()
    with torch_threads(config.threads):
        return _train(dataset_dir, run_dir, config, progress=progress, log=log)


def _train(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: SASRecConfig,
    *,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    dataset = load_dataset(dataset_dir)
    run_dir = Path(run_dir)
    out_dir = layout.RunLayout(run_dir).embeddings
    started = time.perf_counter()
    seed_everything(config.seed)
    device = pick_device(config.device)

    item_ids = dataset.item_ids
    sequences = training_token_sequences(dataset)
    if not sequences:
        raise DataError(
            "no user has two or more training rec items, so SASRec has nothing to learn",
            where=dataset.path,
            fix="use a dataset with longer recommendation histories",
        )
    valid_inputs, valid_targets = validation_cases(dataset, config.max_len)
    popularity = item_popularity(sequences, len(item_ids))
    log(
        f"SASRec on {len(sequences):,} training sequences "
        f"({sum(len(s) - 1 for s in sequences):,} targets), {len(item_ids):,} items, "
        f"{len(valid_targets):,} validation cases, device {device}"
    )

    model = SASRec(len(item_ids), config).to(device)
    optimiser = torch.optim.AdamW(
        model.parameters(),
        lr=config.lr,
        betas=(0.9, config.beta2),
        weight_decay=config.weight_decay,
    )
    rng = np.random.default_rng(config.seed)
    negatives = torch.Generator().manual_seed(config.seed)

    with atomic_output_dir(out_dir / MODEL_DIR) as tmp:
        metrics_log = MetricsLog(tmp / "metrics.jsonl")
        best: dict[str, Any] = {"ndcg@10": -1.0, "hr@10": 0.0, "epoch": 0}
        best_state = copy.deepcopy(model.state_dict())
        stale = 0
        epochs = tqdm(
            range(1, config.max_epochs + 1), desc="SASRec", unit="epoch", disable=not progress
        )
        epoch = 0
        for epoch in epochs:
            stats = train_epoch(model, optimiser, sequences, config, rng, negatives, device)
            valid = evaluate(model, valid_inputs, valid_targets, config.eval_batch_size, device)
            improved = valid.ndcg > best["ndcg@10"]
            metrics_log.log(
                epoch=epoch,
                loss=round(stats.loss, 6),
                valid_ndcg10=round(valid.ndcg, 6),
                valid_hr10=round(valid.hr, 6),
                epoch_seconds=round(stats.seconds, 3),
                best=improved,
            )
            epochs.set_postfix(loss=f"{stats.loss:.3f}", ndcg10=f"{valid.ndcg:.4f}")
            if improved:
                best = {"ndcg@10": valid.ndcg, "hr@10": valid.hr, "epoch": epoch}
                best_state = copy.deepcopy(model.state_dict())
                stale = 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
        model.load_state_dict(best_state)
        seconds = time.perf_counter() - started
        summary = {
            "epochs_run": epoch,
            "best_epoch": best["epoch"],
            "valid_ndcg@10": best["ndcg@10"],
            "valid_hr@10": best["hr@10"],
            "valid_cases": len(valid_targets),
            "train_sequences": len(sequences),
            "seconds": round(seconds, 2),
            "device": device,
        }
        save_model(tmp, model, config, item_ids, popularity, dataset, summary)

    embeddings = ItemEmbeddings(
        item_ids=list(item_ids),
        matrix=model.item_vectors.detach().cpu().numpy().astype(np.float32),
        meta={
            "kind": "collaborative",
            "model": "SASRec",
            "gensar_version": __version__,
            "dataset": str(dataset.path.resolve()),
            "dataset_hash": dataset.manifest.get("content_hash"),
            "config": config.model_dump(mode="json"),
            **summary,
        },
    )
    embeddings.save(out_dir / EMBEDDING_FILE)
    log(
        f"SASRec: best validation NDCG@10 {best['ndcg@10']:.4f}, HR@10 {best['hr@10']:.4f} "
        f"at epoch {best['epoch']} of {epoch} ({seconds:.1f} s)"
    )
    return {
        **summary,
        "embeddings": str(out_dir / EMBEDDING_FILE),
        "model_dir": str(out_dir / MODEL_DIR),
    }


def training_token_sequences(dataset: Dataset) -> list[list[int]]:
    """Leak-free training sequences as item tokens (item row + 1); users with < 2 items
    are dropped because a single item has no next item to predict."""
    index = dataset.item_index
    out = []
    for items in dataset.rec_training_sequences().values():
        tokens = [index[item] + 1 for item in items if item in index]
        if len(tokens) >= 2:
            out.append(tokens)
    return out


def validation_cases(dataset: Dataset, max_len: int) -> tuple[list[list[int]], np.ndarray]:
    """(input tokens, target rows) of the recommendation/valid samples."""
    samples = dataset.samples_for("recommendation", "valid")
    if samples.height == 0:
        raise DataError(
            "the dataset has no recommendation validation samples, which early stopping needs",
            where=dataset.path,
            fix="prepare the dataset again (every user with enough samples gets one)",
        )
    index = dataset.item_index
    histories = dataset.rec_histories(samples, max_len)
    inputs = [[index[item] + 1 for item in h if item in index] for h in histories]
    targets = np.array([index[item] for item in samples["target_item_id"].to_list()])
    return inputs, targets


def item_popularity(sequences: Sequence[Sequence[int]], n_items: int) -> np.ndarray:
    """Training interaction count of every item (dataset order): the fallback ranking
    for users with no known history."""
    counts = np.zeros(n_items + 1, dtype=np.float32)
    for seq in sequences:
        np.add.at(counts, np.asarray(seq), 1.0)
    return counts[1:]


def make_batches(
    sequences: Sequence[Sequence[int]],
    batch_size: int,
    rng: np.random.Generator,
    *,
    by_length: bool = True,
) -> list[np.ndarray]:
    """Shuffled batches of sequence indices, grouped by similar length.

    ``by_length=False``: plain random batches (RecBole's), each padded to its longest.

    Sequences are shuffled, cut into pools of 50 batches, sorted by length inside
    each pool, split into batches, and the batches shuffled again. Batches then
    pad to little more than their own length (most users have a handful of
    items), which makes an epoch several times cheaper than padding to max_len,
    while every batch is still a random draw.
    """
    order = rng.permutation(len(sequences))
    if not by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def train_epoch(
    model: SASRec,
    optimiser: torch.optim.Optimizer,
    sequences: Sequence[Sequence[int]],
    config: SASRecConfig,
    rng: np.random.Generator,
    negatives: torch.Generator,
    device: str,
) -> EpochStats:
    """One pass over the training sequences; returns the mean loss per target.

    ``examples: sequence`` feeds each sequence's newest ``max_len + 1`` items once,
    every position predicting the next item; ``examples: prefix`` feeds every prefix
    of every sequence (its newest ``max_len`` items) as its own example, predicting
    the item after it from the last position only (RecBole's augmentation).
    """
    model.train()
    started = time.perf_counter()
    total, count = 0.0, 0
    window = config.max_len + 1  # max_len inputs and their next item(s)
    prefix = config.examples == "prefix"
    examples = prefix_examples(sequences, window) if prefix else sequences
    by_length = config.batches == "by_length"
    for batch in make_batches(examples, config.batch_size, rng, by_length=by_length):
        rows = [examples[i][-window:] for i in batch]
        tokens = pad_left(rows, window)
        inputs = tokens[:, :-1].to(device)
        out = model(inputs)
        if prefix:
            states = out.hidden[:, -1]  # the newest input of each prefix
            targets = tokens[:, -1].to(device) - 1
        else:
            labels = tokens[:, 1:].to(device)
            valid = out.mask & (labels != PAD)
            states = out.hidden[valid]  # [targets, hidden]
            targets = labels[valid] - 1  # item rows
        if config.loss == "ce":
            loss = F.cross_entropy(model.scores(states), targets)
        else:
            loss = bce_loss(model, states, targets, negatives)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += loss.item() * len(targets)
        count += len(targets)
    return EpochStats(loss=total / max(count, 1), seconds=time.perf_counter() - started)


def prefix_examples(sequences: Sequence[Sequence[int]], window: int) -> list[Sequence[int]]:
    """Every prefix of every sequence that has a next item, as (inputs + target) token
    lists of at most ``window`` tokens: the newest ``window - 1`` inputs, then the target."""
    out: list[Sequence[int]] = []
    for seq in sequences:
        for end in range(2, len(seq) + 1):
            out.append(seq[max(0, end - window) : end])
    return out


def bce_loss(
    model: SASRec, states: torch.Tensor, targets: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The original SASRec objective: the positive against one uniformly drawn negative.

    (The paper draws negatives outside the user's whole sequence; we only redraw
    a negative that equals the positive, which differs on a handful of draws.)
    """
    n_items = model.n_items
    negative = torch.randint(0, n_items, targets.shape, generator=generator).to(targets.device)
    clash = negative == targets
    negative[clash] = (negative[clash] + 1) % n_items
    vectors = model.item_vectors
    pos = (states * vectors[targets]).sum(-1)
    neg = (states * vectors[negative]).sum(-1)
    return F.softplus(-pos).mean() + F.softplus(neg).mean()


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def score_histories(
    model: SASRec, inputs: Sequence[Sequence[int]], batch_size: int, device: str
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield (row indices, [rows, n_items] scores) for token histories, in length-sorted
    batches (little padding). Rows with an empty history get all-zero scores here."""
    model.eval()
    order = np.argsort([len(h) for h in inputs], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        tokens = pad_left([inputs[i] for i in rows], model.max_len, device=device)
        yield rows, model.scores(model.user_states(tokens))


def evaluate(
    model: SASRec,
    inputs: Sequence[Sequence[int]],
    targets: np.ndarray,
    batch_size: int,
    device: str,
) -> RankMetrics:
    """NDCG@10 and HR@10 of each case's target over the full catalogue.

    Rank = number of items scored strictly higher than the target (ties are
    vanishingly rare with float scores from a trained model).
    """
    ndcg = hits = 0.0
    target_t = torch.as_tensor(targets, dtype=torch.long)
    for rows, scores in score_histories(model, inputs, batch_size, device):
        t = target_t[torch.as_tensor(rows)].to(scores.device)
        target_scores = scores.gather(1, t[:, None])
        rank = (scores > target_scores).sum(1).cpu().numpy()
        top = rank < TOP_K
        hits += float(top.sum())
        ndcg += float((1.0 / np.log2(rank[top] + 2.0)).sum())
    n = len(targets)
    return RankMetrics(ndcg=ndcg / max(n, 1), hr=hits / max(n, 1), n=n)


# ----------------------------------------------------------------------------- persistence


def save_model(
    folder: Path,
    model: SASRec,
    config: SASRecConfig,
    item_ids: list[str],
    popularity: np.ndarray,
    dataset: Dataset,
    summary: dict[str, Any],
) -> None:
    """``model.safetensors`` (weights + popularity) and ``config.json`` into ``folder``."""
    tensors = dict(model.state_dict())
    tensors["popularity"] = torch.from_numpy(popularity.astype(np.float32))
    save_weights_folder(
        folder,
        tensors,
        fmt=FORMAT,
        version=FORMAT_VERSION,
        config=config,
        dataset=dataset,
        n_items=len(item_ids),
        item_ids=list(item_ids),
        best=summary,
    )


class SASRecRecommender:
    """A trained SASRec as a recommender: histories of item ids in, item scores out.

    Unknown item ids in a history are skipped. A history with no known item
    gets the training popularity (log counts) as its scores, the best a model
    without user information can do. Scores are comparable within a row only.
    """

    def __init__(
        self,
        model: SASRec,
        item_ids: list[str],
        popularity: np.ndarray,
        config: SASRecConfig,
        device: str = "cpu",
    ):
        self.model = model.to(device).eval()
        self.item_ids = list(item_ids)
        self.item_index = {item: row for row, item in enumerate(self.item_ids)}
        self.config = config
        self.device = device
        self._fallback = torch.from_numpy(np.log1p(popularity).astype(np.float32)).to(device)

    @classmethod
    def load(cls, sasrec_dir: str | Path, device: str = "auto") -> SASRecRecommender:
        """Load ``run_dir/embeddings/sasrec`` as written by :func:`train_collaborative`."""
        info, tensors, weights_file = read_weights_folder(
            sasrec_dir,
            fmt=FORMAT,
            version=FORMAT_VERSION,
            what="SASRec",
            fix_missing="run `gensar embed collab DATASET --run RUN_DIR` and pass RUN_DIR/embeddings/sasrec",
        )
        # a model saved before these settings existed was built the old way
        config = SASRecConfig.model_validate({**BEFORE_OPTIONS, **info["config"]})
        item_ids = info["item_ids"]
        popularity = tensors.pop("popularity").numpy()
        model = SASRec(len(item_ids), config)
        load_weights(model, tensors, weights_file, "SASRec")
        return cls(model, item_ids, popularity, config, pick_device(device))

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def _tokens(self, histories: Sequence[Sequence[str]]) -> list[list[int]]:
        index = self.item_index
        return [[index[i] + 1 for i in h if i in index] for h in histories]

    def _states(self, tokens: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """([n, hidden] user states in input order, [n] bool: history had a known item)."""
        states = torch.zeros(len(tokens), self.model.hidden, device=self.device)
        order = np.argsort([len(t) for t in tokens], kind="stable")
        size = self.config.eval_batch_size
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = pad_left([tokens[i] for i in rows], self.model.max_len, device=self.device)
            states[torch.as_tensor(rows, device=self.device)] = self.model.user_states(batch)
        known = torch.tensor([len(t) > 0 for t in tokens], device=self.device)
        return states, known

    def score_all(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        """[n, n_items] float32 scores of every catalogue item, in ``item_ids`` order."""
        with torch_threads(self.config.threads), torch.no_grad():
            return self._score_all(histories)

    def _score_all(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        """score_all without the thread/no-grad context (callers hold it)."""
        states, known = self._states(self._tokens(histories))
        out = np.empty((len(histories), self.n_items), dtype=np.float32)
        size = self.config.eval_batch_size
        for start in range(0, len(histories), size):
            part = slice(start, start + size)
            scores = self.model.scores(states[part])
            scores = torch.where(known[part, None], scores, self._fallback[None])
            out[part] = scores.cpu().numpy()
        return out

    def score_candidates(
        self, histories: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """[n, c] float32: the score of each candidate item of each case.

        Candidate lists may differ in length; shorter rows are padded with -inf.
        A candidate id the model does not know is an error (the candidate lists
        must come from the dataset the model was trained on).
        """
        if len(histories) != len(candidates):
            raise GensarError(
                f"{len(histories)} histories but {len(candidates)} candidate lists",
                fix="pass one candidate list per history",
            )
        width = max((len(c) for c in candidates), default=0)
        rows = np.zeros((len(candidates), width), dtype=np.int64)
        filled = np.zeros((len(candidates), width), dtype=bool)
        for r, cands in enumerate(candidates):
            for c, item in enumerate(cands):
                row = self.item_index.get(item)
                if row is None:
                    raise GensarError(
                        f"candidate item {item!r} (case {r}) is not in the model's catalogue",
                        fix="score candidates from the dataset SASRec was trained on",
                    )
                rows[r, c] = row
                filled[r, c] = True
        with torch_threads(self.config.threads), torch.no_grad():
            return self._score_rows(histories, rows, filled)

    def _score_rows(
        self, histories: Sequence[Sequence[str]], rows: np.ndarray, filled: np.ndarray
    ) -> np.ndarray:
        """Scores of the item rows ``rows`` [n, c]; -inf where ``filled`` is False."""
        states, known = self._states(self._tokens(histories))
        out = np.full(rows.shape, -np.inf, dtype=np.float32)
        size = self.config.eval_batch_size
        vectors = self.model.item_vectors
        for start in range(0, len(rows), size):
            part = slice(start, start + size)
            idx = torch.as_tensor(rows[part], device=self.device)
            scores = torch.einsum("nh,nch->nc", states[part], vectors[idx])
            scores = torch.where(known[part, None], scores, self._fallback[idx])
            out[part] = np.where(filled[part], scores.cpu().numpy(), -np.inf)
        return out

    def recommend(
        self, history: Sequence[str], k: int = 10, *, exclude_history: bool = False
    ) -> list[tuple[str, float]]:
        """Top-``k`` (item id, score) for one history (a convenience for demos)."""
        scores = self.score_all([history])[0]
        if exclude_history:
            for item in history:
                if item in self.item_index:
                    scores[self.item_index[item]] = -math.inf
        top = np.argsort(-scores, kind="stable")[:k]
        return [(self.item_ids[i], float(scores[i])) for i in top]
