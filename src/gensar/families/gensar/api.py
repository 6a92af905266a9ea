"""The Python API a service holds in memory: ``GenSAR.load(model_dir)``.

    model = GenSAR.load("runs/amazon/model")
    model.recommend(history, k=10)            # next item from recommendation (<R_I>)
    model.search(history, "duct tape", k=10)  # items for a query, personalised (<S_I>)
    model.suggest_queries(history, k=5)       # next queries (<S_Q>)

A history is a list of behaviours, oldest first, each a dict such as
``{"behaviour": "rec_item", "item_id": "B01"}``, ``{"behaviour": "search_query",
"query": "duct tape"}`` or ``{"behaviour": "search_item", "item_id": "B07"}``
(or :class:`~gensar.families.protocols.HistoryEntry`). Items the model does not know
are ignored. Batched variants (``recommend_batch``...) serve many users at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl
import torch

from gensar.answering import as_entries
from gensar.data import schema
from gensar.errors import GensarError
from gensar.families.gensar.directory import (
    IDENTIFIERS,
    MODEL_CARD,
    REBUILD,
    TOKENIZER,
    WEIGHTS,
    GenSARCard,
    load_part,
    open_model_dir,
)
from gensar.families.gensar.directory import ITEMS as ITEMS_FILE
from gensar.families.gensar.soft_inputs import FILE as SOFT_TOKENS
from gensar.families.gensar.soft_inputs import SoftVocabulary, load_soft_tokens
from gensar.families.gensar.tasks.builder import COLLABORATIVE, SEMANTIC, TaskBuilder
from gensar.families.gensar.tasks.config import TaskConfig
from gensar.families.gensar.tasks.templates import NRIP, NSIP, NSQP
from gensar.families.protocols import HistoryEntry, Prediction
from gensar.tasks.vocab import BEHAVIOUR_TOKENS, TASK_TOKENS


class GenSAR:
    """A trained GenSAR model with its tokenizer, identifiers and decoders."""

    def __init__(
        self,
        model,
        tokenizer,
        identifiers,
        builder: TaskBuilder,
        titles: dict[str, str],
        *,
        card: GenSARCard | None = None,
    ):
        from gensar.decoding import IdentifierCatalogue, SpecialTokens

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.identifiers = identifiers
        self.builder = builder
        self.titles = titles
        self.card = card or GenSARCard()
        self.name: str = self.card.name
        self.item_ids: list[str] = list(identifiers.item_ids)
        self.item_index = {item: n for n, item in enumerate(self.item_ids)}
        vocab = tokenizer.get_vocab()
        self.special = SpecialTokens(
            decoder_start=int(model.config.decoder_start_token_id),
            eos=int(builder.eos_id),
            pad=int(tokenizer.pad_token_id),
        )
        behaviour = builder.config.behaviour_tokens
        self.catalogues = {
            kind: IdentifierCatalogue(
                vocab[BEHAVIOUR_TOKENS[schema.SEARCH_ITEM if kind == SEMANTIC else schema.REC_ITEM]]
                if behaviour
                else None,
                np.array([builder.item_ids(item, kind) for item in self.item_ids], dtype=np.int64),
                name=f"{kind} identifiers",
            )
            for kind in (SEMANTIC, COLLABORATIVE)
        }
        self._query_token = vocab[BEHAVIOUR_TOKENS[schema.SEARCH_QUERY]]
        self._banned_in_queries = sorted(
            {vocab[t] for t in identifiers.all_tokens()}
            | {vocab[t] for t in BEHAVIOUR_TOKENS.values()}
            | {vocab[t] for t in TASK_TOKENS.values()}
        )

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir: str | Path, *, device: str = "auto") -> GenSAR:
        """Load everything from one model directory written by ``gensar train``."""
        from transformers import AutoTokenizer

        from gensar.ids.identifiers import ItemIdentifiers
        from gensar.utils import pick_device

        model_dir = Path(model_dir)
        card = GenSARCard.parse(  # every damage is one line naming the file
            open_model_dir(model_dir), model_dir / MODEL_CARD
        )
        tokenizer = load_part(
            model_dir / TOKENIZER,
            "tokenizer",
            lambda: AutoTokenizer.from_pretrained(str(model_dir)),
        )
        model = load_part(model_dir / WEIGHTS, "model", lambda: _load_model(model_dir, card))
        soft = None
        if (model_dir / SOFT_TOKENS).is_file() or card.tasks.get("soft_tokens", "off") != "off":
            soft = _attach_soft_tokens(model, model_dir)
        model.to(pick_device(device))
        identifiers = load_part(
            model_dir / IDENTIFIERS, "identifiers", lambda: ItemIdentifiers.load(model_dir)
        )
        items = load_part(model_dir / ITEMS_FILE, "item titles", lambda: _read_items(model_dir))
        descriptions = dict(
            zip(items["item_id"].to_list(), items["description"].to_list(), strict=True)
        )
        titles = dict(zip(items["item_id"].to_list(), items["title"].to_list(), strict=True))
        task_config = load_part(
            model_dir / MODEL_CARD,
            "task settings",
            lambda: TaskConfig.model_validate(card.tasks),
        )
        builder = load_part(
            model_dir,
            "model's vocabulary",
            lambda: TaskBuilder(tokenizer, identifiers, descriptions, task_config, soft),
        )
        return load_part(
            model_dir,
            "model (its vocabulary does not match its identifiers)",
            lambda: cls(model, tokenizer, identifiers, builder, titles, card=card),
        )

    # -- inputs --------------------------------------------------------------------------------
    def _batch(self, instructions: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(ids) for ids in instructions)
        input_ids = torch.full((len(instructions), width), self.special.pad, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, ids in enumerate(instructions):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        device = self.model.device
        return input_ids.to(device), mask.to(device)

    def instructions(
        self,
        task: str,
        histories: Sequence[Sequence[HistoryEntry]],
        queries: Sequence[str | None] | None = None,
    ) -> list[list[int]]:
        queries = queries or [None] * len(histories)
        return [
            self.builder.instruction(task, h, query=q)
            for h, q in zip(histories, queries, strict=True)
        ]

    # -- ranking ---------------------------------------------------------------------------------
    def top_k(
        self,
        task: str,
        instructions: Sequence[list[int]],
        k: int,
        *,
        num_beams: int | None = None,
        batch_size: int = 32,
    ) -> list[list[tuple[int, float]]]:
        """Constrained beam search over the whole catalogue: (item index, log-likelihood) per input."""
        from gensar.decoding import beam_search

        catalogue = self.catalogues[COLLABORATIVE if task == NRIP else SEMANTIC]
        beams = max(k, num_beams or k)
        out: list[list[tuple[int, float]]] = []
        for start in range(0, len(instructions), batch_size):
            input_ids, mask = self._batch(instructions[start : start + batch_size])
            ranked = beam_search(
                self.model, input_ids, mask, catalogue, self.special, num_beams=beams, top_k=k
            )
            out.extend(ranked.to_lists())
        return out

    def score_candidates(
        self,
        task: str,
        instructions: Sequence[list[int]],
        candidates: Sequence[Sequence[int]],
        *,
        mode: str = "exact",
        num_beams: int = 20,
        batch_size: int = 64,
    ) -> np.ndarray:
        """Scores of every candidate (item indices), ``-inf`` for padding.

        ``mode="exact"`` is decoder mode (c): the log-likelihood of every
        candidate's identifier. ``mode="beam"`` is mode (b), the paper's
        protocol: beam search restricted to the candidates, which returns the
        ``num_beams`` best of them with the same log-likelihoods and leaves the
        rest at ``-inf`` (ranked last). Metrics at cut-offs up to ``num_beams``
        are then those of the paper; beam search is ~4x cheaper on CPU, but may
        prune a candidate that exact scoring would rank higher.
        """
        from gensar.decoding import restricted_beam_search, score_candidates

        if mode not in ("exact", "beam"):
            raise GensarError(f"unknown candidate scoring mode {mode!r}; use 'exact' or 'beam'")
        catalogue = self.catalogues[COLLABORATIVE if task == NRIP else SEMANTIC]
        width = max(len(c) for c in candidates)
        out = np.full((len(instructions), width), -np.inf)
        for start in range(0, len(instructions), batch_size):
            stop = min(len(instructions), start + batch_size)
            input_ids, mask = self._batch(instructions[start:stop])
            if mode == "exact":
                scores = score_candidates(
                    self.model, input_ids, mask, catalogue, candidates[start:stop], self.special
                )
                out[start:stop, : scores.scores.shape[1]] = scores.scores.numpy()
                continue
            ranked = restricted_beam_search(
                self.model,
                input_ids,
                mask,
                catalogue,
                candidates[start:stop],
                self.special,
                num_beams=num_beams,
                top_k=num_beams,
            )
            for row, found in enumerate(ranked.to_lists(), start=start):
                column = {item: j for j, item in enumerate(candidates[row])}
                for item, score in found:
                    out[row, column[item]] = score
        return out

    def _predictions(self, ranked: list[tuple[int, float]]) -> list[Prediction]:
        return [
            Prediction(self.item_ids[i], float(s), self.titles.get(self.item_ids[i]))
            for i, s in ranked
        ]

    def recommend_batch(
        self, histories: Sequence[Sequence[HistoryEntry | Mapping]], k: int = 10
    ) -> list[list[Prediction]]:
        entries = [as_entries(h) for h in histories]
        ranked = self.top_k(NRIP, self.instructions(NRIP, entries), k)
        return [self._predictions(r) for r in ranked]

    def search_batch(
        self,
        histories: Sequence[Sequence[HistoryEntry | Mapping]],
        queries: Sequence[str],
        k: int = 10,
    ) -> list[list[Prediction]]:
        for query in queries:
            if not isinstance(query, str) or not query.strip():
                raise GensarError("the query is empty", fix="pass the text the user searched for")
        entries = [as_entries(h) for h in histories]
        ranked = self.top_k(
            NSIP, self.instructions(NSIP, entries, [q.strip().lower() for q in queries]), k
        )
        return [self._predictions(r) for r in ranked]

    def suggest_queries_batch(
        self, histories: Sequence[Sequence[HistoryEntry | Mapping]], k: int = 5
    ) -> list[list[Prediction]]:
        from gensar.decoding import suggest_queries

        entries = [as_entries(h) for h in histories]
        input_ids, mask = self._batch(self.instructions(NSQP, entries))
        found = suggest_queries(
            self.model,
            input_ids,
            mask,
            self.tokenizer,
            self._query_token,
            self.special,
            k=k,
            num_beams=max(k, 10),
            banned_token_ids=self._banned_in_queries,
        )
        return [[Prediction(None, s.score, None, s.text) for s in row] for row in found]

    def recommend(self, history: Sequence[HistoryEntry | Mapping], k: int = 10) -> list[Prediction]:
        """The ``k`` items this user most likely clicks next from recommendation."""
        return self.recommend_batch([history], k)[0]

    def search(
        self, history: Sequence[HistoryEntry | Mapping], query: str, k: int = 10
    ) -> list[Prediction]:
        """The ``k`` items this user most likely clicks for ``query``."""
        return self.search_batch([history], [query], k)[0]

    def suggest_queries(
        self, history: Sequence[HistoryEntry | Mapping], k: int = 5
    ) -> list[Prediction]:
        """The ``k`` queries this user most likely searches next."""
        return self.suggest_queries_batch([history], k)[0]

    # -- the Servable protocol's item lookup ---------------------------------------------------------
    def title(self, item_id: str) -> str | None:
        return self.titles.get(item_id)

    def descriptions(self) -> dict[str, str]:
        """Item texts (what Desc2ID/ID2Desc use), shown by the service's item lookup."""
        return dict(getattr(self.builder, "item_descriptions", {}) or {})

    @cached_property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def _read_items(model_dir: Path) -> pl.DataFrame:
    items = pl.read_parquet(model_dir / ITEMS_FILE)
    missing = {"item_id", "title", "description"} - set(items.columns)
    if missing:
        raise ValueError(f"missing column(s) {', '.join(sorted(missing))}")
    return items


