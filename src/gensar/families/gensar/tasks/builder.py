"""Turning dataset samples and identifiers into (instruction, response) token ids.

The five tasks of paper 3.3 are assembled directly from token-id pieces that are
tokenized once (each query, each item description, each template fragment)
instead of rendering and re-tokenizing a string per example: the result is the
same sequence the tokenizer would give the pieces, and building an epoch of
~70k examples takes a second instead of a minute. ``render`` turns ids back into
readable text for inspection.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import polars as pl

from gensar.data import schema
from gensar.families.gensar.soft_inputs import SoftVocabulary
from gensar.families.gensar.tasks.config import TaskConfig
from gensar.families.gensar.tasks.templates import DESC2ID, ID2DESC, NRIP, NSIP, NSQP, TEMPLATES
from gensar.families.protocols import HistoryEntry
from gensar.tasks.vocab import BEHAVIOUR_TOKENS, TASK_TOKENS

SEMANTIC, COLLABORATIVE = "semantic", "collaborative"


class Example(NamedTuple):
    """One training or evaluation example: token ids of instruction and response."""

    input_ids: list[int]
    labels: list[int]
    task: str


class TaskBuilder:
    """Builds the behaviour-aware inputs of Eq. (11) and the five tasks' examples.

    ``identifiers`` is an ``ItemIdentifiers``; ``tokenizer`` a transformers
    tokenizer that already holds every identifier, behaviour and task token.
    """

    def __init__(
        self,
        tokenizer,
        identifiers,
        item_descriptions: dict[str, str],
        config: TaskConfig,
        soft: SoftVocabulary | None = None,
    ):
        self.tokenizer = tokenizer
        self.config = config
        if (config.soft_tokens != "off") != (soft is not None):
            raise ValueError(
                f"tasks.soft_tokens={config.soft_tokens!r} needs "
                + ("a soft-token vocabulary" if soft is None else "no soft-token vocabulary")
            )
        #: ``tasks.soft_tokens``: item/query -> soft-token id (None: Eq. 11's tokens only)
        self.soft = soft
        self.eos_id = tokenizer.eos_token_id
        vocab = tokenizer.get_vocab()
        self.behaviour_id = {b: vocab[t] for b, t in BEHAVIOUR_TOKENS.items()}
        self.task_id = {t: vocab[tok] for t, tok in TASK_TOKENS.items()}
        self.separator = self._text(";")
        self.item_descriptions = item_descriptions
        # Identifier token ids per item, precomputed: the hot path only concatenates lists.
        self.identifier_ids = {
            SEMANTIC: {
                item: [vocab[t] for t in identifiers.semantic_tokens(item)]
                for item in identifiers.item_ids
            },
            COLLABORATIVE: {
                item: [vocab[t] for t in identifiers.collaborative_tokens(item)]
                for item in identifiers.item_ids
            },
        }
        self._templates = {
            task: [self._split_template(t) for t in TEMPLATES[task]] for task in TEMPLATES
        }

    # -- token pieces -------------------------------------------------------------------------
    @lru_cache(maxsize=200_000)  # noqa: B019 - one builder per process; the cache is the point
    def _text(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False).input_ids)

    def query_ids(self, query: str) -> list[int]:
        return list(self._text(query))

    def _with_soft(self, soft: int | None, tokens: list[int]) -> list[int]:
        """``tokens`` with a soft token before them or in their place (``tasks.soft_tokens``);
        without a soft token (mode off, or an unknown query) the tokens alone."""
        if soft is None:
            return tokens
        return [soft] if self.soft.mode == "instead" else [soft, *tokens]

    def query_input_ids(self, query: str) -> list[int]:
        """A query in the encoder input: its words, and its soft token if it has one."""
        soft = self.soft.query(query) if self.soft is not None else None
        return self._with_soft(soft, self.query_ids(query))

    def item_input_ids(self, item_id: str, kind: str) -> list[int]:
        """A history item in the encoder input: its identifier (Eq. 11), and its soft token."""
        soft = self.soft.item(item_id) if self.soft is not None else None
        return self._with_soft(soft, self.item_ids(item_id, kind))

    def description_ids(self, item_id: str) -> list[int]:
        text = self.item_descriptions.get(item_id, "")
        return list(self._text(text))[: self.config.max_description_tokens]

    def _split_template(self, template: str) -> list[str | tuple[int, ...]]:
        """A template as a list of token-id tuples (literal text) and placeholder names."""
        parts: list[str | tuple[int, ...]] = []
        rest = template
        while "{" in rest:
            before, _, tail = rest.partition("{")
            name, _, rest = tail.partition("}")
            if before:
                parts.append(self._text(before))
            parts.append(name)
        if rest:
            parts.append(self._text(rest))
        return parts

    def _behaviour(self, behaviour: str) -> list[int]:
        return [self.behaviour_id[behaviour]] if self.config.behaviour_tokens else []

    def item_ids(self, item_id: str, kind: str) -> list[int]:
        return self.identifier_ids[kind][item_id]

    # -- Eq. (11): the behaviour-aware identifier of one history entry -------------------------------
    def entry_ids(self, entry: HistoryEntry) -> list[int]:
        if entry.behaviour == schema.REC_ITEM:
            return self._behaviour(entry.behaviour) + self.item_input_ids(
                entry.item_id, COLLABORATIVE
            )
        if entry.behaviour == schema.SEARCH_ITEM:
            return self._behaviour(entry.behaviour) + self.item_input_ids(entry.item_id, SEMANTIC)
        return self._behaviour(entry.behaviour) + self.query_input_ids(entry.query or "")

    def one_rendering(self, history: Sequence[HistoryEntry]) -> list[HistoryEntry]:
        """``tasks.purchase_pairs``: drop one click of each purchase rendered twice (a rec
        click and a search click of the same item at the same time)."""
        keep = self.config.purchase_pairs
        if keep == "both":
            return list(history)
        drop = schema.REC_ITEM if keep == "search" else schema.SEARCH_ITEM
        other = schema.SEARCH_ITEM if keep == "search" else schema.REC_ITEM
        paired = {
            (e.item_id, e.time) for e in history if e.behaviour == other and e.time is not None
        }
        return [
            e
            for e in history
            if not (e.behaviour == drop and e.time is not None and (e.item_id, e.time) in paired)
        ]

    def window(self, history: Sequence[HistoryEntry]) -> list[HistoryEntry]:
        """The newest ``tasks.max_rec_history`` rec items and ``tasks.max_search_sessions``
        search sessions (a query and the clicks after it), in order; None keeps everything.
        Purchases rendered twice are first reduced to one rendering (``purchase_pairs``)."""
        history = self.one_rendering(history)
        max_rec, max_sessions = self.config.max_rec_history, self.config.max_search_sessions
        if max_rec is None and max_sessions is None:
            return list(history)
        kept: list[HistoryEntry] = []
        rec = sessions = 0
        for entry in reversed(history):
            if entry.behaviour == schema.REC_ITEM:
                rec += 1
                if max_rec is None or rec <= max_rec:
                    kept.append(entry)
                continue
            if max_sessions is None or sessions < max_sessions:
                kept.append(entry)
            if entry.behaviour == schema.SEARCH_QUERY:
                sessions += 1
        return kept[::-1]

    def history_ids(self, history: Sequence[HistoryEntry], budget: int) -> list[int]:
        """The history, oldest entries dropped first when it exceeds ``budget`` tokens."""
        pieces = [
            self.entry_ids(e)
            for e in self.window(history)
            if e.item_id is None or e.item_id in self.identifier_ids[SEMANTIC]
        ]
        separator = [] if self.config.compact else list(self.separator)
        out: list[int] = []
        for piece in reversed(pieces):
            extra = piece + (separator if out else [])
            if len(out) + len(extra) > budget:
                break
            out = piece + (separator if out else []) + out
        return out

    # -- instructions ------------------------------------------------------------------------------
    def instruction(
        self,
        task: str,
        history: Sequence[HistoryEntry] = (),
        *,
        query: str | None = None,
        item_id: str | None = None,
        kind: str = SEMANTIC,
        template: int = 0,
    ) -> list[int]:
        """The input ids of one task; ends with the behaviour token of the wanted output (paper 3.4.2)."""
        fixed = {
            "query": (self._behaviour(schema.SEARCH_QUERY) + self.query_input_ids(query or ""))
            if task == NSIP
            else [],
            "description": self.description_ids(item_id) if task == DESC2ID else [],
            "identifier": self.item_ids(item_id, kind) if task == ID2DESC else [],
        }
        wanted = {NRIP: schema.REC_ITEM, NSIP: schema.SEARCH_ITEM, NSQP: schema.SEARCH_QUERY}.get(
            task
        )
        suffix = self._behaviour(wanted) if wanted else []
        if self.config.compact:
            head = [self.task_id[task]]
            body = fixed["query"] + fixed["description"] + fixed["identifier"]
            budget = self.config.max_input_tokens - len(head) - len(body) - len(suffix) - 1
            history_ids = self.history_ids(history, budget) if task in (NRIP, NSQP, NSIP) else []
            return head + history_ids + body + suffix + [self.eos_id]
        parts = self._templates[task][template]
        static = sum(len(p) for p in parts if isinstance(p, tuple)) + sum(
            len(v) for v in fixed.values()
        )
        budget = self.config.max_input_tokens - static - len(suffix) - 1
        values = {
            **fixed,
            "history": self.history_ids(history, budget) if "history" in parts else [],
        }
        out: list[int] = []
        for part in parts:
            out.extend(part if isinstance(part, tuple) else values[part])
        return out + suffix + [self.eos_id]

    def response(
        self,
        task: str,
        *,
        item_id: str | None = None,
        query: str | None = None,
        kind: str = SEMANTIC,
    ) -> list[int]:
        if task == NRIP:
            return (
                self._behaviour(schema.REC_ITEM)
                + self.item_ids(item_id, COLLABORATIVE)
                + [self.eos_id]
            )
        if task == NSIP:
            return (
                self._behaviour(schema.SEARCH_ITEM)
                + self.item_ids(item_id, SEMANTIC)
                + [self.eos_id]
            )
        if task == NSQP:
            return (
                self._behaviour(schema.SEARCH_QUERY) + self.query_ids(query or "") + [self.eos_id]
            )
        if task == DESC2ID:
            return self.item_ids(item_id, kind) + [self.eos_id]
        if task == ID2DESC:
            return self.description_ids(item_id) + [self.eos_id]
        raise ValueError(f"unknown task {task!r}")

    # -- examples ----------------------------------------------------------------------------------
    def sample_example(
        self, task: str, sample: dict, query_text: dict[str, str], template: int = 0
    ) -> Example:
        """An NRIP / NSIP / NSQP example from one row of ``samples.parquet``."""
        history = to_entries(sample["history"], query_text)
        query = query_text.get(sample["query_id"]) if sample.get("query_id") else None
        if task == NSQP:
            return Example(
                self.instruction(NSQP, history, template=template),
                self.response(NSQP, query=query),
                task,
            )
        target = sample["target_item_id"]
        instruction = self.instruction(task, history, query=query, template=template)
        return Example(instruction, self.response(task, item_id=target), task)

    def alignment_example(self, task: str, item_id: str, kind: str, template: int = 0) -> Example:
        """A Desc2ID or ID2Desc example (no behaviour token, paper 3.3.4)."""
        instruction = self.instruction(task, item_id=item_id, kind=kind, template=template)
        return Example(instruction, self.response(task, item_id=item_id, kind=kind), task)

    def epoch_examples(
        self,
        samples_by_task: dict[str, Sequence[dict] | SampleRows],
        query_text: dict[str, str],
        items: list[str],
        *,
        epoch: int,
        seed: int,
    ) -> list[Example]:
        """One epoch of training examples: per-task counts of the config, drawn with (seed, epoch).

        ``samples_by_task`` holds, per task, the training sample rows: a list of
        dicts or a :class:`SampleRows` over the samples table. Only the row
        *indices* are drawn, so with ``SampleRows`` only the drawn rows are ever
        turned into Python objects (in chunks), and the examples are exactly
        those a list of every row as dicts would give: ``random.sample`` picks
        positions from the length alone.
        """
        rng = random.Random(seed * 1_000_003 + epoch)
        n_templates = len(TEMPLATES[NRIP])
        pick = (
            (lambda: rng.randrange(n_templates))
            if self.config.random_templates and not self.config.compact
            else (lambda: 0)
        )
        examples: list[Example] = []
        for task in (NRIP, NSIP, NSQP):
            rows = samples_by_task.get(task, [])
            indices = _draw_indices(len(rows), self.config.counts.get(task), rng)
            for start in range(0, len(indices), _ROW_CHUNK):
                for row in _take(rows, indices[start : start + _ROW_CHUNK]):
                    examples.append(self.sample_example(task, row, query_text, pick()))
        for task in (DESC2ID, ID2DESC):
            count = self.config.counts.get(task)
            pairs = [(item, kind) for item in items for kind in (SEMANTIC, COLLABORATIVE)]
            for item, kind in _draw(pairs, count, rng):
                examples.append(self.alignment_example(task, item, kind, pick()))
        return examples

    def render(self, ids: Sequence[int]) -> str:
        """Readable text of token ids (special tokens kept), for inspection and tests."""
        ids = [i for i in ids if i != self.tokenizer.pad_token_id]
        if self.soft is None:
            return self.tokenizer.decode(ids, skip_special_tokens=False)
        pieces: list[str] = []
        words: list[int] = []
        for token in [*ids, None]:
            if token is not None and token < self.soft.base:
                words.append(token)
                continue
            if words:
                pieces.append(self.tokenizer.decode(words, skip_special_tokens=False))
                words = []
            if token is not None:
                pieces.append(self.soft.describe(token))
        return " ".join(pieces)


def to_entries(history: Sequence[dict], query_text: dict[str, str]) -> list[HistoryEntry]:
    """``samples.parquet`` history structs -> HistoryEntry (query ids resolved to text)."""
    out = []
    for h in history:
        time = h.get("time")  # pairs a purchase's two renderings (tasks.purchase_pairs)
        if h["behaviour"] == schema.SEARCH_QUERY:
            query = query_text.get(h["query_id"], "")
            out.append(HistoryEntry(h["behaviour"], None, query, time))
        else:
            out.append(HistoryEntry(h["behaviour"], h["item_id"], None, time))
    return out


class SampleRows:
    """Rows of a samples table, turned into dicts only when drawn.

    ``samples.parquet`` rows carry a history of up to ~15 structs; as Python
    dicts a million of them take gigabytes, while the columnar frame takes a
    small fraction of that. An epoch draws a few thousand rows (the per-task
    counts), so only those are converted.
    """

    COLUMNS = ("history", "query_id", "target_item_id")

    def __init__(self, frame: pl.DataFrame, rows: np.ndarray | None = None):
        """``rows``: positions in ``frame`` of the rows to draw from (default: all), so
        a task's training rows need no filtered copy of the table."""
        self.frame = frame.select(self.COLUMNS)  # shares the column buffers
        self.rows = np.arange(frame.height) if rows is None else np.asarray(rows, dtype=np.int64)

    @classmethod
    def of(cls, samples: pl.DataFrame, task: str, split: str) -> SampleRows:
        """The rows of one task and split, in table order (``Dataset.samples_for``'s order)."""
        mask = (samples["task"] == task) & (samples["split"] == split)
        return cls(samples, np.flatnonzero(mask.to_numpy()))

    def __len__(self) -> int:
        return int(self.rows.size)

    def take(self, indices: Sequence[int]) -> list[dict]:
        """The rows at ``indices`` (in that order) as dicts.

        Gathered chunk by chunk of the table: a gather over a table read from
        Parquet (one chunk per row group) first copies every column into one
        chunk, i.e. the whole history column (+1.7 GB and 6 s for 2,000 rows of
        a MovieLens-1M-sized table).
        """
        if not len(indices):
            return []
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        order = np.argsort(rows, kind="stable")
        ranked = rows[order]
        bounds = np.cumsum([0, *self.frame["history"].chunk_lengths()])
        parts = []
        cut = np.searchsorted(ranked, bounds)
        for chunk in range(bounds.size - 1):
            picked = ranked[cut[chunk] : cut[chunk + 1]]
            if picked.size:
                start = int(bounds[chunk])
                piece = self.frame.slice(start, int(bounds[chunk + 1]) - start)
                parts.extend(piece[picked - start].to_dicts())
        out: list[dict] = [{}] * rows.size
        for position, row in zip(order.tolist(), parts, strict=True):
            out[position] = row
        return out


#: Rows converted to dicts at a time when a whole task is drawn ("all").
_ROW_CHUNK = 8192


def _take(rows: Sequence[dict] | SampleRows, indices: Sequence[int]) -> list[dict]:
    if isinstance(rows, SampleRows):
        return rows.take(indices)
    return [rows[i] for i in indices]


def _draw_indices(n: int, count, rng: random.Random) -> Sequence[int]:
    """Positions drawn by :func:`_draw` from ``n`` rows (the same draws, same order)."""
    if count == "all" or (isinstance(count, int) and count >= n):
        return range(n)
    if not count:
        return []
    return rng.sample(range(n), count)


def _draw(rows: list, count, rng: random.Random) -> list:
    return [rows[i] for i in _draw_indices(len(rows), count, rng)]
