"""GenSAR (or any model directory written by `gensar train`) as a ranking model of the protocol.

Candidate lists are ranked by beam search restricted to the candidates (decoder
mode b, the paper's protocol; the authors' code keeps ``num_beams`` = 30) or,
with ``candidate_ranking="exact"``, by the log-likelihood of every candidate's
identifier (mode c, the same scores without beam pruning). The beam prunes at
every step, including after the identifier's shared (collaborative) codes, so
only its last step is exact; the candidates it pruned come back at ``-inf``,
tied at the bottom of the list, and the metrics' tie rule ranks the target among
them fairly (``evaluate.ties``). The whole catalogue is ranked by constrained
beam search (``top_k``), since a generative model does not score every item.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from gensar.data import schema
from gensar.data.dataset import Dataset
from gensar.families.gensar.tasks.builder import to_entries
from gensar.families.gensar.tasks.templates import NRIP, NSIP
from gensar.families.protocols import Unsupported


class GenSARRanker:
    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        gensar=None,
        name: str | None = None,
        batch_size: int = 64,
        num_beams: int = 30,
        candidate_ranking: str = "beam",
    ):
        from gensar.families.gensar.api import GenSAR

        self.gensar = gensar or GenSAR.load(model_dir)
        self.name = name or self.gensar.card.name
        counts = self.gensar.builder.config.counts
        self.tasks = tuple(
            t
            for t, c in ((schema.RECOMMENDATION, counts.nrip), (schema.SEARCH, counts.nsip))
            if c != 0
        )
        self.batch_size = batch_size
        self.num_beams = num_beams
        self.candidate_ranking = candidate_ranking
        self.dataset: Dataset | None = None

    @classmethod
    def for_run(
        cls, model_dir: str | Path, section, name: str | None = None, batch_size: int = 64
    ) -> GenSARRanker:
        """The ranker GenSAR's run-config section describes (beam width, candidate ranking)."""
        return cls(
            model_dir,
            name=name,
            batch_size=batch_size,
            num_beams=section.num_beams,
            candidate_ranking=section.candidate_ranking,
        )

    def fit(self, dataset: Dataset, run_dir: Path | None = None) -> None:
        self.dataset = dataset

    def _instructions(self, samples: pl.DataFrame) -> tuple[str, list[list[int]]]:
        task = samples["task"][0]
        gen_task = NRIP if task == schema.RECOMMENDATION else NSIP
        query_text = self.dataset.query_text
        out = [
            self.gensar.builder.instruction(
                gen_task,
                to_entries(row["history"], query_text),
                query=query_text.get(row["query_id"]) if row["query_id"] else None,
            )
            for row in samples.select("history", "query_id").iter_rows(named=True)
        ]
        return gen_task, out

    def score_candidates(self, samples: pl.DataFrame, candidates: list[list[str]]) -> np.ndarray:
        gen_task, instructions = self._instructions(samples)
        index = self.gensar.item_index
        lists = [[index[item] for item in row] for row in candidates]
        return self.gensar.score_candidates(
            gen_task,
            instructions,
            lists,
            mode=self.candidate_ranking,
            num_beams=self.num_beams,
            batch_size=self.batch_size,
        )

    def score_all(self, samples: pl.DataFrame) -> np.ndarray:
        raise Unsupported("a generative model ranks the catalogue by beam search (top_k)")

    def top_k(self, samples: pl.DataFrame, k: int) -> list[list[str]]:
        gen_task, instructions = self._instructions(samples)
        ranked = self.gensar.top_k(
            gen_task, instructions, k, num_beams=max(k, self.num_beams), batch_size=self.batch_size
        )
        return [[self.gensar.item_ids[i] for i, _ in row] for row in ranked]