def _load_model(model_dir: Path, card: GenSARCard):
    from transformers import AutoModelForSeq2SeqLM, EncoderDecoderModel

    if card.model.get("preset") == "minilm":
        return EncoderDecoderModel.from_pretrained(str(model_dir))
    if card.tasks.get("soft_tokens", "off") != "off":
        # the soft-token projection is not a T5 weight: build the T5 from its config
        # and load every weight (projection included) strictly in _attach_soft_tokens
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(model_dir))
        return AutoModelForSeq2SeqLM.from_config(config)
    return AutoModelForSeq2SeqLM.from_pretrained(str(model_dir))


def _attach_soft_tokens(model, model_dir: Path) -> SoftVocabulary:
    """Give a loaded model its soft-token embedding (``tasks.soft_tokens``) and weights."""
    from safetensors.torch import load_file

    from gensar.model.checkpoint import load_state_strict
    from gensar.model.soft_tokens import attach_soft_tokens

    soft, table = load_part(
        model_dir / SOFT_TOKENS, "soft-token table", lambda: load_soft_tokens(model_dir)
    )
    if soft.base != model.get_input_embeddings().num_embeddings:
        raise GensarError(
            f"soft-token ids start at {soft.base} but the model has "
            f"{model.get_input_embeddings().num_embeddings} word rows",
            where=model_dir / SOFT_TOKENS,
            fix=REBUILD,
        )
    attach_soft_tokens(model, torch.from_numpy(table))
    load_part(
        model_dir / WEIGHTS,
        "model",
        lambda: load_state_strict(model, load_file(str(model_dir / WEIGHTS))),
    )
    return soft
