"""The five instruction tasks (paper 3.3) and the vocabulary built for them."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from gensar.data import schema
from gensar.families.gensar.tasks.builder import COLLABORATIVE, SEMANTIC, HistoryEntry, TaskBuilder
from gensar.families.gensar.tasks.config import TaskConfig
from gensar.families.gensar.tasks.templates import (
    DESC2ID,
    ID2DESC,
    NRIP,
    NSIP,
    NSQP,
    TEMPLATES,
    template_texts,
)
from gensar.tasks.vocab import (
    BEHAVIOUR_TOKENS,
    TASK_TOKENS,
    VocabConfig,
    build_tokenizer,
)


class FakeIdentifiers:
    """Two items with joint identifiers of Eq. (5): 2 shared + 2 specific codes."""

    codes = {"macbook": ((15, 19), (41, 65), (52, 37)), "piano": ((247, 197), (184, 110), (1, 44))}
    item_ids = list(codes)

    def semantic_tokens(self, item):
        m, s, _ = self.codes[item]
        return [f"<m1_{m[0]}>", f"<m2_{m[1]}>", f"<s1_{s[0]}>", f"<s2_{s[1]}>"]

    def collaborative_tokens(self, item):
        m, _, c = self.codes[item]
        return [f"<m1_{m[0]}>", f"<m2_{m[1]}>", f"<c1_{c[0]}>", f"<c2_{c[1]}>"]

    def all_tokens(self):
        return sorted(
            {
                t
                for i in self.item_ids
                for t in self.semantic_tokens(i) + self.collaborative_tokens(i)
            }
        )


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["Apple MacBook Air laptop", "Grand piano black", "artificial intelligence book"] * 20
    special = (
        list(BEHAVIOUR_TOKENS.values())
        + list(TASK_TOKENS.values())
        + FakeIdentifiers().all_tokens()
    )
    return build_tokenizer(
        texts,
        Counter({"piano": 5, "artificial intelligence": 3}),
        special,
        VocabConfig(size=200, multiword=False),
        extra_texts=template_texts(),
    )


def builder(tokenizer, **overrides) -> TaskBuilder:
    config = TaskConfig(compact=False, **overrides)
    return TaskBuilder(
        tokenizer,
        FakeIdentifiers(),
        {"macbook": "Apple MacBook Air", "piano": "Grand piano"},
        config,
    )


def flat(text: str) -> str:
    """Compare renderings without caring about the tokenizer's spacing."""
    return re.sub(r"\s+", "", text.lower())


HISTORY = [
    HistoryEntry(schema.SEARCH_QUERY, query="piano"),
    HistoryEntry(schema.SEARCH_ITEM, item_id="piano"),
    HistoryEntry(schema.REC_ITEM, item_id="macbook"),
]


def test_nrip_matches_paper_example(tokenizer):
    b = builder(tokenizer)
    example = b.instruction(NRIP, HISTORY)
    assert flat(b.render(example)) == flat(
        "Below is the user's interaction history: <S_Q> piano; <S_I><m1_247><m2_197><s1_184><s2_110>; "
        "<R_I><m1_15><m2_19><c1_52><c2_37>. Please recommend the next item the user is likely to click.<R_I></s>"
    )
    assert flat(b.render(b.response(NRIP, item_id="piano"))) == flat(
        "<R_I><m1_247><m2_197><c1_1><c2_44></s>"
    )


def test_nsqp_and_nsip_formats(tokenizer):
    b = builder(tokenizer)
    assert flat(b.render(b.response(NSQP, query="artificial intelligence"))) == flat(
        "<S_Q> artificial intelligence</s>"
    )
    nsip = b.render(b.instruction(NSIP, HISTORY, query="artificial intelligence"))
    assert "theusersearchesfor<s_q>artificialintelligence." in flat(nsip)
    assert flat(nsip).endswith(flat("<S_I></s>"))
    # the search target is written with its semantic identifier (Eq. 11)
    assert flat(b.render(b.response(NSIP, item_id="macbook"))) == flat(
        "<S_I><m1_15><m2_19><s1_41><s2_65></s>"
    )


def test_alignment_tasks_have_no_behaviour_token(tokenizer):
    b = builder(tokenizer)
    desc = b.alignment_example(DESC2ID, "macbook", SEMANTIC)
    assert flat(b.render(desc.input_ids)) == flat(
        'Using the provided description "apple macbook air", predict the corresponding item.</s>'
    )
    assert flat(b.render(desc.labels)) == flat("<m1_15><m2_19><s1_41><s2_65></s>")
    back = b.alignment_example(ID2DESC, "macbook", COLLABORATIVE)
    assert flat(b.render(back.input_ids)) == flat(
        "Please provide a description for the item <m1_15><m2_19><c1_52><c2_37>.</s>"
    )
    assert flat(b.render(back.labels)) == flat("apple macbook air</s>")


