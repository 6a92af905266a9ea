"""Settings of the instruction tasks (paper 3.3; counts from the authors' code, SPEC 5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gensar.config import ADDED_OPTION, Section
from gensar.tasks.vocab import VocabConfig

Count = int | Literal["all"]


class TaskCounts(Section):
    """Examples of each task per epoch ("all" = every training sample; 0 = task off)."""

    nrip: Count = Field("all", description="Next recommendation item prediction (code: all).")
    nsip: Count = Field(
        100_000, description="Next search item prediction (code: 100k; capped by the samples)."
    )
    nsqp: Count = Field(1000, description="Next search query prediction (code: 1k).")
    desc2id: Count = Field(
        1000, description="Description -> identifier, both identifiers (code: 1k)."
    )
    id2desc: Count = Field(
        1000, description="Identifier -> description, both identifiers (code: 1k)."
    )

    def get(self, task: str) -> Count:
        return getattr(self, task)


class TaskConfig(Section):
    counts: TaskCounts = Field(default_factory=TaskCounts)
    compact: bool = Field(
        True,
        description="Replace the English templates by one task token (far fewer input tokens for a model "
        "trained from scratch, which cannot use English anyway). The paper uses English templates (compact=false).",
    )
    behaviour_tokens: bool = Field(
        True,
        description="Prefix every history entry and response with its behaviour token (Eq. 11); off for the ablation.",
    )
    random_templates: bool = Field(
        True,
        description="Draw a template at random per training example (evaluation always uses the first).",
    )
    max_rec_history: int | None = Field(
        None,
        ge=0,
        description="Use only this many newest rec items of a sample's history (None: the dataset's window, 5).",
    )
    max_search_sessions: int | None = Field(
        None,
        ge=0,
        description="Use only this many newest search sessions (None: the dataset's window, 5).",
    )
    purchase_pairs: Literal["both", "search", "rec"] = Field(
        "both",
        json_schema_extra=ADDED_OPTION,
        description="A purchase the data renders twice, as a rec click and as a search "
        "session with the same item at the same time (amazon-unisrec's semi-synthetic "
        "protocol): 'both' keeps the two (Eq. 11 as written); 'search' drops the rec click, "
        "'rec' the search click (its query stays), each ~5 fewer input tokens per purchase. "
        "Entries without a time are never paired.",
    )
    soft_tokens: Literal["off", "beside", "instead"] = Field(
        "off",
        json_schema_extra=ADDED_OPTION,
        description="History items and queries as soft tokens, projected from the vectors the "
        "identifiers were built from (MiniLM text + SASRec for items, MiniLM for queries; "
        "issue 18): 'beside' adds one before each entry's codes or words, 'instead' replaces "
        "them (a query the model never saw still enters as words). 'off' is Eq. (11) as "
        "written. Targets stay identifiers in every mode.",
    )
    max_input_tokens: int = Field(
        192, ge=16, description="Longer inputs lose their oldest history entries."
    )
    max_description_tokens: int = Field(
        24,
        ge=1,
        description="Item descriptions (Desc2ID input, ID2Desc output) are cut to this many tokens.",
    )
    vocab: VocabConfig = Field(default_factory=VocabConfig)
