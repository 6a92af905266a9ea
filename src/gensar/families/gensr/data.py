"""GenSR's inputs: the vocabulary, the token layout of a (prompt, history) and of a
candidate, and the training negatives.

Encoder input of one sample (``kind`` says how a position is embedded)::

    prompt tokens                     TEXT   (task prompt; the shared one in the ablation)
    [query tokens]                    TEXT   (search samples: the current query)
    per history entry, oldest first:
        behaviour marker              TEXT   (<R_I> rec click, <S_Q> query, <S_I> search click)
        item: collaborative token     COLLAB (item row -> frozen item table -> projector)
              first title tokens      TITLE  (word embeddings -> semantic projector)
        query: its tokens             TEXT
    </s>

Decoder input of one candidate (a forced prefix; the answer is read after it)::

    start token, candidate collaborative token (COLLAB), first candidate title tokens (TITLE)

Putting the candidate in the decoder is what lets all candidates of a user share
one encoded history (one encoder pass, then one short decoder pass per
candidate); the authors put the candidate in the encoder input instead.

Negatives (the distributions of the evaluation lists, :mod:`gensar.evaluation.candidates`):

* recommendation: items drawn in proportion to their *training* rec-click counts,
  never an item the user ever interacted with (so never one of the user's
  validation or test targets, nor the positive);
* search: drawn from the BM25 top ``bm25_pool`` of the sample's query (the
  evaluation's index and settings), never the positive nor one of the user's
  validation/test targets; a short pool is filled with random such items.

The exclusion is per user: excluding every validation/test target of *any* user
from every negative would make "never seen as a negative" a property of exactly
the evaluated items, which the model could learn (a leak in the other direction).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from gensar.data import schema
from gensar.data.dataset import Dataset
from gensar.evaluation.bm25_index import BM25Index
from gensar.evaluation.candidates import CandidateConfig
from gensar.tasks.vocab import BEHAVIOUR_TOKENS, build_tokenizer, extend_tokenizer

TEXT, TITLE, COLLAB = 0, 1, 2  #: how an input position is embedded
YES, NO = "<yes>", "<no>"  #: answer tokens of the from-scratch vocabulary
PROMPTS = {
    schema.RECOMMENDATION: "recommendation: will the user buy this item next",
    schema.SEARCH: "search: is this item what the user searches for",
    "shared": "does the user want this item",
}
HISTORY_WORD = "history:"

#: One history entry as the model reads it: (behaviour, item row or -1, query text or None).
Entry = tuple[str, int, str | None]


# ----------------------------------------------------------------------------- vocabulary


def build_vocabulary(dataset: Dataset, config) -> object:
    """The tokenizer: learned on item texts and queries (tiny/small presets) or a
    pretrained one, both extended with the behaviour markers (and answer tokens where
    "yes"/"no" are not single tokens)."""
    from gensar.model.backbone import minilm_path

    special = list(BEHAVIOUR_TOKENS.values())
    backbone = config.backbone
    if backbone.preset in ("tiny", "small"):
        queries = dataset.events.filter(pl.col("behaviour") == schema.SEARCH_QUERY)[
            "query_id"
        ].to_list()
        counts = Counter(dataset.query_text[q] for q in queries)
        return build_tokenizer(
            dataset.items["text"].to_list(),
            counts,
            [*special, YES, NO],
            config.vocab,
            extra_texts=[*PROMPTS.values(), HISTORY_WORD],
        )
    from transformers import AutoTokenizer

    source = (
        backbone.pretrained_path
        if backbone.preset == "pretrained"
        else (backbone.encoder_path or minilm_path())
    )
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if tokenizer.eos_token is None and tokenizer.sep_token is not None:
        tokenizer.eos_token = tokenizer.sep_token
    tokenizer = extend_tokenizer(tokenizer, special)
    if answer_ids(tokenizer) is None:
        tokenizer = extend_tokenizer(tokenizer, [YES, NO])
    return tokenizer


def answer_ids(tokenizer) -> tuple[int, int] | None:
    """Token ids of the answers: the <yes>/<no> tokens, else the words yes/no when each
    is one token (a pretrained model's own words), else None."""
    vocab = tokenizer.get_vocab()
    if YES in vocab and NO in vocab:
        return vocab[YES], vocab[NO]
    ids = [tokenizer.encode(w, add_special_tokens=False) for w in ("yes", "no")]
    if all(len(i) == 1 for i in ids):
        return ids[0][0], ids[1][0]
    return None


def start_id(tokenizer, model) -> int:
    """The decoder start token of the backbone."""
    start = getattr(model.config, "decoder_start_token_id", None)
    return int(start if start is not None else tokenizer.pad_token_id)


# ----------------------------------------------------------------------------- layout


@dataclass
class Sequences:
    """Right-padded token tensors of a batch of encoder or decoder inputs."""

    ids: torch.Tensor  #: [b, L] token ids (pad where kind is COLLAB or padding)
    kinds: torch.Tensor  #: [b, L] TEXT / TITLE / COLLAB
    items: torch.Tensor  #: [b, L] item row of COLLAB positions, 0 elsewhere
    mask: torch.Tensor  #: [b, L] 1 at real positions

    def to(self, device) -> Sequences:
        return Sequences(*(t.to(device) for t in (self.ids, self.kinds, self.items, self.mask)))

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)