def test_without_behaviour_tokens(tokenizer):
    b = builder(tokenizer, behaviour_tokens=False)
    rendered = b.render(b.instruction(NRIP, HISTORY))
    assert all(token.lower() not in rendered.lower() for token in BEHAVIOUR_TOKENS.values())
    assert flat(b.render(b.response(NRIP, item_id="piano"))) == flat(
        "<m1_247><m2_197><c1_1><c2_44></s>"
    )


def test_compact_mode_uses_task_tokens_and_is_shorter(tokenizer):
    english = builder(tokenizer)
    compact = TaskBuilder(tokenizer, FakeIdentifiers(), {}, TaskConfig(compact=True))
    ids = compact.instruction(NRIP, HISTORY)
    assert flat(compact.render(ids)).startswith(flat("<task_nrip><S_Q> piano<S_I>"))
    assert len(ids) < len(english.instruction(NRIP, HISTORY)) / 2


def test_long_history_keeps_the_newest_entries(tokenizer):
    b = TaskBuilder(tokenizer, FakeIdentifiers(), {}, TaskConfig(compact=True, max_input_tokens=16))
    long_history = [HistoryEntry(schema.REC_ITEM, item_id="piano")] * 10 + [
        HistoryEntry(schema.REC_ITEM, item_id="macbook")
    ]
    ids = b.instruction(NRIP, long_history)
    assert len(ids) <= 16
    assert flat(b.render(ids)).endswith(flat("<R_I><m1_15><m2_19><c1_52><c2_37><R_I></s>"))


def test_epoch_mix_follows_counts_and_seed(tokenizer):
    b = builder(tokenizer, counts={"nrip": "all", "nsip": 2, "nsqp": 1, "desc2id": 3, "id2desc": 0})
    rows = [
        {
            "history": [
                {"behaviour": schema.REC_ITEM, "item_id": "piano", "query_id": None, "time": 0}
            ],
            "target_item_id": "macbook",
            "query_id": "q",
        }
        for _ in range(5)
    ]
    samples = {NRIP: rows, NSIP: rows, NSQP: rows}
    first = b.epoch_examples(samples, {"q": "piano"}, FakeIdentifiers.item_ids, epoch=0, seed=1)
    assert Counter(e.task for e in first) == Counter({NRIP: 5, NSIP: 2, NSQP: 1, DESC2ID: 3})
    again = b.epoch_examples(samples, {"q": "piano"}, FakeIdentifiers.item_ids, epoch=0, seed=1)
    assert first == again
    assert len(TEMPLATES[NRIP]) >= 5 and all(
        len(TEMPLATES[t]) == len(TEMPLATES[NRIP]) for t in TEMPLATES
    )


def test_history_window_caps(tokenizer):
    b = TaskBuilder(
        tokenizer,
        FakeIdentifiers(),
        {},
        TaskConfig(compact=True, max_rec_history=1, max_search_sessions=1),
    )
    history = [
        HistoryEntry(schema.SEARCH_QUERY, query="piano"),
        HistoryEntry(schema.SEARCH_ITEM, item_id="piano"),
        HistoryEntry(schema.REC_ITEM, item_id="piano"),
        HistoryEntry(schema.SEARCH_QUERY, query="artificial intelligence"),
        HistoryEntry(schema.SEARCH_ITEM, item_id="macbook"),
        HistoryEntry(schema.REC_ITEM, item_id="macbook"),
    ]
    assert b.window(history) == history[3:]
    assert TaskBuilder(tokenizer, FakeIdentifiers(), {}, TaskConfig()).window(history) == history


def test_purchase_pairs_keep_one_rendering_of_a_purchase(tokenizer):
    """amazon-unisrec renders a purchase twice (a rec click and a search session with the
    same item at the same time): 'search' drops the rec click, 'rec' the search click (its
    query stays); entries without a time, or clicks of another time, are never paired."""
    rec = HistoryEntry(schema.REC_ITEM, item_id="piano", time=4)
    query = HistoryEntry(schema.SEARCH_QUERY, query="piano", time=4)
    click = HistoryEntry(schema.SEARCH_ITEM, item_id="piano", time=4)
    lone = HistoryEntry(schema.REC_ITEM, item_id="macbook", time=5)
    later = HistoryEntry(schema.REC_ITEM, item_id="piano", time=6)  # bought again, no search
    untimed = [
        HistoryEntry(schema.REC_ITEM, item_id="piano"),
        HistoryEntry(schema.SEARCH_ITEM, item_id="piano"),
    ]
    history = [rec, query, click, lone, later]

    def window(keep: str, entries=history):
        config = TaskConfig(compact=True, purchase_pairs=keep)
        return TaskBuilder(tokenizer, FakeIdentifiers(), {}, config).window(entries)

    assert window("both") == history
    assert window("search") == [query, click, lone, later]
    assert window("rec") == [rec, query, lone, later]
    assert window("search", untimed) == untimed
    both = TaskBuilder(tokenizer, FakeIdentifiers(), {}, TaskConfig(compact=True))
    shorter = TaskBuilder(
        tokenizer, FakeIdentifiers(), {}, TaskConfig(compact=True, purchase_pairs="search")
    )
    assert len(shorter.instruction(NRIP, history)) < len(both.instruction(NRIP, history))