def pad(parts: Sequence[tuple[list[int], list[int], list[int]]], pad_id: int) -> Sequences:
    width = max(1, max(len(p[0]) for p in parts))
    ids = torch.full((len(parts), width), pad_id, dtype=torch.long)
    kinds = torch.zeros(len(parts), width, dtype=torch.long)
    items = torch.zeros(len(parts), width, dtype=torch.long)
    mask = torch.zeros(len(parts), width, dtype=torch.long)
    for row, (i, k, it) in enumerate(parts):
        n = len(i)
        ids[row, :n] = torch.tensor(i, dtype=torch.long)
        kinds[row, :n] = torch.tensor(k, dtype=torch.long)
        items[row, :n] = torch.tensor(it, dtype=torch.long)
        mask[row, :n] = 1
    return Sequences(ids, kinds, items, mask)


class Layout:
    """Token layout of encoder inputs (prompt + history) and decoder inputs (candidate)."""

    def __init__(self, tokenizer, titles: Sequence[str], config, start: int):
        self.tokenizer = tokenizer
        self.config = config
        self.pad_id = int(tokenizer.pad_token_id)
        self.eos_id = int(tokenizer.eos_token_id)
        self.start = start
        width = max(config.history_title_tokens, config.candidate_title_tokens)
        encoded = tokenizer(list(titles), add_special_tokens=False)["input_ids"]
        self.titles = [list(t[:width]) for t in encoded]
        self.markers = {b: tokenizer.convert_tokens_to_ids(t) for b, t in BEHAVIOUR_TOKENS.items()}
        self.prompts = {k: self._words(v) for k, v in PROMPTS.items()}
        self.history_word = self._words(HISTORY_WORD)
        self._queries: dict[str, list[int]] = {}
        self.candidate_parts = [self.candidate(row) for row in range(len(self.titles))]

    def _words(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def query(self, text: str) -> list[int]:
        ids = self._queries.get(text)
        if ids is None:
            ids = self._words(text)[: self.config.max_query_tokens]
            self._queries[text] = ids
        return ids

    def encoder(
        self, task: str, query: str | None, history: Sequence[Entry]
    ) -> tuple[list[int], list[int], list[int]]:
        """(ids, kinds, items) of the prompt, the query (search) and the history."""
        config = self.config
        prompt = self.prompts[task if config.task_prompts else "shared"]
        ids = list(prompt)
        if task == schema.SEARCH and query is not None:
            ids += self.query(query)
        ids += self.history_word
        kinds = [TEXT] * len(ids)
        items = [0] * len(ids)
        for behaviour, row, text in list(history)[-config.max_history :]:
            ids.append(self.markers[behaviour])
            kinds.append(TEXT)
            items.append(0)
            if behaviour == schema.SEARCH_QUERY:
                words = self.query(text or "")
                ids += words
                kinds += [TEXT] * len(words)
                items += [0] * len(words)
                continue
            if row < 0:
                continue
            if config.collaborative:
                ids.append(self.pad_id)
                kinds.append(COLLAB)
                items.append(row)
            if config.semantic:
                title = self.titles[row][: config.history_title_tokens]
                ids += title
                kinds += [TITLE] * len(title)
                items += [0] * len(title)
        ids.append(self.eos_id)
        kinds.append(TEXT)
        items.append(0)
        return ids, kinds, items

    def candidate(self, row: int) -> tuple[list[int], list[int], list[int]]:
        """(ids, kinds, items) of the decoder prefix of candidate item ``row``."""
        ids, kinds, items = [self.start], [TEXT], [0]
        if self.config.collaborative:
            ids.append(self.pad_id)
            kinds.append(COLLAB)
            items.append(row)
        if self.config.semantic:
            title = self.titles[row][: self.config.candidate_title_tokens]
            ids += title
            kinds += [TITLE] * len(title)
            items += [0] * len(title)
        return ids, kinds, items

    def candidates(self, rows: Sequence[int]) -> Sequences:
        return pad([self.candidate_parts[r] for r in rows], self.pad_id)


# ----------------------------------------------------------------------------- samples


def sample_histories(samples: pl.DataFrame, dataset: Dataset) -> list[list[Entry]]:
    """Each sample's ``history`` column as model entries (unknown items get row -1)."""
    index, texts = dataset.item_index, dataset.query_text
    out = []
    for history in samples["history"].to_list():
        out.append(
            [
                (
                    h["behaviour"],
                    index.get(h["item_id"], -1) if h["item_id"] is not None else -1,
                    texts.get(h["query_id"]) if h["query_id"] is not None else None,
                )
                for h in history
            ]
        )
    return out


def sample_queries(samples: pl.DataFrame, dataset: Dataset) -> list[str | None]:
    texts = dataset.query_text
    return [texts.get(q) if q is not None else None for q in samples["query_id"].to_list()]


@dataclass
class Examples:
    """Training samples of both tasks, as the model reads them."""

    tasks: list[str]
    queries: list[str | None]
    histories: list[list[Entry]]
    targets: np.ndarray  #: [n] item rows
    users: list[str]

    def __len__(self) -> int:
        return len(self.tasks)


def training_examples(dataset: Dataset, tasks: Sequence[str]) -> Examples:
    """The ``train`` samples of ``tasks`` (their histories precede them by construction)."""
    frames = [dataset.samples_for(t, "train") for t in tasks]
    samples = pl.concat(frames) if frames else dataset.samples.head(0)
    index = dataset.item_index
    return Examples(
        tasks=samples["task"].to_list(),
        queries=sample_queries(samples, dataset),
        histories=sample_histories(samples, dataset),
        targets=np.array([index[i] for i in samples["target_item_id"].to_list()], np.int64),
        users=samples["user_id"].to_list(),
    )


def heldout_targets(dataset: Dataset) -> dict[str, set[int]]:
    """Per user, the item rows of every validation and test target (either task)."""
    held = dataset.samples.filter(pl.col("split") != "train").select("user_id", "target_item_id")
    index = dataset.item_index
    out: dict[str, set[int]] = {}
    for user, item in held.iter_rows():
        if item in index:
            out.setdefault(user, set()).add(index[item])
    return out


def training_rec_popularity(dataset: Dataset) -> np.ndarray:
    """Per item, its rec clicks before each user's first held-out target (the counts a
    model may train on, as the Popularity baseline's)."""
    counts = np.zeros(len(dataset.item_ids), dtype=np.float64)
    index = dataset.item_index
    for items in dataset.rec_training_sequences().values():
        for item in items:
            if item in index:
                counts[index[item]] += 1
    return counts


class NegativeSampler:
    """Training negatives drawn like the evaluation lists' (module doc)."""

    def __init__(self, dataset: Dataset, candidates: CandidateConfig, seed: int = 0):
        self.n_items = len(dataset.item_ids)
        self.config = candidates
        popularity = training_rec_popularity(dataset) + 1e-3  # never-clicked items: rare
        self.popularity = popularity / popularity.sum()
        self.cdf = np.cumsum(self.popularity)
        self.cdf[-1] = 1.0
        index = dataset.item_index
        self.user_items = {
            u: {index[i] for i in items if i in index} for u, items in dataset.user_items().items()
        }
        self.heldout = heldout_targets(dataset)
        self.texts = dataset.items["text"].to_list()
        self._index: BM25Index | None = None
        self._pools: dict[str, np.ndarray] = {}
        self.tiebreak = np.random.default_rng([seed, 7919]).permutation(self.n_items)

    def pool(self, query: str) -> np.ndarray:
        pool = self._pools.get(query)
        if pool is None:
            if self._index is None:
                self._index = BM25Index(self.texts, k1=self.config.bm25_k1, b=self.config.bm25_b)
            pool = self._index.top(query, self.config.bm25_pool, self.tiebreak)
            self._pools[query] = pool
        return pool

    def draw(
        self, rng: np.random.Generator, task: str, user: str, target: int, query: str | None, k: int
    ) -> np.ndarray:
        """``k`` distinct negative item rows for one training sample."""
        if task == schema.SEARCH and query is not None:
            banned = self.heldout.get(user, set()) | {target}
            pool = [int(i) for i in self.pool(query) if int(i) not in banned]
            if len(pool) >= k:
                return rng.choice(np.array(pool, dtype=np.int64), size=k, replace=False)
            return self._fill(rng, pool, banned, k, uniform=True)
        banned = self.user_items.get(user, set()) | self.heldout.get(user, set()) | {target}
        return self._fill(rng, [], banned, k, uniform=False)

    def _fill(
        self, rng: np.random.Generator, chosen: list[int], banned: set[int], k: int, uniform: bool
    ) -> np.ndarray:
        taken = set(chosen) | banned
        chosen = list(chosen)
        if self.n_items - len(taken) < k - len(chosen):
            raise ValueError(f"fewer than {k} items are eligible as negatives")
        while len(chosen) < k:
            size = 2 * k + 8
            draws = (
                rng.integers(0, self.n_items, size=size)
                if uniform
                else np.searchsorted(self.cdf, rng.random(size), side="right")
            )
            for item in draws.tolist():
                if item not in taken:
                    taken.add(item)
                    chosen.append(item)
                    if len(chosen) == k:
                        break
        return np.array(chosen, dtype=np.int64)
